"""Routing and a submission's life, without I/O."""

from datetime import UTC, datetime, timedelta

import pytest

from sotay_events.catalogue.feedback import (
    FeedbackBody,
    FeedbackKind,
    FeedbackSubject,
    QaEntryPublished,
)
from sotay_feedback.domain import (
    DEFAULT_RULES,
    Feedback,
    FeedbackError,
    Holder,
    RoutingTable,
    Rules,
    WrongState,
    first_holder,
    forward_target,
    rules_for,
    superior_of,
)

NOW = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
BRANCH = ("TW", "HN", "X1", "CB1")
X1_RULES = Rules(
    routes={**DEFAULT_RULES.routes, FeedbackSubject.app: FeedbackBody.propaganda_department},
    deadline_days={**DEFAULT_RULES.deadline_days, FeedbackKind.question: 3},
    reminder_days=1,
)
B = FeedbackBody


def submitted(kind: FeedbackKind = FeedbackKind.question, public: bool = True) -> Feedback:
    feedback = Feedback.submit(
        "f1",
        kind=kind,
        subject=FeedbackSubject.organisation,
        branch_id="CB1",
        addressed_to="committee",
        to_unit_id="X1",
        public_allowed=public,
        now=NOW,
    )
    feedback.route(Holder(BRANCH[:-1], B.organisation_department), "default", DEFAULT_RULES, NOW)
    return feedback


def test_the_committee_table_routes_a_subject_to_its_body() -> None:
    tables = {"X1": X1_RULES}
    holder, by = first_holder("committee", FeedbackSubject.app, BRANCH, tables)
    assert (holder, by) == (Holder(BRANCH[:-1], B.propaganda_department), "routing_table")
    holder, by = first_holder("committee", FeedbackSubject.organisation, BRANCH, {})
    assert (holder, by) == (Holder(BRANCH[:-1], B.organisation_department), "default")
    # The branch's own work goes back to the branch; a submission to the branch stays there.
    holder, _ = first_holder("committee", FeedbackSubject.branch_work, BRANCH, tables)
    assert holder == Holder(BRANCH, B.branch)
    assert first_holder("branch", FeedbackSubject.app, BRANCH, tables)[1] == "addressed"


def test_a_table_set_higher_up_applies_below_until_a_nearer_one_is_set() -> None:
    assert rules_for(("TW", "HN", "X1"), {"HN": X1_RULES}) is X1_RULES
    assert rules_for(("TW", "HN", "X1"), {}) is DEFAULT_RULES
    holder = Holder(BRANCH, B.branch)
    assert holder.committee_path == ("TW", "HN", "X1")


def test_up_a_level_goes_to_the_superior_committee_never_back_to_a_branch() -> None:
    at_branch = Holder(BRANCH, B.branch)
    assert superior_of(at_branch, FeedbackSubject.branch_work, {}) == Holder(BRANCH[:-1], B.office)
    at_x1 = Holder(BRANCH[:-1], B.office)
    assert superior_of(at_x1, FeedbackSubject.inspection, {}) == Holder(
        ("TW", "HN"), B.inspection_committee
    )
    assert superior_of(Holder(("TW",), B.office), FeedbackSubject.app, {}) is None


def test_forward_targets() -> None:
    at_x1 = Holder(BRANCH[:-1], B.office)
    assert forward_target(
        at_x1, BRANCH, B.organisation_department, False, FeedbackSubject.other, {}
    ) == Holder(BRANCH[:-1], B.organisation_department)
    assert forward_target(at_x1, BRANCH, B.branch, False, FeedbackSubject.other, {}) == Holder(
        BRANCH, B.branch
    )
    at_branch = Holder(BRANCH, B.branch)
    assert forward_target(
        at_branch, BRANCH, B.inspection_committee, False, FeedbackSubject.other, {}
    ) == Holder(BRANCH[:-1], B.inspection_committee)
    with pytest.raises(FeedbackError) as refused:
        forward_target(at_x1, BRANCH, B.office, False, FeedbackSubject.other, {})
    assert refused.value.field == "to_body"
    with pytest.raises(FeedbackError):
        forward_target(at_x1, BRANCH, None, False, FeedbackSubject.other, {})


def test_routing_table_keeps_what_is_not_given_and_refuses_bad_days() -> None:
    table = RoutingTable("X1")
    assert table.set(
        routes={FeedbackSubject.app: B.propaganda_department},
        deadline_days={FeedbackKind.question: 3},
        reminder_days=1,
        set_by="vp",
    )
    assert table.rules == X1_RULES
    assert not table.set(routes={}, deadline_days={}, reminder_days=1, set_by="vp")  # no change
    assert len(table.pending) == 1
    with pytest.raises(FeedbackError) as refused:
        table.set(routes={}, deadline_days={FeedbackKind.petition: 0}, reminder_days=1, set_by="x")
    assert refused.value.field == "deadline_days.petition"
    with pytest.raises(FeedbackError) as refused:
        table.set(routes={}, deadline_days={}, reminder_days=3, set_by="x")
    assert refused.value.field == "reminder_days"


def test_a_question_answered_publicly_publishes_the_anonymised_entry() -> None:
    feedback = submitted()
    assert feedback.hop is not None and feedback.hop.number == 1
    answered = feedback.answer_it(
        "public", by="ban-to-chuc", now=NOW + timedelta(days=1), question="Hỏi?", answer="Đáp."
    )
    assert answered.on_time and answered.deadline == feedback.hop.deadline
    published = feedback.pending[-1]
    assert isinstance(published, QaEntryPublished)
    assert (published.unit_id, published.question, published.answer) == ("X1", "Hỏi?", "Đáp.")
    # Nothing in a payload but the published entry names a member or carries text.
    for event in feedback.pending[:-1]:
        assert "member" not in " ".join(event.model_dump()) and "text" not in event.model_dump()


def test_no_public_answer_without_consent() -> None:
    feedback = submitted(public=False)
    with pytest.raises(FeedbackError) as refused:
        feedback.answer_it("public", by="b", now=NOW, question="q", answer="a")
    assert refused.value.field == "visibility"
    feedback.answer_it("private", by="b", now=NOW)
    assert feedback.state == "answered"


def test_life_cycle_rules() -> None:
    feedback = submitted()
    assert feedback.assign("cv1", by="b", now=NOW)
    assert not feedback.assign("cv1", by="b", now=NOW)  # the same again: nothing new
    with pytest.raises(WrongState):
        feedback.close("member", NOW)  # not answered yet
    feedback.add_information(NOW, attachments=2)
    assert (feedback.additions, feedback.attachments) == (1, 2)
    feedback.answer_it("private", by="b", now=NOW)
    with pytest.raises(WrongState):
        feedback.withdraw(NOW)
    feedback.reopen(DEFAULT_RULES, NOW)
    assert (feedback.state, feedback.current.number, feedback.reopens) == ("received", 2, 1)
    feedback.answer_it("private", by="b", now=NOW)
    assert not feedback.can_reopen
    with pytest.raises(WrongState):
        feedback.reopen(DEFAULT_RULES, NOW)
    feedback.escalate(Holder(("TW", "HN"), B.office), DEFAULT_RULES, "not_resolved", NOW)
    assert (feedback.current.unit_id, feedback.escalations) == ("HN", ["not_resolved"])
    feedback.withdraw(NOW)
    assert not feedback.withdraw(NOW)


def test_reminder_once_before_the_deadline_then_overdue() -> None:
    feedback = submitted()  # a question: 7 working days, reminded 2 before
    hop = feedback.current
    assert not feedback.reminder_due(NOW)
    assert not feedback.remind(NOW)
    assert feedback.remind(hop.remind_at)
    assert not feedback.remind(hop.remind_at + timedelta(hours=1))  # once per hop
    assert not feedback.overdue(hop.deadline - timedelta(seconds=1))
    with pytest.raises(WrongState):
        feedback.escalate(Holder(("TW", "HN"), B.office), DEFAULT_RULES, "overdue", NOW)
    assert feedback.overdue(hop.deadline)
    feedback.escalate(Holder(("TW", "HN"), B.office), DEFAULT_RULES, "overdue", hop.deadline)
    escalated = feedback.pending[-1]
    assert escalated.missed_deadline == hop.deadline  # type: ignore[attr-defined]
    assert feedback.current.deadline > hop.deadline and not feedback.current.reminded


def test_a_late_answer_is_not_on_time() -> None:
    feedback = submitted()
    late = feedback.answer_it("private", by="b", now=feedback.current.deadline + timedelta(1))
    assert not late.on_time
