"""The usage stream's contract: its AsyncAPI document, and no personal data in it."""

from __future__ import annotations

import json
from pathlib import Path

from sotay_events import topics
from sotay_events.catalogue import CATALOGUE
from sotay_events.catalogue.reporting import UsageFiguresPublished
from sotay_reporting import asyncapi

COMMITTED = Path(__file__).resolve().parents[2] / "asyncapi.json"
PERSONAL = {"member_id", "full_name", "citizen_id", "phone", "birth_date", "party_card_no"}


def test_committed_asyncapi_document_is_the_generated_one() -> None:
    assert json.loads(COMMITTED.read_text(encoding="utf-8")) == asyncapi.document(), (
        "regenerate: python -m sotay_reporting.asyncapi > services/reporting/asyncapi.json"
    )


def test_asyncapi_documents_the_usage_stream() -> None:
    doc = asyncapi.document()
    assert doc["asyncapi"].startswith("3.")
    addresses = {c["address"] for c in doc["channels"].values()}
    assert topics.USAGE_STREAM in addresses and topics.REPORTING in addresses
    text = json.dumps(doc, ensure_ascii=False)
    assert "UsageFigures" in text and "registered_rate" in text


def test_usage_stream_is_registered_and_carries_no_personal_field() -> None:
    model = CATALOGUE.model("UsageFiguresPublished")
    assert model is UsageFiguresPublished and model.topic == topics.USAGE_STREAM
    schema = json.dumps(UsageFiguresPublished.model_json_schema())
    assert not [field for field in PERSONAL if f'"{field}"' in schema]
