"""The contract without I/O: envelope, catalogue, upcasting."""

import re
from datetime import UTC, datetime

import pytest

from sotay_events import CATALOGUE, EventEnvelope, UnknownEvent, decode
from sotay_events.catalogue.org_tree import OrgLevel, UnitCreated


def test_event_ids_sort_by_time() -> None:
    ids = [
        EventEnvelope(
            event_type="X",
            schema_version=1,
            aggregate_type="A",
            aggregate_id="a",
            aggregate_version=1,
        ).event_id
        for _ in range(50)
    ]
    assert ids == sorted(ids)


def test_envelope_requires_timezone() -> None:
    with pytest.raises(ValueError, match="time zone"):
        EventEnvelope(
            event_type="X",
            schema_version=1,
            aggregate_type="A",
            aggregate_id="a",
            aggregate_version=1,
            occurred_at=datetime(2026, 1, 1),
        )


def test_envelope_round_trips_through_bytes() -> None:
    envelope = EventEnvelope(
        event_type="UnitRenamed",
        schema_version=1,
        aggregate_type="OrgUnit",
        aggregate_id="HN",
        aggregate_version=2,
        org_path=("VN", "HN"),
        occurred_at=datetime(2026, 5, 1, tzinfo=UTC),
        payload={"unit_id": "HN", "name": "Hà Nội", "previous_name": "HN"},
    )
    assert EventEnvelope.from_bytes(envelope.to_bytes()) == envelope
    assert envelope.province == "HN"


def test_old_unit_created_is_upcast_to_the_latest_version() -> None:
    old = EventEnvelope(
        event_type="UnitCreated",
        schema_version=1,
        aggregate_type="OrgUnit",
        aggregate_id="CB1",
        aggregate_version=1,
        payload={
            "unit_id": "CB1",
            "name": "Chi bộ 1",
            "level_label": "Chi bộ trực thuộc",
            "parent_id": "X",
        },
    )
    event = decode(old)
    assert isinstance(event, UnitCreated)
    assert event.level is OrgLevel.branch


def test_unknown_versions_are_refused() -> None:
    with pytest.raises(UnknownEvent):
        CATALOGUE.decode("UnitCreated", 9, {})
    with pytest.raises(UnknownEvent):
        CATALOGUE.decode("NoSuchThing", 1, {})


def test_the_four_named_events_exist() -> None:
    for name in ("MemberRegistered", "MeetingConvened", "AbsenceRequested", "ResolutionStudied"):
        assert CATALOGUE.model(name).event_type == name


IRREGULAR_PARTICIPLES = {
    "Reset",
    "Sent",
    "Held",
    "Set",
    "Made",
    "Read",
    "Taken",
    "Given",
    "Won",
    "Withdrawn",
    "Written",
    "Drawn",
    "Begun",
    "Chosen",
    "Forwarded",
    "Put",
    "Undone",
    "Shown",
    "Kept",
    "Left",
    "Brought",
}


def test_every_event_name_is_past_tense() -> None:
    for name in CATALOGUE.event_types():
        words = re.findall(r"[A-Z][a-z]*", name)
        assert any(w.endswith("ed") or w in IRREGULAR_PARTICIPLES for w in words[1:]), name
