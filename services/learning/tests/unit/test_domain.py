"""Aggregates without I/O: state rebuilt from events, and the rules they check."""

from datetime import UTC, datetime, timedelta

import pytest

from sotay_events.catalogue.learning import MaterialKind, QuizSettings
from sotay_learning.domain import (
    Enrolment,
    MaterialDraft,
    QuestionBank,
    StudyCampaign,
    build_materials,
)
from sotay_platform.errors import ServiceError, status_of

NOW = datetime(2026, 11, 2, 2, 0, tzinfo=UTC)


def campaign(quiz: bool = False) -> StudyCampaign:
    materials, bodies = build_materials(
        [
            MaterialDraft(MaterialKind.text, "Toàn văn", body="Nội dung"),
            MaterialDraft(MaterialKind.attachment, "Tệp", document_id="DOC-1", file_name="nq.pdf"),
        ]
    )
    assert bodies == {"m1": "Nội dung"}
    bank = QuestionBank("B")
    bank.unit_id = "T"
    bank.kinds = {"q1": None, "q2": None}  # type: ignore[dict-item]
    return StudyCampaign.launch(
        "HD",
        "T",
        " 57-NQ/TW ",
        "Nghị quyết 57",
        "Học tập Nghị quyết 57",
        NOW + timedelta(days=10),
        materials,
        QuizSettings(
            bank_id="B", question_count=2, time_limit_minutes=5, max_attempts=1, pass_mark=50
        )
        if quiz
        else None,
        bank if quiz else None,
        ["TW", "T"],
        NOW,
    )


def test_a_campaign_rebuilds_from_its_events() -> None:
    launched = campaign(quiz=True)
    launched.extend_deadline(NOW + timedelta(days=20), NOW)
    launched.close()
    again = StudyCampaign.rebuild("HD", launched.pending)
    assert again.resolution_code == "57-NQ/TW"
    assert again.title == "Học tập Nghị quyết 57"
    assert again.required_material_ids == ["m1", "m2"]
    assert again.deadline == NOW + timedelta(days=20)
    assert again.closed and again.quiz is not None
    assert again.version == 3


def test_a_deadline_only_moves_later() -> None:
    c = campaign()
    with pytest.raises(ServiceError) as err:
        c.extend_deadline(NOW + timedelta(days=5), NOW)
    assert err.value.field == "deadline"


def test_material_studied_says_when_the_required_ones_are_done() -> None:
    c = campaign()
    e = Enrolment(Enrolment.id_for("HD", "m1"))
    assert (e.campaign_id, e.member_id) == ("HD", "m1")
    e.study(c, "m1", "CB1", NOW)
    e.study(c, "m2", "CB1", NOW)
    flags = [getattr(ev, "required_completed", None) for ev in e.pending]
    assert flags == [None, False, True, None]  # StudyStarted, m1, m2, ResolutionStudied
    assert e.pending[-1].event_type == "ResolutionStudied"
    with pytest.raises(ServiceError) as err:
        e.study(c, "nope", "CB1", NOW)
    assert (err.value.field, status_of(err.value)) == ("material_id", 404)


def test_an_unknown_verdict_is_refused() -> None:
    c = campaign()
    e = Enrolment("HD:m1")
    e.submit_reflection(c, "CB1", NOW)
    with pytest.raises(ServiceError) as err:
        e.review_reflection("s1", "xuất sắc", "CB1")
    assert err.value.field == "verdict"


def test_material_ids_are_unique() -> None:
    with pytest.raises(ServiceError) as err:
        build_materials(
            [
                MaterialDraft(MaterialKind.link, "A", url="https://a.vn", material_id="x"),
                MaterialDraft(MaterialKind.link, "B", url="https://b.vn", material_id="x"),
            ]
        )
    assert err.value.field == "materials.1.material_id"
