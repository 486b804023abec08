"""HTTP routes: parse, authorize, call a handler, shape the answer.

Every field of a request is one of the shared input types (`sotay_platform.inputs`):
bounded, normalised text, ASCII identifiers, datetimes within 2000..2100, bounded
lists and integers, so hostile input answers 422 naming the field, and no event can
outgrow what the broker accepts. Times come in as ISO 8601 (a time without a zone
is Vietnam's local time) and go out both as ISO 8601 in UTC and, for people, as
dd/mm/yyyy in Asia/Ho_Chi_Minh.
"""

from __future__ import annotations

import calendar
from datetime import date, datetime
from typing import Annotated, Any, Literal

from annotated_types import Interval
from fastapi import APIRouter, Depends, Header, Request, Response
from pydantic import BaseModel, Field

from sotay_events.catalogue.meetings import MeetingKind
from sotay_meetings.answers import (
    AbsenceDecisionOut,
    AbsenceRequestOut,
    CheckInOut,
    CodeOut,
    InboxOut,
    MeetingOut,
    MeetingStatisticsOut,
    MemberStatisticsOut,
    PollOut,
    RosterOut,
    UnitMeetingsOut,
    UnitReportsOut,
    UnitStatisticsOut,
    VoteOut,
)
from sotay_meetings.checkin import IssuedCode, qr_data_uri, qr_png, qr_svg
from sotay_meetings.display import date_vn, datetime_vn, local, short_vn
from sotay_meetings.domain import (
    GRADE_LABELS,
    KIND_LABELS,
    MAX_AGENDA,
    MAX_OPTIONS,
    Grade,
    Meeting,
    Poll,
)
from sotay_meetings.handlers import CheckIn, MeetingsService
from sotay_meetings.projections import AWOL_FLAG_THRESHOLD, MeetingViews, Roster
from sotay_platform.auth import READ_ROLES, Principal, current_principal
from sotay_platform.errors import Forbidden, NotFound
from sotay_platform.inputs import Code, EventDatetime, Items, Line, Text, Year
from sotay_platform.org_units import OrgUnits, Resolved
from sotay_platform.roster import Purpose, counts
from sotay_platform.tree import end_of_day

router = APIRouter(tags=["meetings"])

Caller = Annotated[Principal, Depends(current_principal)]

# The dependencies below are `async def` on purpose: FastAPI runs a plain `def`
# dependency in its thread pool, a thread hop per request on the check-in path.


async def service(request: Request) -> MeetingsService:
    return request.app.state.service


async def views(request: Request) -> MeetingViews:
    return request.app.state.views


async def roster(request: Request) -> Roster:
    return request.app.state.roster


async def directory(request: Request) -> OrgUnits:
    return request.app.state.units


Service = Annotated[MeetingsService, Depends(service)]
Views = Annotated[MeetingViews, Depends(views)]
RosterDep = Annotated[Roster, Depends(roster)]
Units = Annotated[OrgUnits, Depends(directory)]


# Requests. The bounds keep the largest event (minutes at their limits, written in
# four-byte characters) under the broker's message size (sotay_events.uow).

Title = Annotated[str, Text(300)]
Place = Annotated[str, Text(500, min_length=0)]
Url = Annotated[str, Text(1000, min_length=0)]
ReasonText = Annotated[str, Text(1000)]
OptionalReasonText = Annotated[str, Text(1000, min_length=0)]
Option = Annotated[str, Text(300)]
Conclusion = Annotated[str, Text(1000)]
DocumentIds = Annotated[list[Code], Items(100)]


class ConveneMeeting(BaseModel):
    unit_id: Code
    kind: MeetingKind = MeetingKind.regular
    title: Title = Field(examples=["Sinh hoạt chi bộ tháng 12/2026"])
    starts_at: EventDatetime
    ends_at: EventDatetime
    location: Place | None = Field(None, examples=["Nhà văn hóa khu phố 1"])
    online_url: Url | None = None
    agenda: Annotated[list[Line], Items(MAX_AGENDA)] = Field(default_factory=list)
    document_ids: DocumentIds = Field(default_factory=list)
    meeting_id: Code | None = Field(
        None, description="optional: a retried request with the same id convenes once"
    )


class RescheduleMeeting(BaseModel):
    starts_at: EventDatetime
    ends_at: EventDatetime
    location: Place | None = None
    online_url: Url | None = None
    reason: OptionalReasonText = ""


class Reason(BaseModel):
    reason: ReasonText


class OptionalReason(BaseModel):
    reason: OptionalReasonText = ""


class CheckInCode(BaseModel):
    code: Annotated[str, Text(12)] = Field(examples=["482913"])
    typed_at: EventDatetime | None = Field(
        None,
        description=(
            "optional: when the member typed the code, for a check-in kept while the phone "
            "was offline and sent later; the code is checked against that moment. At most 2 "
            "minutes ahead of the server's clock (clamped), not before check-in opened, at "
            "most 12 hours old; the meeting must still not be closed when it arrives"
        ),
        examples=["2026-12-01T19:05:00+07:00"],
    )


class RecordAttendance(BaseModel):
    member_id: Code


class OpenPoll(BaseModel):
    question: ReasonText
    options: Annotated[list[Option], Items(MAX_OPTIONS, min_items=2)] = Field(
        default_factory=lambda: ["Tán thành", "Không tán thành", "Ý kiến khác"]
    )
    kind: Literal["opinion", "vote"] = "vote"


class CastVote(BaseModel):
    option: Option


class RecordMinutes(BaseModel):
    content: Annotated[str, Text(40_000, min_length=0, multiline=True)] = ""
    conclusions: Annotated[list[Conclusion], Items(20)] = Field(default_factory=list)
    document_ids: DocumentIds = Field(default_factory=list)


class GradeMeeting(BaseModel):
    grade: Grade


class SubmitReport(BaseModel):
    summary: Annotated[str, Text(20_000, min_length=0, multiline=True)] = ""


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
                "acknowledged_on_behalf_of": meeting.report_acknowledged_for,
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


@router.post(
    "/meetings",
    status_code=201,
    response_model=MeetingOut,
    responses={
        200: {"model": MeetingOut, "description": "already convened: the same meeting_id again"}
    },
)
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
        starts_at=body.starts_at,
        ends_at=body.ends_at,
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


@router.get("/meetings/{meeting_id}", response_model=MeetingOut)
async def get_meeting(meeting_id: Code, caller: Caller, svc: Service) -> dict[str, Any]:
    meeting, _ = await svc.view(caller, meeting_id)
    return await _detail(svc, caller, meeting)


@router.post("/meetings/{meeting_id}/reschedule", response_model=MeetingOut)
async def reschedule(
    meeting_id: Code, body: RescheduleMeeting, caller: Caller, svc: Service
) -> dict[str, Any]:
    meeting = await svc.reschedule(
        caller,
        meeting_id,
        starts_at=body.starts_at,
        ends_at=body.ends_at,
        location=body.location,
        online_url=body.online_url,
        reason=body.reason,
    )
    return await _detail(svc, caller, meeting)


@router.post("/meetings/{meeting_id}/cancel", response_model=MeetingOut)
async def cancel(meeting_id: Code, body: Reason, caller: Caller, svc: Service) -> dict[str, Any]:
    return await _detail(svc, caller, await svc.cancel(caller, meeting_id, body.reason))


# Absences.


@router.post("/meetings/{meeting_id}/absences", status_code=201, response_model=AbsenceRequestOut)
async def request_absence(
    meeting_id: Code, body: Reason, caller: Caller, svc: Service
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


@router.post(
    "/meetings/{meeting_id}/absences/{member_id}/approve", response_model=AbsenceDecisionOut
)
async def approve_absence(
    meeting_id: Code, member_id: Code, caller: Caller, svc: Service
) -> dict[str, Any]:
    await svc.decide_absence(caller, meeting_id, member_id, approve=True)
    return {"meeting_id": meeting_id, "member_id": member_id, "status": "approved"}


@router.post(
    "/meetings/{meeting_id}/absences/{member_id}/decline", response_model=AbsenceDecisionOut
)
async def decline_absence(
    meeting_id: Code, member_id: Code, body: OptionalReason, caller: Caller, svc: Service
) -> dict[str, Any]:
    await svc.decide_absence(caller, meeting_id, member_id, approve=False, reason=body.reason)
    return {"meeting_id": meeting_id, "member_id": member_id, "status": "declined"}


# Attendance.


@router.get("/meetings/{meeting_id}/checkin-code", response_model=CodeOut)
async def checkin_code(meeting_id: Code, caller: Caller, svc: Service) -> dict[str, Any]:
    """The code to show at the meeting, as digits and as a QR image (SVG data URI)."""
    return code_view(await svc.checkin_code(caller, meeting_id))


@router.get(
    "/meetings/{meeting_id}/checkin-code/qr",
    responses={200: {"content": {"image/svg+xml": {}, "image/png": {}}}},
)
async def checkin_qr(
    meeting_id: Code,
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


@router.post(
    "/meetings/{meeting_id}/check-in",
    status_code=201,
    response_model=CheckInOut,
    responses={200: {"model": CheckInOut, "description": "already recorded: nothing new"}},
)
async def check_in(
    meeting_id: Code, body: CheckInCode, caller: Caller, svc: Service, response: Response
) -> dict[str, Any]:
    """Self check-in with the code the secretary shows; a second check-in changes nothing.
    `typed_at` (optional) is when the code was typed, for a check-in queued offline."""
    result = await svc.check_in(caller, meeting_id, body.code, body.typed_at)
    response.status_code = 201 if result.recorded else 200
    return checkin_view(result)


@router.post(
    "/meetings/{meeting_id}/attendance",
    status_code=201,
    response_model=CheckInOut,
    responses={200: {"model": CheckInOut, "description": "already recorded: nothing new"}},
)
async def record_attendance(
    meeting_id: Code, body: RecordAttendance, caller: Caller, svc: Service, response: Response
) -> dict[str, Any]:
    """The secretary records a member present (for members without a phone)."""
    result = await svc.check_in_for(caller, meeting_id, body.member_id)
    response.status_code = 201 if result.recorded else 200
    return checkin_view(result)


@router.get("/meetings/{meeting_id}/statistics", response_model=MeetingStatisticsOut)
async def meeting_statistics(meeting_id: Code, caller: Caller, svc: Service) -> dict[str, Any]:
    return await svc.statistics(caller, meeting_id)


# Polls.


@router.post("/meetings/{meeting_id}/polls", status_code=201, response_model=PollOut)
async def open_poll(
    meeting_id: Code, body: OpenPoll, caller: Caller, svc: Service
) -> dict[str, Any]:
    return poll_view(
        await svc.open_poll(caller, meeting_id, body.question, body.options, body.kind)
    )


@router.post(
    "/meetings/{meeting_id}/polls/{poll_id}/votes", status_code=201, response_model=VoteOut
)
async def vote(
    meeting_id: Code, poll_id: Code, body: CastVote, caller: Caller, svc: Service
) -> dict[str, Any]:
    await svc.vote(caller, meeting_id, poll_id, body.option)
    return {"meeting_id": meeting_id, "poll_id": poll_id, "message": "Đã ghi nhận biểu quyết"}


@router.post("/meetings/{meeting_id}/polls/{poll_id}/close", response_model=PollOut)
async def close_poll(
    meeting_id: Code, poll_id: Code, caller: Caller, svc: Service
) -> dict[str, Any]:
    return poll_view(await svc.close_poll(caller, meeting_id, poll_id))


# After the meeting.


@router.post("/meetings/{meeting_id}/minutes", response_model=MeetingOut)
async def record_minutes(
    meeting_id: Code, body: RecordMinutes, caller: Caller, svc: Service
) -> dict[str, Any]:
    meeting = await svc.record_minutes(
        caller, meeting_id, body.content, body.conclusions, body.document_ids
    )
    return await _detail(svc, caller, meeting)


@router.post("/meetings/{meeting_id}/close", response_model=MeetingOut)
async def close(meeting_id: Code, caller: Caller, svc: Service) -> dict[str, Any]:
    return await _detail(svc, caller, await svc.close(caller, meeting_id))


@router.post("/meetings/{meeting_id}/grade", response_model=MeetingOut)
async def grade(
    meeting_id: Code, body: GradeMeeting, caller: Caller, svc: Service
) -> dict[str, Any]:
    return await _detail(svc, caller, await svc.grade(caller, meeting_id, body.grade))


@router.post("/meetings/{meeting_id}/report", status_code=201, response_model=MeetingOut)
async def submit_report(
    meeting_id: Code, body: SubmitReport, caller: Caller, svc: Service
) -> dict[str, Any]:
    return await _detail(svc, caller, await svc.submit_report(caller, meeting_id, body.summary))


@router.post("/meetings/{meeting_id}/report/acknowledge", response_model=MeetingOut)
async def acknowledge_report(meeting_id: Code, caller: Caller, svc: Service) -> dict[str, Any]:
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


@router.get("/inbox", tags=["inbox"], response_model=InboxOut)
async def inbox(
    caller: Caller,
    views: Views,
    svc: Service,
    upcoming: bool = False,
    limit: Annotated[int, Interval(ge=1, le=200)] = 50,
) -> dict[str, Any]:
    """The caller's meeting invitations, newest first, with notices of changes."""
    if not caller.member_id:
        raise Forbidden("Tài khoản không gắn với một đảng viên", field="member_id")
    since = svc.clock() if upcoming else None
    docs = await views.inbox(caller.member_id, since, limit)
    return {"member_id": caller.member_id, "invitations": [invitation_view(d) for d in docs]}


# Units: roster, meetings, reports received, statistics.


async def _resolved(units: OrgUnits, unit_id: str) -> Resolved:
    """The unit as it stands now (a merged unit answers as its successor)."""
    resolved = await units.resolve(unit_id)
    if resolved is None:
        raise NotFound(f"Không tìm thấy đơn vị {unit_id}", field="unit_id")
    return resolved


@router.get("/units/{unit_id}/roster", tags=["units"], response_model=RosterOut)
async def unit_roster(
    unit_id: Code, caller: Caller, units: Units, roster: RosterDep, svc: Service
) -> dict[str, Any]:
    """The branch's members as meetings knows them (from identity's events)."""
    resolved = await _resolved(units, unit_id)
    caller.require(READ_ROLES, resolved.path)
    members = await roster.listing(resolved.absorbed)
    now = svc.clock()
    return {
        "unit_id": resolved.id,
        "members": [
            {
                "member_id": m["_id"],
                "full_name": m.get("full_name", ""),
                "status": m.get("status"),
                "approved": m.get("approved", False),
                "expected_at_meetings": counts(m, Purpose.attend, now),
            }
            for m in members
        ],
    }


def summary_view(doc: dict[str, Any]) -> dict[str, Any]:
    view = {k: v for k, v in doc.items() if k not in ("_id", "org_path", "convened_at")}
    view["meeting_id"] = doc["_id"]
    view.update(_times(doc["starts_at"], doc["ends_at"]))
    return view


@router.get("/units/{unit_id}/meetings", tags=["units"], response_model=UnitMeetingsOut)
async def unit_meetings(
    unit_id: Code, caller: Caller, units: Units, views: Views, year: Year | None = None
) -> dict[str, Any]:
    """The unit's meetings (and those of the units merged into it), newest first."""
    resolved = await _resolved(units, unit_id)
    caller.require(READ_ROLES, resolved.path)
    return {
        "unit_id": resolved.id,
        "meetings": [summary_view(d) for d in await views.meetings_of(resolved.absorbed, year)],
    }


@router.get("/units/{unit_id}/reports", tags=["units"], response_model=UnitReportsOut)
async def unit_reports(
    unit_id: Code,
    caller: Caller,
    units: Units,
    views: Views,
    status: Literal["submitted", "acknowledged"] | None = None,
) -> dict[str, Any]:
    """Branch reports sent to this committee (or to a committee merged into it)."""
    resolved = await _resolved(units, unit_id)
    caller.require(READ_ROLES, resolved.path)
    return {
        "unit_id": resolved.id,
        "reports": [summary_view(d) for d in await views.reports_to(resolved.absorbed, status)],
    }


FIGURES = ("meetings", "invited", "present", "excused", "absent_without_leave")


def _rate(figures: dict[str, int]) -> float | None:
    invited = figures.get("invited", 0)
    return round(100 * figures.get("present", 0) / invited, 1) if invited else None


def month_moments(year: int, now: datetime) -> dict[int, datetime]:
    """Each month of `year` that has begun, with the moment its figure is taken: the end
    of its last day in Vietnam, or now for the month under way (sotay_platform.tree)."""
    moments: dict[int, datetime] = {}
    for month in range(1, 13):
        if date(year, month, 1) > local(now).date():
            break
        last = date(year, month, calendar.monthrange(year, month)[1])
        moments[month] = min(now, end_of_day(last))
    return moments


@router.get("/units/{unit_id}/statistics", tags=["statistics"], response_model=UnitStatisticsOut)
async def unit_statistics(
    unit_id: Code,
    caller: Caller,
    units: Units,
    views: Views,
    roster: RosterDep,
    svc: Service,
    year: Year | None = None,
) -> dict[str, Any]:
    """Closed meetings of the unit and the branches under it, by month and for the year;
    members absent without leave from three or more branch meetings are flagged.

    Each month counts the branches of the unit's subtree as the tree stood at the end of
    that month (a merged branch counts in the unit it had merged into by then; a month
    before the unit existed has no row), and the year is the sum of its months."""
    caller.require(READ_ROLES, (await _resolved(units, unit_id)).path)
    now = svc.clock()
    year = year or local(now).year
    tree = await units.tree(unit_id)
    counted = {m: set(tree.subtree(unit_id, at)) for m, at in month_moments(year, now).items()}
    every = sorted(set().union(*counted.values())) if counted else []
    months: dict[int, dict[str, int]] = {}
    for doc in await views.branch_months(every, year) if every else []:
        if doc["unit_id"] not in counted.get(doc["month"], ()):
            continue
        month = months.setdefault(doc["month"], dict.fromkeys(FIGURES, 0))
        for key in FIGURES:
            month[key] += doc.get(key, 0)
    total = {key: sum(m[key] for m in months.values()) for key in FIGURES}
    flagged = await views.flagged(every, year) if every else []
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


@router.get(
    "/members/{member_id}/statistics", tags=["statistics"], response_model=MemberStatisticsOut
)
async def member_statistics(
    member_id: Code,
    caller: Caller,
    units: Units,
    views: Views,
    roster: RosterDep,
    svc: Service,
    year: Year | None = None,
) -> dict[str, Any]:
    """A member's attendance by month and for the year: the member, or their branch's committees."""
    if caller.member_id != member_id:
        member = await roster.get(member_id)
        if member is None or not member.get("branch_id"):
            raise NotFound(f"Không tìm thấy đảng viên {member_id}", field="member_id")
        branch = await units.resolve(member["branch_id"])
        caller.require(READ_ROLES, branch.path if branch else [member["branch_id"]])
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
