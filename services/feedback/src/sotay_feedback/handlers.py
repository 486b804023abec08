"""One method per command: load through a unit of work, authorize, decide, commit.

What a submission says and who sent it live in a private record (`VAULT`),
written in the same transaction as its events; the events carry neither.
Every commit also rewrites the submission's row in `DUE` (deadline and
reminder of an open submission), which the deadline watcher reads, so the
worker never waits for Kafka to know what is due.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from sotay_events import CommandContext, UnitOfWork, new_event_id, retry_on_conflict
from sotay_events.catalogue.feedback import FeedbackBody, FeedbackKind, FeedbackSubject
from sotay_events.catalogue.org_tree import OrgLevel
from sotay_events.envelope import SYSTEM_ACTOR
from sotay_events.store import EventStore
from sotay_feedback.domain import (
    Feedback,
    FeedbackError,
    Holder,
    RoutingTable,
    Rules,
    Unit,
    Visibility,
    WrongState,
    first_holder,
    forward_target,
    rules_for,
    superior_of,
)
from sotay_platform.auth import ADMIN_ROLES, Principal, Role
from sotay_platform.errors import Forbidden, NotFound

log = logging.getLogger(__name__)

VAULT = "vault.feedback"  # text, author, additions, answers, attachments
DUE = "feedback_due"  # open submissions' deadlines, for the watcher
MAX_ATTACHMENTS = 5
AUTHOR_ACTOR = "feedback-author"

Clock = Callable[[], datetime]

BRANCH_LEVELS = frozenset({OrgLevel.branch.value, OrgLevel.grassroots_branch.value})
COMMITTEE_ROLES = frozenset({Role.committee_admin, Role.province_admin})
BRANCH_ROLES = frozenset({Role.branch_secretary, Role.branch_committee_member})
# Roles of a committee's own bodies, where auth.Role defines them; the committee's
# office (committee_admin) may act for any of its bodies.
_DEPARTMENT_ROLE_NAMES = {
    FeedbackBody.organisation_department: "organisation_department",
    FeedbackBody.propaganda_department: "propaganda_department",
    FeedbackBody.inspection_committee: "inspection_committee",
}


def utc_now() -> datetime:
    return datetime.now(UTC)


def body_roles(body: FeedbackBody) -> frozenset[Role]:
    """Who may act for `body` (on its unit's path)."""
    if body is FeedbackBody.branch:
        return BRANCH_ROLES | COMMITTEE_ROLES
    own = {r for r in Role if r.value == _DEPARTMENT_ROLE_NAMES.get(body)}
    return COMMITTEE_ROLES | own


class Units(Protocol):
    async def resolve(self, unit_id: str) -> Unit | None: ...


@dataclass(frozen=True)
class Loaded:
    feedback: Feedback
    vault: dict[str, Any]
    holder: Holder | None  # the present holder, on today's tree
    branch: Unit | None  # the member's branch, on today's tree (None: it was dissolved)


class FeedbackService:
    def __init__(
        self,
        store: EventStore,
        *,
        units: Units,
        clock: Clock = utc_now,
        on_saved: Callable[[], None] = lambda: None,
    ) -> None:
        self.store = store
        self.units = units
        self.clock = clock
        self.on_saved = on_saved

    # Loading.

    async def unit(self, unit_id: str, field: str = "unit_id") -> Unit:
        unit = await self.units.resolve(unit_id)
        if unit is None:
            raise NotFound(
                f"Không tìm thấy đơn vị {unit_id} (hoặc đơn vị đã giải thể)", field=field
            )
        return unit

    async def tables(self, uow: UnitOfWork, path: Iterable[str]) -> dict[str, Rules]:
        """The routing tables set on `path`, by committee."""
        found: dict[str, Rules] = {}
        for unit_id in dict.fromkeys(path):
            table = await uow.get(RoutingTable, unit_id)
            if table is not None and table.rules is not None:
                found[unit_id] = table.rules
        return found

    async def _holder(self, unit_id: str, body: FeedbackBody) -> Holder | None:
        unit = await self.units.resolve(unit_id)
        return Holder(unit.path, body) if unit else None

    async def load(self, uow: UnitOfWork, feedback_id: str) -> Loaded:
        feedback = await uow.get(Feedback, feedback_id)
        vault = await self.store.private_record(VAULT, feedback_id)
        if feedback is None or vault is None:
            raise NotFound(f"Không tìm thấy góp ý {feedback_id}", field="feedback_id")
        holder = None
        if feedback.hop is not None:
            holder = await self._holder(feedback.hop.unit_id, feedback.hop.body)
        branch = await self.units.resolve(feedback.branch_id)
        return Loaded(feedback, vault, holder, branch)

    def _member_of(self, principal: Principal) -> tuple[str, str]:
        """The caller's member id and branch (from their member grant)."""
        branch = next((g.unit_id for g in principal.grants if g.role is Role.member), None)
        if not principal.member_id or branch is None:
            raise Forbidden(
                "Chỉ đảng viên (tài khoản gắn với chi bộ) mới gửi được góp ý", field="member_id"
            )
        return principal.member_id, branch

    def _author(self, principal: Principal, loaded: Loaded) -> None:
        if not principal.member_id or principal.member_id != loaded.vault["member_id"]:
            raise Forbidden("Chỉ đảng viên gửi góp ý mới làm được việc này", field="feedback_id")

    def _handling(self, principal: Principal, loaded: Loaded) -> Holder:
        holder = loaded.holder
        if holder is None:
            raise WrongState(
                "Đơn vị đang xử lý góp ý không còn tồn tại; đề nghị cấp trên chuyển tiếp",
                field="feedback_id",
            )
        principal.require(body_roles(holder.body), holder.path)
        return holder

    def may_read(self, principal: Principal, loaded: Loaded) -> bool:
        if principal.member_id and principal.member_id == loaded.vault["member_id"]:
            return True
        holder = loaded.holder
        return holder is not None and principal.covers(body_roles(holder.body), holder.path)

    # Saving.

    async def _commit(self, uow: UnitOfWork, loaded: Loaded, principal: Principal | None) -> None:
        feedback, vault = loaded.feedback, loaded.vault
        if not feedback.pending:
            return
        hop = feedback.hop
        vault.update(
            state=feedback.state,
            unit_id=hop.unit_id if hop else None,
            body=hop.body.value if hop else None,
            deadline=hop.deadline if hop else None,
            updated_at=self.clock(),
        )
        uow.private(VAULT, vault)
        if feedback.is_open and hop is not None:
            uow.row(DUE, {"_id": feedback.id, **_due_of(feedback), "stuck": False})
        else:
            uow.delete_row(DUE, feedback.id)
        path = loaded.branch.path if loaded.branch else (feedback.branch_id,)
        await uow.commit(CommandContext(actor=_actor(principal, vault), org_path=path))
        self.on_saved()

    # Routing tables.

    @retry_on_conflict(attempts=3)
    async def set_routing_table(
        self,
        principal: Principal,
        unit_id: str,
        *,
        routes: dict[FeedbackSubject, FeedbackBody],
        deadline_days: dict[FeedbackKind, int],
        reminder_days: int,
    ) -> RoutingTable:
        unit = await self.unit(unit_id)
        principal.require(COMMITTEE_ROLES | {Role.system_admin}, unit.path)
        if unit.level in BRANCH_LEVELS:
            raise FeedbackError(
                "Bảng phân công thuộc cấp ủy; góp ý gửi chi bộ do chi bộ trả lời", field="unit_id"
            )
        uow = self.store.unit_of_work()
        table = await uow.get(RoutingTable, unit.id) or RoutingTable(unit.id)
        uow.add(table)
        if table.set(
            routes=routes,
            deadline_days=deadline_days,
            reminder_days=reminder_days,
            set_by=principal.subject,
        ):
            await uow.commit(CommandContext(actor=principal.subject, org_path=unit.path))
            self.on_saved()
        return table

    async def routing_table(self, principal: Principal, unit_id: str) -> tuple[Unit, Rules, bool]:
        """The table that applies to the committee (its own, the nearest above, or defaults)."""
        unit = await self.unit(unit_id)
        if unit.id not in await self.visible_qa_units(principal):  # not above the caller
            principal.require(ADMIN_ROLES | BRANCH_ROLES | {Role.central_office}, unit.path)
        tables = await self.tables(self.store.unit_of_work(), unit.path)
        return unit, rules_for(unit.path, tables), unit.id in tables

    # The member's side.

    @retry_on_conflict(attempts=3)
    async def submit(
        self,
        principal: Principal,
        *,
        kind: FeedbackKind,
        subject: FeedbackSubject,
        addressed_to: Literal["branch", "committee"],
        title: str,
        text: str,
        public_allowed: bool = True,
        feedback_id: str | None = None,
    ) -> tuple[Feedback, bool]:
        """Returns the submission and whether it was new; a retried request submits once."""
        member_id, branch_id = self._member_of(principal)
        branch = await self.unit(branch_id, field="branch_id")
        if branch.level not in BRANCH_LEVELS:
            raise FeedbackError(
                f"Đơn vị {branch.id} không phải chi bộ: góp ý được gửi từ chi bộ của đảng viên",
                field="branch_id",
            )
        uow = self.store.unit_of_work()
        if feedback_id:
            existing = await uow.get(Feedback, feedback_id)
            if existing is not None:
                vault = await self.store.private_record(VAULT, feedback_id)
                if vault and vault["member_id"] == member_id and vault["text"] == text:
                    return existing, False
                raise FeedbackError(
                    f"Mã góp ý {feedback_id} đã được dùng cho góp ý khác", field="feedback_id"
                )
        tables = await self.tables(uow, branch.path)
        holder, routed_by = first_holder(addressed_to, subject, branch.path, tables)
        now = self.clock()
        feedback = Feedback.submit(
            feedback_id or new_event_id(),
            kind=kind,
            subject=subject,
            branch_id=branch.id,
            addressed_to=addressed_to,
            to_unit_id=branch.id if addressed_to == "branch" else branch.path[-2],
            public_allowed=public_allowed,
            now=now,
        )
        feedback.route(holder, routed_by, rules_for(holder.committee_path, tables), now)
        uow.add(feedback)
        vault = {
            "_id": feedback.id,
            "member_id": member_id,
            "branch_id": branch.id,
            "kind": kind.value,
            "subject": subject.value,
            "title": title,
            "text": text,
            "public_allowed": public_allowed,
            "submitted_at": now,
            "additions": [],
            "answers": [],
            "attachments": [],
        }
        await self._commit(uow, Loaded(feedback, vault, holder, branch), principal)
        return feedback, True

    @retry_on_conflict(attempts=3)
    async def add_information(
        self,
        principal: Principal,
        feedback_id: str,
        text: str = "",
        attachments: Sequence[dict[str, Any]] = (),
    ) -> Loaded:
        uow = self.store.unit_of_work()
        loaded = await self.load(uow, feedback_id)
        self._author(principal, loaded)
        known = {a["file_id"] for a in loaded.vault["attachments"]}
        fresh = [a for a in attachments if a["file_id"] not in known]
        if attachments and not fresh and not text:
            return loaded  # the same files again: already added
        if len(known) + len(fresh) > MAX_ATTACHMENTS:
            raise FeedbackError(f"Mỗi góp ý đính kèm tối đa {MAX_ATTACHMENTS} tệp", field="file")
        now = self.clock()
        loaded.feedback.add_information(now, attachments=len(fresh))
        if text:
            loaded.vault["additions"].append({"text": text, "at": now})
        loaded.vault["attachments"].extend({**a, "added_at": now} for a in fresh)
        await self._commit(uow, loaded, principal)
        return loaded

    @retry_on_conflict(attempts=3)
    async def withdraw(self, principal: Principal, feedback_id: str) -> Loaded:
        uow = self.store.unit_of_work()
        loaded = await self.load(uow, feedback_id)
        self._author(principal, loaded)
        loaded.feedback.withdraw(self.clock())
        await self._commit(uow, loaded, principal)
        return loaded

    @retry_on_conflict(attempts=3)
    async def accept(self, principal: Principal, feedback_id: str) -> Loaded:
        """The member is satisfied with the answer: closed."""
        uow = self.store.unit_of_work()
        loaded = await self.load(uow, feedback_id)
        self._author(principal, loaded)
        loaded.feedback.close("member", self.clock())
        await self._commit(uow, loaded, principal)
        return loaded

    @retry_on_conflict(attempts=3)
    async def not_resolved(self, principal: Principal, feedback_id: str, reason: str) -> Loaded:
        """Reopened at the same body once; after that, sent to the superior committee."""
        uow = self.store.unit_of_work()
        loaded = await self.load(uow, feedback_id)
        self._author(principal, loaded)
        feedback, holder = loaded.feedback, loaded.holder
        if holder is None:
            raise WrongState("Đơn vị đã trả lời không còn tồn tại", field="feedback_id")
        tables = await self.tables(uow, holder.path)
        now = self.clock()
        if feedback.can_reopen:
            feedback.reopen(rules_for(holder.committee_path, tables), now)
        else:
            target = superior_of(holder, feedback.subject, tables)
            if target is None:
                raise WrongState("Không có cấp ủy cấp trên để chuyển tiếp", field="feedback_id")
            feedback.escalate(target, rules_for(target.committee_path, tables), "not_resolved", now)
        loaded.vault["additions"].append({"text": reason, "at": now, "not_resolved": True})
        await self._commit(uow, loaded, principal)
        return loaded

    # The answering body's side.

    @retry_on_conflict(attempts=3)
    async def assign(self, principal: Principal, feedback_id: str, assignee: str) -> Loaded:
        uow = self.store.unit_of_work()
        loaded = await self.load(uow, feedback_id)
        self._handling(principal, loaded)
        loaded.feedback.assign(assignee, by=principal.subject, now=self.clock())
        await self._commit(uow, loaded, principal)
        return loaded

    @retry_on_conflict(attempts=3)
    async def forward(
        self,
        principal: Principal,
        feedback_id: str,
        *,
        to_body: FeedbackBody | None,
        up: bool,
        reason: str,
    ) -> Loaded:
        uow = self.store.unit_of_work()
        loaded = await self.load(uow, feedback_id)
        holder = self._handling(principal, loaded)
        feedback = loaded.feedback
        if loaded.branch is None:
            raise WrongState("Chi bộ của đảng viên không còn tồn tại", field="feedback_id")
        tables = await self.tables(uow, holder.path)
        target = forward_target(holder, loaded.branch.path, to_body, up, feedback.subject, tables)
        feedback.forward(
            target,
            rules_for(target.committee_path, tables),
            reason=reason,
            up=up,
            by=principal.subject,
            now=self.clock(),
        )
        loaded.vault.setdefault("forwards", []).append(
            {"reason": reason, "by": principal.subject, "at": self.clock()}
        )
        await self._commit(uow, loaded, principal)
        return loaded

    @retry_on_conflict(attempts=3)
    async def answer(
        self,
        principal: Principal,
        feedback_id: str,
        *,
        text: str,
        visibility: Visibility,
        question: str | None = None,
    ) -> Loaded:
        """`question`: the anonymised wording published with a public answer (default: the title)."""
        uow = self.store.unit_of_work()
        loaded = await self.load(uow, feedback_id)
        self._handling(principal, loaded)
        now = self.clock()
        published_question = question if question is not None else loaded.vault["title"]
        loaded.feedback.answer_it(
            visibility,
            by=principal.subject,
            now=now,
            question=published_question,
            answer=text,
        )
        loaded.vault["answers"].append(
            {
                "text": text,
                "visibility": visibility,
                "question": published_question if visibility == "public" else None,
                "by": principal.subject,
                "at": now,
            }
        )
        await self._commit(uow, loaded, principal)
        return loaded

    @retry_on_conflict(attempts=3)
    async def close(self, principal: Principal, feedback_id: str) -> Loaded:
        uow = self.store.unit_of_work()
        loaded = await self.load(uow, feedback_id)
        self._handling(principal, loaded)
        loaded.feedback.close("body", self.clock())
        await self._commit(uow, loaded, principal)
        return loaded

    # The deadline watcher's commands: idempotent, decided on the stream's state.

    @retry_on_conflict(attempts=3)
    async def remind(self, feedback_id: str) -> bool:
        uow = self.store.unit_of_work()
        loaded = await self.load(uow, feedback_id)
        if not loaded.feedback.remind(self.clock()):
            await self._settle_due(uow, loaded)
            return False
        await self._commit(uow, loaded, None)
        return True

    @retry_on_conflict(attempts=3)
    async def escalate_overdue(self, feedback_id: str) -> bool:
        uow = self.store.unit_of_work()
        loaded = await self.load(uow, feedback_id)
        feedback, holder = loaded.feedback, loaded.holder
        now = self.clock()
        if not feedback.overdue(now):
            await self._settle_due(uow, loaded)
            return False
        target = None
        if holder is not None:
            tables = await self.tables(uow, holder.path)
            target = superior_of(holder, feedback.subject, tables)
        if holder is None or target is None:
            # Nowhere higher to go: it stays in this body's queue, overdue, and the watcher
            # stops asking until something changes it.
            uow.row(DUE, {"_id": feedback.id, **_due_of(feedback), "stuck": True})
            await uow.commit(CommandContext(actor="system"))
            return False
        feedback.escalate(target, rules_for(target.committee_path, tables), "overdue", now)
        await self._commit(uow, loaded, None)
        return True

    async def _settle_due(self, uow: UnitOfWork, loaded: Loaded) -> None:
        """The row said something was due that the stream says is not: rewrite the row."""
        feedback = loaded.feedback
        if feedback.is_open and feedback.hop is not None:
            uow.row(DUE, {"_id": feedback.id, **_due_of(feedback), "stuck": False})
        else:
            uow.delete_row(DUE, feedback.id)
        await uow.commit(CommandContext(actor="system"))

    # Reading.

    async def view(self, principal: Principal, feedback_id: str) -> Loaded:
        loaded = await self.load(self.store.unit_of_work(), feedback_id)
        if not self.may_read(principal, loaded):
            raise Forbidden("Tài khoản không có quyền xem góp ý này", field="feedback_id")
        return loaded

    async def visible_qa_units(self, principal: Principal) -> list[str]:
        """Whose Q&A the caller reads: every unit on the paths of their grants (and what merged in)."""
        visible: dict[str, None] = {}
        for grant in principal.grants:
            unit = await self.units.resolve(grant.unit_id)
            for unit_id in unit.path if unit else ():
                above = await self.units.resolve(unit_id)
                visible.update(dict.fromkeys(above.absorbed if above else (unit_id,)))
        return list(visible)

    async def require_body(self, principal: Principal, unit_id: str, body: FeedbackBody) -> Unit:
        unit = await self.unit(unit_id)
        principal.require(body_roles(body), unit.path)
        return unit


def _actor(principal: Principal | None, vault: dict[str, Any]) -> str:
    """Who acted, as the envelope says it: never the author, whom the stream must not name
    (the Q&A entry shares the submission's id; the vault knows the author)."""
    if principal is None:
        return SYSTEM_ACTOR
    if principal.member_id and principal.member_id == vault["member_id"]:
        return AUTHOR_ACTOR
    return principal.subject


def _due_of(feedback: Feedback) -> dict[str, Any]:
    hop = feedback.current
    return {
        "deadline": hop.deadline,
        "remind_at": hop.remind_at,
        "reminded": hop.reminded,
        "hop": hop.number,
    }
