"""Meetings' aggregates: every rule about a meeting's life lives here, without I/O.

`Meeting` carries the meeting from convening to the report acknowledged by the
superior committee. A check-in (`Attendance`) and a vote (`Vote`) are streams of
their own, one per member, each holding a single event appended at version 0:
two hundred members checking in at once never touch the same stream, and a
repeated check-in is a duplicate of a stream that already exists.

Times given to commands are aware datetimes in UTC; `now` is always passed in,
so the rules can be tested at any hour.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from sotay_events import Aggregate, DomainEvent
from sotay_events.catalogue.meetings import (
    AbsenceApproved,
    AbsenceDeclined,
    AbsenceRequested,
    AttendanceClosed,
    AttendanceRecorded,
    BranchReportAcknowledged,
    BranchReportSubmitted,
    MeetingCancelled,
    MeetingClosed,
    MeetingConvened,
    MeetingGraded,
    MeetingKind,
    MeetingRescheduled,
    MinutesRecorded,
    PollClosed,
    PollOpened,
    VoteClosed,
    VoteRecorded,
)
from sotay_meetings.display import datetime_vn
from sotay_platform.errors import Conflict, Forbidden, Invalid

Grade = Literal["excellent", "good", "average", "poor"]
GRADE_LABELS: dict[str, str] = {
    "excellent": "Tốt",
    "good": "Khá",
    "average": "Trung bình",
    "poor": "Kém",
}
KIND_LABELS: dict[MeetingKind, str] = {
    MeetingKind.regular: "Sinh hoạt chi bộ thường kỳ",
    MeetingKind.thematic: "Sinh hoạt chuyên đề",
    MeetingKind.committee: "Sinh hoạt chi ủy, cấp ủy",
    MeetingKind.extraordinary: "Sinh hoạt bất thường",
}

MAX_DURATION = timedelta(hours=24)
MAX_AGENDA = 50
MAX_POLLS = 50
MAX_OPTIONS = 20

CONVENED, CANCELLED, CLOSED = "convened", "cancelled", "closed"
PENDING, APPROVED, DECLINED = "pending", "approved", "declined"


class RuleBroken(Invalid):
    """Bad input for the rule (422); `field` names the input at fault."""

    code = "rule_broken"


class WrongTime(Invalid):
    """Too early or too late for this action (422)."""

    code = "wrong_time"


class WrongState(Conflict):
    """The meeting is not in a state that allows it: cancelled, closed, not yet closed (409)."""

    code = "wrong_state"


class Duplicate(Conflict):
    """Already done: the same action twice (409)."""

    code = "duplicate"


class NotInvited(Forbidden):
    """The member is not on this meeting's list (403)."""

    code = "not_invited"


@dataclass(frozen=True)
class Window:
    """When members may check in and vote: from a while before the start to a while after the end."""

    opens_before: timedelta = timedelta(minutes=30)
    closes_after: timedelta = timedelta(minutes=30)

    def opens(self, starts_at: datetime) -> datetime:
        return starts_at - self.opens_before

    def closes(self, ends_at: datetime) -> datetime:
        return ends_at + self.closes_after

    def check(self, starts_at: datetime, ends_at: datetime, now: datetime, what: str) -> None:
        if now < self.opens(starts_at):
            raise WrongTime(
                f"Chưa đến giờ {what}: mở từ {datetime_vn(self.opens(starts_at))}",
                field="meeting_id",
                code="too_early",
            )
        if now > self.closes(ends_at):
            raise WrongTime(
                f"Đã hết giờ {what}: đóng lúc {datetime_vn(self.closes(ends_at))}",
                field="meeting_id",
                code="too_late",
            )


@dataclass
class Absence:
    reason: str
    late: bool
    status: str = PENDING
    decided_by: str | None = None
    decline_reason: str = ""


@dataclass
class Poll:
    poll_id: str
    question: str
    options: list[str]
    kind: str
    open: bool = True
    tally: dict[str, int] = field(default_factory=dict)
    voters: int = 0


@dataclass
class Minutes:
    recorded_by: str
    content: str
    conclusions: list[str]
    document_ids: list[str]


class Meeting(Aggregate):
    aggregate_type = "Meeting"

    def __init__(self, aggregate_id: str) -> None:
        super().__init__(aggregate_id)
        self.unit_id = ""
        self.kind = MeetingKind.regular
        self.title = ""
        self.starts_at = datetime.min
        self.ends_at = datetime.min
        self.location: str | None = None
        self.online_url: str | None = None
        self.agenda: list[str] = []
        self.document_ids: list[str] = []
        self.invitees: list[str] = []
        self._invited: set[str] = set()
        self.status = CONVENED
        self.cancel_reason = ""
        self.reschedules = 0
        self.absences: dict[str, Absence] = {}
        self.polls: dict[str, Poll] = {}
        self.minutes: Minutes | None = None
        self.closing: MeetingClosed | None = None
        self.grade: str | None = None
        self.graded_by: str | None = None
        self.report_to: str | None = None
        self.report_summary = ""
        self.report_submitted_by: str | None = None
        self.report_acknowledged_by: str | None = None
        self.report_acknowledged_for: str | None = None  # on behalf of (the central office)

    # State: events are facts, no rules here.

    def apply(self, event: DomainEvent) -> None:
        match event:
            case MeetingConvened():
                self.unit_id, self.kind, self.title = event.unit_id, event.kind, event.title
                self.starts_at, self.ends_at = event.starts_at, event.ends_at
                self.location, self.online_url = event.location, event.online_url
                self.agenda, self.document_ids = list(event.agenda), list(event.document_ids)
                self.invitees = list(event.invitee_ids)
                self._invited = set(event.invitee_ids)
                self.status = CONVENED
            case MeetingRescheduled():
                self.starts_at, self.ends_at = event.starts_at, event.ends_at
                self.location, self.online_url = event.location, event.online_url
                self.reschedules += 1
            case MeetingCancelled():
                self.status, self.cancel_reason = CANCELLED, event.reason
            case AbsenceRequested():
                self.absences[event.member_id] = Absence(event.reason, event.late)
            case AbsenceApproved():
                absence = self.absences[event.member_id]
                absence.status, absence.decided_by = APPROVED, event.decided_by
            case AbsenceDeclined():
                absence = self.absences[event.member_id]
                absence.status, absence.decided_by = DECLINED, event.decided_by
                absence.decline_reason = event.reason
            case PollOpened():
                self.polls[event.poll_id] = Poll(
                    event.poll_id, event.question, list(event.options), event.kind
                )
            case PollClosed():
                poll = self.polls[event.poll_id]
                poll.open, poll.tally, poll.voters = False, dict(event.tally), event.voters
            case MinutesRecorded():
                self.minutes = Minutes(
                    event.recorded_by,
                    event.content,
                    list(event.conclusions),
                    list(event.document_ids),
                )
            case MeetingClosed():
                self.status, self.closing = CLOSED, event
            case MeetingGraded():
                self.grade, self.graded_by = event.grade, event.graded_by
            case BranchReportSubmitted():
                self.report_to, self.report_summary = event.to_unit_id, event.summary
                self.report_submitted_by = event.submitted_by
            case BranchReportAcknowledged():
                self.report_acknowledged_by = event.acknowledged_by
                self.report_acknowledged_for = event.on_behalf_of

    # Queries.

    def is_invited(self, member_id: str) -> bool:
        return member_id in self._invited

    @property
    def open_polls(self) -> dict[str, list[str]]:
        return {p.poll_id: p.options for p in self.polls.values() if p.open}

    def excused_ids(self, present: set[str]) -> list[str]:
        return [
            m
            for m in self.invitees
            if m not in present and (a := self.absences.get(m)) and a.status == APPROVED
        ]

    # Commands.

    @classmethod
    def convene(
        cls,
        meeting_id: str,
        *,
        unit_id: str,
        kind: MeetingKind,
        title: str,
        starts_at: datetime,
        ends_at: datetime,
        location: str | None,
        online_url: str | None,
        agenda: list[str],
        document_ids: list[str],
        invitees: list[str],
        now: datetime,
    ) -> Meeting:
        title = _clean(title, "title", "Tiêu đề cuộc họp", 300)
        _check_times(starts_at, ends_at, now)
        location, online_url = _check_place(location, online_url)
        agenda = [" ".join(item.split()) for item in agenda if item.strip()]
        if len(agenda) > MAX_AGENDA:
            raise RuleBroken(f"Chương trình họp tối đa {MAX_AGENDA} nội dung", field="agenda")
        if not invitees:
            raise RuleBroken(
                "Đơn vị chưa có đảng viên nào phải dự họp (chính thức hoặc dự bị, đã được duyệt)"
                if kind is not MeetingKind.committee
                else "Đơn vị chưa có cấp ủy viên nào để mời họp",
                field="unit_id",
                code="no_invitees",
            )
        meeting = cls(meeting_id)
        meeting.record(
            MeetingConvened(
                meeting_id=meeting_id,
                unit_id=unit_id,
                kind=kind,
                title=title,
                starts_at=starts_at,
                ends_at=ends_at,
                location=location,
                online_url=online_url,
                agenda=agenda,
                document_ids=list(dict.fromkeys(document_ids)),
                invitee_ids=list(dict.fromkeys(invitees)),
            )
        )
        return meeting

    def reschedule(
        self,
        *,
        starts_at: datetime,
        ends_at: datetime,
        location: str | None,
        online_url: str | None,
        reason: str,
        now: datetime,
    ) -> None:
        self._require_convened()
        if now >= self.starts_at:
            raise WrongTime(
                "Cuộc họp đã bắt đầu, không thể dời lịch", field="starts_at", code="started"
            )
        _check_times(starts_at, ends_at, now)
        location, online_url = _check_place(
            location if location is not None else self.location,
            online_url if online_url is not None else self.online_url,
        )
        if (starts_at, ends_at, location, online_url) == (
            self.starts_at,
            self.ends_at,
            self.location,
            self.online_url,
        ):
            return  # nothing changes: the same request twice notifies once
        self.record(
            MeetingRescheduled(
                meeting_id=self.id,
                unit_id=self.unit_id,
                starts_at=starts_at,
                ends_at=ends_at,
                location=location,
                online_url=online_url,
                reason=" ".join(reason.split()),
            )
        )

    def cancel(self, reason: str) -> None:
        if self.status == CANCELLED:
            raise Duplicate("Cuộc họp đã bị hủy trước đó", field="meeting_id")
        self._require_convened()
        reason = _clean(reason, "reason", "Lý do hủy", 1000)
        self.record(MeetingCancelled(meeting_id=self.id, unit_id=self.unit_id, reason=reason))

    def request_absence(self, member_id: str, reason: str, now: datetime) -> None:
        self._require_invited(member_id)
        self._require_convened()
        reason = _clean(reason, "reason", "Lý do xin vắng", 1000)
        if member_id in self.absences:
            current = self.absences[member_id]
            raise Duplicate(
                "Đồng chí đã gửi đơn xin vắng cho cuộc họp này"
                + {PENDING: " (đang chờ duyệt)", APPROVED: " (đã được duyệt)"}.get(
                    current.status, " (đã bị từ chối)"
                ),
                field="member_id",
            )
        self.record(
            AbsenceRequested(
                meeting_id=self.id, member_id=member_id, reason=reason, late=now >= self.starts_at
            )
        )

    def decide_absence(self, member_id: str, approve: bool, by: str, reason: str = "") -> None:
        self._require_convened()
        absence = self.absences.get(member_id)
        if absence is None:
            raise RuleBroken(
                f"Đảng viên {member_id} chưa gửi đơn xin vắng họp",
                field="member_id",
                code="no_request",
            )
        if absence.status != PENDING:
            raise Duplicate(
                "Đơn xin vắng đã được "
                + ("duyệt" if absence.status == APPROVED else "từ chối")
                + " trước đó",
                field="member_id",
            )
        if approve:
            self.record(AbsenceApproved(meeting_id=self.id, member_id=member_id, decided_by=by))
        else:
            self.record(
                AbsenceDeclined(
                    meeting_id=self.id,
                    member_id=member_id,
                    decided_by=by,
                    reason=" ".join(reason.split()),
                )
            )

    def open_poll(
        self,
        poll_id: str,
        question: str,
        options: list[str],
        kind: Literal["opinion", "vote"],
        now: datetime,
        window: Window,
    ) -> None:
        self._require_convened()
        window.check(self.starts_at, self.ends_at, now, "lấy ý kiến, biểu quyết")
        if poll_id in self.polls:
            raise Duplicate("Nội dung lấy ý kiến này đã được mở", field="poll_id")
        if len(self.polls) >= MAX_POLLS:
            raise RuleBroken(f"Mỗi cuộc họp tối đa {MAX_POLLS} lần lấy ý kiến", field="poll_id")
        question = _clean(question, "question", "Nội dung lấy ý kiến", 1000)
        cleaned = [" ".join(o.split()) for o in options]
        if any(not o for o in cleaned):
            raise RuleBroken("Phương án không được để trống", field="options")
        if len(set(cleaned)) != len(cleaned):
            raise RuleBroken("Các phương án không được trùng nhau", field="options")
        if not 2 <= len(cleaned) <= MAX_OPTIONS:
            raise RuleBroken(f"Cần từ 2 đến {MAX_OPTIONS} phương án", field="options")
        self.record(
            PollOpened(
                meeting_id=self.id, poll_id=poll_id, question=question, options=cleaned, kind=kind
            )
        )

    def poll(self, poll_id: str) -> Poll:
        poll = self.polls.get(poll_id)
        if poll is None:
            raise RuleBroken("Không tìm thấy nội dung lấy ý kiến", field="poll_id", code="no_poll")
        return poll

    def close_poll(self, poll_id: str, votes: dict[str, str]) -> tuple[Poll, list[Vote]]:
        """The tally of `votes` (the store's), and for each invitee who did not vote the one
        event of their vote stream (`VoteClosed`): committed with `PollClosed`, they leave
        no room for a vote to land uncounted after the tally."""
        poll = self.poll(poll_id)
        if not poll.open:
            raise Duplicate("Việc lấy ý kiến này đã kết thúc", field="poll_id")
        tally = dict.fromkeys(poll.options, 0)
        counted = 0
        for member_id, option in votes.items():
            if self.is_invited(member_id) and option in tally:
                tally[option] += 1
                counted += 1
        self.record(PollClosed(meeting_id=self.id, poll_id=poll_id, tally=tally, voters=counted))
        return poll, [Vote.close_for(self.id, poll_id, m) for m in self.invitees if m not in votes]

    def record_minutes(
        self,
        by: str,
        content: str,
        conclusions: list[str],
        document_ids: list[str],
        now: datetime,
    ) -> None:
        if self.status == CANCELLED:
            raise WrongState("Cuộc họp đã bị hủy", field="meeting_id", code="cancelled")
        if now < self.starts_at:
            raise WrongTime(
                f"Cuộc họp chưa bắt đầu (bắt đầu lúc {datetime_vn(self.starts_at)})",
                field="meeting_id",
            )
        if self.report_to is not None:
            raise WrongState(
                "Báo cáo đã gửi cấp ủy cấp trên, không thể sửa biên bản",
                field="content",
                code="report_submitted",
            )
        content = content.strip()
        conclusions = [" ".join(c.split()) for c in conclusions if c.strip()]
        if not content and not conclusions:
            raise RuleBroken("Biên bản cần có nội dung hoặc ít nhất một kết luận", field="content")
        self.record(
            MinutesRecorded(
                meeting_id=self.id,
                unit_id=self.unit_id,
                recorded_by=by,
                conclusions=conclusions,
                content=content,
                document_ids=list(dict.fromkeys(document_ids)),
            )
        )

    def close(self, present: set[str], now: datetime) -> tuple[MeetingClosed, list[Attendance]]:
        """The final attendance, and for each invitee not present the one event of their
        attendance stream (`AttendanceClosed`): committed together, they leave no room for
        a check-in to land uncounted after the close."""
        if self.status == CLOSED:
            raise Duplicate("Cuộc họp đã kết thúc trước đó", field="meeting_id")
        self._require_convened()
        if now < self.starts_at:
            raise WrongTime(
                f"Cuộc họp chưa bắt đầu (bắt đầu lúc {datetime_vn(self.starts_at)})",
                field="meeting_id",
            )
        still_open = [p.poll_id for p in self.polls.values() if p.open]
        if still_open:
            raise WrongState(
                "Còn nội dung lấy ý kiến chưa kết thúc", field="poll_id", code="poll_open"
            )
        present_ids = [m for m in self.invitees if m in present]
        excused_ids = self.excused_ids(present)
        excused = set(excused_ids)
        absent_ids = [m for m in self.invitees if m not in present and m not in excused]
        event = MeetingClosed(
            meeting_id=self.id,
            unit_id=self.unit_id,
            kind=self.kind,
            invited=len(self.invitees),
            present=len(present_ids),
            excused=len(excused_ids),
            absent_without_leave=len(absent_ids),
            starts_at=self.starts_at,
            present_ids=present_ids,
            excused_ids=excused_ids,
            absent_without_leave_ids=absent_ids,
        )
        self.record(event)
        closed = [
            Attendance.close_for(self.id, self.unit_id, m, "excused") for m in excused_ids
        ] + [
            Attendance.close_for(self.id, self.unit_id, m, "absent_without_leave")
            for m in absent_ids
        ]
        return event, closed

    def grade_quality(self, grade: Grade, by: str) -> None:
        self._require_closed("đánh giá chất lượng")
        if self.grade is not None:
            raise Duplicate(
                f"Cuộc họp đã được đánh giá ({GRADE_LABELS[self.grade]})", field="grade"
            )
        self.record(
            MeetingGraded(meeting_id=self.id, unit_id=self.unit_id, grade=grade, graded_by=by)
        )

    def submit_report(self, to_unit_id: str, by: str, summary: str) -> None:
        self._require_closed("gửi báo cáo")
        if self.report_to is not None:
            raise Duplicate("Báo cáo đã được gửi cấp ủy cấp trên", field="meeting_id")
        if self.minutes is None:
            raise RuleBroken(
                "Cần ghi biên bản cuộc họp trước khi gửi báo cáo",
                field="minutes",
                code="no_minutes",
            )
        self.record(
            BranchReportSubmitted(
                meeting_id=self.id,
                unit_id=self.unit_id,
                to_unit_id=to_unit_id,
                submitted_by=by,
                summary=summary.strip(),
            )
        )

    def acknowledge_report(self, by_unit_id: str, by: str, on_behalf: bool = False) -> None:
        """`on_behalf`: the central office acknowledges for the committee `by_unit_id`."""
        if self.report_to is None:
            raise WrongState(
                "Chi bộ chưa gửi báo cáo cuộc họp này", field="meeting_id", code="no_report"
            )
        if self.report_acknowledged_by is not None:
            raise Duplicate("Báo cáo đã được tiếp nhận trước đó", field="meeting_id")
        self.record(
            BranchReportAcknowledged(
                meeting_id=self.id,
                unit_id=self.unit_id,
                by_unit_id=by_unit_id,
                acknowledged_by=by,
                on_behalf_of=by_unit_id if on_behalf else None,
            )
        )

    def _require_convened(self) -> None:
        if self.status == CANCELLED:
            raise WrongState("Cuộc họp đã bị hủy", field="meeting_id", code="cancelled")
        if self.status == CLOSED:
            raise WrongState("Cuộc họp đã kết thúc", field="meeting_id", code="closed")

    def _require_closed(self, what: str) -> None:
        if self.status != CLOSED:
            raise WrongState(
                f"Cần kết thúc cuộc họp trước khi {what}", field="meeting_id", code="not_closed"
            )

    def _require_invited(self, member_id: str) -> None:
        if not self.is_invited(member_id):
            raise NotInvited(
                "Đồng chí không có tên trong danh sách mời họp của cuộc họp này",
                field="member_id",
            )


class Attendance(Aggregate):
    """One member at one meeting: id `<meeting_id>:<member_id>`, one event, version 1."""

    aggregate_type = "Attendance"

    def __init__(self, aggregate_id: str) -> None:
        super().__init__(aggregate_id)
        self.method: str | None = None
        self.closed_as: str | None = None  # the meeting closed before the member checked in

    @staticmethod
    def stream_id(meeting_id: str, member_id: str) -> str:
        return f"{meeting_id}:{member_id}"

    def apply(self, event: DomainEvent) -> None:
        if isinstance(event, AttendanceRecorded):
            self.method = event.method
        elif isinstance(event, AttendanceClosed):
            self.closed_as = event.outcome

    @classmethod
    def close_for(
        cls,
        meeting_id: str,
        unit_id: str,
        member_id: str,
        outcome: Literal["excused", "absent_without_leave"],
    ) -> Attendance:
        attendance = cls(cls.stream_id(meeting_id, member_id))
        attendance.record(
            AttendanceClosed(
                meeting_id=meeting_id, unit_id=unit_id, member_id=member_id, outcome=outcome
            )
        )
        return attendance

    @classmethod
    def record_presence(
        cls,
        meeting_id: str,
        unit_id: str,
        member_id: str,
        method: Literal["self", "secretary"],
        recorded_by: str,
        *,
        received_at: datetime | None = None,
        typed_at: datetime | None = None,
    ) -> tuple[Attendance, AttendanceRecorded]:
        attendance = cls(cls.stream_id(meeting_id, member_id))
        event = AttendanceRecorded(
            meeting_id=meeting_id,
            unit_id=unit_id,
            member_id=member_id,
            method=method,
            recorded_by=recorded_by,
            typed_at=typed_at,
            received_at=received_at,
        )
        attendance.record(event)
        return attendance, event


class Vote(Aggregate):
    """One member's vote on one poll: id `<meeting_id>:<poll_id>:<member_id>`."""

    aggregate_type = "Vote"

    def __init__(self, aggregate_id: str) -> None:
        super().__init__(aggregate_id)
        self.option: str | None = None
        self.closed = False  # the poll closed before the member voted

    @staticmethod
    def stream_id(meeting_id: str, poll_id: str, member_id: str) -> str:
        return f"{meeting_id}:{poll_id}:{member_id}"

    def apply(self, event: DomainEvent) -> None:
        if isinstance(event, VoteRecorded):
            self.option = event.option
        elif isinstance(event, VoteClosed):
            self.closed = True

    @classmethod
    def close_for(cls, meeting_id: str, poll_id: str, member_id: str) -> Vote:
        vote = cls(cls.stream_id(meeting_id, poll_id, member_id))
        vote.record(VoteClosed(meeting_id=meeting_id, poll_id=poll_id, member_id=member_id))
        return vote

    @classmethod
    def cast(
        cls, meeting_id: str, poll_id: str, member_id: str, option: str, options: list[str]
    ) -> tuple[Vote, VoteRecorded]:
        if option not in options:
            raise RuleBroken(
                "Phương án không có trong danh sách: " + ", ".join(options), field="option"
            )
        vote = cls(cls.stream_id(meeting_id, poll_id, member_id))
        event = VoteRecorded(
            meeting_id=meeting_id, poll_id=poll_id, member_id=member_id, option=option
        )
        vote.record(event)
        return vote, event


def _clean(value: str, field: str, label: str, limit: int) -> str:
    value = " ".join(value.split())
    if not value:
        raise RuleBroken(f"{label} không được để trống", field=field)
    if len(value) > limit:
        raise RuleBroken(f"{label} dài quá {limit} ký tự", field=field)
    return value


def _check_times(starts_at: datetime, ends_at: datetime, now: datetime) -> None:
    if starts_at <= now:
        raise WrongTime("Thời gian bắt đầu phải sau thời điểm hiện tại", field="starts_at")
    if ends_at <= starts_at:
        raise RuleBroken("Thời gian kết thúc phải sau thời gian bắt đầu", field="ends_at")
    if ends_at - starts_at > MAX_DURATION:
        raise RuleBroken("Một cuộc họp không kéo dài quá 24 giờ", field="ends_at")


def _check_place(location: str | None, online_url: str | None) -> tuple[str | None, str | None]:
    location = " ".join(location.split()) if location else None
    online_url = online_url.strip() if online_url else None
    if not location and not online_url:
        raise RuleBroken("Cần ghi địa điểm họp hoặc đường dẫn họp trực tuyến", field="location")
    if location and len(location) > 500:
        raise RuleBroken("Địa điểm dài quá 500 ký tự", field="location")
    if online_url and not online_url.startswith(("https://", "http://")):
        raise RuleBroken("Đường dẫn họp trực tuyến phải bắt đầu bằng https://", field="online_url")
    return location or None, online_url or None
