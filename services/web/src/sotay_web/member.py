"""A member's screens: home, profile and records, meetings (inbox, leave, check-in, attendance)."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from starlette.datastructures import FormData

from sotay_web import views
from sotay_web.core import (
    api,
    checked_form,
    done,
    own_writes,
    refused_page,
    remember_own_writes,
    render,
    session_of,
    signed_session,
    text,
)
from sotay_web.upstream import Refused, Unavailable

router = APIRouter()
log = logging.getLogger(__name__)
Form = Annotated[FormData, Depends(checked_form)]


async def optional(request: Request, service: str, path: str, **kw: Any) -> Any:
    """A part of a page that may be missing: None while its service is off or unreachable."""
    from sotay_web.core import web

    if not web(request).upstreams.has(service):
        return None
    try:
        return await api(request, service, "GET", path, **kw)
    except (Unavailable, Refused):
        return None


@router.get("/")
async def home(request: Request) -> Response:
    session = session_of(request)
    if not session.signed_in:
        return RedirectResponse("/dang-nhap", status_code=303)
    await signed_session(request)
    inbox, campaigns, news, answers = await asyncio.gather(
        optional(request, "meetings", "/inbox", params={"upcoming": "true", "limit": 10}),
        optional(request, "learning", "/me/campaigns"),
        optional(request, "content", "/feed", params={"limit": 5}),
        optional(request, "feedback", "/feedback/mine", params={"limit": 20}),
    )
    if answers is not None:
        answers = [f for f in answers["items"] if f.get("answers")]
    meetings = views.upcoming(inbox["invitations"], datetime.now(UTC)) if inbox else None
    return render(
        request,
        "home.html",
        meetings=meetings,
        next_meeting=meetings[0] if meetings else None,
        campaigns=views.campaigns_due(campaigns) if campaigns is not None else None,
        news=news,
        answers=answers,
    )


# Profile -------------------------------------------------------------------------------


PROFILE_FIELDS = ("full_name", "gender", "party_card_no", "phone", "citizen_id", "birth_date")


@router.get("/ho-so")
async def profile(request: Request) -> Response:
    me = await api(request, "identity", "GET", "/me")
    return render(request, "profile.html", me=me)


@router.get("/ho-so/sua")
async def profile_form(request: Request) -> Response:
    me = await api(request, "identity", "GET", "/me")
    personal = me.get("personal") or {}
    values = {
        "full_name": me.get("full_name"),
        "gender": me.get("gender_label"),
        "party_card_no": me.get("party_card_no") or "",
        "phone": personal.get("phone") or "",
        "citizen_id": personal.get("citizen_id") or "",
        "birth_date": personal.get("birth_date") or "",
    }
    return render(request, "profile_edit.html", me=me, values=values)


@router.post("/ho-so/sua")
async def profile_update(request: Request, form: Form) -> Response:
    me = await api(request, "identity", "GET", "/me")
    values = {name: text(form, name) for name in PROFILE_FIELDS}
    body: dict[str, Any] = {k: v for k, v in values.items() if v}
    content = text(form, "work_content")
    if content:
        history = (me.get("personal") or {}).get("records", {}).get("work_history", [])
        body["work_history"] = [
            {k: e.get(k) for k in ("content", "from_date", "to_date")} for e in history
        ] + [
            {
                "content": content,
                "from_date": text(form, "work_from") or None,
                "to_date": text(form, "work_to") or None,
            }
        ]
    try:
        await api(request, "identity", "PATCH", "/me", json=body)
    except Refused as exc:
        values |= {k: text(form, k) for k in ("work_content", "work_from", "work_to")}
        return refused_page(request, "profile_edit.html", exc, values, me=me)
    return await done(request, "/ho-so", "Đã lưu hồ sơ.")


# Meetings ------------------------------------------------------------------------------


@router.get("/hop")
async def meetings(request: Request) -> Response:
    inbox = await api(request, "meetings", "GET", "/inbox", params={"limit": 50})
    invitations = inbox["invitations"]
    now = datetime.now(UTC)
    upcoming = views.upcoming(invitations, now)
    ids = {i["meeting_id"] for i in upcoming}
    past = [i for i in invitations if i["meeting_id"] not in ids]
    return render(request, "meetings.html", upcoming=upcoming, past=past)


def _window(meeting: dict[str, Any]) -> dict[str, Any]:
    return {"checkin_open": views.checkin_open(meeting, datetime.now(UTC))}


async def _meeting(request: Request, meeting_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    session = session_of(request)
    meeting, inbox = await asyncio.gather(
        api(request, "meetings", "GET", f"/meetings/{quote(meeting_id, safe='')}"),
        api(request, "meetings", "GET", "/inbox", params={"limit": 200}),
    )
    mine: dict[str, Any] = next(
        (i for i in inbox["invitations"] if i["meeting_id"] == meeting_id), {}
    )
    recent = await own_writes(request, f"meeting:{meeting_id}")
    mine = {**recent, **{k: v for k, v in mine.items() if v}, "member_id": session.member_id}
    return meeting, mine


@router.get("/hop/{meeting_id}")
async def meeting(request: Request, meeting_id: str) -> Response:
    from sotay_web.reading import titles

    meeting, mine = await _meeting(request, meeting_id)
    documents = await titles(request, meeting.get("document_ids") or [])
    return render(
        request,
        "meeting.html",
        meeting=meeting,
        mine=mine,
        documents=documents,
        **_window(meeting),
    )


@router.post("/hop/{meeting_id}/bieu-quyet/{poll_id}")
async def vote(request: Request, meeting_id: str, poll_id: str, form: Form) -> Response:
    option = text(form, "option")
    path = f"/meetings/{quote(meeting_id, safe='')}/polls/{quote(poll_id, safe='')}/votes"
    try:
        await api(request, "meetings", "POST", path, json={"option": option})
    except Refused as exc:
        meeting, mine = await _meeting(request, meeting_id)
        return refused_page(
            request, "meeting.html", exc, {}, meeting=meeting, mine=mine, **_window(meeting)
        )
    await remember_own_writes(request, f"meeting:{meeting_id}", {f"voted_{poll_id}": option})
    return await done(request, f"/hop/{meeting_id}", "Đã ghi nhận biểu quyết của đồng chí.")


@router.post("/hop/{meeting_id}/xin-vang")
async def ask_leave(request: Request, meeting_id: str, form: Form) -> Response:
    reason = text(form, "reason")
    try:
        answer = await api(
            request,
            "meetings",
            "POST",
            f"/meetings/{quote(meeting_id, safe='')}/absences",
            json={"reason": reason},
        )
    except Refused as exc:
        if exc.status == 409 and exc.field == "member_id":
            # Sent twice (the offline queue retrying): what was asked still stands.
            return await done(
                request, f"/hop/{meeting_id}", "Đơn xin vắng họp đã được gửi trước đó."
            )
        meeting, mine = await _meeting(request, meeting_id)
        return refused_page(
            request,
            "meeting.html",
            exc,
            {"reason": reason},
            meeting=meeting,
            mine=mine,
            **_window(meeting),
        )
    absence = {"status": answer.get("status"), "reason": reason}
    await remember_own_writes(request, f"meeting:{meeting_id}", {"absence": absence})
    return await done(
        request, f"/hop/{meeting_id}", answer.get("message") or "Đã gửi đơn xin vắng họp."
    )


def typed_moment(typed_at: str, sent_at: str, now: datetime) -> str | None:
    """When an offline check-in's code was typed, for meetings to check the code at. The
    phone's clock may be wrong; the time between typing and sending, measured by that same
    clock, is not: so the moment is our clock minus that time. Without `sent_at` (or with a
    value that does not parse) the phone's `typed_at` goes as it is, for meetings to judge."""
    if not typed_at:
        return None
    typed, sent = views.parse_time(typed_at), views.parse_time(sent_at)
    if typed is None or sent is None:
        return typed_at
    waited = max(sent - typed, timedelta(0))
    return (now - waited).isoformat(timespec="milliseconds")


async def _check_in(request: Request, meeting_id: str, code: str, form: FormData) -> dict[str, Any]:
    body: dict[str, Any] = {"code": code}
    typed_at = typed_moment(text(form, "typed_at"), text(form, "sent_at"), datetime.now(UTC))
    if typed_at:
        body["typed_at"] = typed_at
    answer: dict[str, Any] = await api(
        request, "meetings", "POST", f"/meetings/{quote(meeting_id, safe='')}/check-in", json=body
    )
    return answer


@router.post("/hop/{meeting_id}/diem-danh")
async def check_in(request: Request, meeting_id: str, form: Form) -> Response:
    code = "".join(text(form, "code").split())
    try:
        answer = await _check_in(request, meeting_id, code, form)
    except Refused as exc:
        meeting, mine = await _meeting(request, meeting_id)
        return refused_page(
            request,
            "meeting.html",
            exc,
            {"code": code},
            meeting=meeting,
            mine=mine,
            checkin_open=True,
        )
    await remember_own_writes(request, f"meeting:{meeting_id}", {"checked_in": True})
    return await done(request, f"/hop/{meeting_id}", answer.get("message") or "Đã điểm danh.")


@router.get("/diem-danh")
async def scanned(request: Request, m: str = "", c: str = "") -> Response:
    """Where the meeting's QR code leads (the phone's own camera opens it): confirm, then POST."""
    await signed_session(request)
    if not m:
        return RedirectResponse("/hop", status_code=303)
    meeting, mine = await _meeting(request, m)
    return render(
        request, "meeting.html", meeting=meeting, mine=mine, values={"code": c}, scanned=True
    )


@router.get("/chuyen-can")
async def attendance(request: Request, year: int | None = None) -> Response:
    session = await signed_session(request)
    params = {"year": year} if year else None
    stats = await api(
        request, "meetings", "GET", f"/members/{session.member_id}/statistics", params=params
    )
    return render(request, "attendance.html", stats=stats)
