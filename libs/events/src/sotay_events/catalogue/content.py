"""Facts about news and party documents, published by content.

A piece (aggregate `Piece`) is news, an event, a party document (resolution,
directive, regulation, conclusion, guidance), professional guidance, a
branch-meeting topic or the branch-meeting bulletin. It targets one unit: the
committee that publishes it, seen by every member of that unit's subtree.

A member's reading of a piece is a stream of its own (aggregate
`PieceReading`, id "<piece>:<member>"), so it happens once and a popular piece
is not one contended stream; a member's saved pieces are one stream
(aggregate `Library`, id the member).

No event carries personal data: members appear by id only. Nothing classified
is ever recorded: a secret piece or file is refused before any write, so the
classification of a recorded document is always one of `Classification`.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from sotay_events import topics
from sotay_events.catalogue.base import DomainEvent, register


class PieceKind(StrEnum):
    news = "news"  # tin tức
    event = "event"  # sự kiện
    resolution = "resolution"  # nghị quyết
    directive = "directive"  # chỉ thị
    regulation = "regulation"  # quy định
    conclusion = "conclusion"  # kết luận
    guidance = "guidance"  # hướng dẫn
    professional_guidance = "professional_guidance"  # hướng dẫn nghiệp vụ, mô hình mới
    meeting_topic = "meeting_topic"  # chuyên đề sinh hoạt chi bộ
    bulletin = "bulletin"  # bản tin sinh hoạt chi bộ

    @property
    def is_party_document(self) -> bool:
        return self in PARTY_DOCUMENT_KINDS

    @property
    def label(self) -> str:
        return KIND_LABELS[self]


PARTY_DOCUMENT_KINDS = frozenset(
    {
        PieceKind.resolution,
        PieceKind.directive,
        PieceKind.regulation,
        PieceKind.conclusion,
        PieceKind.guidance,
    }
)

KIND_LABELS = {
    PieceKind.news: "Tin tức",
    PieceKind.event: "Sự kiện",
    PieceKind.resolution: "Nghị quyết",
    PieceKind.directive: "Chỉ thị",
    PieceKind.regulation: "Quy định",
    PieceKind.conclusion: "Kết luận",
    PieceKind.guidance: "Hướng dẫn",
    PieceKind.professional_guidance: "Hướng dẫn nghiệp vụ",
    PieceKind.meeting_topic: "Chuyên đề sinh hoạt chi bộ",
    PieceKind.bulletin: "Bản tin sinh hoạt chi bộ",
}


class Classification(StrEnum):
    """The recorded classification of a party document: never a secret one."""

    public = "public"  # phổ biến rộng rãi
    internal = "internal"  # lưu hành nội bộ


class DocumentInfo(BaseModel):
    """What identifies a party document: "Nghị quyết số 57-NQ/TW ngày 22/12/2024 của Bộ Chính trị"."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    number_symbol: str = Field(description="số và ký hiệu, e.g. 57-NQ/TW")
    issuing_body: str = Field(description="cơ quan ban hành, e.g. Bộ Chính trị")
    issued_on: date
    effective_on: date | None = None
    classification: Classification


class PieceContent(BaseModel):
    """A piece's text as one revision holds it (the body is sanitised HTML)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    title: str
    summary: str = ""
    body: str = ""
    document: DocumentInfo | None = None


class _PieceEvent(DomainEvent):
    aggregate_type = "Piece"
    topic = topics.CONTENT


@register
class PieceDrafted(_PieceEvent):
    """An editor started a piece for a unit (the committee whose subtree it targets)."""

    event_type = "PieceDrafted"

    piece_id: str
    kind: PieceKind
    unit_id: str
    content: PieceContent
    author_id: str


@register
class PieceDraftEdited(_PieceEvent):
    event_type = "PieceDraftEdited"

    piece_id: str
    content: PieceContent
    edited_by: str


@register
class PieceAttachmentAdded(_PieceEvent):
    """A file checked from its bytes and stored with the piece; its text stays in content."""

    event_type = "PieceAttachmentAdded"

    piece_id: str
    attachment_id: str
    file_name: str
    media_type: str
    size: int = Field(ge=1)
    sha256: str


@register
class PieceAttachmentRemoved(_PieceEvent):
    event_type = "PieceAttachmentRemoved"

    piece_id: str
    attachment_id: str


@register
class PieceSubmitted(_PieceEvent):
    """The editor sent the piece to the editorial board for review."""

    event_type = "PieceSubmitted"

    piece_id: str
    unit_id: str
    kind: PieceKind
    submitted_by: str


@register
class PieceReturned(_PieceEvent):
    """A reviewer sent the piece back to its editor, with what to change."""

    event_type = "PieceReturned"

    piece_id: str
    returned_by: str
    note: str = ""


@register
class PieceScheduled(_PieceEvent):
    """A reviewer approved the piece for publication at a later time."""

    event_type = "PieceScheduled"

    piece_id: str
    unit_id: str
    kind: PieceKind
    publish_at: datetime
    approved_by: str


@register
class PiecePublished(_PieceEvent):
    """Members of the unit's subtree see the piece from now on (reporting counts it per unit)."""

    event_type = "PiecePublished"

    piece_id: str
    unit_id: str
    kind: PieceKind
    title: str
    number_symbol: str | None = None
    revision: int = Field(ge=1)
    approved_by: str
    published_at: datetime


@register
class PieceRevised(_PieceEvent):
    """A published piece was corrected: a new revision replaces what members see."""

    event_type = "PieceRevised"

    piece_id: str
    unit_id: str
    kind: PieceKind
    revision: int = Field(ge=2)
    content: PieceContent
    reason: str
    revised_by: str


@register
class PieceWithdrawn(_PieceEvent):
    """Members no longer see the piece."""

    event_type = "PieceWithdrawn"

    piece_id: str
    unit_id: str
    kind: PieceKind
    reason: str
    withdrawn_by: str


@register
class PieceRead(DomainEvent):
    """A member opened a published piece for the first time (reporting's read share)."""

    event_type = "PieceRead"
    aggregate_type = "PieceReading"
    topic = topics.CONTENT

    piece_id: str
    member_id: str
    unit_id: str = Field(description="the unit the piece targets")
    kind: PieceKind
    branch_id: str | None = Field(None, description="the reader's branch when they read it")


class _LibraryEvent(DomainEvent):
    aggregate_type = "Library"
    topic = topics.CONTENT


@register
class PieceSaved(_LibraryEvent):
    """A member kept a piece in their own library (seed 001, group 6)."""

    event_type = "PieceSaved"

    member_id: str
    piece_id: str


@register
class PieceUnsaved(_LibraryEvent):
    event_type = "PieceUnsaved"

    member_id: str
    piece_id: str
