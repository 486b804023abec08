"""What the API answers, as models: the OpenAPI document lists every field and every
allowed value, and a response that strays from it fails the schemathesis test."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel

from sotay_events.catalogue.identity import MemberStatus
from sotay_events.catalogue.meetings import MeetingKind
from sotay_meetings.domain import Grade

MeetingStatus = Literal["convened", "cancelled", "closed"]
AbsenceStatus = Literal["pending", "approved", "declined"]
Outcome = Literal["present", "excused", "absent_without_leave"]
ReportStatus = Literal["submitted", "acknowledged"]


class Times(BaseModel):
    starts_at: datetime
    ends_at: datetime
    date_display: str  # dd/mm/yyyy, Asia/Ho_Chi_Minh
    starts_at_display: str
    ends_at_display: str


class PollOut(BaseModel):
    poll_id: str
    question: str
    options: list[str]
    kind: Literal["opinion", "vote"]
    status: Literal["open", "closed"]
    tally: dict[str, int] | None
    voters: int | None


class ReportOut(BaseModel):
    to_unit_id: str
    status: ReportStatus
    summary: str
    acknowledged_on_behalf_of: str | None  # the committee the central office acted for


class AttendanceFigures(BaseModel):
    invited: int
    present: int
    excused: int
    absent_without_leave: int


class AbsenceOut(BaseModel):
    member_id: str
    reason: str
    late: bool
    status: AbsenceStatus
    decline_reason: str | None


class MinutesOut(BaseModel):
    content: str
    conclusions: list[str]
    document_ids: list[str]
    recorded_by: str


class MeetingOut(Times):
    meeting_id: str
    unit_id: str
    org_path: list[str]
    kind: MeetingKind
    kind_label: str
    title: str
    location: str | None
    online_url: str | None
    agenda: list[str]
    document_ids: list[str]
    status: MeetingStatus
    invited: int
    polls: list[PollOut]
    minutes_recorded: bool
    grade: Grade | None
    grade_label: str | None
    report: ReportOut | None
    cancel_reason: str | None = None
    attendance: AttendanceFigures | None = None
    # For readers of the unit only:
    invitee_ids: list[str] | None = None
    absences: list[AbsenceOut] | None = None
    minutes: MinutesOut | None = None


class CodeOut(BaseModel):
    code: str
    valid_until: datetime
    valid_until_display: str
    qr_payload: str
    qr_svg: str  # data:image/svg+xml;base64,...


class CheckInOut(BaseModel):
    meeting_id: str
    member_id: str
    recorded: bool
    already_recorded: bool
    method: Literal["self", "secretary"]
    message: str


class AbsenceRequestOut(BaseModel):
    meeting_id: str
    member_id: str
    status: AbsenceStatus
    late: bool
    message: str


class AbsenceDecisionOut(BaseModel):
    meeting_id: str
    member_id: str
    status: Literal["approved", "declined"]


class VoteOut(BaseModel):
    meeting_id: str
    poll_id: str
    message: str


class MeetingStatisticsOut(AttendanceFigures):
    meeting_id: str
    unit_id: str
    final: bool  # false: live figures before the close
    present_ids: list[str]
    excused_ids: list[str]
    absent_without_leave_ids: list[str]


class NoticeOut(BaseModel):
    kind: Literal["rescheduled", "cancelled"]
    at_display: str
    reason: str
    message: str


class InvitationAbsence(BaseModel):
    status: AbsenceStatus
    reason: str
    late: bool


class InvitationOut(Times):
    meeting_id: str
    unit_id: str | None
    kind: MeetingKind | None
    kind_label: str | None
    title: str | None
    location: str | None
    online_url: str | None
    agenda: list[str]
    document_ids: list[str]
    meeting_status: MeetingStatus | None
    absence: InvitationAbsence | None
    checked_in: bool
    checked_in_at_display: str | None
    outcome: Outcome | None
    notices: list[NoticeOut]


class InboxOut(BaseModel):
    member_id: str
    invitations: list[InvitationOut]


class RosterMember(BaseModel):
    member_id: str
    full_name: str
    status: MemberStatus | None
    approved: bool
    expected_at_meetings: bool


class RosterOut(BaseModel):
    unit_id: str
    members: list[RosterMember]


class SummaryReport(BaseModel):
    status: ReportStatus
    to_unit_id: str
    summary: str = ""
    submitted_at: datetime | None = None
    acknowledged_at: datetime | None = None
    acknowledged_by_unit: str | None = None
    acknowledged_on_behalf_of: str | None = None


class MeetingSummary(Times):
    meeting_id: str
    unit_id: str
    kind: MeetingKind
    title: str
    location: str | None = None
    online_url: str | None = None
    status: MeetingStatus
    invited: int = 0
    present: int | None = None
    excused: int | None = None
    absent_without_leave: int | None = None
    polls: int | None = None
    absence_requests: int | None = None
    poll_results: dict[str, dict[str, int]] | None = None
    conclusions: list[str] | None = None
    minutes_recorded_at: datetime | None = None
    closed_at: datetime | None = None
    grade: Grade | None = None
    cancel_reason: str | None = None
    report: SummaryReport | None = None


class UnitMeetingsOut(BaseModel):
    unit_id: str
    meetings: list[MeetingSummary]


class UnitReportsOut(BaseModel):
    unit_id: str
    reports: list[MeetingSummary]


class Figures(BaseModel):
    meetings: int
    invited: int
    present: int
    excused: int
    absent_without_leave: int
    attendance_rate: float | None  # per cent; null when no one was invited


class MonthFigures(Figures):
    month: int
    period_display: str  # mm/yyyy


class FlaggedMember(BaseModel):
    member_id: str
    full_name: str
    absent_without_leave: int
    missed_meeting_ids: list[str]
    message: str


class UnitStatisticsOut(BaseModel):
    unit_id: str
    year: int
    months: list[MonthFigures]
    total: Figures
    flagged_members: list[FlaggedMember]


class MemberMonth(AttendanceFigures):
    month: int
    period_display: str


class MemberStatisticsOut(BaseModel):
    member_id: str
    year: int
    months: list[MemberMonth]
    total: AttendanceFigures
    flagged: bool
    absent_without_leave_branch_meetings: int
