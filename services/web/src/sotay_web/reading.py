"""Documents and news (content, 8004) and feedback (feedback, 8006), for members.

Both are optional upstreams: while one is off or unreachable its pages say so ("Chưa có")
instead of failing, and the rest of the app works.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from markupsafe import Markup
from starlette.datastructures import FormData

from sotay_web.core import (
    api,
    checked_form,
    done,
    own_writes,
    refused_page,
    remember_own_writes,
    render,
    text,
    web,
)
from sotay_web.upstream import Refused, Unavailable
from sotay_web.views import vn_date

router = APIRouter()
Form = Annotated[FormData, Depends(checked_form)]

KINDS = {
    "news": "Tin tức",
    "event": "Sự kiện",
    "resolution": "Nghị quyết",
    "directive": "Chỉ thị",
    "regulation": "Quy định",
    "conclusion": "Kết luận",
    "guidance": "Hướng dẫn",
    "professional_guidance": "Hướng dẫn nghiệp vụ",
    "meeting_topic": "Chuyên đề sinh hoạt",
    "bulletin": "Bản tin sinh hoạt chi bộ",
}
FEEDBACK_KINDS = {
    "comment": "Góp ý",
    "report": "Phản ánh",
    "proposal": "Đề xuất",
    "petition": "Kiến nghị",
    "question": "Hỏi đáp",
}
SUBJECTS = {
    "branch_work": "Công tác của chi bộ",
    "organisation": "Tổ chức, đảng viên",
    "propaganda": "Tư tưởng, tuyên truyền",
    "inspection": "Kiểm tra, kỷ luật",
    "app": "Sử dụng ứng dụng",
    "other": "Nội dung khác",
}


def q(value: str) -> str:
    return quote(value, safe="")


def missing(request: Request, service: str, title: str) -> Response | None:
    if web(request).upstreams.has(service):
        return None
    return render(request, "missing.html", 200, title=title)


# Documents ----------------------------------------------------------------------------


@router.get("/van-ban")
async def documents(request: Request, kind: str = "") -> Response:
    if (off := missing(request, "content", "Văn bản, tin tức")) is not None:
        return off
    query = request.query_params.get("q", "").strip()
    params: dict[str, Any] = {"limit": 30}
    if kind in KINDS:
        params["kind"] = kind
    try:
        if query:
            items = await api(request, "content", "GET", "/search", params=params | {"q": query})
        else:
            items = await api(request, "content", "GET", "/feed", params=params)
    except Unavailable:
        return render(request, "missing.html", 503, title="Văn bản, tin tức")
    return render(request, "documents.html", items=items, kind=kind, query=query, kinds=KINDS)


@router.get("/van-ban/luu")
async def library(request: Request) -> Response:
    if (off := missing(request, "content", "Văn bản đã lưu")) is not None:
        return off
    entries = await api(request, "content", "GET", "/library")
    recent = await own_writes(request, "library")
    entries = [e for e in entries if recent.get(e["piece"]["piece_id"], True)]
    listed = {e["piece"]["piece_id"] for e in entries}
    for piece_id in [p for p, kept in recent.items() if kept and p not in listed]:
        try:
            found = await api(request, "content", "GET", f"/pieces/{q(piece_id)}")
        except Refused:
            continue  # withdrawn since
        entries.insert(0, {"piece": found, "saved_on_label": vn_date(datetime.now(UTC))})
    return render(request, "library.html", entries=entries)


@router.get("/van-ban/{piece_id}")
async def piece(request: Request, piece_id: str) -> Response:
    if (off := missing(request, "content", "Văn bản")) is not None:
        return off
    # Opening a piece is how content learns that the member read it (idempotent).
    found = await api(request, "content", "POST", f"/pieces/{q(piece_id)}/read")
    saved = {e["piece"]["piece_id"] for e in await api(request, "content", "GET", "/library")}
    recent = await own_writes(request, "library")
    # The body was sanitised by content (nh3) before it was stored; CSP forbids scripts anyway.
    body = Markup(found.get("body") or "")
    return render(
        request,
        "piece.html",
        piece=found,
        body=body,
        saved=recent.get(piece_id, piece_id in saved),
    )


@router.post("/van-ban/{piece_id}/luu")
async def save(request: Request, piece_id: str, form: Form) -> Response:
    forget = text(form, "forget") == "1"
    await api(request, "content", "DELETE" if forget else "PUT", f"/library/{q(piece_id)}")
    await remember_own_writes(request, "library", {piece_id: not forget})
    message = "Đã bỏ khỏi văn bản đã lưu." if forget else "Đã lưu văn bản để đọc cả khi mất mạng."
    return await done(request, f"/van-ban/{piece_id}", message)


async def titles(request: Request, piece_ids: list[str]) -> dict[str, str]:
    """Each document's title, for a meeting's list of documents; an id stays an id while
    content is off or the piece is not readable by this person."""
    if not piece_ids or not web(request).upstreams.has("content"):
        return {}

    async def one(piece_id: str) -> tuple[str, str]:
        try:
            found = await api(request, "content", "GET", f"/pieces/{q(piece_id)}")
        except (Refused, Unavailable):
            return piece_id, piece_id
        return piece_id, str(found.get("title") or piece_id)

    return dict(await asyncio.gather(*(one(p) for p in piece_ids[:30])))


# Feedback -----------------------------------------------------------------------------


@router.get("/gop-y")
async def feedback(request: Request) -> Response:
    if (off := missing(request, "feedback", "Góp ý, hỏi đáp")) is not None:
        return off
    mine = await api(request, "feedback", "GET", "/feedback/mine")
    return render(
        request,
        "feedback.html",
        items=mine["items"],
        kinds=FEEDBACK_KINDS,
        subjects=SUBJECTS,
        values={
            "kind": "comment",
            "subject": "branch_work",
            "addressed_to": "branch",
            "feedback_id": uuid.uuid4().hex,
        },
    )


@router.post("/gop-y")
async def send_feedback(request: Request, form: Form) -> Response:
    values = {
        k: text(form, k)
        for k in ("kind", "subject", "addressed_to", "title", "text", "feedback_id")
    }
    body: dict[str, Any] = {k: v for k, v in values.items() if v}
    body["public_allowed"] = text(form, "public_allowed") == "1"
    try:
        sent = await api(request, "feedback", "POST", "/feedback", json=body)
    except Refused as exc:
        mine = await api(request, "feedback", "GET", "/feedback/mine")
        return refused_page(
            request,
            "feedback.html",
            exc,
            values,
            items=mine["items"],
            kinds=FEEDBACK_KINDS,
            subjects=SUBJECTS,
        )
    return await done(
        request, f"/gop-y/{sent['feedback_id']}", "Đã gửi. Đồng chí theo dõi trả lời tại đây."
    )


@router.get("/gop-y/hoi-dap")
async def public_qa(request: Request) -> Response:
    if (off := missing(request, "feedback", "Hỏi đáp")) is not None:
        return off
    query = request.query_params.get("q", "").strip()
    found = await api(request, "feedback", "GET", "/qa", params={"q": query, "limit": 30})
    return render(request, "qa.html", items=found["items"], query=query)


@router.get("/gop-y/{feedback_id}")
async def feedback_item(request: Request, feedback_id: str) -> Response:
    if (off := missing(request, "feedback", "Góp ý")) is not None:
        return off
    item = await api(request, "feedback", "GET", f"/feedback/{q(feedback_id)}")
    return render(request, "feedback_item.html", item=item)
