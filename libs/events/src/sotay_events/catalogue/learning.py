"""Facts about resolution study, published by learning.

Members' answers and reflections stay in learning; these events carry scores,
counts and outcomes only.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from sotay_events import topics
from sotay_events.catalogue.base import DomainEvent, register


class _CampaignEvent(DomainEvent):
    aggregate_type = "StudyCampaign"
    topic = topics.LEARNING


class _EnrolmentEvent(DomainEvent):
    """One member's study of one campaign: a stream per (campaign, member)."""

    aggregate_type = "Enrolment"
    topic = topics.LEARNING


@register
class StudyCampaignLaunched(_CampaignEvent):
    event_type = "StudyCampaignLaunched"

    campaign_id: str
    unit_id: str = Field(description="the launching committee; its subtree takes part")
    resolution_code: str = Field(description="e.g. 57-NQ/TW")
    resolution_title: str
    deadline: datetime
    material_ids: list[str] = Field(default_factory=list)
    has_quiz: bool = False


@register
class StudyCampaignClosed(_CampaignEvent):
    event_type = "StudyCampaignClosed"

    campaign_id: str
    unit_id: str


@register
class StudyStarted(_EnrolmentEvent):
    event_type = "StudyStarted"

    campaign_id: str
    member_id: str
    unit_id: str = Field(description="the member's branch")


@register
class MaterialStudied(_EnrolmentEvent):
    event_type = "MaterialStudied"

    campaign_id: str
    member_id: str
    unit_id: str
    material_id: str


@register
class QuizAttemptSubmitted(_EnrolmentEvent):
    event_type = "QuizAttemptSubmitted"

    campaign_id: str
    member_id: str
    unit_id: str
    attempt: int = Field(ge=1)
    score: float = Field(ge=0, le=100)
    passed: bool


@register
class ResolutionStudied(_EnrolmentEvent):
    """A member finished a campaign's required materials and passed its quiz, if any."""

    event_type = "ResolutionStudied"

    campaign_id: str
    member_id: str
    unit_id: str
    resolution_code: str = Field(description="e.g. 57-NQ/TW")
    resolution_title: str
    materials_completed: int = Field(ge=0)
    score: float | None = Field(None, ge=0, le=100)
    passed: bool | None = None


@register
class ReflectionSubmitted(_EnrolmentEvent):
    """A written reflection (bài thu hoạch) was handed in; its text stays in learning."""

    event_type = "ReflectionSubmitted"

    campaign_id: str
    member_id: str
    unit_id: str


@register
class ReflectionReviewed(_EnrolmentEvent):
    event_type = "ReflectionReviewed"

    campaign_id: str
    member_id: str
    unit_id: str
    reviewed_by: str
    verdict: str = Field(description="e.g. đạt / chưa đạt, or a grade")
