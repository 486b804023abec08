"""The roster fold and the rule of who is expected, without I/O."""

from datetime import UTC, date, datetime, timedelta

from sotay_events.catalogue.identity import (
    Gender,
    MemberRegistered,
    MemberRegistrationApproved,
    MemberRegistrationRejected,
    MemberRemoved,
    MemberStatus,
    MemberStatusChanged,
    MemberTransferred,
    RoleGranted,
    RoleRevoked,
)
from sotay_platform.roster import (
    Purpose,
    Span,
    apply_member_event,
    counted_branch,
    counts,
    is_expected,
    spans,
)


def registered(status: MemberStatus = MemberStatus.official) -> MemberRegistered:
    return MemberRegistered(
        member_id="m1",
        full_name="Nguyễn Văn An",
        gender=Gender.male,
        branch_id="CB1",
        status=status,
        admitted_on=date(2010, 5, 19),
    )


def fold(*events: object) -> dict:
    doc: dict = {"_id": "m1"}
    for event in events:
        apply_member_event(doc, event)
    return doc


def test_only_approved_official_or_probationary_members_are_expected() -> None:
    approved = MemberRegistrationApproved(member_id="m1", branch_id="CB1", approved_by="s")
    assert not is_expected(fold(registered()))
    assert is_expected(fold(registered(), approved))
    assert is_expected(fold(registered(MemberStatus.probationary), approved))
    assert not is_expected(fold(registered(MemberStatus.exempted), approved))
    exempted = MemberStatusChanged(
        member_id="m1",
        branch_id="CB1",
        status=MemberStatus.exempted,
        previous_status=MemberStatus.official,
        effective_on=date(2026, 1, 1),
    )
    assert not is_expected(fold(registered(), approved, exempted))
    assert not is_expected(
        fold(registered(), approved, MemberRemoved(member_id="m1", branch_id="CB1"))
    )


def test_transfers_and_roles_follow_the_member() -> None:
    doc = fold(
        registered(),
        MemberTransferred(
            member_id="m1", from_branch_id="CB1", to_branch_id="CB2", effective_on=date(2026, 3, 1)
        ),
        RoleGranted(member_id="m1", role="branch_secretary", unit_id="CB2", granted_by="a"),
        RoleGranted(member_id="m1", role="branch_secretary", unit_id="CB2", granted_by="a"),
    )
    assert doc["branch_id"] == "CB2"
    assert doc["roles"] == [{"role": "branch_secretary", "unit_id": "CB2"}]
    apply_member_event(
        doc, RoleRevoked(member_id="m1", role="branch_secretary", unit_id="CB2", revoked_by="a")
    )
    assert doc["roles"] == []


# The rule of who counts, as of a date.

T0 = datetime(2026, 11, 1, 3, tzinfo=UTC)


def at(days: float) -> datetime:
    return T0 + timedelta(days=days)


def dated(*facts: tuple[float, object]) -> dict:
    doc: dict = {"_id": "m1"}
    for version, (when, event) in enumerate(facts, start=1):
        apply_member_event(doc, event, at(when), version)
    return doc


APPROVED = MemberRegistrationApproved(member_id="m1", branch_id="CB1", approved_by="s")


def test_a_pending_or_rejected_registration_never_counts() -> None:
    pending = dated((0, registered()))
    for purpose in Purpose:
        assert not counts(pending, purpose, at(5)) and not counts(pending, purpose)
    rejected = dated(
        (0, registered()),
        (
            1,
            MemberRegistrationRejected(
                member_id="m1", branch_id="CB1", rejected_by="s", reason="Sai chi bộ"
            ),
        ),
    )
    assert not any(counts(rejected, p) for p in Purpose)
    approved_later = dated((0, registered()), (3, APPROVED))
    assert not counts(approved_later, Purpose.on_list, at(2))
    assert counts(approved_later, Purpose.on_list, at(3))


def test_exempted_members_are_on_the_list_but_neither_attend_nor_study() -> None:
    doc = dated(
        (0, registered()),
        (0, APPROVED),
        (
            10,
            MemberStatusChanged(
                member_id="m1",
                branch_id="CB1",
                status=MemberStatus.exempted,
                previous_status=MemberStatus.official,
                effective_on=date(2026, 11, 15),
            ),
        ),
    )
    assert all(counts(doc, p, at(13)) for p in Purpose)
    for when in (at(14.9), None):
        assert counts(doc, Purpose.on_list, when)
        assert not counts(doc, Purpose.attend, when)
        assert not counts(doc, Purpose.study, when)
    assert not is_expected(doc)


def test_the_transfer_date_decides_the_branch() -> None:
    transfer = MemberTransferred(
        member_id="m1", from_branch_id="CB1", to_branch_id="CB2", effective_on=date(2026, 11, 20)
    )
    ahead = dated((0, registered()), (0, APPROVED), (10, transfer))  # recorded on the 11th
    assert counted_branch(ahead, Purpose.attend, at(15)) == "CB1"
    assert counted_branch(ahead, Purpose.attend, at(19)) == "CB2"  # 20/11 in Vietnam
    assert counted_branch(ahead, Purpose.attend) == "CB2"
    late = dated((0, registered()), (0, APPROVED), (25, transfer))  # recorded on the 26th
    assert counted_branch(late, Purpose.study, at(24)) == "CB1"  # a report of the 25th holds
    assert counted_branch(late, Purpose.study, at(25)) == "CB2"
    assert spans(ahead, Purpose.study) == [
        Span("CB1", at(0), datetime(2026, 11, 19, 17, tzinfo=UTC)),
        Span("CB2", datetime(2026, 11, 19, 17, tzinfo=UTC), None),
    ]


def test_removal_ends_counting_and_redelivery_changes_nothing() -> None:
    doc = dated(
        (0, registered()), (0, APPROVED), (5, MemberRemoved(member_id="m1", branch_id="CB1"))
    )
    assert counts(doc, Purpose.on_list, at(4)) and not counts(doc, Purpose.on_list, at(5))
    assert spans(doc, Purpose.on_list) == [Span("CB1", at(0), at(5))]
    again = dict(doc, branches=list(doc["branches"]))
    apply_member_event(again, registered(), at(0), 1)
    assert again["branches"] == doc["branches"] and again["registered_at"] == at(0)
