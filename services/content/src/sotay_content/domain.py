"""Pieces, readings and libraries: plain classes whose methods check a rule and record an event.

The workflow of a piece (seed 004: the editorial board publishes news and
every non-secret resolution):

    draft ──submit──▶ submitted ──approve──▶ published ──revise──▶ published (revision n+1)
      ▲                  │    └──approve later──▶ scheduled ──time comes──▶ published
      └─────return───────┘                         │                         │
                                                   └──────withdraw───────────┴──▶ withdrawn

Nobody approves a piece they wrote or submitted. Nothing classified is ever
recorded: `compose` refuses a declared secret classification and any secrecy
marking in the title, summary or body (the rule is in
`sotay_platform.attachments`) before an event exists.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum

from sotay_content.richtext import sanitise, to_text
from sotay_events import Aggregate, DomainEvent
from sotay_events.catalogue.content import (
    Classification,
    DocumentInfo,
    PieceAttachmentAdded,
    PieceAttachmentRemoved,
    PieceContent,
    PieceDrafted,
    PieceDraftEdited,
    PieceKind,
    PiecePublished,
    PieceRead,
    PieceReturned,
    PieceRevised,
    PieceSaved,
    PieceScheduled,
    PieceSubmitted,
    PieceUnsaved,
    PieceWithdrawn,
)
from sotay_platform.attachments import ClassifiedRefused, refuse_if_classified
from sotay_platform.errors import Conflict, Forbidden, Invalid

DRAFT, SUBMITTED, SCHEDULED, PUBLISHED, WITHDRAWN = (
    "draft",
    "submitted",
    "scheduled",
    "published",
    "withdrawn",
)
STATUS_LABELS = {
    DRAFT: "bản nháp",
    SUBMITTED: "chờ duyệt",
    SCHEDULED: "đã duyệt, chờ đăng",
    PUBLISHED: "đã đăng",
    WITHDRAWN: "đã thu hồi",
}

MAX_ATTACHMENTS = 20
MAX_LIBRARY = 2000

# "57-NQ/TW", "339-QĐ/TW", "1742-CV/TU", "01-HD/BTGTW", "05-KL/TW", "35-CT/TW"
NUMBER_SYMBOL = re.compile(r"^(\d{1,5})-([A-ZĐ]{1,10})/([A-ZĐ0-9]{1,15}(?:-[A-ZĐ0-9]{1,15})*)$")


class DeclaredClassification(StrEnum):
    """What an editor may declare; the secret levels exist only to be refused."""

    public = "public"  # phổ biến
    internal = "internal"  # lưu hành nội bộ
    secret = "mat"  # mật
    top_secret = "toi_mat"  # tối mật
    absolute_secret = "tuyet_mat"  # tuyệt mật


SECRET_LABELS = {
    DeclaredClassification.secret: "MẬT",
    DeclaredClassification.top_secret: "TỐI MẬT",
    DeclaredClassification.absolute_secret: "TUYỆT MẬT",
}


class RuleBroken(Conflict):
    """A command the piece's state does not allow (409)."""

    code = "rule_broken"


@dataclass(frozen=True)
class DocumentDraft:
    """A party document's identification as an editor types it."""

    number_symbol: str
    issuing_body: str
    issued_on: date
    classification: DeclaredClassification
    effective_on: date | None = None


def normalise_number_symbol(raw: str) -> str:
    value = unicodedata.normalize("NFC", "".join(raw.split())).upper()
    if not NUMBER_SYMBOL.match(value):
        raise Invalid(
            f"Số và ký hiệu văn bản «{raw}» không đúng dạng (ví dụ: 57-NQ/TW, 339-QĐ/TW)",
            field="document.number_symbol",
        )
    return value


def _document(draft: DocumentDraft) -> DocumentInfo:
    if draft.classification in SECRET_LABELS:
        raise ClassifiedRefused(
            f"Văn bản có độ mật «{SECRET_LABELS[draft.classification]}»: tài liệu mật "
            "(mật, tối mật, tuyệt mật) không được đưa lên Sổ tay và đã không được lưu",
            field="document.classification",
        )
    if draft.effective_on and draft.effective_on < draft.issued_on:
        raise Invalid(
            "Ngày có hiệu lực không được trước ngày ban hành", field="document.effective_on"
        )
    issuing_body = " ".join(draft.issuing_body.split())
    if not issuing_body:
        raise Invalid("Cần ghi cơ quan ban hành", field="document.issuing_body")
    refuse_if_classified(issuing_body, "document.issuing_body", "Cơ quan ban hành")
    return DocumentInfo(
        number_symbol=normalise_number_symbol(draft.number_symbol),
        issuing_body=issuing_body,
        issued_on=draft.issued_on,
        effective_on=draft.effective_on,
        classification=Classification(draft.classification.value),
    )


def compose(
    kind: PieceKind,
    title: str,
    summary: str,
    body_html: str,
    document: DocumentDraft | None,
) -> PieceContent:
    """A revision's content, checked: classification, markings, sanitised body."""
    title = " ".join(title.split())
    summary = summary.strip()
    if not title:
        raise Invalid("Cần có tiêu đề", field="title")
    if kind.is_party_document and document is None:
        raise Invalid(
            f"{kind.label} phải có số và ký hiệu, cơ quan ban hành, ngày ban hành và độ mật",
            field="document",
        )
    if not kind.is_party_document and document is not None:
        raise Invalid(
            f"Chỉ văn bản của Đảng (nghị quyết, chỉ thị, quy định, kết luận, hướng dẫn) "
            f"mới có số, ký hiệu; «{kind.label}» thì không",
            field="document",
        )
    info = _document(document) if document else None
    refuse_if_classified(title, "title", "Tiêu đề")
    refuse_if_classified(summary, "summary", "Tóm tắt")
    # The raw markup keeps its block structure (a stamp in an <h1> is its own line).
    refuse_if_classified(to_text(body_html), "body", "Nội dung")
    body = sanitise(body_html)
    return PieceContent(title=title, summary=summary, body=body, document=info)


@dataclass(frozen=True)
class AttachmentInfo:
    attachment_id: str
    file_name: str
    media_type: str
    size: int
    sha256: str


class Piece(Aggregate):
    aggregate_type = "Piece"

    def __init__(self, aggregate_id: str) -> None:
        super().__init__(aggregate_id)
        self.kind = PieceKind.news
        self.unit_id = ""
        self.status = DRAFT
        self.content = PieceContent(title="")
        self.author_id = ""
        self.submitted_by: str | None = None
        self.approved_by: str | None = None
        self.publish_at: datetime | None = None
        self.published_at: datetime | None = None
        self.revision = 0
        self.revisions: list[PieceContent] = []
        self.attachments: dict[str, AttachmentInfo] = {}
        self.withdrawal_reason: str | None = None

    def apply(self, event: DomainEvent) -> None:
        match event:
            case PieceDrafted():
                self.kind, self.unit_id = event.kind, event.unit_id
                self.content, self.author_id = event.content, event.author_id
            case PieceDraftEdited():
                self.content = event.content
            case PieceAttachmentAdded():
                self.attachments[event.attachment_id] = AttachmentInfo(
                    event.attachment_id, event.file_name, event.media_type, event.size, event.sha256
                )
            case PieceAttachmentRemoved():
                self.attachments.pop(event.attachment_id, None)
            case PieceSubmitted():
                self.status, self.submitted_by = SUBMITTED, event.submitted_by
            case PieceReturned():
                self.status, self.submitted_by = DRAFT, None
            case PieceScheduled():
                self.status, self.publish_at = SCHEDULED, event.publish_at
                self.approved_by = event.approved_by
            case PiecePublished():
                self.status, self.approved_by = PUBLISHED, event.approved_by
                self.published_at, self.revision = event.published_at, event.revision
                self.revisions.append(self.content)
            case PieceRevised():
                self.content, self.revision = event.content, event.revision
                self.revisions.append(event.content)
            case PieceWithdrawn():
                self.status, self.withdrawal_reason = WITHDRAWN, event.reason

    def _require(self, *statuses: str, action: str) -> None:
        if self.status not in statuses:
            raise RuleBroken(
                f"Không thể {action}: bài đang ở trạng thái «{STATUS_LABELS[self.status]}»",
                field="status",
            )

    # commands ----------------------------------------------------------------

    @classmethod
    def draft(
        cls, piece_id: str, kind: PieceKind, unit_id: str, content: PieceContent, author_id: str
    ) -> Piece:
        piece = cls(piece_id)
        piece.record(
            PieceDrafted(
                piece_id=piece_id,
                kind=kind,
                unit_id=unit_id,
                content=content,
                author_id=author_id,
            )
        )
        return piece

    def same_draft(self, kind: PieceKind, unit_id: str, content: PieceContent) -> bool:
        """A retried create: the stream exists with exactly this draft."""
        return (self.kind, self.unit_id, self.content) == (kind, unit_id, content)

    def edit(self, content: PieceContent, actor: str) -> bool:
        self._require(DRAFT, action="sửa bản nháp")
        if content == self.content:
            return False
        self.record(PieceDraftEdited(piece_id=self.id, content=content, edited_by=actor))
        return True

    def add_attachment(self, attachment: AttachmentInfo) -> bool:
        self._require(DRAFT, action="đính kèm tệp")
        if any(a.sha256 == attachment.sha256 for a in self.attachments.values()):
            return False  # the same file again: a retried upload
        if len(self.attachments) >= MAX_ATTACHMENTS:
            raise Invalid(f"Mỗi bài có tối đa {MAX_ATTACHMENTS} tệp đính kèm", field="file")
        self.record(
            PieceAttachmentAdded(
                piece_id=self.id,
                attachment_id=attachment.attachment_id,
                file_name=attachment.file_name,
                media_type=attachment.media_type,
                size=attachment.size,
                sha256=attachment.sha256,
            )
        )
        return True

    def remove_attachment(self, attachment_id: str) -> bool:
        self._require(DRAFT, action="gỡ tệp đính kèm")
        if attachment_id not in self.attachments:
            return False
        self.record(PieceAttachmentRemoved(piece_id=self.id, attachment_id=attachment_id))
        return True

    def submit(self, actor: str) -> bool:
        if self.status == SUBMITTED:
            return False
        self._require(DRAFT, action="gửi duyệt")
        self.record(
            PieceSubmitted(
                piece_id=self.id, unit_id=self.unit_id, kind=self.kind, submitted_by=actor
            )
        )
        return True

    def return_to_editor(self, actor: str, note: str) -> bool:
        if self.status == DRAFT:
            return False
        self._require(SUBMITTED, action="trả lại bài")
        self.record(PieceReturned(piece_id=self.id, returned_by=actor, note=note.strip()))
        return True

    def approve(self, actor: str, now: datetime, publish_at: datetime | None = None) -> bool:
        """Publish now, or at `publish_at` when that is later; False when already done."""
        if self.status in (SCHEDULED, PUBLISHED) and self.approved_by == actor:
            return False
        self._require(SUBMITTED, action="duyệt đăng")
        if actor in (self.author_id, self.submitted_by):
            raise Forbidden(
                "Không được tự duyệt bài do mình soạn hoặc gửi duyệt: "
                "cần một thành viên khác của Ban Biên tập",
                field="piece_id",
                code="own_piece",
            )
        if publish_at is not None and publish_at > now:
            self.record(
                PieceScheduled(
                    piece_id=self.id,
                    unit_id=self.unit_id,
                    kind=self.kind,
                    publish_at=publish_at,
                    approved_by=actor,
                )
            )
        else:
            self._publish(actor, now)
        return True

    def publish_due(self, now: datetime) -> bool:
        """The scheduler's command: publish a scheduled piece whose time has come."""
        if self.status != SCHEDULED or self.publish_at is None or self.publish_at > now:
            return False
        self._publish(self.approved_by or "", self.publish_at)
        return True

    def _publish(self, approver: str, at: datetime) -> None:
        self.record(
            PiecePublished(
                piece_id=self.id,
                unit_id=self.unit_id,
                kind=self.kind,
                title=self.content.title,
                number_symbol=self.content.document.number_symbol
                if self.content.document
                else None,
                revision=1,
                approved_by=approver,
                published_at=at,
            )
        )

    def revise(self, content: PieceContent, reason: str, actor: str) -> bool:
        self._require(PUBLISHED, action="đính chính")
        reason = reason.strip()
        if not reason:
            raise Invalid("Cần nêu lý do đính chính", field="reason")
        if content == self.content:
            return False
        self.record(
            PieceRevised(
                piece_id=self.id,
                unit_id=self.unit_id,
                kind=self.kind,
                revision=self.revision + 1,
                content=content,
                reason=reason,
                revised_by=actor,
            )
        )
        return True

    def withdraw(self, reason: str, actor: str) -> bool:
        if self.status == WITHDRAWN:
            return False
        self._require(PUBLISHED, SCHEDULED, action="thu hồi")
        reason = reason.strip()
        if not reason:
            raise Invalid("Cần nêu lý do thu hồi", field="reason")
        self.record(
            PieceWithdrawn(
                piece_id=self.id,
                unit_id=self.unit_id,
                kind=self.kind,
                reason=reason,
                withdrawn_by=actor,
            )
        )
        return True


def reading_id(piece_id: str, member_id: str) -> str:
    return f"{piece_id}:{member_id}"


class PieceReading(Aggregate):
    """One member's first reading of one piece: a stream that only ever starts."""

    aggregate_type = "PieceReading"

    def __init__(self, aggregate_id: str) -> None:
        super().__init__(aggregate_id)
        self.read = False

    def apply(self, event: DomainEvent) -> None:
        if isinstance(event, PieceRead):
            self.read = True

    @classmethod
    def start(cls, piece: Piece, member_id: str, branch_id: str | None) -> PieceReading:
        reading = cls(reading_id(piece.id, member_id))
        reading.record(
            PieceRead(
                piece_id=piece.id,
                member_id=member_id,
                unit_id=piece.unit_id,
                kind=piece.kind,
                branch_id=branch_id,
            )
        )
        return reading


class Library(Aggregate):
    """A member's saved pieces, kept on the server so every device shows the same."""

    aggregate_type = "Library"

    def __init__(self, aggregate_id: str) -> None:
        super().__init__(aggregate_id)
        self.saved: dict[str, None] = {}

    def apply(self, event: DomainEvent) -> None:
        match event:
            case PieceSaved():
                self.saved[event.piece_id] = None
            case PieceUnsaved():
                self.saved.pop(event.piece_id, None)

    def save(self, piece_id: str) -> bool:
        if piece_id in self.saved:
            return False
        if len(self.saved) >= MAX_LIBRARY:
            raise Invalid(
                f"Thư viện cá nhân đã đủ {MAX_LIBRARY} mục: hãy bỏ bớt mục cũ", field="piece_id"
            )
        self.record(PieceSaved(member_id=self.id, piece_id=piece_id))
        return True

    def unsave(self, piece_id: str) -> bool:
        if piece_id not in self.saved:
            return False
        self.record(PieceUnsaved(member_id=self.id, piece_id=piece_id))
        return True
