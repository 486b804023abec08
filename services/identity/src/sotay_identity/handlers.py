"""One method per command: load, authorize against the member's branch path, decide, commit.

Every write of a command goes through one `UnitOfWork` (see storage.py).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

from pymongo.asynchronous.client_session import AsyncClientSession

from sotay_events import CommandContext, ConcurrencyConflict, EventEnvelope, new_event_id
from sotay_events.catalogue.identity import MemberStatus
from sotay_events.catalogue.org_tree import OrgLevel, UnitMerged
from sotay_identity.domain import (
    GENDER_LABELS,
    GRANTORS,
    MANAGERS,
    PERSONAL_READERS,
    RECORD_KINDS,
    ROLE_LABELS,
    ROLE_LEVELS,
    ROSTER_READERS,
    STATE_LABELS,
    STATUS_LABELS,
    VIETNAM,
    Member,
    MemberInput,
    PersonalData,
    Problems,
    Profile,
    RuleBroken,
    check_password,
    clean_phone,
    format_date,
    member_input_of,
    parse_date,
    parse_role,
    parse_status,
    today_in_vietnam,
    validate_member,
)
from sotay_identity.security import Lockout, Passwords, Revocations, new_refresh_token, token_hash
from sotay_identity.storage import KeyHasher, KeyTaken, Storage, UnitOfWork
from sotay_identity.tree import Tree, holds_members, is_active
from sotay_platform.auth import Grant, Principal, Role, TokenIssuer
from sotay_platform.errors import Conflict, Forbidden, NotFound, ServiceError, Unauthorized

Doc = dict[str, Any]
SYSTEM_MERGE_ACTOR = "system:org-tree-merge"


class AccountLocked(ServiceError):
    status_code = 423
    code = "account_locked"

    def __init__(self, seconds: int) -> None:
        minutes = max(1, (seconds + 59) // 60)
        super().__init__(
            f"Tài khoản tạm khóa do nhập sai mật khẩu nhiều lần; thử lại sau {minutes} phút "
            "hoặc đề nghị bí thư chi bộ đặt lại mật khẩu",
            field="password",
        )
        self.retry_after = seconds
        self.headers = {"Retry-After": str(seconds)}

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
        """The branch's path, or a problem naming `field`: unknown, closed, or not a branch."""
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
                f"{doc['name']} là {OrgLevel(doc['level']).label.lower()}, không phải chi bộ: "
                "đảng viên chỉ sinh hoạt ở chi bộ",
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

    async def commit(self, uow: UnitOfWork) -> list[EventEnvelope]:
        try:
            return await self.storage.commit(uow)
        except KeyTaken as exc:
            raise Conflict(exc.message, field=exc.field, code="duplicate") from None

    # registration ------------------------------------------------------------

    async def register(
        self, raw: MemberInput, branch_id: str | None, password: str | None
    ) -> Member:
        """A member registers themselves; the branch secretary approves or rejects."""
        problems = Problems()
        path = await self.check_branch(branch_id, problems)
        check_password(password, problems, clean_phone(raw.phone, Problems()))
        profile, personal = validate_member(
            raw, self.today(), phone_required=True, problems=problems
        )
        assert branch_id and password
        member_id = self.new_id()
        member = Member.register(member_id, profile, branch_id, "self", member_id)
        uow = UnitOfWork()
        uow.save(member, self._context(member_id, path))
        for key, owner in self.claims_of(member_id, profile, personal, with_phone=True).items():
            uow.claim(key, owner)
        uow.put_personal(member_id, personal)
        uow.put("accounts", await self._account_doc(member_id, password, must_change=False))
        await self.commit(uow)
        return member

    async def _account_doc(self, member_id: str, password: str, must_change: bool) -> Doc:
        return {
            "_id": member_id,
            "password_hash": await self.passwords.hash(password),
            "must_change_password": must_change,
            "password_set_at": datetime.now(UTC),
        }

    async def create_member(
        self,
        principal: Principal,
        raw: MemberInput,
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
            check_password(password, problems, clean_phone(raw.phone, Problems()))
        profile, personal = validate_member(
            raw, self.today(), phone_required=bool(password), problems=problems
        )
        assert branch_id
        member_id = self.new_id()
        member = Member.register(
            member_id, profile, branch_id, registered_by, principal.subject, activate=bool(password)
        )
        uow = UnitOfWork()
        uow.save(member, self._context(principal, path))
        for key, owner in self.claims_of(
            member_id, profile, personal, with_phone=bool(password)
        ).items():
            uow.claim(key, owner)
        uow.put_personal(member_id, personal)
        if password:
            uow.put("accounts", await self._account_doc(member_id, password, must_change=True))
        await self.commit(uow)
        return member

    async def approve(self, principal: Principal, member_id: str) -> Member:
        member, path = await self._manage(principal, member_id)
        member.approve(principal.subject)
        uow = UnitOfWork()
        uow.save(member, self._context(principal, path))
        await self.commit(uow)
        return member

    async def reject(self, principal: Principal, member_id: str, reason: str) -> Member:
        """The registration ends; its unique keys are freed and its personal data erased."""
        member, path = await self._manage(principal, member_id)
        member.reject(principal.subject, reason)
        uow = UnitOfWork()
        uow.save(member, self._context(principal, path))
        await self._erase_private(uow, member)
        await self.commit(uow)
        return member

    async def _erase_private(self, uow: UnitOfWork, member: Member) -> None:
        personal = await self.storage.personal(member.id)
        if personal:
            for key in self.claims_of(member.id, member.profile, personal, with_phone=True):
                uow.release(key, member.id)
        uow.delete("personal_records", member.id)
        uow.delete("accounts", member.id)

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
        return member_view(row, unit, personal, with_personal=with_personal)

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
        total = await self.storage.count_in(branches, states)
        names = {
            b: (await self.tree.get(b) or {}).get("name") for b in {r["branch_id"] for r in rows}
        }
        return {
            "unit_id": unit_id,
            "total": total,
            "offset": offset,
            "items": [
                member_view(r, {"name": names.get(r["branch_id"])}, None, with_personal=False)
                for r in rows
            ],
        }

    # changes -----------------------------------------------------------------

    async def update(
        self,
        principal: Principal,
        member_id: str,
        fields: dict[str, Any],
        records: dict[str, list[dict[str, Any]]] | None = None,
    ) -> Member:
        """The member keeps their summary and work history up to date; rewards and
        discipline are recorded by the branch. Status and branch have their own commands."""
        member = await self.load(member_id)
        path = await self.path_of(member)
        own = principal.member_id == member_id
        if not own:
            principal.require(MANAGERS, path)
        records = records or {}
        if own and not principal.covers(MANAGERS, path):
            for kind in ("rewards", "discipline"):
                if kind in records:
                    raise RuleBroken(
                        "Khen thưởng, kỷ luật do chi bộ, cấp ủy cập nhật",
                        field=kind,
                        code="forbidden_field",
                        status_code=403,
                    )
        personal = await self.storage.personal(member_id)
        if personal is None:
            raise RuleBroken(
                "Hồ sơ này không còn dữ liệu cá nhân để sửa", code="erased", status_code=409
            )
        raw = member_input_of(member.profile, personal)
        for name, value in fields.items():
            setattr(raw, name, value)
        raw.records.update(records)
        account = await self.storage.account(member_id)
        profile, new_personal = validate_member(
            raw, self.today(), phone_required=account is not None
        )
        changed = [
            name
            for name in ("citizen_id", "phone", "birth_date", *RECORD_KINDS)
            if getattr(new_personal, name) != getattr(personal, name)
        ]
        has_login = account is not None
        old_keys = self.claims_of(member_id, member.profile, personal, with_phone=has_login)
        member.update_profile(profile, changed)
        uow = UnitOfWork()
        uow.save(member, self._context(principal, path))
        new_keys = self.claims_of(member_id, profile, new_personal, with_phone=has_login)
        for key in set(old_keys) - set(new_keys):
            uow.release(key, member_id)
        for key in set(new_keys) - set(old_keys):
            uow.claim(key, member_id)
        uow.put_personal(member_id, new_personal)
        await self.commit(uow)
        return member

    async def change_status(
        self,
        principal: Principal,
        member_id: str,
        status: str | None,
        effective_on: str | None,
        official_on: str | None = None,
    ) -> Member:
        member, path = await self._manage(principal, member_id)
        problems = Problems()
        new_status = parse_status(status, problems)
        if new_status is None and not problems.has("status"):
            problems.add("status", "Trạng thái mới là bắt buộc")
        effective = parse_date(effective_on, "effective_on", problems) or self.today()
        official = parse_date(official_on, "official_on", problems)
        for name, value in (("effective_on", effective), ("official_on", official)):
            if value and value > self.today():
                problems.add(name, "Ngày không được ở tương lai")
        problems.raise_if_any()
        assert new_status
        member.change_status(new_status, effective, official)
        uow = UnitOfWork()
        uow.save(member, self._context(principal, path))
        await self.commit(uow)
        return member

    async def transfer(
        self,
        principal: Principal,
        member_id: str,
        to_branch_id: str | None,
        effective_on: str | None = None,
    ) -> Member:
        """Chuyển sinh hoạt đảng: whoever does it must cover both branches."""
        member, _ = await self._manage(principal, member_id)
        problems = Problems()
        to_path = await self.check_branch(to_branch_id, problems, field="to_branch_id")
        effective = parse_date(effective_on, "effective_on", problems) or self.today()
        if effective > self.today():
            problems.add("effective_on", "Ngày chuyển sinh hoạt không được ở tương lai")
        problems.raise_if_any()
        assert to_branch_id
        principal.require(MANAGERS, to_path)
        member.transfer(to_branch_id, effective, principal.subject)
        uow = UnitOfWork()
        uow.save(member, self._context(principal, to_path))
        await self.commit(uow)
        return member

    async def remove(self, principal: Principal, member_id: str, reason: str) -> Member:
        """Off the rolls: the account closes; a record made in error also frees its keys."""
        member, path = await self._manage(principal, member_id)
        member.remove(reason, principal.subject)
        uow = UnitOfWork()
        uow.save(member, self._context(principal, path))
        if reason == "error":
            await self._erase_private(uow, member)
        else:
            uow.delete("accounts", member_id)
            personal = await self.storage.personal(member_id)
            if personal and personal.phone:
                uow.release(self.keys.key("phone", personal.phone), member_id)
        await self.commit(uow)
        await self.revocations.revoke(await self.storage.revoke_sessions(member_id))
        return member

    # accounts ----------------------------------------------------------------

    async def reset_password(
        self, principal: Principal, member_id: str, password: str | None
    ) -> Member:
        """The secretary sets a temporary password, which also opens the account of a member
        they created or imported. The member must change it after signing in."""
        member, path = await self._manage(principal, member_id)
        personal = await self.storage.personal(member_id)
        if personal is None or not personal.phone:
            raise RuleBroken(
                "Đảng viên chưa có số điện thoại để đăng nhập: cập nhật số điện thoại trước",
                field="phone",
            )
        problems = Problems()
        password = check_password(password, problems, personal.phone)
        problems.raise_if_any()
        member.reset_password(principal.subject)
        uow = UnitOfWork()
        uow.save(member, self._context(principal, path))
        uow.claim(self.keys.key("phone", personal.phone), member_id)
        uow.put("accounts", await self._account_doc(member_id, password, must_change=True))
        await self.commit(uow)
        await self.revocations.revoke(await self.storage.revoke_sessions(member_id))
        await self.lockout.clear(self.keys.key("phone", personal.phone))
        return member

    async def login(self, phone: str | None, password: str | None) -> TokenPair:
        problems = Problems()
        cleaned = clean_phone(phone, problems)
        if not password:
            problems.add("password", "Mật khẩu là bắt buộc")
        problems.raise_if_any()
        assert cleaned and password
        login_key = self.keys.key("phone", cleaned)
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
        for attempt in range(3):
            member.sign_in()
            uow = UnitOfWork()
            uow.save(member, self._context(member.id, await self.path_of(member)))
            uow.put(
                "sessions",
                {
                    "_id": session_id,
                    "member_id": member.id,
                    "token_hash": refresh_hash,
                    "prev_hash": None,
                    "created_at": now,
                    "expires_at": now + timedelta(seconds=self.refresh_ttl),
                    "revoked_at": None,
                },
            )
            if rehashed:
                uow.put("accounts", rehashed)
            try:
                await self.storage.commit(uow)
                break
            except ConcurrencyConflict:
                if attempt == 2:
                    raise
                member = await self.load(member.id)
        return TokenPair(
            self._access_token(member.id, member.grants(), session_id),
            self.access_ttl,
            refresh,
            self.refresh_ttl,
            member.id,
            bool(account.get("must_change_password")),
        )

    def _access_token(self, member_id: str, grants: list[Grant], session_id: str) -> str:
        return self.issuer.issue(
            member_id,
            grants,
            member_id=member_id,
            ttl_seconds=self.access_ttl,
            extra={"sid": session_id, "jti": uuid.uuid4().hex},
        )

    async def refresh(self, token: str | None) -> TokenPair:
        """A new access token and a new refresh token; the old refresh token is spent.
        Presenting a spent one again ends the session (it was copied)."""
        expired = Unauthorized(
            "Phiên đăng nhập đã hết hạn hoặc bị thu hồi, vui lòng đăng nhập lại",
            code="session_expired",
        )
        session_id, _, secret = (token or "").partition(".")
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
        remaining = int((expires_at - datetime.now(UTC)).total_seconds())
        return TokenPair(
            self._access_token(row["_id"], grants, session_id),
            self.access_ttl,
            refresh,
            remaining,
            row["_id"],
            bool(account.get("must_change_password")),
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

    async def change_password(
        self, principal: Principal, current: str | None, new: str | None
    ) -> None:
        if not principal.member_id:
            raise Forbidden("Chỉ tài khoản đảng viên mới đổi được mật khẩu")
        account = await self.storage.account(principal.member_id)
        personal = await self.storage.personal(principal.member_id)
        if account is None or personal is None or not personal.phone:
            raise Forbidden("Tài khoản chưa được kích hoạt", code="account_inactive")
        login_key = self.keys.key("phone", personal.phone)
        if wait := await self.lockout.locked_for(login_key):
            raise AccountLocked(wait)
        if not await self.passwords.verify(account["password_hash"], current or ""):
            left, locked = await self.lockout.failed(login_key)
            if locked:
                raise AccountLocked(locked)
            raise RuleBroken(
                f"Mật khẩu hiện tại không đúng (còn {left} lần thử)",
                field="current_password",
                code="bad_credentials",
            )
        problems = Problems()
        new = check_password(new, problems, personal.phone)
        if new == current:
            problems.add("new_password", "Mật khẩu mới phải khác mật khẩu hiện tại")
        problems.items = [
            {**i, "field": "new_password"} if i["field"] == "password" else i
            for i in problems.items
        ]
        problems.raise_if_any()
        uow = UnitOfWork()
        uow.put("accounts", await self._account_doc(principal.member_id, new, must_change=False))
        await self.commit(uow)
        ended = await self.storage.revoke_sessions(principal.member_id, principal.claims.get("sid"))
        await self.revocations.revoke(ended)

    # roles -------------------------------------------------------------------

    async def _role_target(self, role_value: str, unit_id: str | None) -> tuple[Role, Doc]:
        role = parse_role(role_value)
        unit = await self.tree.get(unit_id) if unit_id else None
        if unit is None:
            raise RuleBroken(f"Không tìm thấy đơn vị có mã {unit_id}", field="unit_id")
        return role, unit

    async def grant(
        self, principal: Principal, member_id: str, role_value: str, unit_id: str | None
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
            uow = UnitOfWork()
            uow.save(member, self._context(principal, member_path))
            await self.commit(uow)
        return member

    async def revoke(
        self, principal: Principal, member_id: str, role_value: str, unit_id: str | None
    ) -> Member:
        role, unit = await self._role_target(role_value, unit_id)
        member = await self.load(member_id)
        member_path = await self.path_of(member)
        principal.require(GRANTORS[role], unit["path"])
        principal.require(GRANTORS[role], member_path)
        member.revoke(role, unit["_id"], principal.subject)
        uow = UnitOfWork()
        uow.save(member, self._context(principal, member_path))
        await self.commit(uow)
        return member

    # following the tree ------------------------------------------------------

    async def follow_merge(
        self, envelope: EventEnvelope, event: UnitMerged, session: AsyncClientSession | None
    ) -> int:
        """Members of a merged branch now belong to the unit it merged into: one
        MemberTransferred each, in the projection's own transaction (exactly once)."""
        unit = await self.tree.get(event.unit_id)
        if unit is not None and not holds_members(unit):
            return 0
        rows = await self.storage.members_in([event.unit_id], states=("pending", "approved"))
        if not rows:
            return 0
        into_path = await self.tree.scope_path(event.into_unit_id) or [event.into_unit_id]
        effective = envelope.occurred_at.astimezone(VIETNAM).date()
        uow = UnitOfWork()
        for row in rows:
            member = await self.load(row["_id"])
            if member.branch_id != event.unit_id:
                continue
            member.transfer(event.into_unit_id, effective, SYSTEM_MERGE_ACTOR)
            uow.save(
                member,
                CommandContext(
                    actor=SYSTEM_MERGE_ACTOR,
                    org_path=tuple(into_path),
                    correlation_id=envelope.correlation_id,
                    causation_id=envelope.event_id,
                ),
            )
        await self.storage.commit(uow, session)
        return len(uow.members)


__all__ = ["AccountLocked", "IdentityService", "TokenPair", "member_view"]
