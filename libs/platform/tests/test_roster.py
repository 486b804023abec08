"""The roster fold and the rule of who is expected, without I/O."""

from datetime import date

from sotay_events.catalogue.identity import (
    Gender,
    MemberRegistered,
    MemberRegistrationApproved,
    MemberRemoved,
    MemberStatus,
    MemberStatusChanged,
    MemberTransferred,
    RoleGranted,
    RoleRevoked,
)
from sotay_platform.roster import apply_member_event, is_expected


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
