"""One method per command: load, authorize against the unit's path, decide, commit.

Meeting commands load the meeting's stream (a few dozen events at most) in a unit
of work and commit it with the expected version; a stream that moved meanwhile
runs the command again on fresh state (`retry_on_conflict`). Check-ins and votes
never load it: they read the meeting's hot state from the cache and start a
stream of their own through `GroupCommit`, which writes concurrent ones together.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

from sotay_events import (
    CommandContext,
    ConcurrencyConflict,
    EventStore,
    EventTooLarge,
    UnitOfWork,
    new_event_id,
    retry_on_conflict,
)
from sotay_events.catalogue.meetings import MeetingKind
from sotay_events.catalogue.org_tree import OrgLevel
from sotay_meetings.checkin import (
    CheckinCodes,
    Clock,
    HotMeeting,
    IssuedCode,
    Ledger,
    MeetingCache,
    utc_now,
)
from sotay_meetings.display import datetime_vn
from sotay_meetings.domain import (
    CANCELLED,
    CLOSED,
    Attendance,
    Duplicate,
    Grade,
    Meeting,
    NotInvited,
    Poll,
    Vote,
    Window,
    WrongState,
    WrongTime,
)
from sotay_platform.auth import READ_ROLES, Principal, Role
from sotay_platform.errors import Forbidden, Invalid, NotFound, TooManyRequests
from sotay_platform.org_units import Resolved

log = logging.getLogger(__name__)

BRANCH_LEVELS = {OrgLevel.branch.value, OrgLevel.grassroots_branch.value}
SUPERIOR_ROLES = frozenset({Role.committee_admin, Role.province_admin})
# The central office's operators act for any committee; the event says so.
ON_BEHALF_ROLES = frozenset({Role.system_admin})
WRONG_CODE_WINDOW_SECONDS = 900


def organisers(kind: MeetingKind) -> frozenset[Role]:
    """Who convenes and runs a meeting: the branch secretary; for a committee meeting, the committee too."""
    if kind is MeetingKind.committee:
        return frozenset({Role.branch_secretary, Role.committee_admin})
    return frozenset({Role.branch_secretary})


def attendance_takers(kind: MeetingKind) -> frozenset[Role]:
    return organisers(kind) | {Role.branch_committee_member}


class TooManyAttempts(TooManyRequests):
    code = "too_many_attempts"


class Units(Protocol):
    async def resolve(self, unit_id: str, at: datetime | None = None) -> Resolved | None: ...


class RosterSource(Protocol):
    async def expected(
        self, unit_ids: Sequence[str], kind: MeetingKind, at: datetime
    ) -> list[str]: ...


class UnitsOfWork(Protocol):
    def unit_of_work(self) -> UnitOfWork: ...


@dataclass(frozen=True)
class CheckIn:
    meeting_id: str
    member_id: str
    recorded: bool  # False: already recorded before, nothing new happened
    method: str


class MeetingsService:
    def __init__(
        self,
        store: EventStore,
        *,
        units: Units,
        roster: RosterSource,
        cache: MeetingCache,
        hot_path: UnitsOfWork,
        ledger: Ledger,
        codes: CheckinCodes,
        window: Window | None = None,
        clock: Clock = utc_now,
        max_wrong_codes: int = 10,
        typed_at_skew: timedelta = timedelta(minutes=2),
        typed_at_max_age: timedelta = timedelta(hours=12),
    ) -> None:
        """`hot_path` commits check-ins and votes (a `GroupCommit` over `store`).
        `typed_at_skew`: how far ahead of our clock a phone's `typed_at` may be (clamped to
        now); `typed_at_max_age`: how old a queued offline check-in may be."""
        self.store = store
        self.units = units
        self.roster = roster
        self.cache = cache
        self.hot_path = hot_path
        self.ledger = ledger
        self.codes = codes
        self.window = window or Window()
        self.clock = clock
        self.max_wrong_codes = max_wrong_codes
        self.typed_at_skew = typed_at_skew
        self.typed_at_max_age = typed_at_max_age

    # Loading and saving.

    async def unit(self, unit_id: str, field: str = "unit_id") -> Resolved:
        unit = await self.units.resolve(unit_id)
        if unit is None:
            raise NotFound(
                f"Không tìm thấy đơn vị {unit_id} (hoặc đơn vị đã giải thể)", field=field
            )
        return unit

    async def load(self, meeting_id: str, uow: UnitOfWork | None = None) -> Meeting:
        """The meeting, tracked by `uow` when given (its events commit with it)."""
        meeting = await (uow or self.store.unit_of_work()).get(Meeting, meeting_id)
        if meeting is None:
            raise NotFound(f"Không tìm thấy cuộc họp {meeting_id}", field="meeting_id")
        return meeting

    async def path_of(self, meeting: Meeting) -> list[str]:
        """The unit's path as the tree stands now (after moves and merges)."""
        unit = await self.units.resolve(meeting.unit_id)
        return unit.path if unit else [meeting.unit_id]

    async def _commit(
        self,
        uow: UnitOfWork,
        meeting: Meeting,
        principal: Principal,
        path: Sequence[str],
        correlation_id: str | None = None,
    ) -> None:
        if not meeting.pending:
            return
        context = CommandContext(actor=principal.subject, org_path=tuple(path))
        if correlation_id:
            context = replace(context, correlation_id=correlation_id)
        await _commit(uow, context)
        await self._refresh(meeting, path)

    async def _refresh(self, meeting: Meeting, path: Sequence[str]) -> None:
        try:
            await self.cache.put(HotMeeting.of(meeting, path), meeting.invitees, self.clock())
        except Exception:  # the store holds the truth; a miss later refills the cache
            log.exception("could not refresh the cache of meeting %s", meeting.id)

    async def _hot(self, meeting_id: str, member_id: str | None) -> tuple[HotMeeting, bool]:
        hot, invited = await self.cache.get(meeting_id, member_id)
        if hot is not None:
            return hot, invited
        meeting = await self.load(meeting_id)
        path = await self.path_of(meeting)
        await self._refresh(meeting, path)
        return HotMeeting.of(meeting, path), bool(member_id and meeting.is_invited(member_id))

    def _member_of(self, principal: Principal) -> str:
        if not principal.member_id:
            raise Forbidden("Tài khoản không gắn với một đảng viên", field="member_id")
        return principal.member_id

    # Convening.

    @retry_on_conflict()
    async def convene(
        self,
        principal: Principal,
        *,
        unit_id: str,
        kind: MeetingKind,
        title: str,
        starts_at: datetime,
        ends_at: datetime,
        location: str | None = None,
        online_url: str | None = None,
        agenda: Sequence[str] = (),
        document_ids: Sequence[str] = (),
        meeting_id: str | None = None,
        correlation_id: str | None = None,
    ) -> tuple[Meeting, bool]:
        """Returns the meeting and whether it was convened now; a retried request convenes once."""
        unit = await self.unit(unit_id)
        if kind is not MeetingKind.committee and unit.level not in BRANCH_LEVELS:
            raise Invalid(
                f"Đơn vị {unit.id} không phải chi bộ: chỉ chi bộ tổ chức sinh hoạt chi bộ "
                "(cấp ủy dùng loại 'committee')",
                field="unit_id",
            )
        principal.require(organisers(kind), unit.path)
        uow = self.store.unit_of_work()
        if meeting_id:
            existing = await uow.get(Meeting, meeting_id)
            if existing is not None:
                if (existing.unit_id, existing.title, existing.starts_at) == (
                    unit.id,
                    " ".join(title.split()),
                    starts_at,
                ):
                    return existing, False
                raise Duplicate(
                    f"Mã cuộc họp {meeting_id} đã được dùng cho cuộc họp khác", field="meeting_id"
                )
        now = self.clock()
        invitees = await self.roster.expected(unit.absorbed, kind, now)
        meeting = Meeting.convene(
            meeting_id or new_event_id(),
            unit_id=unit.id,
            kind=kind,
            title=title,
            starts_at=starts_at,
            ends_at=ends_at,
            location=location,
            online_url=online_url,
            agenda=list(agenda),
            document_ids=list(document_ids),
            invitees=invitees,
            now=now,
        )
        uow.add(meeting)
        await self._commit(uow, meeting, principal, unit.path, correlation_id)
        return meeting, True

    async def _organised(
        self, principal: Principal, meeting_id: str, uow: UnitOfWork
    ) -> tuple[Meeting, list[str]]:
        meeting = await self.load(meeting_id, uow)
        path = await self.path_of(meeting)
        principal.require(organisers(meeting.kind), path)
        return meeting, path

    @retry_on_conflict()
    async def reschedule(
        self,
        principal: Principal,
        meeting_id: str,
        *,
        starts_at: datetime,
        ends_at: datetime,
        location: str | None = None,
        online_url: str | None = None,
        reason: str = "",
    ) -> Meeting:
        uow = self.store.unit_of_work()
        meeting, path = await self._organised(principal, meeting_id, uow)
        meeting.reschedule(
            starts_at=starts_at,
            ends_at=ends_at,
            location=location,
            online_url=online_url,
            reason=reason,
            now=self.clock(),
        )
        await self._commit(uow, meeting, principal, path)
        return meeting

    @retry_on_conflict()
    async def cancel(self, principal: Principal, meeting_id: str, reason: str) -> Meeting:
        uow = self.store.unit_of_work()
        meeting, path = await self._organised(principal, meeting_id, uow)
        meeting.cancel(reason)
        await self._commit(uow, meeting, principal, path)
        return meeting

    # Absences.

    @retry_on_conflict()
    async def request_absence(self, principal: Principal, meeting_id: str, reason: str) -> Meeting:
        member_id = self._member_of(principal)
        uow = self.store.unit_of_work()
        meeting = await self.load(meeting_id, uow)
        meeting.request_absence(member_id, reason, self.clock())
        await self._commit(uow, meeting, principal, await self.path_of(meeting))
        return meeting

    @retry_on_conflict()
    async def decide_absence(
        self,
        principal: Principal,
        meeting_id: str,
        member_id: str,
        approve: bool,
        reason: str = "",
    ) -> Meeting:
        uow = self.store.unit_of_work()
        meeting, path = await self._organised(principal, meeting_id, uow)
        meeting.decide_absence(member_id, approve, principal.member_id or principal.subject, reason)
        await self._commit(uow, meeting, principal, path)
        return meeting

    # Attendance: the hot path.

    async def checkin_code(self, principal: Principal, meeting_id: str) -> IssuedCode:
        """The code the secretary shows (digits and QR); it changes every step."""
        hot, _ = await self._hot(meeting_id, None)
        principal.require(attendance_takers(MeetingKind(hot.kind)), hot.org_path)
        now = self.clock()
        self._check_open(hot, now, "điểm danh")
        return self.codes.issue(meeting_id, now)

    def _check_open(self, hot: HotMeeting, now: datetime, what: str) -> None:
        self._check_status(hot)
        self.window.check(hot.starts_at, hot.ends_at, now, what)

    def _check_status(self, hot: HotMeeting) -> None:
        if hot.status == CANCELLED:
            raise WrongState("Cuộc họp đã bị hủy", field="meeting_id", code="cancelled")
        if hot.status == CLOSED:
            raise WrongState("Cuộc họp đã kết thúc", field="meeting_id", code="closed")

    def typed_moment(self, hot: HotMeeting, typed_at: datetime, now: datetime) -> datetime:
        """The moment an offline check-in's code is checked at: `typed_at`, clamped to now
        within the allowed clock skew, never before check-in opened nor older than the
        bound. (Whether the meeting is closed is decided by the store, at commit.)"""
        if typed_at > now + self.typed_at_skew:
            raise WrongTime(
                "Thời điểm nhập mã (typed_at) ở tương lai, đề nghị kiểm tra đồng hồ điện thoại",
                field="typed_at",
                code="typed_in_future",
            )
        typed_at = min(typed_at, now)
        if now - typed_at > self.typed_at_max_age:
            hours = self.typed_at_max_age.total_seconds() / 3600
            raise WrongTime(
                f"Mã điểm danh đã nhập quá {hours:g} giờ trước, không còn được ghi nhận",
                field="typed_at",
                code="typed_too_long_ago",
            )
        opens, closes = self.window.opens(hot.starts_at), self.window.closes(hot.ends_at)
        if typed_at < opens:
            raise WrongTime(
                f"Mã được nhập trước giờ mở điểm danh ({datetime_vn(opens)})",
                field="typed_at",
                code="typed_too_early",
            )
        if typed_at > closes:
            raise WrongTime(
                f"Mã được nhập sau giờ đóng điểm danh ({datetime_vn(closes)})",
                field="typed_at",
                code="typed_too_late",
            )
        return typed_at

    async def check_in(
        self,
        principal: Principal,
        meeting_id: str,
        code: str,
        typed_at: datetime | None = None,
    ) -> CheckIn:
        """Self check-in with the code the secretary shows. `typed_at`: when the member typed
        it (a phone that was offline sends it later); the code is checked at that moment."""
        member_id = self._member_of(principal)
        hot, invited = await self._hot(meeting_id, member_id)
        if not invited:
            raise NotInvited(
                "Đồng chí không có tên trong danh sách mời họp của cuộc họp này",
                field="member_id",
            )
        now = self.clock()
        try:
            if typed_at is None:
                self._check_open(hot, now, "điểm danh")
                moment = now
            else:
                self._check_status(hot)
                moment = self.typed_moment(hot, typed_at, now)
        except (WrongState, WrongTime):
            # A queued check-in sent twice (its first answer lost) stays "already recorded".
            if await self.ledger.is_present(meeting_id, member_id):
                return CheckIn(meeting_id, member_id, False, "self")
            raise
        if not self.codes.verify(meeting_id, code, moment):
            wrong = await self.cache.count_wrong_code(meeting_id, member_id)
            if wrong > self.max_wrong_codes:
                raise TooManyAttempts(
                    "Nhập sai mã điểm danh quá nhiều lần, đề nghị đồng chí báo bí thư chi bộ "
                    "điểm danh giúp",
                    retry_after=WRONG_CODE_WINDOW_SECONDS,
                    field="code",
                )
            raise Invalid(
                "Mã điểm danh không đúng hoặc đã hết hạn, đề nghị nhập mã đang hiển thị",
                field="code",
                code="wrong_code",
            )
        return await self._record(
            hot, member_id, "self", principal, member_id, received_at=now, typed_at=moment
        )

    async def check_in_for(self, principal: Principal, meeting_id: str, member_id: str) -> CheckIn:
        """The secretary records a member present (a member without a phone)."""
        hot, invited = await self._hot(meeting_id, member_id)
        principal.require(attendance_takers(MeetingKind(hot.kind)), hot.org_path)
        if not invited:
            raise NotInvited(
                f"Đảng viên {member_id} không có tên trong danh sách mời họp", field="member_id"
            )
        now = self.clock()
        self._check_open(hot, now, "điểm danh")
        recorder = principal.member_id or principal.subject
        return await self._record(hot, member_id, "secretary", principal, recorder, received_at=now)

    async def _record(
        self,
        hot: HotMeeting,
        member_id: str,
        method: Literal["self", "secretary"],
        principal: Principal,
        recorded_by: str,
        *,
        received_at: datetime,
        typed_at: datetime | None = None,
    ) -> CheckIn:
        attendance, _ = Attendance.record_presence(
            hot.meeting_id,
            hot.unit_id,
            member_id,
            method,
            recorded_by,
            received_at=received_at,
            typed_at=typed_at,
        )
        uow = self.hot_path.unit_of_work()
        uow.add(attendance)
        try:
            await _commit(
                uow, CommandContext(actor=principal.subject, org_path=tuple(hot.org_path))
            )
        except ConcurrencyConflict:
            # The stream exists: the member checked in before, or the close got there first
            # and counted them not present. The store decides, not the cache.
            existing = await self.store.unit_of_work().get(Attendance, attendance.id)
            if existing is not None and existing.closed_as is not None:
                raise WrongState(
                    "Cuộc họp đã kết thúc, không thể điểm danh", field="meeting_id", code="closed"
                ) from None
            return CheckIn(hot.meeting_id, member_id, False, method)
        return CheckIn(hot.meeting_id, member_id, True, method)

    async def attendance(self, principal: Principal, meeting_id: str) -> tuple[Meeting, set[str]]:
        meeting = await self.load(meeting_id)
        principal.require(READ_ROLES, await self.path_of(meeting))
        return meeting, await self.ledger.present(meeting_id)

    # Polls.

    async def open_poll(
        self,
        principal: Principal,
        meeting_id: str,
        question: str,
        options: list[str],
        kind: Literal["opinion", "vote"] = "vote",
    ) -> Poll:
        uow = self.store.unit_of_work()
        meeting, path = await self._organised(principal, meeting_id, uow)
        poll_id = new_event_id()
        meeting.open_poll(poll_id, question, options, kind, self.clock(), self.window)
        await self._commit(uow, meeting, principal, path)
        return meeting.polls[poll_id]

    async def vote(self, principal: Principal, meeting_id: str, poll_id: str, option: str) -> None:
        member_id = self._member_of(principal)
        hot, invited = await self._hot(meeting_id, member_id)
        if not invited:
            raise NotInvited(
                "Đồng chí không có tên trong danh sách mời họp của cuộc họp này",
                field="member_id",
            )
        self._check_open(hot, self.clock(), "biểu quyết")
        options = hot.open_polls.get(poll_id)
        if options is None:
            raise WrongState(
                "Nội dung lấy ý kiến không tồn tại hoặc đã kết thúc",
                field="poll_id",
                code="poll_closed",
            )
        if not await self.ledger.is_present(meeting_id, member_id):
            raise NotInvited(
                "Chỉ đảng viên có mặt (đã điểm danh) mới được biểu quyết",
                field="member_id",
                code="not_present",
            )
        vote, _ = Vote.cast(meeting_id, poll_id, member_id, option, options)
        uow = self.hot_path.unit_of_work()
        uow.add(vote)
        try:
            await _commit(
                uow, CommandContext(actor=principal.subject, org_path=tuple(hot.org_path))
            )
        except ConcurrencyConflict:
            # The stream exists: the member voted before, or the poll's close got there
            # first. The store decides, not the cache (a replica's may still say "open").
            existing = await self.store.unit_of_work().get(Vote, vote.id)
            if existing is not None and existing.closed:
                raise WrongState(
                    "Việc lấy ý kiến đã kết thúc, biểu quyết không được ghi nhận",
                    field="poll_id",
                    code="poll_closed",
                ) from None
            raise Duplicate("Đồng chí đã biểu quyết nội dung này", field="poll_id") from None

    @retry_on_conflict(attempts=5)
    async def close_poll(self, principal: Principal, meeting_id: str, poll_id: str) -> Poll:
        """Tallies the votes in the store and closes every other invitee's vote stream in the
        same transaction: a vote landing between the count and the commit makes the commit
        conflict (counted on the retry); one that comes after finds its stream taken."""
        uow = self.store.unit_of_work()
        meeting, path = await self._organised(principal, meeting_id, uow)
        meeting.poll(poll_id)
        votes = await self.ledger.votes(meeting_id, poll_id)
        poll, unvoted = meeting.close_poll(poll_id, votes)
        for vote in unvoted:
            uow.add(vote)
        await self._commit(uow, meeting, principal, path)
        return poll

    # After the meeting.

    @retry_on_conflict()
    async def record_minutes(
        self,
        principal: Principal,
        meeting_id: str,
        content: str,
        conclusions: list[str],
        document_ids: list[str],
    ) -> Meeting:
        uow = self.store.unit_of_work()
        meeting, path = await self._organised(principal, meeting_id, uow)
        meeting.record_minutes(
            principal.member_id or principal.subject,
            content,
            conclusions,
            document_ids,
            self.clock(),
        )
        await self._commit(uow, meeting, principal, path)
        return meeting

    @retry_on_conflict()
    async def close(self, principal: Principal, meeting_id: str) -> Meeting:
        """Counts who checked in, as the event store has it, and closes every other
        invitee's attendance stream in the same transaction. A check-in that lands
        between the count and the commit makes the commit conflict: it runs again and
        counts it; one that comes after finds its stream taken and is refused."""
        uow = self.store.unit_of_work()
        meeting, path = await self._organised(principal, meeting_id, uow)
        present = await self.ledger.present(meeting_id)
        _, not_present = meeting.close(present, self.clock())
        for attendance in not_present:
            uow.add(attendance)
        await self._commit(uow, meeting, principal, path)
        return meeting

    @retry_on_conflict()
    async def grade(self, principal: Principal, meeting_id: str, grade: Grade) -> Meeting:
        uow = self.store.unit_of_work()
        meeting, path = await self._organised(principal, meeting_id, uow)
        meeting.grade_quality(grade, principal.member_id or principal.subject)
        await self._commit(uow, meeting, principal, path)
        return meeting

    @retry_on_conflict()
    async def submit_report(self, principal: Principal, meeting_id: str, summary: str) -> Meeting:
        uow = self.store.unit_of_work()
        meeting, path = await self._organised(principal, meeting_id, uow)
        if len(path) < 2:
            raise Invalid("Đơn vị không có cấp ủy cấp trên để gửi báo cáo", field="meeting_id")
        meeting.submit_report(path[-2], principal.member_id or principal.subject, summary)
        await self._commit(uow, meeting, principal, path)
        return meeting

    @retry_on_conflict()
    async def acknowledge_report(self, principal: Principal, meeting_id: str) -> Meeting:
        """By the superior committee (or its province); the central office's system admin
        may acknowledge on the committee's behalf, which the event records."""
        uow = self.store.unit_of_work()
        meeting = await self.load(meeting_id, uow)
        path = await self.path_of(meeting)
        if meeting.report_to is None:
            raise WrongState(
                "Chi bộ chưa gửi báo cáo cuộc họp này", field="meeting_id", code="no_report"
            )
        superior_path = await self._path_of_unit(meeting.report_to)
        on_behalf = not principal.covers(SUPERIOR_ROLES, superior_path)
        principal.require(SUPERIOR_ROLES | ON_BEHALF_ROLES, superior_path)
        meeting.acknowledge_report(
            meeting.report_to, principal.member_id or principal.subject, on_behalf=on_behalf
        )
        await self._commit(uow, meeting, principal, path)
        return meeting

    async def _path_of_unit(self, unit_id: str) -> list[str]:
        unit = await self.units.resolve(unit_id)
        return unit.path if unit else [unit_id]

    # Reading.

    async def view(self, principal: Principal, meeting_id: str) -> tuple[Meeting, list[str]]:
        """Invitees see their meeting; secretaries and committees above see their units'."""
        meeting = await self.load(meeting_id)
        path = await self.path_of(meeting)
        if principal.member_id and meeting.is_invited(principal.member_id):
            return meeting, path
        if meeting.report_to and principal.covers(
            SUPERIOR_ROLES, await self._path_of_unit(meeting.report_to)
        ):
            return meeting, path
        principal.require(READ_ROLES, path)
        return meeting, path

    async def statistics(self, principal: Principal, meeting_id: str) -> dict[str, Any]:
        """Invited, present, excused, absent without leave: final once closed, live before."""
        meeting, _ = await self.view(principal, meeting_id)
        if meeting.closing is not None:
            closing = meeting.closing
            present, excused, absent = (
                closing.present_ids,
                closing.excused_ids,
                closing.absent_without_leave_ids,
            )
            final = True
        else:
            checked_in = await self.ledger.present(meeting_id)
            present = [m for m in meeting.invitees if m in checked_in]
            excused = meeting.excused_ids(checked_in)
            absent = [m for m in meeting.invitees if m not in checked_in and m not in excused]
            final = False
        return {
            "meeting_id": meeting.id,
            "unit_id": meeting.unit_id,
            "final": final,
            "invited": len(meeting.invitees),
            "present": len(present),
            "excused": len(excused),
            "absent_without_leave": len(absent),
            "present_ids": present,
            "excused_ids": excused,
            "absent_without_leave_ids": absent,
        }


async def _commit(uow: UnitOfWork, context: CommandContext) -> None:
    try:
        await uow.commit(context)
    except EventTooLarge:
        # The request models bound every field; this is the last line before the broker.
        raise Invalid(
            "Nội dung quá lớn để lưu và gửi đi, đề nghị rút gọn", field=None, code="too_large"
        ) from None
