"""Facts about branch and committee meetings, published by meetings."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import Field

from sotay_events import topics
from sotay_events.catalogue.base import DomainEvent, register


class MeetingKind(StrEnum):
    regular = "regular"
    thematic = "thematic"
    committee = "committee"
    extraordinary = "extraordinary"


class _MeetingEvent(DomainEvent):
    aggregate_type = "Meeting"
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
class AbsenceRequested(_MeetingEvent):
    """A member asked leave from a meeting, with a reason."""

    event_type = "AbsenceRequested"

    meeting_id: str
    member_id: str
    reason: str
    late: bool = Field(False, description="asked after the meeting started")
