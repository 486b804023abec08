"""Commands on an in-memory store: registration, scope, roles, sign-in, uniqueness."""

import asyncio
from collections.abc import Callable

import pytest

from sotay_events import EventEnvelope
from sotay_events.catalogue.org_tree import OrgLevel, UnitMerged
from sotay_identity.domain import MANAGERS, Member, MemberFields, RuleBroken
from sotay_identity.handlers import PWD_CHANGE_REQUIRED, AccountLocked, IdentityService
from sotay_identity.storage import MemoryStorage
from sotay_identity.tree import MemoryTree
from sotay_platform.auth import Principal, Role, TokenVerifier
from sotay_platform.errors import Conflict, Forbidden, Unauthorized
from sotay_platform.settings import AuthSettings

from .conftest import member_input

Make = Callable[..., Principal]
PASSWORD = "matkhau123"


async def approved(
    service: IdentityService, principal: Make, branch: str = "CB1", **kw: str
) -> Member:
    member = await service.register(member_input(**kw), branch, PASSWORD)
    await service.approve(principal(Role.branch_secretary, branch), member.id)
    return member


async def test_register_approve_login_and_verify_offline(
    service: IdentityService, principal: Make
) -> None:
    member = await service.register(member_input(), "CB1", PASSWORD)
    with pytest.raises(Forbidden) as exc:
        await service.login("0912345678", PASSWORD)
    assert exc.value.code == "pending_approval"
    await service.approve(principal(Role.branch_secretary, "CB1"), member.id)
    tokens = await service.login("0912345678", PASSWORD)
    verifier = TokenVerifier(AuthSettings(), service.issuer.jwks())
    caller = verifier.verify(tokens.access_token)
    assert caller.member_id == member.id
    assert caller.covers([Role.member], ["TW", "HN", "HN.X", "CB1"])
    assert not caller.covers([Role.member], ["TW", "HN", "HN.X", "CB2"])
    view = await service.view(caller, member.id)
    assert view["personal"]["citizen_id"] == "001075001234"
    assert view["personal"]["birth_date"] == "15/08/1975"
    assert view["admitted_on"] == "03/02/2000"


async def test_events_carry_no_personal_data(service: IdentityService, principal: Make) -> None:
    await approved(service, principal)
    await service.login("0912345678", PASSWORD)
    storage = service.storage
    assert isinstance(storage, MemoryStorage)
    text = str([e.model_dump() for e in storage.store.all_events()])
    for secret in ("001075001234", "0912345678", "1975-08-15", "15/08/1975", PASSWORD):
        assert secret not in text
    types = [e.event_type for e in storage.store.all_events()]
    assert types == [
        "MemberRegistered",
        "MemberRegistrationApproved",
        "AccountActivated",
        "MemberSignedIn",
    ]
    assert storage.store.all_events()[0].org_path == ("TW", "HN", "HN.X", "CB1")


async def test_secretary_of_another_branch_is_refused(
    service: IdentityService, principal: Make
) -> None:
    member = await service.register(member_input(), "CB1", PASSWORD)
    other = principal(Role.branch_secretary, "CB2")
    for call in (
        service.approve(other, member.id),
        service.reject(other, member.id, "không đúng"),
        service.view(other, member.id),
        service.update(other, member.id, MemberFields.model_validate({"full_name": "Lê Văn Ba"})),
        service.transfer(other, member.id, "CB2"),
        service.roster(other, "CB1"),
    ):
        with pytest.raises(Forbidden):
            await call
    with pytest.raises(Forbidden):
        await service.create_member(other, member_input(citizen_id="001075009999"), "CB1")


async def test_the_branch_must_exist_and_hold_members(
    service: IdentityService, tree: MemoryTree
) -> None:
    for branch, words in (
        ("NOPE", "Không tìm thấy"),
        ("HN.X", "không phải chi bộ"),
        (None, "bắt buộc"),
    ):
        with pytest.raises(RuleBroken) as exc:
            await service.register(member_input(), branch, PASSWORD)
        assert exc.value.field == "branch_id"
        assert words in exc.value.message
    tree.merge("CB2", "CB1")
    with pytest.raises(RuleBroken) as exc:
        await service.register(member_input(), "CB2", PASSWORD)
    assert "hợp nhất" in exc.value.message


async def test_citizen_id_and_party_card_are_unique_even_concurrently(
    service: IdentityService, principal: Make
) -> None:
    """Anonymous registrations all get the same answer; the keys go to one member only,
    and the secretary sees the conflict when reviewing the other."""
    first, second = await asyncio.gather(
        service.register(member_input(), "CB1", PASSWORD),
        service.register(member_input(phone="0987654321"), "CB1", PASSWORD),
    )
    secretary = principal(Role.branch_secretary, "CB1")
    pending = await service.roster(secretary, "CB1", states=("pending",), readers=MANAGERS)
    conflicts = {m["member_id"]: m["conflicts"] for m in pending["items"]}
    assert sorted(map(sorted, conflicts.values())) == [[], ["citizen_id", "party_card_no"]]
    loser = next(m for m, c in conflicts.items() if c)
    with pytest.raises(Conflict) as exc:
        await service.approve(secretary, loser)
    assert exc.value.field in ("citizen_id", "party_card_no")
    winner = first if loser == second.id else second
    await service.approve(secretary, winner.id)
    # A secretary recording a member directly is told at once, naming the field.
    with pytest.raises(Conflict) as exc:
        await service.create_member(
            secretary, member_input(citizen_id="001075005555", phone="0987654320"), "CB1"
        )
    assert exc.value.field == "party_card_no"


async def test_a_fullwidth_citizen_id_or_phone_is_its_ascii_twin(
    service: IdentityService, principal: Make
) -> None:
    secretary = principal(Role.branch_secretary, "CB1")
    await service.create_member(secretary, member_input(), "CB1", PASSWORD)
    with pytest.raises(Conflict) as exc:
        await service.create_member(
            secretary,
            member_input(citizen_id="００１０７５００１２３４", party_card_no="", phone=""),
            "CB1",
        )
    assert exc.value.field == "citizen_id"
    with pytest.raises(Conflict) as exc:
        await service.create_member(
            secretary,
            member_input(citizen_id="001075009999", party_card_no="", phone="０９１２３４５６７８"),
            "CB1",
            PASSWORD,
        )
    assert exc.value.field == "phone"


async def test_rejection_frees_the_keys_and_erases_personal_data(
    service: IdentityService, principal: Make
) -> None:
    first = await service.register(member_input(), "CB1", PASSWORD)
    await service.reject(principal(Role.branch_secretary, "CB1"), first.id, "Sai chi bộ")
    assert await service.storage.personal(first.id) is None
    again = await service.register(member_input(), "CB2", PASSWORD)
    assert again.id != first.id


async def test_lockout_after_repeated_failures(service: IdentityService, principal: Make) -> None:
    member = await approved(service, principal)
    for left in (2, 1):
        with pytest.raises(Unauthorized) as exc:
            await service.login("0912345678", "sai-mat-khau1")
        assert f"còn {left} lần" in exc.value.message
    with pytest.raises(AccountLocked):
        await service.login("0912345678", "sai-mat-khau1")
    with pytest.raises(AccountLocked):
        await service.login("0912345678", PASSWORD)  # even the right password
    await service.reset_password(principal(Role.branch_secretary, "CB1"), member.id, "tamthoi123")
    tokens = await service.login("0912345678", "tamthoi123")
    assert tokens.must_change_password
    claims = TokenVerifier(AuthSettings(), service.issuer.jwks()).verify(tokens.access_token)
    assert claims.claims[PWD_CHANGE_REQUIRED] is True
    await service.change_password(claims, "tamthoi123", "moi12345a")
    tokens = await service.login("0912345678", "moi12345a")
    claims = TokenVerifier(AuthSettings(), service.issuer.jwks()).verify(tokens.access_token)
    assert PWD_CHANGE_REQUIRED not in claims.claims and not tokens.must_change_password


async def test_refresh_rotates_and_a_reused_token_ends_the_session(
    service: IdentityService, principal: Make
) -> None:
    await approved(service, principal)
    first = await service.login("0912345678", PASSWORD)
    second = await service.refresh(first.refresh_token)
    assert second.refresh_token != first.refresh_token
    with pytest.raises(Unauthorized):
        await service.refresh(first.refresh_token)  # spent: the session ends
    with pytest.raises(Unauthorized):
        await service.refresh(second.refresh_token)


async def test_grants_stay_within_the_granters_scope(
    service: IdentityService, principal: Make
) -> None:
    member = await approved(service, principal)
    commune_admin = principal(Role.committee_admin, "HN.X")
    await service.grant(commune_admin, member.id, "branch_secretary", "CB1")
    secretary = principal(Role.branch_secretary, "CB1")
    with pytest.raises(Forbidden):  # a secretary does not make secretaries
        await service.grant(secretary, member.id, "branch_secretary", "CB1")
    with pytest.raises(Forbidden):  # nor beyond their scope
        await service.grant(commune_admin, member.id, "province_admin", "HN")
    with pytest.raises(Forbidden):
        await service.grant(principal(Role.committee_admin, "HP.X"), member.id, "editor", "HP.X")
    with pytest.raises(RuleBroken) as exc:  # a branch role belongs to the member's branch
        await service.grant(commune_admin, member.id, "branch_committee_member", "CB2")
    assert exc.value.field == "unit_id"
    with pytest.raises(RuleBroken) as exc:  # a province admin sits on a province
        await service.grant(principal(Role.system_admin, "TW"), member.id, "province_admin", "CB1")
    assert exc.value.field == "unit_id"
    await service.grant(secretary, member.id, "branch_committee_member", "CB1")
    # A committee's department answers feedback at the committee, never at a branch.
    await service.grant(commune_admin, member.id, "organisation_department", "HN.X")
    with pytest.raises(RuleBroken) as exc:
        await service.grant(commune_admin, member.id, "inspection_committee", "CB1")
    assert exc.value.field == "unit_id"
    with pytest.raises(Forbidden):
        await service.grant(secretary, member.id, "propaganda_department", "HN.X")
    tokens = await service.login("0912345678", PASSWORD)
    claims = TokenVerifier(AuthSettings(), service.issuer.jwks()).verify(tokens.access_token)
    assert {(g.role, g.unit_id) for g in claims.grants} == {
        (Role.member, "CB1"),
        (Role.branch_secretary, "CB1"),
        (Role.branch_committee_member, "CB1"),
        (Role.organisation_department, "HN.X"),
    }
    await service.revoke(commune_admin, member.id, "branch_secretary", "CB1")
    refreshed = await service.refresh(tokens.refresh_token)
    claims = TokenVerifier(AuthSettings(), service.issuer.jwks()).verify(refreshed.access_token)
    assert Role.branch_secretary not in {g.role for g in claims.grants}


async def test_members_edit_their_summary_but_not_their_discipline(
    service: IdentityService, principal: Make
) -> None:
    member = await approved(service, principal)
    me = Principal(member.id, (), member_id=member.id)
    await service.update(
        me,
        member.id,
        MemberFields.model_validate(
            {
                "phone": "0987654321",
                "work_history": [{"content": "Giáo viên", "from_date": "01/09/1998"}],
            }
        ),
    )
    with pytest.raises(Forbidden) as exc:
        await service.update(
            me, member.id, MemberFields.model_validate({"discipline": [{"content": "Khiển trách"}]})
        )
    assert exc.value.field == "discipline"
    for change in ({"party_card_no": "7654321"}, {"citizen_id": "001075007777"}):
        with pytest.raises(Forbidden) as exc:
            await service.update(me, member.id, MemberFields.model_validate(change))
        assert exc.value.field in change
    # Sent back unchanged (a form does), they are no change at all.
    await service.update(me, member.id, MemberFields.model_validate({"party_card_no": "01234567"}))
    await service.login("0987654321", PASSWORD)  # the new phone signs in
    with pytest.raises(Unauthorized):
        await service.login("0912345678", PASSWORD)
    view = await service.view(me, member.id)
    assert view["personal"]["records"]["work_history"][0]["from_date"] == "01/09/1998"


async def test_transfer_needs_both_branches_in_scope(
    service: IdentityService, principal: Make
) -> None:
    member = await approved(service, principal)
    with pytest.raises(Forbidden):
        await service.transfer(principal(Role.branch_secretary, "CB1"), member.id, "CB2")
    moved = await service.transfer(principal(Role.committee_admin, "HN.X"), member.id, "CB2")
    assert moved.branch_id == "CB2"
    with pytest.raises(Forbidden):
        await service.view(principal(Role.branch_secretary, "CB1"), member.id)
    await service.view(principal(Role.branch_secretary, "CB2"), member.id)


async def test_removal_closes_the_account(service: IdentityService, principal: Make) -> None:
    member = await approved(service, principal)
    await service.login("0912345678", PASSWORD)
    await service.remove(principal(Role.branch_secretary, "CB1"), member.id, "deceased")
    with pytest.raises(Unauthorized):
        await service.login("0912345678", PASSWORD)


async def test_the_secretary_corrects_the_party_record_with_an_event(
    service: IdentityService, principal: Make
) -> None:
    member = await approved(service, principal)
    secretary = principal(Role.branch_secretary, "CB1")
    fix = MemberFields.model_validate(
        {"citizen_id": "001075009876", "party_card_no": "7654321", "admitted_on": "04/02/2000"}
    )
    with pytest.raises(Forbidden):
        await service.correct_party_record(
            Principal(member.id, (), member_id=member.id), member.id, fix, "Tự sửa"
        )
    await service.correct_party_record(secretary, member.id, fix, "Theo hồ sơ gốc")
    view = await service.view(secretary, member.id)
    assert view["personal"]["citizen_id"] == "001075009876"
    assert (view["party_card_no"], view["admitted_on"]) == ("7654321", "04/02/2000")
    storage = service.storage
    assert isinstance(storage, MemoryStorage)
    event = storage.store.all_events()[-1]
    assert event.event_type == "MemberPartyRecordCorrected"
    assert event.payload["personal_fields"] == ["citizen_id"]
    assert "001075009876" not in str(event.model_dump())
    # The old citizen ID is free again; the new one is taken.
    with pytest.raises(Conflict):
        await service.create_member(
            secretary, member_input(citizen_id="001075009876", party_card_no="", phone=""), "CB1"
        )
    await service.create_member(secretary, member_input(party_card_no="", phone=""), "CB1")


async def test_a_merged_branch_answers_with_its_last_successors_path(
    service: IdentityService, tree: MemoryTree, principal: Make
) -> None:
    member = await approved(service, principal, branch="CB2")
    tree.add("CB3", OrgLevel.branch, "HN.X")
    tree.merge("CB2", "CB1")
    tree.merge("CB1", "CB3")  # two levels of merges
    assert await service.tree.scope_path("CB2") == ["TW", "HN", "HN.X", "CB3"]
    assert set(await service.tree.branches_under("CB3")) == {"CB1", "CB2", "CB3"}
    await service.view(principal(Role.branch_secretary, "CB3"), member.id)


async def test_a_merge_moves_the_branchs_members_once(
    service: IdentityService, tree: MemoryTree, principal: Make
) -> None:
    member = await approved(service, principal, branch="CB2")
    tree.merge("CB2", "CB1")
    merge = UnitMerged(unit_id="CB2", into_unit_id="CB1")
    envelope = EventEnvelope(
        event_type=merge.event_type,
        schema_version=merge.schema_version,
        aggregate_type="OrgUnit",
        aggregate_id="CB2",
        aggregate_version=2,
        payload=merge.model_dump(mode="json"),
    )
    assert await service.follow_merge(envelope, merge) == 1
    assert await service.follow_merge(envelope, merge) == 0  # a redelivery changes nothing
    row = await service.storage.member_row(member.id)
    assert row is not None and row["branch_id"] == "CB1"
    storage = service.storage
    assert isinstance(storage, MemoryStorage)
    moved = storage.store.all_events()[-1]
    assert (moved.event_type, moved.actor, moved.causation_id) == (
        "MemberTransferred",
        "system:org-tree-merge",
        envelope.event_id,
    )


async def test_a_sign_in_racing_a_grant_reads_the_member_again(
    service: IdentityService, principal: Make, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sign-in records itself on the member it read for the password check; when a grant
    lands in between, it reads the member again, and the token carries the new grant."""
    member = await approved(service, principal)
    path_of = service.path_of
    raced: list[bool] = []

    async def grant_first(of: Member | dict[str, str]) -> list[str]:
        if isinstance(of, Member) and not raced:
            raced.append(True)
            await service.grant(
                principal(Role.committee_admin, "HN.X"), member.id, "editor", "HN.X"
            )
        return await path_of(of)

    monkeypatch.setattr(service, "path_of", grant_first)
    tokens = await service.login("0912345678", PASSWORD)
    caller = TokenVerifier(AuthSettings(), service.issuer.jwks()).verify(tokens.access_token)
    assert raced and caller.has_role(Role.editor)
