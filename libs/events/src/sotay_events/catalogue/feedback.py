"""Facts about members' feedback, published by feedback.

A submission (góp ý, phản ánh, đề xuất, kiến nghị, hỏi đáp) is one stream
(aggregate `Feedback`). Its events carry what reporting counts, per branch and
month: the branch concerned, the kind, the body holding it, the times and the
deadline. They never carry the member or the text: who wrote it, what it says,
what was added and the answers stay in feedback's private records.

The one event with text is `QaEntryPublished`: the anonymised question and the
answer that the answering body chose to publish in its committee's Q&A, public
to the members of that committee's subtree by intent.

A committee's routing table (aggregate `RoutingTable`, one per committee unit)
says which of its bodies answers each subject and in how many working days.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import Field

from sotay_events import topics
from sotay_events.catalogue.base import DomainEvent, register


class FeedbackKind(StrEnum):
    comment = "comment"  # góp ý
    report = "report"  # phản ánh
    proposal = "proposal"  # đề xuất
    petition = "petition"  # kiến nghị
    question = "question"  # hỏi đáp


class FeedbackSubject(StrEnum):
    organisation = "organisation"  # tổ chức, đảng viên
    propaganda = "propaganda"  # tư tưởng, tuyên truyền
    inspection = "inspection"  # kiểm tra, kỷ luật
    branch_work = "branch_work"  # công tác của chi bộ
    app = "app"  # sử dụng ứng dụng
    other = "other"


class FeedbackBody(StrEnum):
    """Who answers: a committee's bodies, or the branch itself."""

    organisation_department = "organisation_department"  # Ban Tổ chức
    propaganda_department = "propaganda_department"  # Ban Tuyên giáo
    inspection_committee = "inspection_committee"  # Ủy ban Kiểm tra
    office = "office"  # Văn phòng
    branch = "branch"  # chi bộ (chi ủy)


class _FeedbackEvent(DomainEvent):
    aggregate_type = "Feedback"
    topic = topics.FEEDBACK

    feedback_id: str
    branch_id: str = Field(description="the member's branch when it was sent: the unit concerned")
    kind: FeedbackKind


class _Hop(_FeedbackEvent):
    """The submission reached a body: it is now theirs to answer by `deadline`."""

    unit_id: str = Field(description="the unit of the body that holds it now")
    body: FeedbackBody
    hop: int = Field(ge=1, description="1 for the first body, then one more per hop")
    received_at: datetime
    deadline: datetime
    remind_at: datetime


@register
class FeedbackSubmitted(_FeedbackEvent):
    event_type = "FeedbackSubmitted"

    subject: FeedbackSubject
    addressed_to: Literal["branch", "committee"]
    to_unit_id: str = Field(description="the branch, or the committee that manages it directly")
    submitted_at: datetime
    public_allowed: bool = Field(
        True, description="the member agreed that an answer may be published, anonymised"
    )


@register
class FeedbackRouted(_Hop):
    """The first hop, decided by the routing table."""

    event_type = "FeedbackRouted"

    routed_by: Literal["routing_table", "default", "addressed"]


@register
class FeedbackForwarded(_Hop):
    """A body handed it to another body, or up a level, with a reason."""

    event_type = "FeedbackForwarded"

    from_unit_id: str
    from_body: FeedbackBody
    up: bool = False
    reason: str
    forwarded_by: str


@register
class FeedbackEscalated(_Hop):
    """Sent to the superior committee: the deadline passed, or the answer did not resolve it."""

    event_type = "FeedbackEscalated"

    from_unit_id: str
    from_body: FeedbackBody
    reason: Literal["overdue", "not_resolved"]
    missed_deadline: datetime | None = None


@register
class FeedbackReopened(_Hop):
    """The member said the answer did not resolve it: the same body answers again."""

    event_type = "FeedbackReopened"


@register
class FeedbackAssigned(_FeedbackEvent):
    event_type = "FeedbackAssigned"

    unit_id: str
    body: FeedbackBody
    assignee: str
    assigned_by: str
    assigned_at: datetime


@register
class FeedbackReminded(_FeedbackEvent):
    """The deadline is near and no answer was given yet."""

    event_type = "FeedbackReminded"

    unit_id: str
    body: FeedbackBody
    hop: int
    deadline: datetime
    reminded_at: datetime


@register
class FeedbackInformationAdded(_FeedbackEvent):
    event_type = "FeedbackInformationAdded"

    unit_id: str
    body: FeedbackBody
    added_at: datetime
    additions: int = Field(ge=1, description="how many additions so far")
    attachments: int = Field(0, ge=0, description="files attached in this addition")


@register
class FeedbackAnswered(_FeedbackEvent):
    event_type = "FeedbackAnswered"

    subject: FeedbackSubject
    unit_id: str
    body: FeedbackBody
    visibility: Literal["private", "public"]
    submitted_at: datetime
    received_at: datetime
    answered_at: datetime
    deadline: datetime
    on_time: bool
    answered_by: str


@register
class FeedbackClosed(_FeedbackEvent):
    event_type = "FeedbackClosed"

    unit_id: str
    body: FeedbackBody
    closed_at: datetime
    closed_by: Literal["member", "body"]


@register
class FeedbackWithdrawn(_FeedbackEvent):
    event_type = "FeedbackWithdrawn"

    unit_id: str
    body: FeedbackBody
    withdrawn_at: datetime


@register
class QaEntryPublished(_FeedbackEvent):
    """An answer published in a committee's Q&A (hỏi đáp), the asker anonymised.

    `question` is the text as the answering body published it (it may reword the
    member's text to leave out anything identifying); `unit_id` is the committee
    whose Q&A shows it, to the members of its subtree.
    """

    event_type = "QaEntryPublished"

    subject: FeedbackSubject
    unit_id: str
    body: FeedbackBody
    question: str
    answer: str
    published_at: datetime


@register
class RoutingTableSet(DomainEvent):
    """A committee's routing table: which body answers each subject, and in how long."""

    event_type = "RoutingTableSet"
    aggregate_type = "RoutingTable"
    topic = topics.FEEDBACK

    unit_id: str
    routes: dict[FeedbackSubject, FeedbackBody]
    deadline_days: dict[FeedbackKind, int] = Field(
        description="working days to answer, per kind (Vietnamese public holidays observed)"
    )
    reminder_days: int = Field(ge=0, description="working days before the deadline to remind")
    set_by: str
