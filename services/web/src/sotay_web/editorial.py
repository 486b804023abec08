"""The editorial queue (content): an editor drafts a piece (a party document with its
number and symbol, issuing body, dates and classification, or news...) and submits it; a
reviewer of the board works the queue, oldest submission first: returns it, publishes it
now or at a set time, corrects it (a new revision) or withdraws it with a reason.

Only what content would accept is offered: the editor's actions on drafts of units their
editor grant covers, the reviewer's on pieces their reviewer grant covers, and never the
approval of a piece the viewer wrote. Content checks all of it again.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from markupsafe import Markup, escape
from starlette.datastructures import FormData

from sotay_web.core import (
    Denied,
    api,
    checked_form,
    done,
    officer_names,
    own_writes,
    remember_own_writes,
    render,
    signed_session,
    text,
    unit_names,
)
from sotay_web.sessions import Session
from sotay_web.upstream import Refused

router = APIRouter()
Form = Annotated[FormData, Depends(checked_form)]
VN = ZoneInfo("Asia/Ho_Chi_Minh")

EDITOR, REVIEWER = "editor", "editorial_reviewer"
KINDS = {
    "news": "Tin tức",
    "event": "Sự kiện",
    "resolution": "Nghị quyết",
    "directive": "Chỉ thị",
    "regulation": "Quy định",
    "conclusion": "Kết luận",
    "guidance": "Hướng dẫn",
    "professional_guidance": "Hướng dẫn nghiệp vụ, mô hình mới",
    "meeting_topic": "Chuyên đề sinh hoạt chi bộ",
    "bulletin": "Bản tin sinh hoạt chi bộ",
}
PARTY_DOCUMENTS = frozenset({"resolution", "directive", "regulation", "conclusion", "guidance"})
CLASSIFICATIONS = {"public": "Phổ biến rộng rãi", "internal": "Lưu hành nội bộ"}
CONTENT_FIELDS = ("title", "summary", "body")
DOCUMENT_FIELDS = ("number_symbol", "issuing_body", "issued_on", "effective_on", "classification")


def q(value: str) -> str:
    return quote(value, safe="")


def board_units(session: Session) -> tuple[list[str], list[str]]:
    return session.roles(EDITOR), session.roles(REVIEWER)


def covers(units: list[str], path: list[str]) -> bool:
    return bool(set(units) & set(path))


def actions_for(piece: dict[str, Any], path: list[str], session: Session) -> set[str]:
    """What content would let this viewer do to the piece, by its state and their grants."""
    editors, reviewers = board_units(session)
    status = piece.get("status")
    mine = piece.get("author_id") == session.member_id
    found: set[str] = set()
    if covers(editors, path) and status == "draft":
        found |= {"edit", "submit"}
    if covers(reviewers, path):
        if status == "submitted":
            found.add("return")
            if not mine:
                found.add("approve")
        if status == "published":
            found |= {"revise", "withdraw"}
        if status == "scheduled":
            found.add("withdraw")
    return found


def paragraphs(value: str) -> str:
    """A plain text body (no markup typed) as paragraphs; markup is left to content's nh3."""
    if "<" in value:
        return value
    blocks = [b.strip() for b in re.split(r"\n\s*\n", value) if b.strip()]
    return "".join(f"<p>{escape(b)}</p>".replace("\n", "<br>") for b in blocks)


def plain(body: str) -> str:
    """The stored HTML back as the plain text the form was typed in, when it was plain."""
    if re.fullmatch(r"(<p>.*?</p>)*", body, flags=re.S) and "<" not in re.sub(
        r"</?p>|<br>", "", body
    ):
        parts = re.findall(r"<p>(.*?)</p>", body, flags=re.S)
        return "\n\n".join(p.replace("<br>", "\n") for p in parts)
    return body


def content_body(form: FormData, kind: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "title": text(form, "title"),
        "summary": text(form, "summary"),
        "body": paragraphs(text(form, "body")),
    }
    if kind in PARTY_DOCUMENTS:
        document = {k: text(form, k) for k in DOCUMENT_FIELDS}
        document["effective_on"] = document["effective_on"] or None
        body["document"] = document
    return body


def form_errors(exc: Refused) -> dict[str, str]:
    """content names nested fields `document.number_symbol`: the form's field is the last part."""
    return {name.rsplit(".", 1)[-1]: message for name, message in exc.field_errors().items()}


async def _board(request: Request) -> Session:
    session = await signed_session(request)
    if not any(board_units(session)):
        raise Denied("Trang này dành cho Ban Biên tập.")
    return session


@router.get("/bien-tap")
async def desk(request: Request) -> Response:
    session = await _board(request)
    editors, reviewers = board_units(session)
    queue, drafts = await asyncio.gather(
        api(request, "content", "GET", "/queue") if reviewers else _nothing(),
        asyncio.gather(
            *(api(request, "content", "GET", "/pieces", params={"unit_id": u}) for u in editors)
        ),
    )
    mine = list({p["piece_id"]: p for found in drafts for p in found}.values())
    authors, units = await asyncio.gather(
        officer_names(
            request, (p.get("author_id") for p in queue if p.get("author_id") != session.member_id)
        ),
        unit_names(request, sorted({p["unit_id"] for p in queue})),
    )
    return render(
        request,
        "editorial_desk.html",
        queue=queue,
        pieces=mine,
        editors=editors,
        reviewers=reviewers,
        me=session.member_id,
        authors=authors,
        units=units,
    )


async def _nothing() -> list[Any]:
    return []


def _new_values() -> dict[str, str]:
    return {"kind": "news", "classification": "public", "piece_id": uuid.uuid4().hex}


@router.get("/bien-tap/moi")
async def new_piece(request: Request) -> Response:
    session = await _board(request)
    editors, _ = board_units(session)
    if not editors:
        raise Denied("Chỉ biên tập viên soạn bài mới.")
    return render(
        request,
        "editorial_edit.html",
        mode="new",
        values=_new_values() | {"unit_id": editors[0]},
        units=await unit_names(request, editors),
        kinds=KINDS,
        classifications=CLASSIFICATIONS,
        party=PARTY_DOCUMENTS,
    )


@router.post("/bien-tap/moi")
async def create_piece(request: Request, form: Form) -> Response:
    session = await _board(request)
    editors, _ = board_units(session)
    kind = text(form, "kind")
    body = content_body(form, kind) | {
        "kind": kind,
        "unit_id": text(form, "unit_id"),
        "piece_id": text(form, "piece_id") or None,
    }
    try:
        piece = await api(request, "content", "POST", "/pieces", json=body)
        await remember_own_writes(request, f"piece:{piece['piece_id']}", piece)
    except Refused as exc:
        return render(
            request,
            "editorial_edit.html",
            exc.status,
            mode="new",
            values={k: v for k, v in form.items() if isinstance(v, str)},
            errors=form_errors(exc),
            error=None if exc.field_errors() else exc.message,
            units=await unit_names(request, editors),
            kinds=KINDS,
            classifications=CLASSIFICATIONS,
            party=PARTY_DOCUMENTS,
        )
    return await done(
        request, f"/bien-tap/bai/{q(piece['piece_id'])}", "Đã lưu bản nháp. Gửi duyệt khi xong."
    )


async def _current(request: Request, piece_id: str) -> dict[str, Any]:
    # The piece as the last command left it (content answers from the aggregate), shown
    # until content's read model has caught up: the board does not see its last step undone.
    noted = await own_writes(request, f"piece:{piece_id}") or None
    try:
        found: dict[str, Any] = await api(request, "content", "GET", f"/pieces/{q(piece_id)}")
    except Refused as exc:
        if noted is None or exc.status != 404:
            raise
        return noted
    if noted and (noted["status"], noted["revision"]) != (found["status"], found["revision"]):
        return noted
    return found


async def _piece_page(
    request: Request, piece_id: str, status_code: int = 200, **context: Any
) -> Response:
    session = await _board(request)
    piece = await _current(request, piece_id)
    unit = await api(request, "orgtree", "GET", f"/units/{q(piece['unit_id'])}")
    allowed = actions_for(piece, unit.get("path") or [piece["unit_id"]], session)
    document = piece.get("document") or {}
    current = {
        "title": piece.get("title", ""),
        "summary": piece.get("summary", ""),
        "body": plain(piece.get("body") or ""),
        **{k: str(document.get(k) or "") for k in DOCUMENT_FIELDS},
    }
    return render(
        request,
        "editorial_piece.html",
        status_code,
        piece=piece,
        unit=unit,
        body=Markup(piece.get("body") or ""),  # sanitised by content (nh3) when written
        allowed=allowed,
        own=piece.get("author_id") == session.member_id,
        current=context.pop("current", None) or current,
        kinds=KINDS,
        classifications=CLASSIFICATIONS,
        party=PARTY_DOCUMENTS,
        now=datetime.now(VN).strftime("%Y-%m-%dT%H:%M"),
        **context,
    )


@router.get("/bien-tap/bai/{piece_id}")
async def piece_view(request: Request, piece_id: str) -> Response:
    return await _piece_page(request, piece_id)


def _publish_at(value: str) -> str | None:
    """A `datetime-local` value is Hà Nội time: sent with its offset."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return value  # content answers with its own message, next to the field
    return (moment if moment.tzinfo else moment.replace(tzinfo=VN)).isoformat()


@router.post("/bien-tap/bai/{piece_id}")
async def piece_action(request: Request, piece_id: str, form: Form) -> Response:
    await _board(request)
    action = text(form, "action")
    path = f"/pieces/{q(piece_id)}"
    back = f"/bien-tap/bai/{q(piece_id)}"
    try:
        if action == "edit":
            body = content_body(form, text(form, "kind"))
            piece = await api(request, "content", "PUT", path, json=body)
            message = "Đã lưu bản nháp."
        elif action == "submit":
            piece = await api(request, "content", "POST", f"{path}/submit")
            message = "Đã gửi bài để Ban Biên tập duyệt."
        elif action == "return":
            note = {"note": text(form, "note")}
            piece = await api(request, "content", "POST", f"{path}/return", json=note)
            message = "Đã trả bài về cho người soạn."
        elif action == "approve":
            when = _publish_at(text(form, "publish_at")) if text(form, "when") == "later" else None
            piece = await api(
                request, "content", "POST", f"{path}/approve", json={"publish_at": when}
            )
            message = (
                f"Đã duyệt, bài sẽ đăng lúc {piece.get('publish_at_label')}."
                if when
                else "Đã duyệt và đăng bài."
            )
        elif action == "revise":
            body = content_body(form, text(form, "kind")) | {"reason": text(form, "reason")}
            piece = await api(request, "content", "POST", f"{path}/revise", json=body)
            message = "Đã đăng bản đính chính (phiên bản mới)."
        elif action == "withdraw":
            reason = {"reason": text(form, "reason")}
            piece = await api(request, "content", "POST", f"{path}/withdraw", json=reason)
            message = "Đã thu hồi bài."
        else:
            raise Denied("Thao tác không hợp lệ.")
        await remember_own_writes(request, f"piece:{piece['piece_id']}", piece)
    except Refused as exc:
        errors = form_errors(exc)
        values = {k: v for k, v in form.items() if isinstance(v, str) and k != "csrf"}
        return await _piece_page(
            request,
            piece_id,
            exc.status,
            failed=action,
            errors=errors,
            form_error=None if errors else exc.message,
            values=values,
            current=values if action in ("edit", "revise") else None,
        )
    return await done(request, back, message)
