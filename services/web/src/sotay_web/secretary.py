"""A branch secretary's screens: registrations, members, convening, the meeting-room screen.

Each screen is offered only to a person holding a secretary or committee role on the unit;
the service behind it checks again (role and scope) and its refusal is what the page shows.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.datastructures import FormData

from sotay_web.core import (
    Denied,
    api,
    checked_form,
    done,
    own_writes,
    refused_page,
    remember_own_writes,
    render,
    signed_session,
    text,
)
from sotay_web.member import optional
from sotay_web.reading import titles
from sotay_web.sessions import ADMIN, SECRETARY
from sotay_web.upstream import Refused

router = APIRouter()
Form = Annotated[FormData, Depends(checked_form)]
VN = ZoneInfo("Asia/Ho_Chi_Minh")
GRADES = {"excellent": "Tốt", "good": "Khá", "average": "Trung bình", "poor": "Kém"}


def q(value: str) -> str:
    return quote(value, safe="")


async def _units(request: Request) -> list[str]:
    session = await signed_session(request)
    units = session.roles(*SECRETARY, *ADMIN)
    if not units:
        raise Denied("Trang này dành cho bí thư chi bộ và chi ủy viên.")
    return units


async def _unit(request: Request, unit_id: str) -> str:
    """A unit the person holds a role on (the service checks the rest of the scope)."""
    session = await signed_session(request)
    if unit_id not in session.roles(*SECRETARY, *ADMIN) and not session.admin_units:
        raise Denied("Đồng chí không giữ nhiệm vụ ở đơn vị này.")
    return unit_id


@router.get("/chi-bo")
async def branches(request: Request) -> Response:
    units = await _units(request)
    if len(units) == 1:
        return RedirectResponse(f"/chi-bo/{q(units[0])}", status_code=303)
    return render(request, "branch_pick.html", units=units)


async def _branch_context(request: Request, unit_id: str) -> dict[str, Any]:
    pending, meetings = await asyncio.gather(
        _maybe(api(request, "identity", "GET", "/registrations", params={"unit_id": unit_id})),
        api(request, "meetings", "GET", f"/units/{q(unit_id)}/meetings"),
    )
    items = pending["items"] if pending else None
    # The list names the conflicting fields; the values are in each registration's record.
    clashing = [m for m in items or [] if m.get("conflicts")]
    records = await asyncio.gather(
        *(api(request, "identity", "GET", f"/members/{q(m['member_id'])}") for m in clashing)
    )
    for item, record in zip(clashing, records, strict=True):
        item["personal"] = record.get("personal")
    return {"unit_id": unit_id, "pending": items, "meetings": meetings["meetings"]}


@router.get("/chi-bo/{unit_id}")
async def branch(request: Request, unit_id: str) -> Response:
    await _unit(request, unit_id)
    return render(request, "branch.html", **await _branch_context(request, unit_id))


async def _maybe(call: Any) -> Any:
    """A part a branch committee member may not be allowed to see: absent, not an error."""
    try:
        return await call
    except Refused as exc:
        if exc.status == 403:
            return None
        raise


@router.post("/chi-bo/{unit_id}/dang-ky/{member_id}")
async def decide_registration(
    request: Request, unit_id: str, member_id: str, form: Form
) -> Response:
    await _unit(request, unit_id)
    approve = text(form, "decision") == "approve"
    path = f"/registrations/{q(member_id)}/{'approve' if approve else 'reject'}"
    try:
        await api(
            request,
            "identity",
            "POST",
            path,
            json=None if approve else {"reason": text(form, "reason")},
        )
    except Refused as exc:
        # E.g. approving while another member holds the phone: said above the list.
        context = await _branch_context(request, unit_id)
        return refused_page(request, "branch.html", exc, {}, **context)
    message = "Đã phê duyệt đăng ký." if approve else "Đã từ chối đăng ký."
    return await done(request, f"/chi-bo/{q(unit_id)}", message)


@router.get("/chi-bo/{unit_id}/dang-vien")
async def members(request: Request, unit_id: str) -> Response:
    await _unit(request, unit_id)
    roster = await api(
        request, "identity", "GET", "/members", params={"unit_id": unit_id, "limit": 500}
    )
    return render(
        request,
        "branch_members.html",
        unit_id=unit_id,
        roster=roster,
        values={"status": "official"},
    )


MEMBER_FIELDS = (
    "full_name",
    "birth_date",
    "gender",
    "status",
    "admitted_on",
    "official_on",
    "party_card_no",
    "citizen_id",
    "phone",
)


@router.post("/chi-bo/{unit_id}/dang-vien")
async def create_member(request: Request, unit_id: str, form: Form) -> Response:
    """For members without a smartphone, or elderly ones: the secretary records them; with a
    temporary password the account opens, to be changed at first sign-in."""
    await _unit(request, unit_id)
    values = {k: text(form, k) for k in MEMBER_FIELDS}
    body: dict[str, Any] = {k: v for k, v in values.items() if v} | {"branch_id": unit_id}
    if password := str(form.get("password") or ""):
        body["password"] = password
    try:
        await api(request, "identity", "POST", "/members", json=body)
    except Refused as exc:
        roster = await api(
            request, "identity", "GET", "/members", params={"unit_id": unit_id, "limit": 500}
        )
        return refused_page(
            request, "branch_members.html", exc, values, unit_id=unit_id, roster=roster
        )
    return await done(
        request, f"/chi-bo/{q(unit_id)}/dang-vien", f"Đã thêm đảng viên {values['full_name']}."
    )


@router.get("/chi-bo/{unit_id}/hop-moi")
async def convene_form(request: Request, unit_id: str) -> Response:
    await _unit(request, unit_id)
    return render(
        request,
        "convene.html",
        unit_id=unit_id,
        documents=await _documents(request),
        values={"kind": "regular", "meeting_id": uuid.uuid4().hex},
    )


async def _documents(request: Request) -> list[dict[str, Any]] | None:
    """Published documents the secretary may attach to the invitation (None: content is off)."""
    found = await optional(request, "content", "/feed", params={"limit": 30})
    return [p for p in found if p.get("kind") != "news"] if found is not None else None


def _local(value: str) -> str:
    """The form's local date-time as ISO 8601 in Vietnam's zone."""
    try:
        return datetime.fromisoformat(value).replace(tzinfo=VN).isoformat()
    except ValueError:
        return value


@router.post("/chi-bo/{unit_id}/hop-moi")
async def convene(request: Request, unit_id: str, form: Form) -> Response:
    await _unit(request, unit_id)
    values = {
        k: text(form, k)
        for k in (
            "kind",
            "title",
            "starts_at",
            "ends_at",
            "location",
            "online_url",
            "agenda",
            "meeting_id",
        )
    }
    body: dict[str, Any] = {
        "unit_id": unit_id,
        "kind": values["kind"] or "regular",
        "title": values["title"],
        "starts_at": _local(values["starts_at"]),
        "ends_at": _local(values["ends_at"]),
        "location": values["location"] or None,
        "online_url": values["online_url"] or None,
        "agenda": [line.strip() for line in values["agenda"].splitlines() if line.strip()],
        # The form's own id: submitting it twice convenes one meeting.
        "meeting_id": values["meeting_id"] or None,
        "document_ids": [str(d) for d in dict.fromkeys(form.getlist("document_ids")) if d],
    }
    try:
        meeting = await api(request, "meetings", "POST", "/meetings", json=body)
    except Refused as exc:
        return refused_page(
            request,
            "convene.html",
            exc,
            values | {"document_ids": body["document_ids"]},
            unit_id=unit_id,
            documents=await _documents(request),
        )
    return await done(
        request, f"/chi-bo/hop/{q(meeting['meeting_id'])}", "Đã gửi giấy mời họp tới các đảng viên."
    )


# The meeting-room screen ---------------------------------------------------------------


async def _names(request: Request, unit_id: str) -> dict[str, str]:
    roster = await api(request, "meetings", "GET", f"/units/{q(unit_id)}/roster")
    return {m["member_id"]: m["full_name"] for m in roster["members"]}


@router.get("/chi-bo/hop/{meeting_id}")
async def room(request: Request, meeting_id: str) -> Response:
    meeting = await api(request, "meetings", "GET", f"/meetings/{q(meeting_id)}")
    await _unit(request, meeting["unit_id"])
    stats, names, code, documents = await asyncio.gather(
        api(request, "meetings", "GET", f"/meetings/{q(meeting_id)}/statistics"),
        _names(request, meeting["unit_id"]),
        _code(request, meeting),
        titles(request, meeting.get("document_ids") or []),
    )
    return render(
        request,
        "room.html",
        meeting=meeting,
        stats=stats,
        names=names,
        code=code,
        documents=documents,
        grades=GRADES,
        values={"minutes": "", "question": ""},
    )


async def _code(request: Request, meeting: dict[str, Any]) -> dict[str, Any] | None:
    if meeting["status"] != "convened":
        return None
    try:
        found: dict[str, Any] = await api(
            request, "meetings", "GET", f"/meetings/{q(meeting['meeting_id'])}/checkin-code"
        )
    except Refused:
        return None  # outside the check-in window
    return found


@router.get("/chi-bo/hop/{meeting_id}/so-lieu")
async def room_figures(request: Request, meeting_id: str) -> Response:
    """What the room screen polls: attendance and the current code (it changes every minute)."""
    meeting = await api(request, "meetings", "GET", f"/meetings/{q(meeting_id)}")
    await _unit(request, meeting["unit_id"])
    stats, names, code = await asyncio.gather(
        api(request, "meetings", "GET", f"/meetings/{q(meeting_id)}/statistics"),
        _names(request, meeting["unit_id"]),
        _code(request, meeting),
    )
    return JSONResponse(
        {
            "invited": stats["invited"],
            "present": stats["present"],
            "excused": stats["excused"],
            "absent_without_leave": stats["absent_without_leave"],
            "present_names": [names.get(m, m) for m in stats["present_ids"]],
            "code": code["code"] if code else None,
            "valid_until": code["valid_until_display"] if code else None,
            "qr_svg": code["qr_svg"] if code else None,
            # Meetings keeps a vote's tally secret while it is open: it shows once closed.
            "polls": [
                {
                    "poll_id": p["poll_id"],
                    "status": "đang mở" if p["status"] == "open" else "đã đóng",
                    "tally": p.get("tally"),
                    "voters": p.get("voters"),
                }
                for p in meeting.get("polls") or []
            ],
        },
        headers={"Cache-Control": "no-store"},
    )


ACTIONS = {
    "attendance": "Đã ghi nhận có mặt.",
    "approve_absence": "Đã duyệt đơn xin vắng.",
    "decline_absence": "Đã không duyệt đơn xin vắng.",
    "open_poll": "Đã mở biểu quyết.",
    "close_poll": "Đã đóng biểu quyết.",
    "minutes": "Đã lưu biên bản.",
    "close": "Đã kết thúc cuộc họp.",
    "grade": "Đã xếp loại cuộc họp.",
    "report": "Đã gửi báo cáo lên cấp ủy cấp trên.",
}


@router.post("/chi-bo/hop/{meeting_id}")
async def room_action(request: Request, meeting_id: str, form: Form) -> Response:
    action = text(form, "action")
    if action not in ACTIONS:
        raise Denied("Thao tác không hợp lệ.")
    base = f"/meetings/{q(meeting_id)}"
    calls: dict[str, tuple[str, Any]] = {
        "attendance": ("/attendance", {"member_id": text(form, "member_id")}),
        "approve_absence": (f"/absences/{q(text(form, 'member_id'))}/approve", None),
        "decline_absence": (
            f"/absences/{q(text(form, 'member_id'))}/decline",
            {"reason": text(form, "reason")},
        ),
        "open_poll": (
            "/polls",
            {"question": text(form, "question")}
            | (
                {"options": [o.strip() for o in text(form, "options").splitlines() if o.strip()]}
                if text(form, "options")
                else {}
            ),
        ),
        "close_poll": (f"/polls/{q(text(form, 'poll_id'))}/close", None),
        "minutes": (
            "/minutes",
            {
                "content": str(form.get("minutes") or ""),
                "conclusions": [
                    c.strip() for c in text(form, "conclusions").splitlines() if c.strip()
                ],
            },
        ),
        "close": ("/close", None),
        "grade": ("/grade", {"grade": text(form, "grade")}),
        "report": ("/report", {"summary": text(form, "summary")}),
    }
    path, body = calls[action]
    try:
        await api(request, "meetings", "POST", base + path, json=body)
    except Refused as exc:
        if action == "attendance" and exc.status == 409:
            return await done(
                request, f"/chi-bo/hop/{q(meeting_id)}", "Đảng viên đã được điểm danh trước đó."
            )
        meeting = await api(request, "meetings", "GET", base)
        stats, names, code = await asyncio.gather(
            api(request, "meetings", "GET", f"{base}/statistics"),
            _names(request, meeting["unit_id"]),
            _code(request, meeting),
        )
        return refused_page(
            request,
            "room.html",
            exc,
            {k: text(form, k) for k in form},
            meeting=meeting,
            stats=stats,
            names=names,
            code=code,
            grades=GRADES,
        )
    return await done(request, f"/chi-bo/hop/{q(meeting_id)}", ACTIONS[action])


# Reflections ---------------------------------------------------------------------------

VERDICTS = {"đạt": "Đạt", "chưa đạt": "Chưa đạt, cần nộp lại"}


async def _reflections(request: Request, unit_id: str) -> list[dict[str, Any]]:
    """The branch's campaigns, each with the reflections waiting for the secretary's review."""
    campaigns = await api(request, "learning", "GET", "/campaigns", params={"unit_id": unit_id})
    waiting = await asyncio.gather(
        *(
            api(
                request,
                "learning",
                "GET",
                f"/campaigns/{q(c['campaign_id'])}/reflections",
                params={"branch_id": unit_id, "status": "submitted"},
            )
            for c in campaigns
        )
    )
    reviewed = await own_writes(request, f"reflections:{unit_id}")
    return [
        c
        | {"reflections": [x for x in r if f"{c['campaign_id']}/{x['member_id']}" not in reviewed]}
        for c, r in zip(campaigns, waiting, strict=True)
    ]


@router.get("/chi-bo/{unit_id}/thu-hoach")
async def reflections(request: Request, unit_id: str) -> Response:
    await _unit(request, unit_id)
    found = await _reflections(request, unit_id)
    return render(
        request,
        "branch_reflections.html",
        unit_id=unit_id,
        campaigns=found,
        verdicts=VERDICTS,
    )


@router.post("/chi-bo/{unit_id}/thu-hoach/{campaign_id}/{member_id}")
async def review_reflection(
    request: Request, unit_id: str, campaign_id: str, member_id: str, form: Form
) -> Response:
    await _unit(request, unit_id)
    verdict, comment = text(form, "verdict"), text(form, "comment")
    try:
        await api(
            request,
            "learning",
            "POST",
            f"/campaigns/{q(campaign_id)}/reflections/{q(member_id)}/review",
            json={"verdict": verdict, "comment": comment},
        )
    except Refused as exc:
        found = await _reflections(request, unit_id)
        return refused_page(
            request,
            "branch_reflections.html",
            exc,
            {"comment": comment},
            unit_id=unit_id,
            campaigns=found,
            verdicts=VERDICTS,
        )
    # Learning's list lags by seconds: the one just reviewed is not offered again meanwhile.
    await remember_own_writes(
        request, f"reflections:{unit_id}", {f"{campaign_id}/{member_id}": verdict}
    )
    message = "Đã nhận xét: " + VERDICTS.get(verdict, verdict).lower() + "."
    return await done(request, f"/chi-bo/{q(unit_id)}/thu-hoach", message)
