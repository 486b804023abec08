"""One method per command: load, authorize against the member's branch path, decide, commit.

Every write of a command goes through one shared unit of work
(`storage.unit_of_work()`): the member's events, its `members` row, the
private records and the unique-key claims, in one transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

from sotay_events import (
    ClaimTaken,
    CommandContext,
    ConcurrencyConflict,
    EventEnvelope,
    UnitOfWork,
    new_event_id,
)
from sotay_events.catalogue.identity import Gender, MemberStatus
from sotay_events.catalogue.org_tree import OrgLevel, UnitMerged
from sotay_identity.domain import (
    GENDER_LABELS,
    GRANTORS,
    MANAGERS,
    OFFICE_READERS,
    PERSONAL_READERS,
    RECORD_KINDS,
    ROLE_LABELS,
    ROLE_LEVELS,
    ROSTER_READERS,
    STATE_LABELS,
    STATUS_LABELS,
    Member,
    MemberFields,
    PersonalData,
    Problems,
    Profile,
    RemovalReason,
    RuleBroken,
    check_password,
    erased,
    fields_of,
    format_date,
    member_doc,
    parse_role,
    validate_member,
)
from sotay_identity.security import Lockout, Passwords, Revocations, new_refresh_token, token_hash
from sotay_identity.storage import (
    ACCOUNTS,
    CLAIMS,
    KEY_FIELDS,
    MEMBERS,
    PERSONAL,
    SESSIONS,
    KeyHasher,
    Storage,
    key_conflict,
    kind_of,
)
from sotay_identity.tree import Tree, holds_members, is_active
from sotay_platform.auth import PASSWORD_CHANGE_CLAIM, Grant, Principal, Role, TokenIssuer
from sotay_platform.errors import (
    Conflict,
    Forbidden,
    NotFound,
    TooManyRequests,
    TryAgain,
    Unauthorized,
)
from sotay_platform.inputs import VIETNAM, today_in_vietnam

Doc = dict[str, Any]
SYSTEM_MERGE_ACTOR = "system:org-tree-merge"
# A session opened with a temporary password: its access tokens allow nothing but changing
# it (`sotay_platform.auth.current_principal` refuses them everywhere else).
PWD_CHANGE_REQUIRED = PASSWORD_CHANGE_CLAIM
MERGE_BATCH = 200


class AccountLocked(TooManyRequests):
    """Too many wrong passwords for one login: 429 with Retry-After."""

    code = "account_locked"

    def __init__(self, seconds: int) -> None:
        minutes = max(1, (seconds + 59) // 60)
        super().__init__(
            f"Tài khoản tạm khóa do nhập sai mật khẩu nhiều lần; thử lại sau {minutes} phút "
            "hoặc đề nghị bí thư chi bộ đặt lại mật khẩu",
            seconds,
            field="password",
        )

    def body(self) -> dict[str, Any]:
        return {**super().body(), "retry_after_seconds": self.retry_after}


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    expires_in: int
    refresh_token: str
    refresh_expires_in: int
    member_id: str
    must_change_password: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "access_token": self.access_token,
            "token_type": "Bearer",
            "expires_in": self.expires_in,
            "refresh_token": self.refresh_token,
            "refresh_expires_in": self.refresh_expires_in,
            "member_id": self.member_id,
            "must_change_password": self.must_change_password,
        }


def member_view(
    row: Doc, unit: Doc | None, personal: PersonalData | None, *, with_personal: bool
) -> dict[str, Any]:
    status = MemberStatus(row["status"])
    view: dict[str, Any] = {
        "member_id": row["_id"],
        "full_name": row["full_name"],
        "gender": row["gender"],
        "gender_label": GENDER_LABELS.get(row["gender"], ""),
        "branch_id": row["branch_id"],
        "branch_name": unit["name"] if unit else None,
        "status": status.value,
        "status_label": STATUS_LABELS[status],
        "admitted_on": format_date(date.fromisoformat(row["admitted_on"])),
        "official_on": format_date(date.fromisoformat(row["official_on"]))
        if row.get("official_on")
        else None,
        "party_card_no": row.get("party_card_no"),
        "state": row["state"],
        "state_label": STATE_LABELS[row["state"]],
        "registered_by": row["registered_by"],
        "account_active": row["account_active"],
        "on_list": bool(row.get("on_list")),
        "roles": [
            {**r, "label": ROLE_LABELS.get(Role(r["role"]), r["role"])} for r in row["roles"]
        ],
    }
    if with_personal:
        view["personal"] = personal.view() if personal else None
    return view


class IdentityService:
    def __init__(
        self,
        storage: Storage,
        tree: Tree,
        keys: KeyHasher,
        passwords: Passwords,
        issuer: TokenIssuer,
        lockout: Lockout,
        revocations: Revocations,
        *,
        access_ttl: int = 600,
        refresh_ttl: int = 30 * 24 * 3600,
        today: Callable[[], date] = today_in_vietnam,
        new_id: Callable[[], str] = new_event_id,
    ) -> None:
        self.storage = storage
        self.tree = tree
        self.keys = keys
        self.passwords = passwords
        self.issuer = issuer
        self.lockout = lockout
        self.revocations = revocations
        self.access_ttl = access_ttl
        self.refresh_ttl = refresh_ttl
        self.today = today
        self.new_id = new_id

    # helpers ---------------------------------------------------------------

    async def check_branch(
        self, branch_id: str | None, problems: Problems, field: str = "branch_id"
    ) -> list[str]:
        """The branch's path, or a problem naming `field`: unknown, closed, or not a branch.
        The answer names no unit but the one asked about, and not its name: the caller may
        be anonymous or outside its scope."""
        if not branch_id:
            problems.add(field, "Chi bộ sinh hoạt là bắt buộc")
            return []
        doc = await self.tree.get(branch_id)
        if doc is None:
            problems.add(field, f"Không tìm thấy chi bộ có mã {branch_id}")
        elif not is_active(doc):
            problems.add(field, f"Chi bộ {branch_id} đã giải thể hoặc hợp nhất")
        elif not holds_members(doc):
            problems.add(
                field,
                f"Đơn vị {branch_id} là {OrgLevel(doc['level']).label.lower()}, không phải chi "
                "bộ: đảng viên chỉ sinh hoạt ở chi bộ",
            )
        else:
            return list(doc["path"])
        return []

    async def load(self, member_id: str) -> Member:
        member = await self.storage.load_member(member_id)
        if member is None:
            raise NotFound(f"Không tìm thấy đảng viên {member_id}", field="member_id")
        return member

    async def path_of(self, member: Member | Doc) -> list[str]:
        branch = member.branch_id if isinstance(member, Member) else member["branch_id"]
        return await self.tree.scope_path(branch) or [branch]

    async def _manage(self, principal: Principal, member_id: str) -> tuple[Member, list[str]]:
        member = await self.load(member_id)
        path = await self.path_of(member)
        principal.require(MANAGERS, path)
        return member, path

    def _context(
        self, principal: Principal | str, path: Sequence[str], **kw: Any
    ) -> CommandContext:
        actor = principal if isinstance(principal, str) else principal.subject
        return CommandContext(actor=actor, org_path=tuple(path), **kw)

    def claims_of(
        self, member_id: str, profile: Profile, personal: PersonalData, *, with_phone: bool
    ) -> dict[str, str]:
        keys = {self.keys.key("citizen_id", personal.citizen_id): member_id}
        if profile.party_card_no:
            keys[self.keys.key("party_card", profile.party_card_no)] = member_id
        if with_phone and personal.phone:
            keys[self.keys.key("phone", personal.phone)] = member_id
        return keys

    def stage(self, uow: UnitOfWork, member: Member, context: CommandContext) -> None:
        """The member's new events and its read-model row, in the same commit."""
        uow.add(member, context)
        uow.row(MEMBERS, member_doc(member))

    async def commit(self, uow: UnitOfWork, context: CommandContext) -> list[EventEnvelope]:
        """For callers allowed to know who holds a key: a taken claim is a 409."""
        try:
            return await uow.commit(context)
        except ClaimTaken as exc:
            raise key_conflict(exc) from None

    async def _account_doc(self, member_id: str, password: str, must_change: bool) -> Doc:
        return {
            "_id": member_id,
            "password_hash": await self.passwords.hash(password),
            "must_change_password": must_change,
            "password_set_at": datetime.now(UTC),
        }

    # registration ------------------------------------------------------------

    async def register(self, raw: MemberFields, branch_id: str | None, password: str) -> Member:
        """A member registers themselves; the branch secretary approves or rejects.

        The answer never says whether the citizen ID, party card or phone belongs to a
        member already: a key held by another is simply not claimed, and the secretary
        sees the conflict when reviewing (`conflicts` in the pending list); approving it
        is then refused until it is resolved.
        """
        problems = Problems()
        path = await self.check_branch(branch_id, problems)
        check_password(password, problems, raw.phone)
        profile, personal = validate_member(
            raw, self.today(), phone_required=True, problems=problems
        )
        assert branch_id
        member_id = self.new_id()
        member = Member.register(member_id, profile, branch_id, "self", member_id)
        account = await self._account_doc(member_id, password, must_change=False)
        keys = self.claims_of(member_id, profile, personal, with_phone=True)
        context = self._context(member_id, path)
        for _ in range(3):
            held = await self.storage.claim_owners(list(keys))
            uow = self.storage.unit_of_work()
            self.stage(uow, member, context)
            for key in keys:
                if key not in held:
                    uow.claim(CLAIMS, key, member_id)
            uow.private(PERSONAL, personal.to_doc(member_id))
            uow.private(ACCOUNTS, account)
            try:
                await uow.commit(context)
                return member
            except ClaimTaken:
                continue  # a concurrent registration took a key: look again, leave it out
        raise TryAgain("Hệ thống đang bận, vui lòng gửi lại đăng ký")

    async def create_member(
        self,
        principal: Principal,
        raw: MemberFields,
        branch_id: str | None,
        password: str | None = None,
        registered_by: Literal["secretary", "import"] = "secretary",
    ) -> Member:
        """A secretary records a member directly (elderly members, members without a
        smartphone); with a temporary password the account is active at once."""
        problems = Problems()
        path = await self.check_branch(branch_id, problems)
        if path:
            principal.require(MANAGERS, path)
        if password:
            check_password(password, problems, raw.phone)
        profile, personal = validate_member(
            raw, self.today(), phone_required=bool(password), problems=problems
        )
        assert branch_id
        member_id = self.new_id()
        member = Member.register(
            member_id, profile, branch_id, registered_by, principal.subject, activate=bool(password)
        )
        context = self._context(principal, path)
        uow = self.storage.unit_of_work()
        self.stage(uow, member, context)
        for key in self.claims_of(member_id, profile, personal, with_phone=bool(password)):
            uow.claim(CLAIMS, key, member_id)
        uow.private(PERSONAL, personal.to_doc(member_id))
        if password:
            uow.private(ACCOUNTS, await self._account_doc(member_id, password, must_change=True))
        await self.commit(uow, context)
        return member

    async def approve(self, principal: Principal, member_id: str) -> Member:
        """The keys a registration could not claim are claimed now: a conflict is the
        secretary's to see (409 naming the field), never the applicant's."""
        member, path = await self._manage(principal, member_id)
        member.approve(principal.subject)
        context = self._context(principal, path)
        uow = self.storage.unit_of_work()
        self.stage(uow, member, context)
        personal = await self.storage.personal(member_id)
        if personal:
            for key in self.claims_of(member_id, member.profile, personal, with_phone=True):
                uow.claim(CLAIMS, key, member_id)
        await self.commit(uow, context)
        return member

    async def reject(self, principal: Principal, member_id: str, reason: str) -> Member:
        """The registration ends; its unique keys are freed and its personal data erased."""
        member, path = await self._manage(principal, member_id)
        member.reject(principal.subject, reason)
        context = self._context(principal, path)
        uow = self.storage.unit_of_work()
        self.stage(uow, member, context)
        await self._erase_private(uow, member)
        await self.commit(uow, context)
        return member

    async def _erase_private(self, uow: UnitOfWork, member: Member) -> None:
        personal = await self.storage.personal(member.id)
        if personal:
            for key in self.claims_of(member.id, member.profile, personal, with_phone=True):
                uow.release(CLAIMS, key, member.id)
        uow.private(PERSONAL, erased(member.id))
        uow.private(ACCOUNTS, erased(member.id))

    async def conflicts(self, rows: Sequence[Doc]) -> dict[str, list[str]]:
        """For each member: the fields (citizen ID, party card, phone) whose key another
        member holds. Shown to the secretary reviewing registrations, to no one else."""
        personal = await self.storage.personal_many([r["_id"] for r in rows])
        wanted: dict[str, list[str]] = {}
        for row in rows:
            mine = personal.get(row["_id"])
            if mine is None:
                continue
            profile = Profile(
                row["full_name"],
                Gender(row["gender"]),
                MemberStatus(row["status"]),
                date.fromisoformat(row["admitted_on"]),
                party_card_no=row.get("party_card_no"),
            )
            wanted[row["_id"]] = list(self.claims_of(row["_id"], profile, mine, with_phone=True))
        owners = await self.storage.claim_owners([k for keys in wanted.values() for k in keys])
        return {
            member_id: [
                KEY_FIELDS[kind_of(k)] for k in keys if owners.get(k, member_id) != member_id
            ]
            for member_id, keys in wanted.items()
        }

    # reading -----------------------------------------------------------------

    async def view(self, principal: Principal, member_id: str) -> dict[str, Any]:
        row = await self.storage.member_row(member_id)
        if row is None:
            raise NotFound(f"Không tìm thấy đảng viên {member_id}", field="member_id")
        path = await self.path_of(row)
        own = principal.member_id == member_id
        if not own:
            principal.require(ROSTER_READERS, path)
        with_personal = own or principal.covers(PERSONAL_READERS, path)
        personal = await self.storage.personal(member_id) if with_personal else None
        unit = await self.tree.get(row["branch_id"])
        view = member_view(row, unit, personal, with_personal=with_personal)
        if row["state"] == "pending" and principal.covers(MANAGERS, path):
            view["conflicts"] = (await self.conflicts([row])).get(member_id, [])
        return view

    async def roster(
        self,
        principal: Principal,
        unit_id: str,
        *,
        states: Sequence[str] = ("approved",),
        status: str | None = None,
        offset: int = 0,
        limit: int = 100,
        readers: frozenset[Role] = ROSTER_READERS,
    ) -> dict[str, Any]:
        unit = await self.tree.get(unit_id)
        if unit is None:
            raise NotFound(f"Không tìm thấy đơn vị có mã {unit_id}", field="unit_id")
        principal.require(readers, unit["path"])
        branches = await self.tree.branches_under(unit_id)
        rows = await self.storage.members_in(
            branches, states=states, status=status, offset=offset, limit=limit
        )
        total = await self.storage.count_in(branches, states, status)
        names = {
            b: (await self.tree.get(b) or {}).get("name") for b in {r["branch_id"] for r in rows}
        }
        items = [
            member_view(r, {"name": names.get(r["branch_id"])}, None, with_personal=False)
            for r in rows
        ]
        if tuple(states) == ("pending",):
            found = await self.conflicts(rows)
            for item in items:
                item["conflicts"] = found.get(item["member_id"], [])
        return {"unit_id": unit_id, "total": total, "offset": offset, "items": items}

    async def office(self, principal: Principal, unit_id: str, limit: int = 200) -> Doc:
        """Who holds a role at the unit itself (its secretary, its office, its departments,
        its editors), with those roles: public fields only, for the unit's officers and
        those above them."""
        unit = await self.tree.get(unit_id)
        if unit is None:
            raise NotFound(f"Không tìm thấy đơn vị có mã {unit_id}", field="unit_id")
        principal.require(OFFICE_READERS, unit["path"])
        rows = await self.storage.role_holders(unit_id, limit)
        items = [
            {
                "member_id": r["_id"],
                "full_name": r["full_name"],
                "roles": [
                    {**g, "label": ROLE_LABELS.get(Role(g["role"]), g["role"])}
                    for g in r["roles"]
                    if g["unit_id"] == unit_id
                ],
            }
            for r in rows
        ]
        return {"unit_id": unit_id, "items": items}

    async def officers(self, principal: Principal, member_ids: Sequence[str]) -> Doc:
        """The names and roles of the given members that hold a role on a unit the caller
        works over, as an officer: who wrote a piece, who holds a piece of work. Anyone
        else asked for is left out, so the answer says nothing about other members."""
        if not principal.has_role(*OFFICE_READERS):
            raise Forbidden("Chỉ cán bộ có vai trò tại một đơn vị mới xem được danh sách này")
        items = []
        for member_id in dict.fromkeys(member_ids):
            row = await self.storage.member_row(member_id)
            shown = []
            for grant in row["roles"] if row else []:
                unit = await self.tree.get(grant["unit_id"])
                if unit is not None and principal.covers(OFFICE_READERS, unit["path"]):
                    label = ROLE_LABELS.get(Role(grant["role"]), grant["role"])
                    shown.append({**grant, "label": label})
            if row is not None and shown:
                items.append(
                    {"member_id": member_id, "full_name": row["full_name"], "roles": shown}
                )
        return {"items": items}

    # changes -----------------------------------------------------------------

    async def update(self, principal: Principal, member_id: str, sent: MemberFields) -> Member:
        """The member keeps their own details up to date (name, gender, birth date, phone,
        work history); rewards and discipline are recorded by the branch, and what the
        branch keeps on the party record changes only through `correct_party_record`.
        Status and branch have their own commands. Only the fields sent change."""
        member = await self.load(member_id)
        path = await self.path_of(member)
        own = principal.member_id == member_id
        manager = principal.covers(MANAGERS, path)
        if not own and not manager:
            principal.require(MANAGERS, path)
        if not manager:
            for kind in ("rewards", "discipline"):
                if kind in sent.model_fields_set:
                    raise Forbidden(
                        "Khen thưởng, kỷ luật do chi bộ, cấp ủy cập nhật",
                        field=kind,
                        code="forbidden_field",
                    )
        personal = await self.storage.personal(member_id)
        if personal is None:
            raise Conflict("Hồ sơ này không còn dữ liệu cá nhân để sửa", code="erased")
        if "citizen_id" in sent.model_fields_set and sent.citizen_id != personal.citizen_id:
            raise Forbidden(
                "Số định danh công dân do chi bộ cập nhật: đề nghị bí thư chi bộ điều chỉnh",
                field="citizen_id",
                code="branch_kept",
            )
        profile, new_personal = await self._merged(member, personal, sent)
        changed = [
            name
            for name in ("phone", "birth_date", *RECORD_KINDS)
            if getattr(new_personal, name) != getattr(personal, name)
        ]
        member.update_profile(profile, changed)
        await self._save_personal(principal, member, path, personal, new_personal, profile)
        return member

    async def correct_party_record(
        self, principal: Principal, member_id: str, sent: MemberFields, reason: str
    ) -> Member:
        """The branch secretary corrects the admission date, the date made official, the
        party card number or the citizen ID: one `MemberPartyRecordCorrected` each time."""
        member, path = await self._manage(principal, member_id)
        if not sent.model_fields_set:
            raise RuleBroken("Cần ít nhất một thông tin cần điều chỉnh")
        personal = await self.storage.personal(member_id)
        if personal is None:
            raise Conflict("Hồ sơ này không còn dữ liệu cá nhân để sửa", code="erased")
        profile, new_personal = await self._merged(member, personal, sent)
        changed = ["citizen_id"] if new_personal.citizen_id != personal.citizen_id else []
        if member.correct_party_record(profile, changed, principal.subject, reason):
            await self._save_personal(principal, member, path, personal, new_personal, profile)
        return member

    async def _merged(
        self, member: Member, personal: PersonalData, sent: MemberFields
    ) -> tuple[Profile, PersonalData]:
        raw = fields_of(member.profile, personal)
        for name in sent.model_fields_set:
            setattr(raw, name, getattr(sent, name))
        account = await self.storage.account(member.id)
        return validate_member(raw, self.today(), phone_required=account is not None)

    async def _save_personal(
        self,
        principal: Principal,
        member: Member,
        path: list[str],
        personal: PersonalData,
        new_personal: PersonalData,
        profile: Profile,
    ) -> None:
        has_login = await self.storage.account(member.id) is not None
        old_keys = self.claims_of(member.id, member.profile, personal, with_phone=has_login)
        new_keys = self.claims_of(member.id, profile, new_personal, with_phone=has_login)
        context = self._context(principal, path)
        uow = self.storage.unit_of_work()
        self.stage(uow, member, context)
        for key in set(old_keys) - set(new_keys):
            uow.release(CLAIMS, key, member.id)
        for key in set(new_keys) - set(old_keys):
            uow.claim(CLAIMS, key, member.id)
        uow.private(PERSONAL, new_personal.to_doc(member.id))
        await self.commit(uow, context)

    async def change_status(
        self,
        principal: Principal,
        member_id: str,
        status: MemberStatus,
        effective_on: date | None,
        official_on: date | None = None,
    ) -> Member:
        member, path = await self._manage(principal, member_id)
        problems = Problems()
        effective = effective_on or self.today()
        for name, value in (("effective_on", effective), ("official_on", official_on)):
            if value and value > self.today():
                problems.add(name, "Ngày không được ở tương lai")
        problems.raise_if_any()
        member.change_status(status, effective, official_on)
        await self._save(principal, member, path)
        return member

    async def _save(self, principal: Principal | str, member: Member, path: list[str]) -> None:
        context = self._context(principal, path)
        uow = self.storage.unit_of_work()
        self.stage(uow, member, context)
        await self.commit(uow, context)

    async def transfer(
        self,
        principal: Principal,
        member_id: str,
        to_branch_id: str,
        effective_on: date | None = None,
    ) -> Member:
        """Chuyển sinh hoạt đảng: whoever does it must cover both branches."""
        member, _ = await self._manage(principal, member_id)
        problems = Problems()
        to_path = await self.check_branch(to_branch_id, problems, field="to_branch_id")
        effective = effective_on or self.today()
        if effective > self.today():
            problems.add("effective_on", "Ngày chuyển sinh hoạt không được ở tương lai")
        problems.raise_if_any()
        principal.require(MANAGERS, to_path)
        member.transfer(to_branch_id, effective, principal.subject)
        await self._save(principal, member, to_path)
        return member

    async def remove(self, principal: Principal, member_id: str, reason: RemovalReason) -> Member:
        """Off the rolls: the account closes; a record made in error also frees its keys."""
        member, path = await self._manage(principal, member_id)
        member.remove(reason, principal.subject)
        context = self._context(principal, path)
        uow = self.storage.unit_of_work()
        self.stage(uow, member, context)
        if reason == "error":
            await self._erase_private(uow, member)
        else:
            uow.private(ACCOUNTS, erased(member_id))
            personal = await self.storage.personal(member_id)
            if personal and personal.phone:
                uow.release(CLAIMS, self.keys.key("phone", personal.phone), member_id)
        await self.commit(uow, context)
        await self.revocations.revoke(await self.storage.revoke_sessions(member_id))
        return member

    # accounts ----------------------------------------------------------------

    async def reset_password(self, principal: Principal, member_id: str, password: str) -> Member:
        """The secretary sets a temporary password, which also opens the account of a member
        they created or imported. It allows nothing but changing it."""
        member, path = await self._manage(principal, member_id)
        personal = await self.storage.personal(member_id)
        if personal is None or not personal.phone:
            raise RuleBroken(
                "Đảng viên chưa có số điện thoại để đăng nhập: cập nhật số điện thoại trước",
                field="phone",
            )
        problems = Problems()
        check_password(password, problems, personal.phone)
        problems.raise_if_any()
        member.reset_password(principal.subject)
        context = self._context(principal, path)
        uow = self.storage.unit_of_work()
        self.stage(uow, member, context)
        uow.claim(CLAIMS, self.keys.key("phone", personal.phone), member_id)
        uow.private(ACCOUNTS, await self._account_doc(member_id, password, must_change=True))
        await self.commit(uow, context)
        await self.revocations.revoke(await self.storage.revoke_sessions(member_id))
        await self.lockout.clear(self.keys.key("phone", personal.phone))
        return member

    async def login(self, phone: str, password: str) -> TokenPair:
        login_key = self.keys.key("phone", phone)
        if wait := await self.lockout.locked_for(login_key):
            raise AccountLocked(wait)
        owner = (await self.storage.claim_owners([login_key])).get(login_key)
        account = await self.storage.account(owner) if owner else None
        if not await self.passwords.verify(account["password_hash"] if account else None, password):
            left, locked = await self.lockout.failed(login_key)
            if locked:
                raise AccountLocked(locked)
            raise Unauthorized(
                f"Số điện thoại hoặc mật khẩu không đúng (còn {left} lần thử)",
                code="bad_credentials",
            )
        assert owner and account
        await self.lockout.clear(login_key)
        member = await self.load(owner)
        self._require_can_sign_in(member)
        rehashed = None
        if self.passwords.needs_rehash(account["password_hash"]):
            rehashed = {**account, "password_hash": await self.passwords.hash(password)}
        return await self._open_session(member, account, rehashed)

    def _require_can_sign_in(self, member: Member) -> None:
        messages = {
            "pending": ("Đăng ký đang chờ chi bộ phê duyệt", "pending_approval"),
            "rejected": ("Đăng ký đã bị chi bộ từ chối", "registration_rejected"),
            "removed": ("Tài khoản đã ngừng hoạt động", "account_closed"),
        }
        if member.state in messages:
            message, code = messages[member.state]
            raise Forbidden(message, code=code)
        if not member.account_active:
            raise Forbidden("Tài khoản chưa được kích hoạt", code="account_inactive")

    async def _open_session(self, member: Member, account: Doc, rehashed: Doc | None) -> TokenPair:
        session_id = uuid.uuid4().hex
        refresh, refresh_hash = new_refresh_token(session_id)
        now = datetime.now(UTC)
        session = {
            "_id": session_id,
            "member_id": member.id,
            "token_hash": refresh_hash,
            "prev_hash": None,
            "created_at": now,
            "expires_at": now + timedelta(seconds=self.refresh_ttl),
            "revoked_at": None,
        }
        member = await self._signed_in(member, session, rehashed)
        must_change = bool(account.get("must_change_password"))
        return TokenPair(
            self._access_token(member.id, member.grants(), session_id, must_change),
            self.access_ttl,
            refresh,
            self.refresh_ttl,
            member.id,
            must_change,
        )

    async def _signed_in(self, member: Member, session: Doc, rehashed: Doc | None) -> Member:
        """Records the sign-in on the member read for the password check (a busy evening's
        sign-ins read each stream once); read again only when another command moved it."""
        for attempt in range(3):
            if attempt:
                member = await self.load(member.id)
            member.sign_in()
            context = self._context(member.id, await self.path_of(member))
            uow = self.storage.unit_of_work()
            self.stage(uow, member, context)
            uow.private(SESSIONS, session)
            if rehashed:
                uow.private(ACCOUNTS, rehashed)
            try:
                await uow.commit(context)
            except ConcurrencyConflict:
                if attempt == 2:
                    raise
                continue
            return member
        raise AssertionError("unreachable")

    def _access_token(
        self, member_id: str, grants: list[Grant], session_id: str, must_change: bool
    ) -> str:
        extra: dict[str, Any] = {"sid": session_id, "jti": uuid.uuid4().hex}
        if must_change:
            extra[PWD_CHANGE_REQUIRED] = True
        return self.issuer.issue(
            member_id, grants, member_id=member_id, ttl_seconds=self.access_ttl, extra=extra
        )

    async def refresh(self, token: str) -> TokenPair:
        """A new access token and a new refresh token; the old refresh token is spent.
        Presenting a spent one again ends the session (it was copied)."""
        expired = Unauthorized(
            "Phiên đăng nhập đã hết hạn hoặc bị thu hồi, vui lòng đăng nhập lại",
            code="session_expired",
        )
        session_id, _, secret = token.partition(".")
        doc = await self.storage.session(session_id) if secret else None
        if doc is None or doc.get("revoked_at"):
            raise expired
        expires_at = doc["expires_at"]
        if expires_at.tzinfo is None:
            expires_at = expires_at.replace(tzinfo=UTC)
        if expires_at <= datetime.now(UTC):
            raise expired
        presented = token_hash(secret)
        if presented != doc["token_hash"]:
            if presented == doc.get("prev_hash"):
                await self.storage.revoke_session(session_id)
                await self.revocations.revoke([session_id])
            raise expired
        row = await self.storage.member_row(doc["member_id"])
        if row is None or row["state"] != "approved" or not row["account_active"]:
            await self.storage.revoke_session(session_id)
            raise expired
        refresh, new_hash = new_refresh_token(session_id)
        if not await self.storage.rotate_session(
            session_id,
            presented,
            {"token_hash": new_hash, "prev_hash": presented, "last_used_at": datetime.now(UTC)},
        ):
            raise expired
        grants = [Grant(Role.member, row["branch_id"])] + [
            Grant(Role(r["role"]), r["unit_id"]) for r in row["roles"]
        ]
        account = await self.storage.account(row["_id"]) or {}
        must_change = bool(account.get("must_change_password"))
        remaining = int((expires_at - datetime.now(UTC)).total_seconds())
        return TokenPair(
            self._access_token(row["_id"], grants, session_id, must_change),
            self.access_ttl,
            refresh,
            remaining,
            row["_id"],
            must_change,
        )

    async def logout(self, principal: Principal, everywhere: bool = False) -> int:
        sid = principal.claims.get("sid")
        if everywhere and principal.member_id:
            ended = await self.storage.revoke_sessions(principal.member_id)
        elif sid:
            await self.storage.revoke_session(sid)
            ended = [sid]
        else:
            ended = []
        await self.revocations.revoke(ended)
        return len(ended)

    async def revoke_sessions(self, principal: Principal, member_id: str) -> int:
        if principal.member_id != member_id:
            await self._manage(principal, member_id)
        else:
            await self.load(member_id)
        ended = await self.storage.revoke_sessions(member_id)
        await self.revocations.revoke(ended)
        return len(ended)

    async def change_password(self, principal: Principal, current: str, new: str) -> None:
        if not principal.member_id:
            raise Forbidden("Chỉ tài khoản đảng viên mới đổi được mật khẩu")
        member_id = principal.member_id
        account = await self.storage.account(member_id)
        personal = await self.storage.personal(member_id)
        if account is None or personal is None or not personal.phone:
            raise Forbidden("Tài khoản chưa được kích hoạt", code="account_inactive")
        login_key = self.keys.key("phone", personal.phone)
        if wait := await self.lockout.locked_for(login_key):
            raise AccountLocked(wait)
        if not await self.passwords.verify(account["password_hash"], current):
            left, locked = await self.lockout.failed(login_key)
            if locked:
                raise AccountLocked(locked)
            raise RuleBroken(
                f"Mật khẩu hiện tại không đúng (còn {left} lần thử)",
                field="current_password",
                code="bad_credentials",
            )
        problems = Problems()
        check_password(new, problems, personal.phone)
        if new == current:
            problems.add("new_password", "Mật khẩu mới phải khác mật khẩu hiện tại")
        problems.items = [
            {**i, "field": "new_password"} if i["field"] == "password" else i
            for i in problems.items
        ]
        problems.raise_if_any()
        uow = self.storage.unit_of_work()
        uow.private(ACCOUNTS, await self._account_doc(member_id, new, must_change=False))
        await uow.commit(self._context(principal, []))
        ended = await self.storage.revoke_sessions(member_id, principal.claims.get("sid"))
        await self.revocations.revoke(ended)

    # roles -------------------------------------------------------------------

    async def _role_target(self, role_value: Role | str, unit_id: str | None) -> tuple[Role, Doc]:
        role = parse_role(role_value)
        unit = await self.tree.get(unit_id) if unit_id else None
        if unit is None:
            raise RuleBroken(f"Không tìm thấy đơn vị có mã {unit_id}", field="unit_id")
        return role, unit

    async def grant(
        self, principal: Principal, member_id: str, role_value: Role | str, unit_id: str | None
    ) -> Member:
        """Only a role that may grant `role` (GRANTORS) and whose subtree holds both the
        unit and the member may grant it: never beyond the granter's own scope."""
        role, unit = await self._role_target(role_value, unit_id)
        member = await self.load(member_id)
        member_path = await self.path_of(member)
        principal.require(GRANTORS[role], unit["path"])
        principal.require(GRANTORS[role], member_path)
        if not is_active(unit):
            raise RuleBroken(f"Đơn vị {unit['_id']} đã giải thể hoặc hợp nhất", field="unit_id")
        if OrgLevel(unit["level"]) not in ROLE_LEVELS[role]:
            raise RuleBroken(
                f"Vai trò {ROLE_LABELS[role].lower()} không gắn với "
                f"{OrgLevel(unit['level']).label.lower()}",
                field="unit_id",
            )
        if member.grant(role, unit["_id"], principal.subject):
            await self._save(principal, member, member_path)
        return member

    async def revoke(
        self, principal: Principal, member_id: str, role_value: Role | str, unit_id: str | None
    ) -> Member:
        role, unit = await self._role_target(role_value, unit_id)
        member = await self.load(member_id)
        member_path = await self.path_of(member)
        principal.require(GRANTORS[role], unit["path"])
        principal.require(GRANTORS[role], member_path)
        member.revoke(role, unit["_id"], principal.subject)
        await self._save(principal, member, member_path)
        return member

    # following the tree ------------------------------------------------------

    async def follow_merge(self, envelope: EventEnvelope, event: UnitMerged) -> int:
        """Members of a merged branch now belong to the unit that carries it on: one
        MemberTransferred each. A redelivery finds them moved already and changes nothing."""
        unit = await self.tree.get(event.unit_id)
        if unit is not None and not holds_members(unit):
            return 0
        rows = await self.storage.members_in([event.unit_id], states=("pending", "approved"))
        if not rows:
            return 0
        into_path = await self.tree.scope_path(event.into_unit_id) or [event.into_unit_id]
        target = into_path[-1]
        effective = envelope.occurred_at.astimezone(VIETNAM).date()
        context = CommandContext(
            actor=SYSTEM_MERGE_ACTOR,
            org_path=tuple(into_path),
            correlation_id=envelope.correlation_id,
            causation_id=envelope.event_id,
        )
        moved = 0
        for start in range(0, len(rows), MERGE_BATCH):
            uow = self.storage.unit_of_work()
            for row in rows[start : start + MERGE_BATCH]:
                member = await self.load(row["_id"])
                if member.branch_id != event.unit_id or member.branch_id == target:
                    continue
                member.transfer(target, effective, SYSTEM_MERGE_ACTOR)
                self.stage(uow, member, context)
                moved += 1
            await uow.commit(context)
        return moved


__all__ = ["AccountLocked", "IdentityService", "TokenPair", "member_view"]
