"""HTTP routes: parse, authorize, call a handler, shape the answer.

Times come in as ISO 8601 (a time without a zone is Vietnam's local time) and go
out both as ISO 8601 in UTC and, for people, as dd/mm/yyyy in Asia/Ho_Chi_Minh.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from pydantic import BaseModel, Field

from sotay_events.catalogue.meetings import MeetingKind
from sotay_meetings.checkin import IssuedCode, qr_data_uri, qr_png, qr_svg
from sotay_meetings.display import as_utc, date_vn, datetime_vn, local, short_vn
from sotay_meetings.domain import GRADE_LABELS, KIND_LABELS, Grade, Meeting, Poll
from sotay_meetings.handlers import CheckIn, MeetingsService
from sotay_meetings.projections import AWOL_FLAG_THRESHOLD, MeetingViews, Roster, UnitDirectory
from sotay_platform.auth import READ_ROLES, Principal, current_principal
from sotay_platform.errors import Forbidden, NotFound

router = APIRouter(tags=["meetings"])

Caller = Annotated[Principal, Depends(current_principal)]


def service(request: Request) -> MeetingsService:
    return request.app.state.service


def views(request: Request) -> MeetingViews:
    return request.app.state.views


def roster(request: Request) -> Roster:
    return request.app.state.roster


def directory(request: Request) -> UnitDirectory:
    return request.app.state.units


Service = Annotated[MeetingsService, Depends(service)]
Views = Annotated[MeetingViews, Depends(views)]
RosterDep = Annotated[Roster, Depends(roster)]
Units = Annotated[UnitDirectory, Depends(directory)]


# Requests.


class ConveneMeeting(BaseModel):
    unit_id: str = Field(min_length=1, max_length=64, examples=["HN.BD.CB01"])
    kind: MeetingKind = MeetingKind.regular
    title: str = Field(min_length=1, max_length=300, examples=["Sinh hoạt chi bộ tháng 12/2026"])
    starts_at: datetime = Field(examples=["2026-12-03T19:30:00+07:00"])
    ends_at: datetime = Field(examples=["2026-12-03T21:30:00+07:00"])
    location: str | None = Field(None, max_length=500, examples=["Nhà văn hóa khu phố 1"])
    online_url: str | None = Field(None, max_length=1000)
    agenda: list[str] = Field(default_factory=list, max_length=50)
    document_ids: list[str] = Field(default_factory=list, max_length=100)
    meeting_id: str | None = Field(
        None,
        min_length=8,
        max_length=64,
        pattern=r"^[A-Za-z0-9._-]+$",
        description="optional: a retried request with the same id convenes once",
    )


class RescheduleMeeting(BaseModel):
    starts_at: datetime
    ends_at: datetime
    location: str | None = Field(None, max_length=500)
    online_url: str | None = Field(None, max_length=1000)
    reason: str = Field("", max_length=1000)


class Reason(BaseModel):
    reason: str = Field(min_length=1, max_length=1000)


class OptionalReason(BaseModel):
    reason: str = Field("", max_length=1000)


class CheckInCode(BaseModel):
    code: str = Field(min_length=1, max_length=12, examples=["482913"])


class RecordAttendance(BaseModel):
    member_id: str = Field(min_length=1, max_length=64)


class OpenPoll(BaseModel):
    question: str = Field(min_length=1, max_length=1000)
    options: list[str] = Field(
        default_factory=lambda: ["Tán thành", "Không tán thành", "Ý kiến khác"],
        min_length=2,
        max_length=20,
    )
    kind: Literal["opinion", "vote"] = "vote"


class CastVote(BaseModel):
    option: str = Field(min_length=1, max_length=300)


class RecordMinutes(BaseModel):
    content: str = Field("", max_length=100_000)
    conclusions: list[str] = Field(default_factory=list, max_length=100)
    document_ids: list[str] = Field(default_factory=list, max_length=100)


class GradeMeeting(BaseModel):
    grade: Grade


class SubmitReport(BaseModel):
    summary: str = Field("", max_length=20_000)


# Answers.


def _times(starts_at: datetime, ends_at: datetime) -> dict[str, Any]:
    return {
        "starts_at": starts_at,
        "ends_at": ends_at,
        "date_display": date_vn(starts_at),
        "starts_at_display": datetime_vn(starts_at),
        "ends_at_display": datetime_vn(ends_at),
    }


def poll_view(poll: Poll) -> dict[str, Any]:
    return {
        "poll_id": poll.poll_id,
        "question": poll.question,
        "options": poll.options,
        "kind": poll.kind,
        "status": "open" if poll.open else "closed",
        "tally": poll.tally if not poll.open else None,
        "voters": poll.voters if not poll.open else None,
    }


def meeting_view(meeting: Meeting, path: list[str], *, detail: bool) -> dict[str, Any]:
    view: dict[str, Any] = {
        "meeting_id": meeting.id,
        "unit_id": meeting.unit_id,
        "org_path": path,
        "kind": meeting.kind.value,
        "kind_label": KIND_LABELS[meeting.kind],
        "title": meeting.title,
        **_times(meeting.starts_at, meeting.ends_at),
        "location": meeting.location,
        "online_url": meeting.online_url,
        "agenda": meeting.agenda,
        "document_ids": meeting.document_ids,
        "status": meeting.status,
        "invited": len(meeting.invitees),
        "polls": [poll_view(p) for p in meeting.polls.values()],
        "minutes_recorded": meeting.minutes is not None,
        "grade": meeting.grade,
        "grade_label": GRADE_LABELS.get(meeting.grade or ""),
        "report": (
            {
                "to_unit_id": meeting.report_to,
                "status": "acknowledged" if meeting.report_acknowledged_by else "submitted",
                "summary": meeting.report_summary,
            }
            if meeting.report_to
            else None
        ),
    }
    if meeting.cancel_reason:
        view["cancel_reason"] = meeting.cancel_reason
    if meeting.closing is not None:
        view["attendance"] = {
            "invited": meeting.closing.invited,
            "present": meeting.closing.present,
            "excused": meeting.closing.excused,
            "absent_without_leave": meeting.closing.absent_without_leave,
        }
    if detail:
        view["invitee_ids"] = meeting.invitees
        view["absences"] = [
            {
                "member_id": member_id,
                "reason": a.reason,
                "late": a.late,
                "status": a.status,
                "decline_reason": a.decline_reason or None,
            }
            for member_id, a in meeting.absences.items()
        ]
        if meeting.minutes is not None:
            view["minutes"] = {
                "content": meeting.minutes.content,
                "conclusions": meeting.minutes.conclusions,
                "document_ids": meeting.minutes.document_ids,
                "recorded_by": meeting.minutes.recorded_by,
            }
    return view


def code_view(issued: IssuedCode) -> dict[str, Any]:
    return {
        "code": issued.code,
        "valid_until": issued.valid_until,
        "valid_until_display": local(issued.valid_until).strftime("%H:%M:%S %d/%m/%Y"),
        "qr_payload": issued.payload,
        "qr_svg": qr_data_uri(issued.payload),
    }


def checkin_view(result: CheckIn) -> dict[str, Any]:
    return {
        "meeting_id": result.meeting_id,
        "member_id": result.member_id,
        "recorded": result.recorded,
        "already_recorded": not result.recorded,
        "method": result.method,
        "message": "Đã điểm danh" if result.recorded else "Đồng chí đã được điểm danh trước đó",
    }


async def _detail(svc: MeetingsService, caller: Principal, meeting: Meeting) -> dict[str, Any]:
    path = await svc.path_of(meeting)
    return meeting_view(meeting, path, detail=caller.covers(READ_ROLES, path))


# Meetings.


@router.post("/meetings", status_code=201)
async def convene(
    body: ConveneMeeting,
    caller: Caller,
    svc: Service,
    response: Response,
    x_correlation_id: Annotated[str | None, Header()] = None,
) -> dict[str, Any]:
    meeting, created = await svc.convene(
        caller,
        unit_id=body.unit_id,
        kind=body.kind,
        title=body.title,
        starts_at=as_utc(body.starts_at),
        ends_at=as_utc(body.ends_at),
        location=body.location,
        online_url=body.online_url,
        agenda=body.agenda,
        document_ids=body.document_ids,
        meeting_id=body.meeting_id,
        correlation_id=x_correlation_id,
    )
    if not created:
        response.status_code = 200
    return await _detail(svc, caller, meeting)


@router.get("/meetings/{meeting_id}")
async def get_meeting(meeting_id: str, caller: Caller, svc: Service) -> dict[str, Any]:
    meeting, _ = await svc.view(caller, meeting_id)
    return await _detail(svc, caller, meeting)


@router.post("/meetings/{meeting_id}/reschedule")
async def reschedule(
    meeting_id: str, body: RescheduleMeeting, caller: Caller, svc: Service
) -> dict[str, Any]:
    meeting = await svc.reschedule(
        caller,
        meeting_id,
        starts_at=as_utc(body.starts_at),
        ends_at=as_utc(body.ends_at),
        location=body.location,
        online_url=body.online_url,
        reason=body.reason,
    )
    return await _detail(svc, caller, meeting)


@router.post("/meetings/{meeting_id}/cancel")
async def cancel(meeting_id: str, body: Reason, caller: Caller, svc: Service) -> dict[str, Any]:
    return await _detail(svc, caller, await svc.cancel(caller, meeting_id, body.reason))


# Absences.


@router.post("/meetings/{meeting_id}/absences", status_code=201)
async def request_absence(
    meeting_id: str, body: Reason, caller: Caller, svc: Service
) -> dict[str, Any]:
    meeting = await svc.request_absence(caller, meeting_id, body.reason)
    assert caller.member_id is not None
    absence = meeting.absences[caller.member_id]
    return {
        "meeting_id": meeting.id,
        "member_id": caller.member_id,
        "status": absence.status,
        "late": absence.late,
        "message": (
            "Đã gửi đơn xin vắng họp (gửi sau giờ bắt đầu họp)"
            if absence.late
            else "Đã gửi đơn xin vắng họp, chờ bí thư chi bộ duyệt"
        ),
    }


@router.post("/meetings/{meeting_id}/absences/{member_id}/approve")
async def approve_absence(
    meeting_id: str, member_id: str, caller: Caller, svc: Service
) -> dict[str, Any]:
    await svc.decide_absence(caller, meeting_id, member_id, approve=True)
    return {"meeting_id": meeting_id, "member_id": member_id, "status": "approved"}


@router.post("/meetings/{meeting_id}/absences/{member_id}/decline")
async def decline_absence(
    meeting_id: str, member_id: str, body: OptionalReason, caller: Caller, svc: Service
) -> dict[str, Any]:
    await svc.decide_absence(caller, meeting_id, member_id, approve=False, reason=body.reason)
    return {"meeting_id": meeting_id, "member_id": member_id, "status": "declined"}


# Attendance.


@router.get("/meetings/{meeting_id}/checkin-code")
async def checkin_code(meeting_id: str, caller: Caller, svc: Service) -> dict[str, Any]:
    """The code to show at the meeting, as digits and as a QR image (SVG data URI)."""
    return code_view(await svc.checkin_code(caller, meeting_id))


@router.get(
    "/meetings/{meeting_id}/checkin-code/qr",
    responses={200: {"content": {"image/svg+xml": {}, "image/png": {}}}},
)
async def checkin_qr(
    meeting_id: str,
    caller: Caller,
    svc: Service,
    format: Literal["svg", "png"] = "svg",
) -> Response:
    issued = await svc.checkin_code(caller, meeting_id)
    headers = {
        "Cache-Control": "no-store",
        "X-Checkin-Code-Valid-Until": issued.valid_until.isoformat(),
    }
    if format == "png":
        return Response(qr_png(issued.payload), media_type="image/png", headers=headers)
    return Response(qr_svg(issued.payload), media_type="image/svg+xml", headers=headers)


@router.post("/meetings/{meeting_id}/check-in")
async def check_in(
    meeting_id: str, body: CheckInCode, caller: Caller, svc: Service, response: Response
) -> dict[str, Any]:
    """Self check-in with the code the secretary shows; a second check-in changes nothing."""
    result = await svc.check_in(caller, meeting_id, body.code)
    response.status_code = 201 if result.recorded else 200
    return checkin_view(result)


@router.post("/meetings/{meeting_id}/attendance")
async def record_attendance(
    meeting_id: str, body: RecordAttendance, caller: Caller, svc: Service, response: Response
) -> dict[str, Any]:
    """The secretary records a member present (for members without a phone)."""
    result = await svc.check_in_for(caller, meeting_id, body.member_id)
    response.status_code = 201 if result.recorded else 200
    return checkin_view(result)


@router.get("/meetings/{meeting_id}/statistics")
async def meeting_statistics(meeting_id: str, caller: Caller, svc: Service) -> dict[str, Any]:
    return await svc.statistics(caller, meeting_id)


# Polls.


@router.post("/meetings/{meeting_id}/polls", status_code=201)
async def open_poll(
    meeting_id: str, body: OpenPoll, caller: Caller, svc: Service
) -> dict[str, Any]:
    return poll_view(
        await svc.open_poll(caller, meeting_id, body.question, body.options, body.kind)
    )


@router.post("/meetings/{meeting_id}/polls/{poll_id}/votes", status_code=201)
async def vote(
    meeting_id: str, poll_id: str, body: CastVote, caller: Caller, svc: Service
) -> dict[str, Any]:
    await svc.vote(caller, meeting_id, poll_id, body.option)
    return {"meeting_id": meeting_id, "poll_id": poll_id, "message": "Đã ghi nhận biểu quyết"}


@router.post("/meetings/{meeting_id}/polls/{poll_id}/close")
async def close_poll(meeting_id: str, poll_id: str, caller: Caller, svc: Service) -> dict[str, Any]:
    return poll_view(await svc.close_poll(caller, meeting_id, poll_id))


# After the meeting.


@router.post("/meetings/{meeting_id}/minutes")
async def record_minutes(
    meeting_id: str, body: RecordMinutes, caller: Caller, svc: Service
) -> dict[str, Any]:
    meeting = await svc.record_minutes(
        caller, meeting_id, body.content, body.conclusions, body.document_ids
    )
    return await _detail(svc, caller, meeting)


@router.post("/meetings/{meeting_id}/close")
async def close(meeting_id: str, caller: Caller, svc: Service) -> dict[str, Any]:
    return await _detail(svc, caller, await svc.close(caller, meeting_id))


@router.post("/meetings/{meeting_id}/grade")
async def grade(
    meeting_id: str, body: GradeMeeting, caller: Caller, svc: Service
) -> dict[str, Any]:
    return await _detail(svc, caller, await svc.grade(caller, meeting_id, body.grade))


@router.post("/meetings/{meeting_id}/report", status_code=201)
async def submit_report(
    meeting_id: str, body: SubmitReport, caller: Caller, svc: Service
) -> dict[str, Any]:
    return await _detail(svc, caller, await svc.submit_report(caller, meeting_id, body.summary))


@router.post("/meetings/{meeting_id}/report/acknowledge")
async def acknowledge_report(meeting_id: str, caller: Caller, svc: Service) -> dict[str, Any]:
    meeting = await svc.acknowledge_report(caller, meeting_id)
    return meeting_view(meeting, await svc.path_of(meeting), detail=False)


# The member's inbox.


def invitation_view(doc: dict[str, Any]) -> dict[str, Any]:
    notices = [
        {
            "kind": n["kind"],
            "at_display": short_vn(n["at"]),
            "reason": n.get("reason", ""),
            "message": (
                f"Cuộc họp đã dời sang {datetime_vn(n['starts_at'])}"
                if n["kind"] == "rescheduled"
                else "Cuộc họp đã bị hủy"
            ),
        }
        for n in doc.get("notices", [])
    ]
    return {
        "meeting_id": doc["meeting_id"],
        "unit_id": doc.get("unit_id"),
        "kind": doc.get("kind"),
        "kind_label": KIND_LABELS[MeetingKind(doc["kind"])] if doc.get("kind") else None,
        "title": doc.get("title"),
        **_times(doc["starts_at"], doc["ends_at"]),
        "location": doc.get("location"),
        "online_url": doc.get("online_url"),
        "agenda": doc.get("agenda", []),
        "document_ids": doc.get("document_ids", []),
        "meeting_status": doc.get("meeting_status"),
        "absence": (
            {k: v for k, v in doc["absence"].items() if k in ("status", "reason", "late")}
            if doc.get("absence")
            else None
        ),
        "checked_in": "checked_in_at" in doc,
        "checked_in_at_display": short_vn(doc["checked_in_at"])
        if doc.get("checked_in_at")
        else None,
        "outcome": doc.get("outcome"),
        "notices": notices,
    }


@router.get("/inbox", tags=["inbox"])
async def inbox(
    caller: Caller,
    views: Views,
    svc: Service,
    upcoming: bool = False,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> dict[str, Any]:
    """The caller's meeting invitations, newest first, with notices of changes."""
    if not caller.member_id:
        raise Forbidden("Tài khoản không gắn với một đảng viên", field="member_id")
    since = svc.clock() if upcoming else None
    docs = await views.inbox(caller.member_id, since, limit)
    return {"member_id": caller.member_id, "invitations": [invitation_view(d) for d in docs]}


# Units: roster, meetings, reports received, statistics.


async def _unit_path(units: UnitDirectory, unit_id: str) -> list[str]:
    resolved = await units.resolve(unit_id)
    if resolved is None:
        raise NotFound(f"Không tìm thấy đơn vị {unit_id}", field="unit_id")
    return resolved.path


@router.get("/units/{unit_id}/roster", tags=["units"])
async def unit_roster(
    unit_id: str, caller: Caller, units: Units, roster: RosterDep
) -> dict[str, Any]:
    """The branch's members as meetings knows them (from identity's events)."""
    resolved = await units.resolve(unit_id)
    if resolved is None:
        raise NotFound(f"Không tìm thấy đơn vị {unit_id}", field="unit_id")
    caller.require(READ_ROLES, resolved.path)
    members = await roster.listing(resolved.absorbed)
    return {
        "unit_id": resolved.id,
        "members": [
            {
                "member_id": m["_id"],
                "full_name": m.get("full_name", ""),
                "status": m.get("status"),
                "approved": m.get("approved", False),
                "expected_at_meetings": bool(
                    m.get("approved") and m.get("status") in ("official", "probationary")
                ),
            }
            for m in members
        ],
    }


def summary_view(doc: dict[str, Any]) -> dict[str, Any]:
    view = {k: v for k, v in doc.items() if k not in ("_id", "org_path", "convened_at")}
    view["meeting_id"] = doc["_id"]
    view.update(_times(doc["starts_at"], doc["ends_at"]))
    return view


@router.get("/units/{unit_id}/meetings", tags=["units"])
async def unit_meetings(
    unit_id: str, caller: Caller, units: Units, views: Views, year: int | None = None
) -> dict[str, Any]:
    caller.require(READ_ROLES, await _unit_path(units, unit_id))
    return {
        "unit_id": unit_id,
        "meetings": [summary_view(d) for d in await views.meetings_of(unit_id, year)],
    }


@router.get("/units/{unit_id}/reports", tags=["units"])
async def unit_reports(
    unit_id: str,
    caller: Caller,
    units: Units,
    views: Views,
    status: Literal["submitted", "acknowledged"] | None = None,
) -> dict[str, Any]:
    """Branch reports sent to this committee."""
    caller.require(READ_ROLES, await _unit_path(units, unit_id))
    return {
        "unit_id": unit_id,
        "reports": [summary_view(d) for d in await views.reports_to(unit_id, status)],
    }


FIGURES = ("meetings", "invited", "present", "excused", "absent_without_leave")


def _rate(figures: dict[str, int]) -> float | None:
    invited = figures.get("invited", 0)
    return round(100 * figures.get("present", 0) / invited, 1) if invited else None


@router.get("/units/{unit_id}/statistics", tags=["statistics"])
async def unit_statistics(
    unit_id: str,
    caller: Caller,
    units: Units,
    views: Views,
    roster: RosterDep,
    svc: Service,
    year: int | None = None,
) -> dict[str, Any]:
    """Closed meetings of the unit (and the branches under it), by month and for the year;
    members absent without leave from three or more branch meetings are flagged."""
    caller.require(READ_ROLES, await _unit_path(units, unit_id))
    year = year or local(svc.clock()).year
    months: dict[int, dict[str, int]] = {}
    for doc in await views.unit_months(unit_id, year):
        month = months.setdefault(doc["month"], dict.fromkeys(FIGURES, 0))
        for key in FIGURES:
            month[key] += doc.get(key, 0)
    total = {key: sum(m[key] for m in months.values()) for key in FIGURES}
    flagged = await views.flagged(unit_id, year)
    names = await roster.names([f["member_id"] for f in flagged])
    return {
        "unit_id": unit_id,
        "year": year,
        "months": [
            {"month": m, "period_display": f"{m:02d}/{year}", **fig, "attendance_rate": _rate(fig)}
            for m, fig in sorted(months.items())
        ],
        "total": {**total, "attendance_rate": _rate(total)},
        "flagged_members": [
            {
                "member_id": f["member_id"],
                "full_name": names.get(f["member_id"], ""),
                "absent_without_leave": f.get("absent_without_leave_branch", 0),
                "missed_meeting_ids": f.get("missed_meetings", []),
                "message": (
                    f"Vắng sinh hoạt chi bộ không có lý do {f.get('absent_without_leave_branch', 0)}"
                    f" lần trong năm {year} (từ {AWOL_FLAG_THRESHOLD} lần trở lên): "
                    "đề nghị chi bộ xem xét theo Điều lệ Đảng"
                ),
            }
            for f in flagged
        ],
    }


@router.get("/members/{member_id}/statistics", tags=["statistics"])
async def member_statistics(
    member_id: str,
    caller: Caller,
    units: Units,
    views: Views,
    roster: RosterDep,
    svc: Service,
    year: int | None = None,
) -> dict[str, Any]:
    """A member's attendance by month and for the year: the member, or their branch's committees."""
    if caller.member_id != member_id:
        member = await roster.get(member_id)
        if member is None or not member.get("branch_id"):
            raise NotFound(f"Không tìm thấy đảng viên {member_id}", field="member_id")
        caller.require(READ_ROLES, await units.path(member["branch_id"]))
    year = year or local(svc.clock()).year
    keys = ("invited", "present", "excused", "absent_without_leave")
    months = [
        {
            "month": d["month"],
            "period_display": f"{d['month']:02d}/{year}",
            **{k: d.get(k, 0) for k in keys},
        }
        for d in await views.member_months(member_id, year)
    ]
    year_doc = await views.member_year(member_id, year) or {}
    awol_branch = year_doc.get("absent_without_leave_branch", 0)
    return {
        "member_id": member_id,
        "year": year,
        "months": months,
        "total": {k: year_doc.get(k, 0) for k in keys},
        "flagged": awol_branch >= AWOL_FLAG_THRESHOLD,
        "absent_without_leave_branch_meetings": awol_branch,
    }
