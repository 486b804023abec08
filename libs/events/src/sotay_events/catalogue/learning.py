"""Facts about resolution study, published by learning.

Members' answers and reflections stay in learning; these events carry scores,
counts and outcomes only. Question texts and answer keys stay in learning too:
question-bank events carry ids, kinds and counts, never the key.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from sotay_events import topics
from sotay_events.catalogue.base import DomainEvent, register


class MaterialKind(StrEnum):
    text = "text"  # the text itself, read in the app
    attachment = "attachment"  # a file: a content document or a URL
    link = "link"
    video = "video"


class QuestionKind(StrEnum):
    single = "single"  # exactly one correct option
    multiple = "multiple"  # one or more correct options, all of them to be chosen


class CampaignMaterial(BaseModel):
    """What a campaign asks members to study; a text material's body stays in learning."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    material_id: str
    kind: MaterialKind
    title: str
    required: bool = True
    url: str | None = None
    file_name: str | None = None
    document_id: str | None = Field(None, description="a document of the content service")
    duration_minutes: int | None = Field(None, ge=0)


class QuizSettings(BaseModel):
    """A campaign's quiz: drawn from a question bank, scored by learning out of 100."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    bank_id: str
    question_count: int = Field(ge=1, le=200)
    time_limit_minutes: int = Field(ge=1, le=600)
    max_attempts: int = Field(ge=1, le=20)
    pass_mark: float = Field(ge=0, le=100, description="minimum score out of 100")


class _CampaignEvent(DomainEvent):
    aggregate_type = "StudyCampaign"
    topic = topics.LEARNING


class _EnrolmentEvent(DomainEvent):
    """One member's study of one campaign: a stream per (campaign, member)."""

    aggregate_type = "Enrolment"
    topic = topics.LEARNING


class _QuestionBankEvent(DomainEvent):
    aggregate_type = "QuestionBank"
    topic = topics.LEARNING


class _ContestEvent(DomainEvent):
    aggregate_type = "Contest"
    topic = topics.LEARNING


class _ContestEntryEvent(DomainEvent):
    """One member's entries in one contest: a stream per (contest, member)."""

    aggregate_type = "ContestEntry"
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
    title: str | None = Field(None, description="the campaign's own title, if not the resolution's")
    materials: list[CampaignMaterial] = Field(
        default_factory=list,
        examples=[
            [
                {"material_id": "m1", "kind": "text", "title": "Toàn văn Nghị quyết"},
                {
                    "material_id": "m2",
                    "kind": "video",
                    "title": "Bài giảng chuyên đề",
                    "url": "https://video.example.vn/nq57",
                    "duration_minutes": 45,
                },
            ]
        ],
    )
    quiz: QuizSettings | None = Field(
        None,
        examples=[
            {
                "bank_id": "NH-57",
                "question_count": 20,
                "time_limit_minutes": 30,
                "max_attempts": 3,
                "pass_mark": 80,
            }
        ],
    )


@register
class StudyCampaignDeadlineExtended(_CampaignEvent):
    event_type = "StudyCampaignDeadlineExtended"

    campaign_id: str
    unit_id: str
    deadline: datetime
    previous_deadline: datetime


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
    required_completed: bool | None = Field(
        None, description="true once the member has studied every required material"
    )


@register
class QuizAttemptStarted(_EnrolmentEvent):
    """A paper was drawn for the member; which questions stays in learning."""

    event_type = "QuizAttemptStarted"

    campaign_id: str
    member_id: str
    unit_id: str
    attempt: int = Field(ge=1)
    question_count: int = Field(ge=1)
    started_at: datetime
    expires_at: datetime


@register
class QuizAttemptSubmitted(_EnrolmentEvent):
    event_type = "QuizAttemptSubmitted"

    campaign_id: str
    member_id: str
    unit_id: str
    attempt: int = Field(ge=1)
    score: float = Field(ge=0, le=100)
    passed: bool
    correct_count: int | None = Field(None, ge=0)
    question_count: int | None = Field(None, ge=1)


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
    material_ids: list[str] = Field(default_factory=list, description="what the member studied")


@register
class ReflectionSubmitted(_EnrolmentEvent):
    """A written reflection (bài thu hoạch) was handed in; its text stays in learning."""

    event_type = "ReflectionSubmitted"

    campaign_id: str
    member_id: str
    unit_id: str
    submission: int | None = Field(None, ge=1, description="1 for the first, 2 after a revision…")


@register
class ReflectionReviewed(_EnrolmentEvent):
    event_type = "ReflectionReviewed"

    campaign_id: str
    member_id: str
    unit_id: str
    reviewed_by: str
    verdict: str = Field(description="e.g. đạt / chưa đạt, or a grade")
    approved: bool | None = Field(None, description="true for đạt, false for chưa đạt")


@register
class QuestionBankCreated(_QuestionBankEvent):
    event_type = "QuestionBankCreated"

    bank_id: str
    unit_id: str = Field(description="the committee that owns the bank")
    title: str


@register
class QuestionAdded(_QuestionBankEvent):
    """A question joined a bank; its text, options and answer key stay in learning."""

    event_type = "QuestionAdded"

    bank_id: str
    unit_id: str
    question_id: str
    kind: QuestionKind
    option_count: int = Field(ge=2)


@register
class QuestionRetired(_QuestionBankEvent):
    """The question is no longer drawn; papers already drawn keep it."""

    event_type = "QuestionRetired"

    bank_id: str
    unit_id: str
    question_id: str


@register
class ContestOpened(_ContestEvent):
    """An online knowledge contest (cuộc thi tìm hiểu) for a committee's subtree."""

    event_type = "ContestOpened"

    contest_id: str
    unit_id: str = Field(description="the organising committee; its subtree may enter")
    title: str
    resolution_code: str | None = None
    bank_id: str
    question_count: int = Field(ge=1, le=200)
    time_limit_minutes: int = Field(ge=1, le=600)
    max_entries: int = Field(ge=1, le=20)
    starts_at: datetime
    ends_at: datetime


@register
class ContestClosed(_ContestEvent):
    event_type = "ContestClosed"

    contest_id: str
    unit_id: str


@register
class ContestEntryStarted(_ContestEntryEvent):
    event_type = "ContestEntryStarted"

    contest_id: str
    member_id: str
    unit_id: str = Field(description="the member's branch")
    attempt: int = Field(ge=1)
    question_count: int = Field(ge=1)
    started_at: datetime
    expires_at: datetime


@register
class ContestEntrySubmitted(_ContestEntryEvent):
    """An entry was scored; rankings use the best score, then the shorter time."""

    event_type = "ContestEntrySubmitted"

    contest_id: str
    member_id: str
    unit_id: str
    attempt: int = Field(ge=1)
    score: float = Field(ge=0, le=100)
    correct_count: int = Field(ge=0)
    question_count: int = Field(ge=1)
    duration_seconds: float = Field(ge=0)
