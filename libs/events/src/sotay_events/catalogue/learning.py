"""Facts about resolution study, published by learning."""

from __future__ import annotations

from pydantic import Field

from sotay_events import topics
from sotay_events.catalogue.base import DomainEvent, register


class _StudyEvent(DomainEvent):
    aggregate_type = "Enrolment"
    topic = topics.LEARNING


@register
class ResolutionStudied(_StudyEvent):
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
