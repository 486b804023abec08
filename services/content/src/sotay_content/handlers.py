"""One method per command: load, authorize against the target's path, decide, commit.

Every command persists through one unit of work. The checks that refuse a
classified piece or file run on what is in memory, before the commit: a
refused command writes nothing at all (no event, no file, no temporary file).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Protocol

from sotay_content.access import (
    BOARD_ROLES,
    EDITOR_ROLES,
    REVIEWER_ROLES,
    grant_units,
    member_branch,
    sees_published,
)
from sotay_content.domain import (
    PUBLISHED,
    SCHEDULED,
    AttachmentInfo,
    DocumentDraft,
    Library,
    Piece,
    PieceReading,
    compose,
    reading_id,
)
from sotay_content.files import stage_file
from sotay_content.projections import ATTACHMENT_TEXTS
from sotay_events import (
    CommandContext,
    ConcurrencyConflict,
    EventStore,
    EventTooLarge,
    GroupCommit,
    UnitOfWork,
    new_event_id,
    retry_on_conflict,
)
from sotay_events.catalogue.content import PieceKind
from sotay_platform.attachments import DEFAULT_LIMITS, AttachmentLimits, inspect_attachment
from sotay_platform.auth import Principal
from sotay_platform.errors import Conflict, Forbidden, Invalid, NotFound

log = logging.getLogger(__name__)

SCHEDULE = "schedule"  # rows of scheduled pieces, written with PieceScheduled
SCHEDULER_ACTOR = "system:content-scheduler"
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class Tree(Protocol):
    async def current(self, unit_id: str) -> dict[str, Any] | None: ...

    async def path(self, unit_id: str) -> list[str]: ...

    async def above(self, unit_ids: Sequence[str]) -> list[str]: ...


@dataclass(frozen=True)
class Draft:
    """What an editor writes; the domain composes and checks it."""

    title: str
    summary: str = ""
    body: str = ""
    document: DocumentDraft | None = None


class ContentService:
    def __init__(
        self,
        store: EventStore,
        *,
        tree: Tree,
        readings: GroupCommit | None = None,
        clock: Clock = utc_now,
        limits: AttachmentLimits = DEFAULT_LIMITS,
        on_saved: Callable[[], None] = lambda: None,
    ) -> None:
        self.store = store
        self.tree = tree
        self.readings = readings
        self.clock = clock
        self.limits = limits
        self.on_saved = on_saved

    # Loading and committing.

    async def _load(self, uow: UnitOfWork, piece_id: str) -> Piece:
        piece = await uow.get(Piece, piece_id)
        if piece is None:
            raise NotFound(f"Không tìm thấy bài {piece_id}", field="piece_id")
        return piece

    async def piece(self, piece_id: str) -> Piece:
        return await self._load(self.store.unit_of_work(), piece_id)

    async def _target_path(self, unit_id: str, field: str = "unit_id") -> list[str]:
        unit = await self.tree.current(unit_id)
        if unit is None:
            raise NotFound(f"Không tìm thấy đơn vị {unit_id}", field=field)
        if unit.get("status") == "dissolved":
            raise Invalid(f"Đơn vị {unit_id} đã giải thể", field=field)
        return list(unit.get("path") or [unit["_id"]])

    async def _commit(
        self, uow: UnitOfWork, actor: str, path: Sequence[str], correlation_id: str | None = None
    ) -> None:
        context = CommandContext(actor=actor, org_path=tuple(path))
        if correlation_id:
            context = replace(context, correlation_id=correlation_id)
        try:
            envelopes = await uow.commit(context)
        except EventTooLarge:
            raise Invalid(
                "Nội dung quá dài để lưu thành một bản (hãy rút gọn hoặc chuyển thành tệp đính kèm)",
                field="body",
            ) from None
        if envelopes:
            self.on_saved()

    async def path_of(self, piece: Piece) -> list[str]:
        return await self.tree.path(piece.unit_id)

    async def visible(self, principal: Principal, piece: Piece) -> bool:
        path = await self.path_of(piece)
        if principal.covers(BOARD_ROLES, path):
            return True
        if piece.status != PUBLISHED:
            return False
        targets = await self.tree.above(grant_units(principal))
        return sees_published(principal, piece.unit_id, targets, path)

    # The editor's commands.

    @retry_on_conflict()
    async def draft(
        self,
        principal: Principal,
        *,
        kind: PieceKind,
        unit_id: str,
        draft: Draft,
        piece_id: str | None = None,
        correlation_id: str | None = None,
    ) -> tuple[Piece, bool]:
        """Returns the piece and whether it was drafted now; a retried request drafts once."""
        path = await self._target_path(unit_id)
        principal.require(EDITOR_ROLES, path)
        content = compose(kind, draft.title, draft.summary, draft.body, draft.document)
        uow = self.store.unit_of_work()
        if piece_id:
            existing = await uow.get(Piece, piece_id)
            if existing is not None:
                if existing.same_draft(kind, unit_id, content):
                    return existing, False
                raise Conflict(f"Mã bài {piece_id} đã được dùng", field="piece_id")
        piece = Piece.draft(piece_id or new_event_id(), kind, unit_id, content, principal.subject)
        uow.add(piece)
        await self._commit(uow, principal.subject, path, correlation_id)
        return piece, True

    @retry_on_conflict()
    async def edit(self, principal: Principal, piece_id: str, draft: Draft) -> Piece:
        uow = self.store.unit_of_work()
        piece = await self._load(uow, piece_id)
        path = await self.path_of(piece)
        principal.require(EDITOR_ROLES, path)
        content = compose(piece.kind, draft.title, draft.summary, draft.body, draft.document)
        piece.edit(content, principal.subject)
        await self._commit(uow, principal.subject, path)
        return piece

    @retry_on_conflict()
    async def attach(
        self, principal: Principal, piece_id: str, file_name: str, data: bytes
    ) -> tuple[Piece, AttachmentInfo, bool]:
        """Check the file from its bytes, then store it with its event in one transaction."""
        uow = self.store.unit_of_work()
        piece = await self._load(uow, piece_id)
        path = await self.path_of(piece)
        principal.require(EDITOR_ROLES, path)
        inspected = inspect_attachment(data, limits=self.limits, field_name="file")
        existing = next(
            (a for a in piece.attachments.values() if a.sha256 == inspected.sha256), None
        )
        if existing is not None:
            return piece, existing, False
        info = AttachmentInfo(
            attachment_id=new_event_id(),
            file_name=_clean_file_name(file_name, inspected.kind.value),
            media_type=inspected.mime_type,
            size=inspected.size,
            sha256=inspected.sha256,
        )
        piece.add_attachment(info)
        stage_file(
            uow,
            info.attachment_id,
            data,
            file_name=info.file_name,
            media_type=info.media_type,
            uploaded_at=self.clock(),
            metadata={"piece_id": piece.id, "sha256": info.sha256},
        )
        uow.private(
            ATTACHMENT_TEXTS,
            {"_id": info.attachment_id, "piece_id": piece.id, "text": inspected.text},
        )
        await self._commit(uow, principal.subject, path)
        return piece, info, True

    @retry_on_conflict()
    async def detach(self, principal: Principal, piece_id: str, attachment_id: str) -> Piece:
        uow = self.store.unit_of_work()
        piece = await self._load(uow, piece_id)
        path = await self.path_of(piece)
        principal.require(EDITOR_ROLES, path)
        piece.remove_attachment(attachment_id)
        await self._commit(uow, principal.subject, path)
        return piece

    @retry_on_conflict()
    async def submit(self, principal: Principal, piece_id: str) -> Piece:
        uow = self.store.unit_of_work()
        piece = await self._load(uow, piece_id)
        path = await self.path_of(piece)
        principal.require(EDITOR_ROLES, path)
        piece.submit(principal.subject)
        await self._commit(uow, principal.subject, path)
        return piece

    # The editorial board's commands.

    @retry_on_conflict()
    async def return_to_editor(self, principal: Principal, piece_id: str, note: str) -> Piece:
        uow = self.store.unit_of_work()
        piece = await self._load(uow, piece_id)
        path = await self.path_of(piece)
        principal.require(REVIEWER_ROLES, path)
        piece.return_to_editor(principal.subject, note)
        await self._commit(uow, principal.subject, path)
        return piece

    @retry_on_conflict()
    async def approve(
        self, principal: Principal, piece_id: str, publish_at: datetime | None = None
    ) -> Piece:
        """Publish now, or schedule for `publish_at`; the scheduler publishes it then."""
        uow = self.store.unit_of_work()
        piece = await self._load(uow, piece_id)
        path = await self.path_of(piece)
        principal.require(REVIEWER_ROLES, path)
        if publish_at is not None and publish_at.tzinfo is None:
            raise Invalid("Thời điểm đăng phải kèm múi giờ", field="publish_at")
        if piece.approve(principal.subject, self.clock(), publish_at) and piece.status == SCHEDULED:
            uow.row(SCHEDULE, {"_id": piece.id, "publish_at": piece.publish_at})
        await self._commit(uow, principal.subject, path)
        return piece

    @retry_on_conflict()
    async def revise(self, principal: Principal, piece_id: str, draft: Draft, reason: str) -> Piece:
        uow = self.store.unit_of_work()
        piece = await self._load(uow, piece_id)
        path = await self.path_of(piece)
        principal.require(REVIEWER_ROLES, path)
        content = compose(piece.kind, draft.title, draft.summary, draft.body, draft.document)
        piece.revise(content, reason, principal.subject)
        await self._commit(uow, principal.subject, path)
        return piece

    @retry_on_conflict()
    async def withdraw(self, principal: Principal, piece_id: str, reason: str) -> Piece:
        uow = self.store.unit_of_work()
        piece = await self._load(uow, piece_id)
        path = await self.path_of(piece)
        principal.require(REVIEWER_ROLES, path)
        if piece.withdraw(reason, principal.subject):
            uow.delete_row(SCHEDULE, piece.id)
        await self._commit(uow, principal.subject, path)
        return piece

    async def publish_due(self, piece_id: str) -> bool:
        """The scheduler's command; safe on every replica at once (the stream's version decides)."""
        uow = self.store.unit_of_work()
        piece = await uow.get(Piece, piece_id)
        published = piece.publish_due(self.clock()) if piece else False
        if piece is not None and piece.status == SCHEDULED and not published:
            return False  # not yet: the row stays for a later round
        uow.delete_row(SCHEDULE, piece_id)  # done, or withdrawn meanwhile: nothing left to do
        try:
            path = await self.path_of(piece) if piece else []
            await self._commit(uow, SCHEDULER_ACTOR, path)
        except ConcurrencyConflict:
            return False  # another replica (or a withdrawal) got there first
        return published

    # The member's commands.

    def member_of(self, principal: Principal) -> str:
        if not principal.member_id:
            raise Forbidden("Tài khoản không gắn với một đảng viên", field="member_id")
        return principal.member_id

    async def _visible_published(self, principal: Principal, piece_id: str) -> Piece:
        piece = await self.piece(piece_id)
        if piece.status != PUBLISHED or not await self.visible(principal, piece):
            # The same answer whether it does not exist or is not for this caller.
            raise NotFound(f"Không tìm thấy bài {piece_id}", field="piece_id")
        return piece

    async def read(self, principal: Principal, piece_id: str) -> tuple[Piece, bool]:
        """The piece for a member, recording their first reading; False when read before."""
        member_id = self.member_of(principal)
        piece = await self._visible_published(principal, piece_id)
        committer = self.readings or self.store
        uow = committer.unit_of_work()
        if await uow.get(PieceReading, reading_id(piece.id, member_id)) is not None:
            return piece, False
        uow.add(PieceReading.start(piece, member_id, member_branch(principal)))
        try:
            await self._commit(uow, principal.subject, await self.path_of(piece))
        except ConcurrencyConflict:
            return piece, False  # the same member on two devices at once
        return piece, True

    @retry_on_conflict()
    async def save(self, principal: Principal, piece_id: str) -> bool:
        member_id = self.member_of(principal)
        piece = await self._visible_published(principal, piece_id)
        uow = self.store.unit_of_work()
        library = await uow.get(Library, member_id)
        if library is None:
            library = Library(member_id)
            uow.add(library)
        saved = library.save(piece.id)
        await self._commit(uow, principal.subject, await self._member_path(principal))
        return saved

    @retry_on_conflict()
    async def unsave(self, principal: Principal, piece_id: str) -> bool:
        """Removing works even for a piece since withdrawn: it is the member's own list."""
        member_id = self.member_of(principal)
        uow = self.store.unit_of_work()
        library = await uow.get(Library, member_id)
        if library is None or not library.unsave(piece_id):
            return False
        await self._commit(uow, principal.subject, await self._member_path(principal))
        return True

    async def _member_path(self, principal: Principal) -> list[str]:
        branch = member_branch(principal)
        return await self.tree.path(branch) if branch else []


def _clean_file_name(raw: str, extension: str) -> str:
    """A file name safe to show and to send back: no directories, no control characters."""
    name = raw.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if ch.isprintable() and ch not in '"<>|:*?').strip(" .")
    if not name:
        name = "tep-dinh-kem"
    expected = {"jpeg": (".jpg", ".jpeg")}.get(extension, (f".{extension}",))
    if not name.lower().endswith(expected):
        name = f"{name}{expected[0]}"
    return name[:200]
