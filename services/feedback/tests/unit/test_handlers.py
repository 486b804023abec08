"""Commands through the service layer: routing by table, authorization, privacy, idempotence."""

from datetime import timedelta

import pytest

from sotay_events import InMemoryEventStore, decode
from sotay_events.catalogue.feedback import FeedbackBody, FeedbackKind, FeedbackSubject
from sotay_feedback.domain import FeedbackError, WrongState
from sotay_feedback.handlers import DUE, VAULT, FeedbackService
from sotay_platform.auth import Role
from sotay_platform.errors import Forbidden

from .conftest import Clock, FakeUnits, member, official

X1_OFFICE = official(Role.committee_admin, "X1", "vp-x1")
HN_OFFICE = official(Role.committee_admin, "HN", "vp-hn")
CB1_SECRETARY = official(Role.branch_secretary, "CB1", "bt-cb1")
CB2_SECRETARY = official(Role.branch_secretary, "CB2", "bt-cb2")


async def submit(service: FeedbackService, **overrides):  # type: ignore[no-untyped-def]
    values = {
        "kind": FeedbackKind.proposal,
        "subject": FeedbackSubject.organisation,
        "addressed_to": "committee",
        "title": "Đề xuất về công tác phát triển đảng viên",
        "text": "Nội dung đề xuất chi tiết của đồng chí Nguyễn Văn A",
    }
    values.update(overrides)
    feedback, created = await service.submit(member("m1"), **values)
    assert created
    return feedback


async def test_a_submission_lands_where_the_table_says(service: FeedbackService) -> None:
    await service.set_routing_table(
        X1_OFFICE,
        "X1",
        routes={FeedbackSubject.organisation: FeedbackBody.office},
        deadline_days={},
        reminder_days=2,
    )
    feedback = await submit(service)
    assert (feedback.current.unit_id, feedback.current.body) == ("X1", FeedbackBody.office)
    to_branch = await submit(service, addressed_to="branch")
    assert (to_branch.current.unit_id, to_branch.current.body) == ("CB1", FeedbackBody.branch)


async def test_only_a_committee_sets_its_table(service: FeedbackService) -> None:
    with pytest.raises(Forbidden):
        await service.set_routing_table(
            CB1_SECRETARY, "X1", routes={}, deadline_days={}, reminder_days=1
        )
    with pytest.raises(FeedbackError) as refused:
        await service.set_routing_table(
            X1_OFFICE, "CB1", routes={}, deadline_days={}, reminder_days=1
        )
    assert refused.value.field == "unit_id"


async def test_events_carry_no_text_and_no_member(
    service: FeedbackService, store: InMemoryEventStore
) -> None:
    feedback = await submit(service)
    await service.answer(X1_OFFICE, feedback.id, text="Trả lời riêng", visibility="private")
    for envelope in store.all_events():
        raw = envelope.model_dump_json()
        assert "m1" not in raw and "Nguyễn" not in raw and "Trả lời" not in raw
        assert envelope.org_path == ("TW", "HN", "X1", "CB1")
    vault = store.private[VAULT][feedback.id]
    assert vault["member_id"] == "m1" and vault["answers"][0]["text"] == "Trả lời riêng"


async def test_a_retried_submission_submits_once(
    service: FeedbackService, store: InMemoryEventStore
) -> None:
    values = {
        "kind": FeedbackKind.question,
        "subject": FeedbackSubject.app,
        "addressed_to": "committee",
        "title": "Hỏi",
        "text": "Làm sao đổi mật khẩu?",
        "feedback_id": "client-0001",
    }
    first, created = await service.submit(member("m1"), **values)  # type: ignore[arg-type]
    again, created_again = await service.submit(member("m1"), **values)  # type: ignore[arg-type]
    assert created and not created_again and again.id == first.id
    assert len(store.streams["Feedback-client-0001"]) == 2
    with pytest.raises(FeedbackError):
        await service.submit(member("m2"), **values)  # type: ignore[arg-type]


async def test_who_may_act(service: FeedbackService) -> None:
    feedback = await submit(service)
    with pytest.raises(Forbidden):
        await service.answer(CB1_SECRETARY, feedback.id, text="x", visibility="private")
    with pytest.raises(Forbidden):
        await service.withdraw(member("m2"), feedback.id)
    with pytest.raises(Forbidden):
        await service.view(member("m2"), feedback.id)
    assert (await service.view(HN_OFFICE, feedback.id)).vault["member_id"] == "m1"
    with pytest.raises(Forbidden):
        await service.submit(
            CB1_SECRETARY,
            kind=FeedbackKind.comment,
            subject=FeedbackSubject.other,
            addressed_to="branch",
            title="t",
            text="x",
        )


async def test_forward_then_up_then_answer_on_time(service: FeedbackService) -> None:
    feedback = await submit(service)
    loaded = await service.forward(
        X1_OFFICE, feedback.id, to_body=FeedbackBody.office, up=False, reason="Thuộc Văn phòng"
    )
    assert loaded.feedback.current.body is FeedbackBody.office
    loaded = await service.forward(
        X1_OFFICE, feedback.id, to_body=None, up=True, reason="Vượt thẩm quyền"
    )
    hop = loaded.feedback.current
    assert (hop.unit_id, hop.body, hop.number) == ("HN", FeedbackBody.organisation_department, 3)
    with pytest.raises(Forbidden):  # X1 no longer holds it
        await service.answer(X1_OFFICE, feedback.id, text="x", visibility="private")
    loaded = await service.answer(HN_OFFICE, feedback.id, text="Đã tiếp thu", visibility="private")
    assert loaded.feedback.answer is not None and loaded.feedback.answer.on_time


async def test_not_resolved_reopens_once_then_goes_up(service: FeedbackService) -> None:
    feedback = await submit(service)
    await service.answer(X1_OFFICE, feedback.id, text="Trả lời 1", visibility="private")
    loaded = await service.not_resolved(member("m1"), feedback.id, "Chưa rõ")
    assert (loaded.feedback.state, loaded.feedback.current.unit_id) == ("received", "X1")
    await service.answer(X1_OFFICE, feedback.id, text="Trả lời 2", visibility="private")
    loaded = await service.not_resolved(member("m1"), feedback.id, "Vẫn chưa rõ")
    assert loaded.feedback.current.unit_id == "HN"
    assert loaded.feedback.escalations == ["not_resolved"]
    await service.answer(HN_OFFICE, feedback.id, text="Trả lời 3", visibility="private")
    loaded = await service.accept(member("m1"), feedback.id)
    assert loaded.feedback.state == "closed"


async def test_the_watcher_commands_remind_then_escalate_once(
    service: FeedbackService, store: InMemoryEventStore, clock: Clock
) -> None:
    feedback = await submit(service, kind=FeedbackKind.question)
    hop = feedback.current
    assert store.rows[DUE][feedback.id]["deadline"] == hop.deadline
    assert not await service.remind(feedback.id)
    clock.now = hop.remind_at
    assert await service.remind(feedback.id)
    assert not await service.remind(feedback.id)
    assert store.rows[DUE][feedback.id]["reminded"]
    clock.now = hop.deadline + timedelta(minutes=1)
    assert await service.escalate_overdue(feedback.id)
    assert not await service.escalate_overdue(feedback.id)  # a second replica: nothing new
    types = [e.event_type for e in store.streams[f"Feedback-{feedback.id}"]]
    assert types.count("FeedbackEscalated") == 1 and types.count("FeedbackReminded") == 1
    escalated = decode(store.streams[f"Feedback-{feedback.id}"][-1])
    assert escalated.unit_id == "HN"  # type: ignore[attr-defined]
    # At the top there is nowhere to go: it stays, marked, and is not retried.
    await service.forward(HN_OFFICE, feedback.id, to_body=None, up=True, reason="Lên TW")
    loaded = await service.view(official(Role.committee_admin, "TW"), feedback.id)
    clock.now = loaded.feedback.current.deadline
    assert not await service.escalate_overdue(feedback.id)
    assert store.rows[DUE][feedback.id]["stuck"]
    await service.answer(
        official(Role.committee_admin, "TW"), feedback.id, text="Đáp", visibility="private"
    )
    assert feedback.id not in store.rows[DUE]


async def test_a_merged_committee_s_submissions_are_held_by_its_successor(
    service: FeedbackService, units: FakeUnits
) -> None:
    feedback = await submit(service)
    units.merge("X1", "X2")
    units.move("CB1", "X2")
    x2_office = official(Role.committee_admin, "X2", "vp-x2")
    loaded = await service.answer(x2_office, feedback.id, text="Đáp", visibility="private")
    assert loaded.feedback.state == "answered"


async def test_attachments_are_counted_once(service: FeedbackService) -> None:
    feedback = await submit(service)
    file = {"file_id": "f:abc", "name": "a.pdf", "kind": "pdf", "size": 10, "sha256": "abc"}
    loaded = await service.add_information(member("m1"), feedback.id, attachments=[file])
    again = await service.add_information(member("m1"), feedback.id, attachments=[file])
    assert loaded.feedback.attachments == 1 and again.feedback.attachments == 1
    await service.answer(X1_OFFICE, feedback.id, text="x", visibility="private")
    with pytest.raises(WrongState):
        await service.add_information(member("m1"), feedback.id, text="muộn")


async def test_only_a_branch_member_submits_and_members_read_their_committee_s_table(
    service: FeedbackService,
) -> None:
    with pytest.raises(FeedbackError) as refused:
        await service.submit(
            member("m9", "X1"),
            kind=FeedbackKind.comment,
            subject=FeedbackSubject.other,
            addressed_to="committee",
            title="t",
            text="x",
        )
    assert refused.value.field == "branch_id"
    unit, rules, own = await service.routing_table(member("m1"), "X1")
    assert (unit.id, own) == ("X1", False) and rules.deadline_days[FeedbackKind.question] == 7
    with pytest.raises(Forbidden):
        await service.routing_table(member("m1"), "X2")
