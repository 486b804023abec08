"""Facts about branch and committee meetings, published by meetings.

A check-in is a fact about one member at one meeting, in a stream of its own
(aggregate `Attendance`), so that a meeting's size never adds to its cost. A
vote is the same: one stream per member and poll (aggregate `Vote`).

A member's `Attendance` stream holds exactly one event: `AttendanceRecorded`
(present) or, written by the close in the same transaction as `MeetingClosed`,
`AttendanceClosed` (not present when the meeting closed). The event store's
unique (stream, version) index lets only one of them exist, so a check-in
still in flight when the meeting closes is either counted by the close or
refused; it is never recorded without being counted. A member's `Vote` stream is the
same: `VoteRecorded`, or `VoteClosed` written by the poll's close with `PollClosed`.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import Field

from sotay_events import topics
from sotay_events.catalogue.base import DomainEvent, register


class MeetingKind(StrEnum):
    regular = "regular"  # sinh hoạt thường kỳ (monthly)
    thematic = "thematic"  # sinh hoạt chuyên đề
    committee = "committee"  # sinh hoạt chi ủy, cấp ủy
    extraordinary = "extraordinary"  # bất thường


class _MeetingEvent(DomainEvent):
    aggregate_type = "Meeting"
    topic = topics.MEETINGS


class _AttendanceEvent(DomainEvent):
    aggregate_type = "Attendance"
    topic = topics.MEETINGS


class _VoteEvent(DomainEvent):
    aggregate_type = "Vote"
    topic = topics.MEETINGS


@register
class MeetingConvened(_MeetingEvent):
    """A meeting was called and its invitation sent to every member expected."""

    event_type = "MeetingConvened"

    meeting_id: str
    unit_id: str
    kind: MeetingKind
    title: str
    starts_at: datetime
    ends_at: datetime
    location: str | None = None
    online_url: str | None = None
    agenda: list[str] = Field(default_factory=list)
    document_ids: list[str] = Field(default_factory=list)
    invitee_ids: list[str] = Field(default_factory=list)


@register
class MeetingRescheduled(_MeetingEvent):
    event_type = "MeetingRescheduled"

    meeting_id: str
    unit_id: str
    starts_at: datetime
    ends_at: datetime
    location: str | None = None
    online_url: str | None = None
    reason: str = ""


@register
class MeetingCancelled(_MeetingEvent):
    event_type = "MeetingCancelled"

    meeting_id: str
    unit_id: str
    reason: str


@register
class AbsenceRequested(_MeetingEvent):
    """A member asked leave from a meeting, with a reason."""

    event_type = "AbsenceRequested"

    meeting_id: str
    member_id: str
    reason: str
    late: bool = Field(False, description="asked after the meeting started")


@register
class AbsenceApproved(_MeetingEvent):
    event_type = "AbsenceApproved"

    meeting_id: str
    member_id: str
    decided_by: str


@register
class AbsenceDeclined(_MeetingEvent):
    event_type = "AbsenceDeclined"

    meeting_id: str
    member_id: str
    decided_by: str
    reason: str = ""


@register
class AttendanceRecorded(_AttendanceEvent):
    """A member was present: checked in themselves with the meeting's code, or recorded by the secretary."""

    event_type = "AttendanceRecorded"

    meeting_id: str
    unit_id: str
    member_id: str
    method: Literal["self", "secretary"]
    recorded_by: str | None = Field(
        None, description="who recorded it: the member or the secretary"
    )
    typed_at: datetime | None = Field(
        None,
        description="self check-in: when the member typed the code (the code was checked "
        "against this moment; earlier than `received_at` when the phone was offline)",
    )
    received_at: datetime | None = Field(None, description="when the service received it")


@register
class AttendanceClosed(_AttendanceEvent):
    """The meeting closed without the member checking in: the stream's one event, so no
    check-in can be recorded after the close counted who was present."""

    event_type = "AttendanceClosed"

    meeting_id: str
    unit_id: str
    member_id: str
    outcome: Literal["excused", "absent_without_leave"]


@register
class PollOpened(_MeetingEvent):
    event_type = "PollOpened"

    meeting_id: str
    poll_id: str
    question: str
    options: list[str]
    kind: Literal["opinion", "vote"] = "vote"


@register
class PollClosed(_MeetingEvent):
    """The poll's tally: votes per option, no member named."""

    event_type = "PollClosed"

    meeting_id: str
    poll_id: str
    tally: dict[str, int]
    voters: int


@register
class VoteRecorded(_VoteEvent):
    """One member present voted on a poll; its stream is `<meeting_id>:<poll_id>:<member_id>`."""

    event_type = "VoteRecorded"

    meeting_id: str
    poll_id: str
    member_id: str
    option: str


@register
class VoteClosed(_VoteEvent):
    """The poll closed without the member voting: the stream's one event, written with
    `PollClosed` in one transaction, so no vote can be recorded after the tally counted."""

    event_type = "VoteClosed"

    meeting_id: str
    poll_id: str
    member_id: str


@register
class MinutesRecorded(_MeetingEvent):
    event_type = "MinutesRecorded"

    meeting_id: str
    unit_id: str
    recorded_by: str
    conclusions: list[str] = Field(default_factory=list)
    content: str = ""
    document_ids: list[str] = Field(default_factory=list)


@register
class MeetingClosed(_MeetingEvent):
    """The meeting ended; its attendance is final."""

    event_type = "MeetingClosed"

    meeting_id: str
    unit_id: str
    kind: MeetingKind
    invited: int
    present: int
    excused: int
    absent_without_leave: int
    # The final attendance, member by member, so that a consumer needs no other event
    # (check-ins travel on other keys and may arrive later).
    starts_at: datetime | None = None
    present_ids: list[str] = Field(default_factory=list)
    excused_ids: list[str] = Field(default_factory=list)
    absent_without_leave_ids: list[str] = Field(default_factory=list)


@register
class MeetingGraded(_MeetingEvent):
    event_type = "MeetingGraded"

    meeting_id: str
    unit_id: str
    grade: Literal["excellent", "good", "average", "poor"]
    graded_by: str


@register
class BranchReportSubmitted(_MeetingEvent):
    """The branch's report on the meeting, sent to the superior committee."""

    event_type = "BranchReportSubmitted"

    meeting_id: str
    unit_id: str
    to_unit_id: str
    submitted_by: str
    summary: str = ""


@register
class BranchReportAcknowledged(_MeetingEvent):
    event_type = "BranchReportAcknowledged"

    meeting_id: str
    unit_id: str
    by_unit_id: str
    acknowledged_by: str
    on_behalf_of: str | None = Field(
        None,
        description=(
            "set when the central office's system admin acknowledged for the committee "
            "`by_unit_id` (the committee's unit id); null when the committee itself did"
        ),
    )
