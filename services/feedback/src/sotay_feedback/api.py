"""HTTP routes: parse, authorize (in the handlers), call a handler, shape the answer.

Times go out as ISO 8601 in UTC and, for people, as dd/mm/yyyy in Asia/Ho_Chi_Minh.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, File, Query, Request, Response, UploadFile
from gridfs import AsyncGridFSBucket
from gridfs.errors import FileExists, NoFile
from pydantic import BaseModel, Field

from sotay_events.catalogue.feedback import FeedbackBody, FeedbackKind, FeedbackSubject
from sotay_feedback.calendar import date_vn, datetime_vn
from sotay_feedback.domain import (
    BODY_LABELS,
    KIND_LABELS,
    STATE_LABELS,
    SUBJECT_LABELS,
    Rules,
    Unit,
)
from sotay_feedback.handlers import FeedbackService, Loaded
from sotay_feedback.projections import Views
from sotay_platform.attachments import (
    DEFAULT_LIMITS,
    MIME_TYPES,
    AttachmentKind,
    inspect_attachment,
)
from sotay_platform.auth import Principal, current_principal
from sotay_platform.errors import Invalid, NotFound, PayloadTooLarge
from sotay_platform.inputs import Code, Limit, Text
from sotay_platform.ratelimit import rate_limit

router = APIRouter(tags=["feedback"])

Caller = Annotated[Principal, Depends(current_principal)]


def service(request: Request) -> FeedbackService:
    return request.app.state.service


def views(request: Request) -> Views:
    return request.app.state.views


def files(request: Request) -> AsyncGridFSBucket:
    return request.app.state.files


Service = Annotated[FeedbackService, Depends(service)]
ViewsDep = Annotated[Views, Depends(views)]
Files = Annotated[AsyncGridFSBucket, Depends(files)]

# A deadline is midnight after its last day: people read the day before it.
_ONE_SECOND = timedelta(seconds=1)

Body = Annotated[str, Text(10_000, multiline=True)]
Reason = Annotated[str, Text(1000)]


# Requests.


class RoutingTableIn(BaseModel):
    routes: dict[FeedbackSubject, FeedbackBody] = Field(
        default_factory=dict, examples=[{"organisation": "organisation_department"}]
    )
    deadline_days: dict[FeedbackKind, int] = Field(
        default_factory=dict, description="working days, per kind", examples=[{"question": 5}]
    )
    reminder_days: int = Field(2, ge=0, le=30)


class SubmitIn(BaseModel):
    kind: FeedbackKind
    subject: FeedbackSubject
    addressed_to: Literal["branch", "committee"] = Field(
        "committee", description="the member's branch, or the committee that manages it"
    )
    title: Annotated[str, Text(200)]
    text: Body
    public_allowed: bool = Field(
        True, description="the answer may be published in the Q&A, the asker anonymised"
    )
    feedback_id: Code | None = Field(
        None, description="optional: a retried request with the same id submits once"
    )


class InformationIn(BaseModel):
    text: Body


class ReasonIn(BaseModel):
    reason: Reason


class AssignIn(BaseModel):
    assignee: Code


class ForwardIn(BaseModel):
    to_body: FeedbackBody | None = None
    up: bool = Field(False, description="to the superior committee")
    reason: Reason


class AnswerIn(BaseModel):
    text: Body
    visibility: Literal["private", "public"] = "private"
    question: Annotated[str, Text(2000, multiline=True)] | None = Field(
        None,
        description="public answers: the question as published, anonymised (default: the title)",
    )


# Answers.


def _when(moment: datetime | None) -> dict[str, Any]:
    return {"at": moment, "display": datetime_vn(moment) if moment else None}


def rules_view(unit: Unit, rules: Rules, own: bool) -> dict[str, Any]:
    return {
        "unit_id": unit.id,
        "own_table": own,
        "routes": {
            s.value: {"body": b.value, "body_label": BODY_LABELS[b]}
            for s, b in rules.routes.items()
        },
        "deadline_days": {k.value: d for k, d in rules.deadline_days.items()},
        "reminder_days": rules.reminder_days,
    }


def feedback_view(loaded: Loaded, now: datetime, *, detail: bool = True) -> dict[str, Any]:
    feedback, vault = loaded.feedback, loaded.vault
    hop = feedback.hop
    view: dict[str, Any] = {
        "feedback_id": feedback.id,
        "kind": feedback.kind.value,
        "kind_label": KIND_LABELS[feedback.kind],
        "subject": feedback.subject.value,
        "subject_label": SUBJECT_LABELS[feedback.subject],
        "addressed_to": feedback.addressed_to,
        "branch_id": feedback.branch_id,
        "state": feedback.state,
        "state_label": STATE_LABELS[feedback.state],
        "submitted_at": feedback.submitted_at,
        "submitted_at_display": date_vn(feedback.submitted_at),
        "public_allowed": feedback.public_allowed,
        "holder": (
            {
                "unit_id": loaded.holder.unit_id if loaded.holder else hop.unit_id,
                "body": hop.body.value,
                "body_label": BODY_LABELS[hop.body],
                "hop": hop.number,
                "received_at": hop.received_at,
                "deadline": hop.deadline,
                "deadline_display": date_vn(hop.deadline - _ONE_SECOND),
                "overdue": feedback.overdue(now),
            }
            if hop
            else None
        ),
        "assignee": feedback.assignee,
        "reopened": feedback.reopens,
        "escalations": feedback.escalations,
        "title": vault["title"],
    }
    if detail:
        view |= {
            "member_id": vault["member_id"],
            "text": vault["text"],
            "additions": [
                {"text": a["text"], **_when(a["at"]), "not_resolved": a.get("not_resolved", False)}
                for a in vault["additions"]
            ],
            "answers": [
                {"text": a["text"], "visibility": a["visibility"], **_when(a["at"])}
                for a in vault["answers"]
            ],
            "attachments": [
                {k: a[k] for k in ("file_id", "name", "kind", "size")} for a in vault["attachments"]
            ],
        }
    return view


def queue_item(row: dict[str, Any], now: datetime) -> dict[str, Any]:
    deadline = row.get("deadline")
    return {
        "feedback_id": row["_id"],
        "kind": row.get("kind"),
        "kind_label": KIND_LABELS.get(FeedbackKind(row["kind"])) if row.get("kind") else None,
        "subject": row.get("subject"),
        "branch_id": row.get("branch_id"),
        "state": row.get("state"),
        "state_label": STATE_LABELS.get(row.get("state", "")),
        "hop": row.get("hop"),
        "assignee": row.get("assignee"),
        "received_at": row.get("received_at"),
        "deadline": deadline,
        "deadline_display": date_vn(deadline - _ONE_SECOND) if deadline else None,
        "overdue": bool(
            deadline and deadline <= now and row.get("state") in ("received", "assigned")
        ),
        "escalated": row.get("escalated_overdue", 0) + row.get("escalated_not_resolved", 0),
    }


def qa_item(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "feedback_id": row["_id"],
        "unit_id": row["unit_id"],
        "body": row["body"],
        "body_label": BODY_LABELS[FeedbackBody(row["body"])],
        "kind": row["kind"],
        "subject": row["subject"],
        "subject_label": SUBJECT_LABELS[FeedbackSubject(row["subject"])],
        "asked_by": "Một đảng viên",
        "question": row["question"],
        "answer": row["answer"],
        "published_at": row["published_at"],
        "published_at_display": date_vn(row["published_at"]),
    }


async def _limit(request: Request, caller: Principal) -> None:
    """A member's sending per hour is bounded: one account cannot flood a committee."""
    limit = request.app.state.submit_limit
    await rate_limit(request, "feedback-send", caller.member_id or caller.subject, limit, 3600)


# Routing tables.


@router.put("/routing-tables/{unit_id}")
async def set_routing_table(
    unit_id: str, body: RoutingTableIn, caller: Caller, svc: Service
) -> dict[str, Any]:
    await svc.set_routing_table(
        caller,
        unit_id,
        routes=body.routes,
        deadline_days=body.deadline_days,
        reminder_days=body.reminder_days,
    )
    unit, rules, own = await svc.routing_table(caller, unit_id)
    return rules_view(unit, rules, own)


@router.get("/routing-tables/{unit_id}")
async def get_routing_table(unit_id: str, caller: Caller, svc: Service) -> dict[str, Any]:
    unit, rules, own = await svc.routing_table(caller, unit_id)
    return rules_view(unit, rules, own)


# The member's side.


@router.post("/feedback", status_code=201)
async def submit(
    body: SubmitIn, caller: Caller, svc: Service, request: Request, response: Response
) -> dict[str, Any]:
    await _limit(request, caller)
    feedback, created = await svc.submit(
        caller,
        kind=body.kind,
        subject=body.subject,
        addressed_to=body.addressed_to,
        title=body.title,
        text=body.text,
        public_allowed=body.public_allowed,
        feedback_id=body.feedback_id,
    )
    if not created:
        response.status_code = 200
    return feedback_view(await svc.view(caller, feedback.id), svc.clock())


@router.get("/feedback/mine")
async def mine(
    caller: Caller,
    reads: ViewsDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> dict[str, Any]:
    if not caller.member_id:
        raise Invalid("Tài khoản không gắn với một đảng viên", field="member_id")
    rows = await reads.submissions_of(caller.member_id, limit)
    return {
        "items": [
            {
                "feedback_id": r["_id"],
                "kind": r["kind"],
                "kind_label": KIND_LABELS[FeedbackKind(r["kind"])],
                "title": r["title"],
                "state": r.get("state"),
                "state_label": STATE_LABELS.get(r.get("state") or ""),
                "submitted_at": r["submitted_at"],
                "submitted_at_display": date_vn(r["submitted_at"]),
                "answers": len(r.get("answers", [])),
            }
            for r in rows
        ]
    }


@router.get("/feedback/{feedback_id}")
async def get_feedback(feedback_id: str, caller: Caller, svc: Service) -> dict[str, Any]:
    return feedback_view(await svc.view(caller, feedback_id), svc.clock())


@router.post("/feedback/{feedback_id}/information")
async def add_information(
    feedback_id: str, body: InformationIn, caller: Caller, svc: Service
) -> dict[str, Any]:
    loaded = await svc.add_information(caller, feedback_id, text=body.text)
    return feedback_view(loaded, svc.clock())


@router.post("/feedback/{feedback_id}/attachments", status_code=201)
async def attach(
    feedback_id: str,
    file: Annotated[UploadFile, File(description="PDF, DOCX, PNG hoặc JPEG")],
    caller: Caller,
    svc: Service,
    bucket: Files,
    request: Request,
) -> dict[str, Any]:
    await _limit(request, caller)
    loaded = await svc.view(caller, feedback_id)
    if caller.member_id != loaded.vault["member_id"]:
        raise Invalid("Chỉ đảng viên gửi góp ý mới đính kèm được tệp", field="file")
    data = await file.read(DEFAULT_LIMITS.largest + 1)
    if len(data) > DEFAULT_LIMITS.largest:
        raise PayloadTooLarge(
            f"Tệp đính kèm vượt quá {DEFAULT_LIMITS.largest >> 20} MB",
            field="file",
            status_code=413,
        )
    inspected = inspect_attachment(data, field_name="file")  # refused before a byte is stored
    name = (file.filename or f"tep.{inspected.kind.value}")[-200:]
    file_id = f"{feedback_id}-{inspected.sha256[:32]}"
    try:
        await bucket.upload_from_stream_with_id(
            file_id,
            name,
            data,
            metadata={"feedback_id": feedback_id, "kind": inspected.kind.value},
        )
    except FileExists:
        pass  # the same file again: stored once
    loaded = await svc.add_information(
        caller,
        feedback_id,
        attachments=[
            {
                "file_id": file_id,
                "name": name,
                "kind": inspected.kind.value,
                "size": inspected.size,
                "sha256": inspected.sha256,
            }
        ],
    )
    return feedback_view(loaded, svc.clock())


@router.get("/feedback/{feedback_id}/attachments/{file_id}")
async def download(
    feedback_id: str, file_id: str, caller: Caller, svc: Service, bucket: Files
) -> Response:
    loaded = await svc.view(caller, feedback_id)
    known = {a["file_id"]: a for a in loaded.vault["attachments"]}
    if file_id not in known:
        raise NotFound("Không tìm thấy tệp đính kèm", field="file_id")
    try:
        stream = await bucket.open_download_stream(file_id)
    except NoFile:
        raise NotFound("Không tìm thấy tệp đính kèm", field="file_id") from None
    data = await stream.read()
    digest = hashlib.sha256(data).hexdigest()
    if digest != known[file_id]["sha256"]:
        raise NotFound("Tệp đính kèm bị hỏng", field="file_id")
    return Response(
        data,
        media_type=MIME_TYPES[AttachmentKind(known[file_id]["kind"])],
        headers={"Content-Disposition": "attachment", "Cache-Control": "private, no-store"},
    )


@router.post("/feedback/{feedback_id}/withdraw")
async def withdraw(feedback_id: str, caller: Caller, svc: Service) -> dict[str, Any]:
    return feedback_view(await svc.withdraw(caller, feedback_id), svc.clock())


@router.post("/feedback/{feedback_id}/accept")
async def accept(feedback_id: str, caller: Caller, svc: Service) -> dict[str, Any]:
    return feedback_view(await svc.accept(caller, feedback_id), svc.clock())


@router.post("/feedback/{feedback_id}/not-resolved")
async def not_resolved(
    feedback_id: str, body: ReasonIn, caller: Caller, svc: Service
) -> dict[str, Any]:
    loaded = await svc.not_resolved(caller, feedback_id, body.reason)
    return feedback_view(loaded, svc.clock())


# The answering body's side.


@router.post("/feedback/{feedback_id}/assign")
async def assign(feedback_id: str, body: AssignIn, caller: Caller, svc: Service) -> dict[str, Any]:
    return feedback_view(await svc.assign(caller, feedback_id, body.assignee), svc.clock())


@router.post("/feedback/{feedback_id}/forward")
async def forward(
    feedback_id: str, body: ForwardIn, caller: Caller, svc: Service
) -> dict[str, Any]:
    loaded = await svc.forward(
        caller, feedback_id, to_body=body.to_body, up=body.up, reason=body.reason
    )
    return feedback_view(loaded, svc.clock())


@router.post("/feedback/{feedback_id}/answer")
async def answer(feedback_id: str, body: AnswerIn, caller: Caller, svc: Service) -> dict[str, Any]:
    loaded = await svc.answer(
        caller,
        feedback_id,
        text=body.text,
        visibility=body.visibility,
        question=body.question,
    )
    return feedback_view(loaded, svc.clock())


@router.post("/feedback/{feedback_id}/close")
async def close(feedback_id: str, caller: Caller, svc: Service) -> dict[str, Any]:
    return feedback_view(await svc.close(caller, feedback_id), svc.clock())


@router.get("/queues/{unit_id}/{body}")
async def queue(
    unit_id: str,
    body: FeedbackBody,
    caller: Caller,
    svc: Service,
    reads: ViewsDep,
    state: Annotated[
        Literal["open", "received", "assigned", "answered", "closed", "withdrawn"], Query()
    ] = "open",
    limit: Limit = 100,
) -> dict[str, Any]:
    """What awaits the body, by deadline (overdue first), and its counts per state."""
    unit = await svc.require_body(caller, unit_id, body)
    states = ("received", "assigned") if state == "open" else (state,)
    now = svc.clock()
    rows = await reads.awaiting(unit.absorbed or (unit.id,), body, states, limit)
    counts = await reads.counts(unit.absorbed or (unit.id,), body)
    return {
        "unit_id": unit.id,
        "body": body.value,
        "body_label": BODY_LABELS[body],
        "counts": counts,
        "overdue": await reads.overdue_count(unit.absorbed or (unit.id,), body, now),
        "items": [queue_item(r, now) for r in rows],
    }


@router.get("/qa")
async def qa(
    caller: Caller,
    svc: Service,
    reads: ViewsDep,
    q: Annotated[str, Query(max_length=200)] = "",
    unit_id: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> dict[str, Any]:
    """The Q&A the caller may read: the committees and branch on the caller's own path."""
    visible = await svc.visible_qa_units(caller)
    if unit_id is not None:
        unit = await svc.unit(unit_id)
        if unit.id not in visible:
            raise NotFound(f"Không có mục hỏi đáp của đơn vị {unit_id}", field="unit_id")
        visible = list(unit.absorbed or (unit.id,))
    rows = await reads.search_qa(visible, q, limit)
    return {"query": q, "items": [qa_item(r) for r in rows]}
