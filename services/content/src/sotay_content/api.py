"""HTTP routes: parse, authorize, call a handler, shape the answer."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from sotay_content.access import BOARD_ROLES, REVIEWER_ROLES, grant_units, sees_published
from sotay_content.display import date_vn, datetime_vn
from sotay_content.domain import (
    PUBLISHED,
    STATUS_LABELS,
    DeclaredClassification,
    DocumentDraft,
    Piece,
)
from sotay_content.files import AttachmentFiles
from sotay_content.handlers import ContentService, Draft
from sotay_content.projections import ContentViews, SearchFilters
from sotay_events.catalogue.content import PieceKind
from sotay_platform.auth import Principal, Role, current_principal
from sotay_platform.errors import Invalid, NotFound, PayloadTooLarge
from sotay_platform.inputs import Code, EventDate, EventDatetime, Limit, Name, Text

router = APIRouter()

Caller = Annotated[Principal, Depends(current_principal)]


def _service(request: Request) -> ContentService:
    return request.app.state.service


def _views(request: Request) -> ContentViews:
    return request.app.state.views


def _files(request: Request) -> AttachmentFiles:
    return request.app.state.files


Service = Annotated[ContentService, Depends(_service)]
Views = Annotated[ContentViews, Depends(_views)]
Files = Annotated[AttachmentFiles, Depends(_files)]

Title = Annotated[str, Text(300)]
Summary = Annotated[str, Text(3_000, min_length=0, multiline=True)]
# Events travel through Kafka and are capped (256 KiB): a body stays well under.
Body = Annotated[str, Text(60_000, min_length=0, multiline=True)]
Reason = Annotated[str, Text(1_000, multiline=True)]


# Requests.


class DocumentIn(BaseModel):
    number_symbol: Annotated[str, Text(40)] = Field(examples=["57-NQ/TW"])
    issuing_body: Name = Field(examples=["Bộ Chính trị"])
    issued_on: EventDate = Field(examples=["2024-12-22"])
    effective_on: EventDate | None = None
    classification: DeclaredClassification = Field(
        description="public (phổ biến), internal (lưu hành nội bộ); mat, toi_mat, tuyet_mat are refused"
    )

    def draft(self) -> DocumentDraft:
        return DocumentDraft(
            number_symbol=self.number_symbol,
            issuing_body=self.issuing_body,
            issued_on=self.issued_on,
            effective_on=self.effective_on,
            classification=self.classification,
        )


class ContentIn(BaseModel):
    title: Title = Field(examples=["Nghị quyết số 57-NQ/TW về đột phá phát triển khoa học"])
    summary: Summary = ""
    body: Body = Field("", description="HTML; sanitised when stored")
    document: DocumentIn | None = None

    def draft(self) -> Draft:
        return Draft(
            title=self.title,
            summary=self.summary,
            body=self.body,
            document=self.document.draft() if self.document else None,
        )


class CreatePiece(ContentIn):
    kind: PieceKind
    unit_id: Code = Field(description="the committee whose subtree the piece targets")
    piece_id: Code | None = Field(None, description="chosen by the client: a retry drafts once")


class RevisePiece(ContentIn):
    reason: Reason


class Approve(BaseModel):
    publish_at: EventDatetime | None = Field(None, description="later: scheduled; absent: now")


class Note(BaseModel):
    note: Annotated[str, Text(1_000, min_length=0, multiline=True)] = ""


class Withdraw(BaseModel):
    reason: Reason


# Answers.


class DocumentView(BaseModel):
    number_symbol: str
    issuing_body: str
    issued_on: date
    issued_on_label: str
    effective_on: date | None = None
    effective_on_label: str | None = None
    classification: str


class AttachmentView(BaseModel):
    attachment_id: str
    file_name: str
    media_type: str
    size: int
    url: str


class PieceView(BaseModel):
    piece_id: str
    kind: PieceKind
    kind_label: str
    unit_id: str
    status: str
    status_label: str
    title: str
    summary: str
    body: str | None = None
    document: DocumentView | None = None
    attachments: list[AttachmentView] = []
    revision: int
    author_id: str
    publish_at: datetime | None = None
    publish_at_label: str | None = None
    published_at: datetime | None = None
    published_on_label: str | None = None
    withdrawn_reason: str | None = None
    read: bool | None = None
    score: float | None = None


def _document(doc: dict[str, Any] | None) -> DocumentView | None:
    if not doc:
        return None
    issued = date.fromisoformat(str(doc["issued_on"]))
    effective = date.fromisoformat(str(doc["effective_on"])) if doc.get("effective_on") else None
    return DocumentView(
        number_symbol=doc["number_symbol"],
        issuing_body=doc["issuing_body"],
        issued_on=issued,
        issued_on_label=date_vn(issued) or "",
        effective_on=effective,
        effective_on_label=date_vn(effective),
        classification=doc["classification"],
    )


def _attachments(piece_id: str, items: list[dict[str, Any]]) -> list[AttachmentView]:
    return [
        AttachmentView(
            attachment_id=a["attachment_id"],
            file_name=a["file_name"],
            media_type=a["media_type"],
            size=a["size"],
            url=f"/pieces/{piece_id}/attachments/{a['attachment_id']}",
        )
        for a in items
    ]


def view_of_row(row: dict[str, Any], *, body: bool = True) -> PieceView:
    kind = PieceKind(row["kind"])
    return PieceView(
        piece_id=row["_id"],
        kind=kind,
        kind_label=kind.label,
        unit_id=row["unit_id"],
        status=row["status"],
        status_label=STATUS_LABELS[row["status"]],
        title=row["title"],
        summary=row.get("summary", ""),
        body=row.get("body") if body else None,
        document=_document(row.get("document")),
        attachments=_attachments(row["_id"], row.get("attachments", [])),
        revision=row.get("revision", 0),
        author_id=row["author_id"],
        publish_at=row.get("publish_at"),
        publish_at_label=datetime_vn(row.get("publish_at")),
        published_at=row.get("published_at"),
        published_on_label=date_vn(row.get("published_at")),
        withdrawn_reason=row.get("withdrawn_reason"),
    )


def view_of_piece(piece: Piece) -> PieceView:
    """Right after a command: the aggregate itself (the read model may not have caught up)."""
    content = piece.content
    return view_of_row(
        {
            "_id": piece.id,
            "kind": piece.kind.value,
            "unit_id": piece.unit_id,
            "status": piece.status,
            "title": content.title,
            "summary": content.summary,
            "body": content.body,
            "document": content.document.model_dump(mode="json") if content.document else None,
            "attachments": [
                {
                    "attachment_id": a.attachment_id,
                    "file_name": a.file_name,
                    "media_type": a.media_type,
                    "size": a.size,
                }
                for a in piece.attachments.values()
            ],
            "revision": piece.revision,
            "author_id": piece.author_id,
            "publish_at": piece.publish_at,
            "published_at": piece.published_at,
            "withdrawn_reason": piece.withdrawal_reason,
        }
    )


async def _row_visible(
    svc: ContentService, caller: Principal, row: dict[str, Any] | None, piece_id: str
) -> dict[str, Any]:
    """The row if the caller may see it; otherwise 404, as if it did not exist."""
    if row is not None:
        path = await svc.tree.path(row["unit_id"])
        if caller.covers(BOARD_ROLES, path):
            return row
        if row["status"] == PUBLISHED:
            targets = await svc.tree.above(grant_units(caller))
            if sees_published(caller, row["unit_id"], targets, path):
                return row
    raise NotFound(f"Không tìm thấy bài {piece_id}", field="piece_id")


# The editor's routes.


@router.post("/pieces", status_code=201, response_model=PieceView, tags=["editorial"])
async def create_piece(
    body: CreatePiece, caller: Caller, svc: Service, response: Response
) -> PieceView:
    piece, created = await svc.draft(
        caller, kind=body.kind, unit_id=body.unit_id, draft=body.draft(), piece_id=body.piece_id
    )
    if not created:
        response.status_code = 200
    return view_of_piece(piece)


@router.put("/pieces/{piece_id}", response_model=PieceView, tags=["editorial"])
async def edit_piece(piece_id: Code, body: ContentIn, caller: Caller, svc: Service) -> PieceView:
    return view_of_piece(await svc.edit(caller, piece_id, body.draft()))


async def _read_upload(request: Request, limit: int) -> bytes:
    """The request body in memory, never on disk, refused as soon as it passes `limit`."""
    declared = request.headers.get("content-length")
    too_large = PayloadTooLarge(
        f"Tệp vượt quá giới hạn {limit / 1024 / 1024:g} MB", field="file", code="too_large"
    )
    if declared and declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


@router.post(
    "/pieces/{piece_id}/attachments",
    status_code=201,
    response_model=AttachmentView,
    tags=["editorial"],
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            },
        }
    },
)
async def add_attachment(
    piece_id: Code,
    request: Request,
    caller: Caller,
    svc: Service,
    response: Response,
    name: Annotated[str, Query(min_length=1, max_length=255, description="the file's name")],
) -> AttachmentView:
    """The file is the request body (PDF, DOCX, PNG or JPEG, checked from its bytes)."""
    data = await _read_upload(request, svc.limits.largest)
    piece, info, created = await svc.attach(caller, piece_id, name, data)
    if not created:
        response.status_code = 200
    return _attachments(piece.id, [info.__dict__])[0]


@router.delete(
    "/pieces/{piece_id}/attachments/{attachment_id}", response_model=PieceView, tags=["editorial"]
)
async def remove_attachment(
    piece_id: Code, attachment_id: Code, caller: Caller, svc: Service
) -> PieceView:
    return view_of_piece(await svc.detach(caller, piece_id, attachment_id))


@router.post("/pieces/{piece_id}/submit", response_model=PieceView, tags=["editorial"])
async def submit_piece(piece_id: Code, caller: Caller, svc: Service) -> PieceView:
    return view_of_piece(await svc.submit(caller, piece_id))


# The editorial board's routes.


@router.post("/pieces/{piece_id}/return", response_model=PieceView, tags=["editorial"])
async def return_piece(piece_id: Code, body: Note, caller: Caller, svc: Service) -> PieceView:
    return view_of_piece(await svc.return_to_editor(caller, piece_id, body.note))


@router.post("/pieces/{piece_id}/approve", response_model=PieceView, tags=["editorial"])
async def approve_piece(piece_id: Code, body: Approve, caller: Caller, svc: Service) -> PieceView:
    return view_of_piece(await svc.approve(caller, piece_id, body.publish_at))


@router.post("/pieces/{piece_id}/revise", response_model=PieceView, tags=["editorial"])
async def revise_piece(
    piece_id: Code, body: RevisePiece, caller: Caller, svc: Service
) -> PieceView:
    return view_of_piece(await svc.revise(caller, piece_id, body.draft(), body.reason))


@router.post("/pieces/{piece_id}/withdraw", response_model=PieceView, tags=["editorial"])
async def withdraw_piece(piece_id: Code, body: Withdraw, caller: Caller, svc: Service) -> PieceView:
    return view_of_piece(await svc.withdraw(caller, piece_id, body.reason))


@router.get("/queue", response_model=list[PieceView], tags=["editorial"])
async def review_queue(
    caller: Caller,
    svc: Service,
    views: Views,
    unit_id: Code | None = None,
    limit: Limit = 100,
) -> list[PieceView]:
    """What awaits review in the caller's scope, oldest submission first."""
    units = grant_units(caller, REVIEWER_ROLES | {Role.system_admin})
    if unit_id:
        caller.require(REVIEWER_ROLES, await svc.tree.path(unit_id))
        units = [unit_id]
    elif not units:
        caller.require(REVIEWER_ROLES, [])
    rows = await views.queue(units, limit)
    # The stored path is the one of the last command; today's tree has the last word.
    allowed = [r for r in rows if caller.covers(REVIEWER_ROLES, await svc.tree.path(r["unit_id"]))]
    return [view_of_row(r, body=False) for r in allowed]


@router.get("/pieces", response_model=list[PieceView], tags=["editorial"])
async def managed_pieces(
    caller: Caller,
    svc: Service,
    views: Views,
    unit_id: Code,
    status: Annotated[
        str | None, Query(pattern="^(draft|submitted|scheduled|published|withdrawn)$")
    ] = None,
    limit: Limit = 100,
) -> list[PieceView]:
    """The board's list of every piece under a unit, in any state, latest change first."""
    caller.require(BOARD_ROLES, await svc.tree.path(unit_id))
    return [view_of_row(r, body=False) for r in await views.managed([unit_id], status, limit)]


@router.get("/pieces/{piece_id}/history", tags=["editorial"])
async def piece_history(piece_id: Code, caller: Caller, svc: Service) -> list[dict[str, Any]]:
    """Every published revision, first to last (corrections keep the history)."""
    piece = await svc.piece(piece_id)
    caller.require(BOARD_ROLES, await svc.path_of(piece))
    return [
        {"revision": n, **content.model_dump(mode="json")}
        for n, content in enumerate(piece.revisions, start=1)
    ]


# What everyone reads.


@router.get("/pieces/{piece_id}", response_model=PieceView, tags=["reading"])
async def get_piece(piece_id: Code, caller: Caller, svc: Service, views: Views) -> PieceView:
    row = await _row_visible(svc, caller, await views.get(piece_id), piece_id)
    return view_of_row(row)


@router.post("/pieces/{piece_id}/read", response_model=PieceView, tags=["reading"])
async def read_piece(piece_id: Code, caller: Caller, svc: Service) -> PieceView:
    """A member opens a piece: its text, and their first reading is recorded."""
    piece, _ = await svc.read(caller, piece_id)
    view = view_of_piece(piece)
    view.read = True
    return view


@router.get("/pieces/{piece_id}/attachments/{attachment_id}", tags=["reading"])
async def download_attachment(
    piece_id: Code, attachment_id: Code, caller: Caller, svc: Service, views: Views, files: Files
) -> StreamingResponse:
    row = await _row_visible(svc, caller, await views.get(piece_id), piece_id)
    info = next(
        (a for a in row.get("attachments", []) if a["attachment_id"] == attachment_id), None
    )
    opened = await files.open(attachment_id) if info else None
    if info is None or opened is None:
        raise NotFound(f"Không tìm thấy tệp {attachment_id}", field="attachment_id")
    length, chunks = opened
    return StreamingResponse(
        chunks,
        media_type=info["media_type"],
        headers={
            "Content-Length": str(length),
            "Content-Disposition": f"attachment; filename*=UTF-8''{quote(info['file_name'])}",
            "X-Content-Type-Options": "nosniff",
        },
    )


async def _feed_targets(svc: ContentService, caller: Principal) -> list[str]:
    return await svc.tree.above(grant_units(caller))


async def _mark_read(
    views: ContentViews, caller: Principal, out: list[PieceView]
) -> list[PieceView]:
    if caller.member_id and out:
        read = await views.read_ids(caller.member_id, [v.piece_id for v in out])
        for view in out:
            view.read = view.piece_id in read
    return out


@router.get("/feed", response_model=list[PieceView], tags=["reading"])
async def feed(
    caller: Caller,
    svc: Service,
    views: Views,
    kind: Annotated[list[PieceKind], Query(max_length=10)] = [],  # noqa: B006
    before: EventDatetime | None = None,
    limit: Limit = 20,
) -> list[PieceView]:
    """Published pieces for the caller's units and every unit above, newest first."""
    rows = await views.feed(
        await _feed_targets(svc, caller), [k.value for k in kind], before, limit
    )
    return await _mark_read(views, caller, [view_of_row(r, body=False) for r in rows])


@router.get("/search", response_model=list[PieceView], tags=["reading"])
async def search(
    caller: Caller,
    svc: Service,
    views: Views,
    q: Annotated[str, Query(min_length=1, max_length=200)],
    kind: Annotated[list[PieceKind], Query(max_length=10)] = [],  # noqa: B006
    issuing_body: Annotated[str | None, Query(max_length=200)] = None,
    date_from: EventDate | None = None,
    date_to: EventDate | None = None,
    unit_id: Code | None = None,
    limit: Limit = 20,
) -> list[PieceView]:
    """Accent- and case-insensitive: "nghi quyet 57" finds "Nghị quyết số 57-NQ/TW"."""
    if date_from and date_to and date_from > date_to:
        raise Invalid("Ngày bắt đầu phải trước ngày kết thúc", field="date_from")
    filters = SearchFilters(
        kinds=[k.value for k in kind],
        issuing_body=issuing_body,
        date_from=date_from,
        date_to=date_to,
        unit_id=unit_id,
    )
    found = await views.search(q, await _feed_targets(svc, caller), filters, limit)
    out = []
    for row, score in found:
        view = view_of_row(row, body=False)
        view.score = round(score, 3)
        out.append(view)
    return await _mark_read(views, caller, out)


# The member's library.


class LibraryEntry(BaseModel):
    saved_at: datetime
    saved_on_label: str
    piece: PieceView


@router.get("/library", response_model=list[LibraryEntry], tags=["library"])
async def library(caller: Caller, svc: Service, views: Views) -> list[LibraryEntry]:
    member_id = svc.member_of(caller)
    return [
        LibraryEntry(
            saved_at=entry["saved_at"],
            saved_on_label=date_vn(entry["saved_at"]) or "",
            piece=view_of_row(row, body=False),
        )
        for entry, row in await views.saved(member_id)
    ]


@router.put("/library/{piece_id}", tags=["library"])
async def save_piece(piece_id: Code, caller: Caller, svc: Service) -> dict[str, Any]:
    return {"piece_id": piece_id, "saved": True, "changed": await svc.save(caller, piece_id)}


@router.delete("/library/{piece_id}", tags=["library"])
async def unsave_piece(piece_id: Code, caller: Caller, svc: Service) -> dict[str, Any]:
    return {"piece_id": piece_id, "saved": False, "changed": await svc.unsave(caller, piece_id)}
