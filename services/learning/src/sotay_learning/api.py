"""HTTP routes: parse, authorize, call a handler, shape the answer.

What a member's client receives is built here from explicit view models; the
answer key has no field in any of them except the authors' question view and
the review returned after a quiz's last attempt.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Request, Response
from pydantic import BaseModel, Field

from sotay_events.catalogue.learning import MaterialKind, QuestionKind, QuizSettings
from sotay_events.catalogue.org_tree import OrgLevel
from sotay_learning.domain import Contest, Enrolment, MaterialDraft, StudyCampaign
from sotay_learning.handlers import (
    LearningService,
    QuestionDraft,
    QuizPaper,
    QuizResult,
)
from sotay_learning.queries import Reads
from sotay_learning.quiz import Answer, OptionDraft, Question
from sotay_learning.timefmt import vn_date, vn_datetime
from sotay_platform.auth import ADMIN_ROLES, READ_ROLES, Principal, Role, current_principal
from sotay_platform.errors import Forbidden, NotFound
from sotay_platform.inputs import Code, EventDatetime, Interval, Items, Limit, Line, Name, Text

router = APIRouter()

Caller = Annotated[Principal, Depends(current_principal)]


def service(request: Request) -> LearningService:
    return request.app.state.service


def reads(request: Request) -> Reads:
    return request.app.state.reads


Service = Annotated[LearningService, Depends(service)]
Read = Annotated[Reads, Depends(reads)]

Title = Annotated[str, Text(300)]
ShortCode = Annotated[str, Text(50)]
Turn = Annotated[int, Interval(ge=1, le=1000)]


# Requests: every string and list bounded, every date sane (sotay_platform.inputs) -----------


class CreateBank(BaseModel):
    bank_id: Code | None = Field(None, examples=["NH-57-NQTW"])
    unit_id: Code = Field(examples=["HN"])
    title: Name = Field(examples=["Ngân hàng câu hỏi Nghị quyết 57"])


class OptionIn(BaseModel):
    text: Annotated[str, Text(1000)]
    correct: bool = False


class QuestionIn(BaseModel):
    kind: QuestionKind
    text: Annotated[str, Text(2000)]
    options: Annotated[list[OptionIn], Items(10, min_items=2)]
    explanation: Annotated[str, Text(2000, min_length=0, multiline=True)] = ""


class AddQuestions(BaseModel):
    questions: Annotated[list[QuestionIn], Items(100, min_items=1)]


class MaterialIn(BaseModel):
    material_id: Code | None = None
    kind: MaterialKind
    title: Title
    required: bool = True
    body: Annotated[str, Text(500_000, multiline=True)] | None = Field(
        None, description="the text itself, for kind=text"
    )
    url: Annotated[str, Text(2000)] | None = None
    file_name: Title | None = None
    document_id: Annotated[str, Text(100)] | None = None
    duration_minutes: Annotated[int, Interval(ge=0, le=1000)] | None = None


class QuizIn(BaseModel):
    """A campaign's quiz, drawn from a question bank and scored out of 100."""

    bank_id: Code
    question_count: Annotated[int, Interval(ge=1, le=200)]
    time_limit_minutes: Annotated[int, Interval(ge=1, le=600)]
    max_attempts: Annotated[int, Interval(ge=1, le=20)]
    pass_mark: Annotated[float, Interval(ge=0, le=100)]

    def settings(self) -> QuizSettings:
        return QuizSettings(**self.model_dump())


class LaunchCampaign(BaseModel):
    campaign_id: Code | None = None
    unit_id: Code
    resolution_code: ShortCode = Field(examples=["57-NQ/TW"])
    resolution_title: Line
    title: Title | None = None
    deadline: EventDatetime = Field(description="ISO 8601; without a zone, Vietnamese time")
    materials: Annotated[list[MaterialIn], Items(100, min_items=1)]
    quiz: QuizIn | None = None


class ExtendDeadline(BaseModel):
    deadline: EventDatetime


class AnswerIn(BaseModel):
    question_id: Code
    option_ids: Annotated[list[Code], Items(10)] = []


class SubmitAnswers(BaseModel):
    answers: Annotated[list[AnswerIn], Items(200)]


class SubmitReflection(BaseModel):
    text: Annotated[str, Text(50_000, multiline=True)]


class ReviewReflection(BaseModel):
    verdict: Literal["đạt", "chưa đạt"]
    comment: Annotated[str, Text(5000, min_length=0, multiline=True)] = ""


class OpenContest(BaseModel):
    contest_id: Code | None = None
    unit_id: Code
    title: Title
    resolution_code: ShortCode | None = None
    bank_id: Code
    question_count: Annotated[int, Interval(ge=1, le=200)]
    time_limit_minutes: Annotated[int, Interval(ge=1, le=600)]
    max_entries: Annotated[int, Interval(ge=1, le=20)] = 1
    starts_at: EventDatetime
    ends_at: EventDatetime


# Routes that answer 201 when they create and 200 when the same request came again.
AGAIN: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "Đã có từ trước (yêu cầu lặp lại): trả lại như cũ",
        "content": {"application/json": {"schema": {"type": "object"}}},
    }
}


# Views ---------------------------------------------------------------------------------------


def _when(value: datetime | None) -> dict[str, Any]:
    return {"at": value, "display": vn_datetime(value) if value else None}


def campaign_status(closed: bool, deadline: datetime, now: datetime) -> str:
    return "closed" if closed else ("expired" if now > deadline else "open")


def campaign_view(campaign: StudyCampaign, now: datetime) -> dict[str, Any]:
    quiz = campaign.quiz
    return {
        "campaign_id": campaign.id,
        "unit_id": campaign.unit_id,
        "title": campaign.title,
        "resolution_code": campaign.resolution_code,
        "resolution_title": campaign.resolution_title,
        "deadline": campaign.deadline,
        "deadline_display": vn_datetime(campaign.deadline),
        "status": campaign_status(campaign.closed, campaign.deadline, now),
        "materials": [m.model_dump(mode="json", exclude_none=True) for m in campaign.materials],
        "quiz": quiz.model_dump(mode="json") if quiz else None,
    }


def campaign_doc_view(doc: dict[str, Any], now: datetime) -> dict[str, Any]:
    return {
        "campaign_id": doc["_id"],
        "unit_id": doc["unit_id"],
        "title": doc["title"],
        "resolution_code": doc["resolution_code"],
        "resolution_title": doc["resolution_title"],
        "deadline": doc["deadline"],
        "deadline_display": vn_datetime(doc["deadline"]),
        "status": campaign_status(doc["status"] == "closed", doc["deadline"], now),
        "material_count": len(doc.get("materials", [])),
        "has_quiz": doc.get("quiz") is not None,
    }


def progress_view(campaign: StudyCampaign, enrolment: Enrolment, now: datetime) -> dict[str, Any]:
    quiz = None
    if campaign.quiz is not None:
        open_attempt = enrolment.open_attempt(now)
        quiz = {
            "attempts_used": len(enrolment.attempts),
            "max_attempts": campaign.quiz.max_attempts,
            "best_score": enrolment.best_score,
            "pass_mark": campaign.quiz.pass_mark,
            "passed": enrolment.passed,
            "open_attempt": (
                {"attempt": open_attempt.number, "expires_at": _when(open_attempt.expires_at)}
                if open_attempt
                else None
            ),
        }
    required = campaign.required_material_ids
    return {
        "campaign_id": campaign.id,
        "member_id": enrolment.member_id,
        "started": enrolment.started,
        "studied_material_ids": enrolment.studied_ids,
        "required_material_ids": required,
        "required_done": enrolment.required_done(campaign),
        "materials_progress": f"{len(set(required) & set(enrolment.studied_ids))}/{len(required)}",
        "quiz": quiz,
        "studied": enrolment.completed,
        "reflection": {
            "status": enrolment.reflection_status,
            "submissions": enrolment.reflection_submissions,
        },
    }


def paper_view(paper: QuizPaper, **ids: str) -> dict[str, Any]:
    attempt = paper.attempt
    return {
        **ids,
        "attempt": attempt.number,
        "started_at": _when(attempt.started_at),
        "expires_at": _when(attempt.expires_at),
        "question_count": attempt.question_count,
        "questions": paper.questions,
    }


def result_view(result: QuizResult, pass_mark: float | None) -> dict[str, Any]:
    view: dict[str, Any] = {
        "attempt": result.attempt,
        "score": result.score.score,
        "correct_count": result.score.correct_count,
        "question_count": result.score.question_count,
        "finished": result.finished,
        "review": result.review,
    }
    if pass_mark is not None:
        view |= {"pass_mark": pass_mark, "passed": result.passed, "studied": result.studied}
    if result.duration_seconds is not None:
        view["duration_seconds"] = result.duration_seconds
    return view


def author_question_view(question: Question, retired: bool = False) -> dict[str, Any]:
    return {
        "question_id": question.question_id,
        "kind": question.kind.value,
        "text": question.text,
        "options": [
            {"option_id": o.option_id, "text": o.text, "correct": o.option_id in question.correct}
            for o in question.options
        ],
        "explanation": question.explanation,
        "retired": retired,
    }


def contest_view(contest: Contest, now: datetime) -> dict[str, Any]:
    if contest.closed or now > contest.ends_at:
        status = "closed"
    elif now < contest.starts_at:
        status = "upcoming"
    else:
        status = "open"
    return {
        "contest_id": contest.id,
        "unit_id": contest.unit_id,
        "title": contest.title,
        "resolution_code": contest.resolution_code,
        "question_count": contest.question_count,
        "time_limit_minutes": contest.time_limit_minutes,
        "max_entries": contest.max_entries,
        "starts_at": _when(contest.starts_at),
        "ends_at": _when(contest.ends_at),
        "period_display": f"{vn_date(contest.starts_at)} – {vn_date(contest.ends_at)}",
        "status": status,
    }


RESULT_FIELDS = (
    "unit_id",
    "name",
    "level",
    "parent_id",
    "required",
    "started",
    "finished",
    "passed",
    "studied",
    "average_score",
    "reflections_submitted",
    "reflections_approved",
    "participants",
    "entries",
    "rate",
)


def result_row(doc: dict[str, Any]) -> dict[str, Any]:
    row = {k: doc[k] for k in RESULT_FIELDS if k in doc}
    row["updated_at"] = _when(doc.get("updated_at"))
    return row


# Question banks ------------------------------------------------------------------------------


def bank_view(bank: Any) -> dict[str, Any]:
    return {
        "bank_id": bank.id,
        "unit_id": bank.unit_id,
        "title": bank.title,
        "question_count": len(bank.kinds),
        "active_count": len(bank.active_ids),
    }


@router.post("/question-banks", status_code=201, responses=AGAIN, tags=["question banks"])
async def create_bank(
    body: CreateBank, caller: Caller, svc: Service, response: Response
) -> dict[str, Any]:
    bank, created = await svc.create_bank(caller, body.bank_id, body.unit_id, body.title)
    if not created:
        response.status_code = 200
    return bank_view(bank)


@router.get("/question-banks", tags=["question banks"])
async def list_banks(
    caller: Caller, svc: Service, read: Read, unit_id: Code
) -> list[dict[str, Any]]:
    """The banks a committee may draw from: its own and those of the committees above it."""
    path = await svc.unit_path(unit_id)
    caller.require(ADMIN_ROLES, path)
    return [
        {
            "bank_id": d["_id"],
            "unit_id": d.get("unit_id"),
            "title": d.get("title"),
            "active_count": d.get("questions", 0) - d.get("retired", 0),
        }
        for d in await read.banks_usable(path)
    ]


@router.post("/question-banks/{bank_id}/questions", status_code=201, tags=["question banks"])
async def add_questions(
    bank_id: Code, body: AddQuestions, caller: Caller, svc: Service
) -> dict[str, Any]:
    drafts = [
        QuestionDraft(
            q.kind, q.text, [OptionDraft(o.text, o.correct) for o in q.options], q.explanation
        )
        for q in body.questions
    ]
    questions = await svc.add_questions(caller, bank_id, drafts)
    return {"bank_id": bank_id, "added": [author_question_view(q) for q in questions]}


@router.get("/question-banks/{bank_id}/questions", tags=["question banks"])
async def bank_questions(bank_id: Code, caller: Caller, svc: Service) -> dict[str, Any]:
    """The authors' view, answer key included: administrators of the owning committee only."""
    bank, questions = await svc.bank_with_questions(caller, bank_id)
    return bank_view(bank) | {
        "questions": [author_question_view(q, q.question_id in bank.retired) for q in questions]
    }


@router.post("/question-banks/{bank_id}/questions/{question_id}/retire", tags=["question banks"])
async def retire_question(
    bank_id: Code, question_id: Code, caller: Caller, svc: Service
) -> dict[str, Any]:
    return bank_view(await svc.retire_question(caller, bank_id, question_id))


# Campaigns: committees -----------------------------------------------------------------------


@router.post("/campaigns", status_code=201, responses=AGAIN, tags=["campaigns"])
async def launch_campaign(
    body: LaunchCampaign,
    caller: Caller,
    svc: Service,
    response: Response,
    x_correlation_id: Annotated[Annotated[str, Text(100)] | None, Header()] = None,
) -> dict[str, Any]:
    campaign, created = await svc.launch_campaign(
        caller,
        campaign_id=body.campaign_id,
        unit_id=body.unit_id,
        resolution_code=body.resolution_code,
        resolution_title=body.resolution_title,
        title=body.title,
        deadline=body.deadline,
        materials=[MaterialDraft(**m.model_dump()) for m in body.materials],
        quiz=body.quiz.settings() if body.quiz else None,
        correlation_id=x_correlation_id,
    )
    if not created:
        response.status_code = 200
    return campaign_view(campaign, svc.clock())


@router.get("/campaigns", tags=["campaigns"])
async def list_campaigns(
    caller: Caller, svc: Service, read: Read, unit_id: Code
) -> list[dict[str, Any]]:
    """For a committee: campaigns its unit takes part in, and those launched within it."""
    path = await svc.unit_path(unit_id)
    caller.require(READ_ROLES, path)
    now = svc.clock()
    return [campaign_doc_view(d, now) for d in await read.campaigns_of_unit(unit_id, path)]


@router.post("/campaigns/{campaign_id}/deadline", tags=["campaigns"])
async def extend_deadline(
    campaign_id: Code, body: ExtendDeadline, caller: Caller, svc: Service
) -> dict[str, Any]:
    campaign = await svc.extend_deadline(caller, campaign_id, body.deadline)
    return campaign_view(campaign, svc.clock())


@router.post("/campaigns/{campaign_id}/close", tags=["campaigns"])
async def close_campaign(campaign_id: Code, caller: Caller, svc: Service) -> dict[str, Any]:
    return campaign_view(await svc.close_campaign(caller, campaign_id), svc.clock())


@router.get("/campaigns/{campaign_id}", tags=["campaigns"])
async def get_campaign(campaign_id: Code, caller: Caller, svc: Service) -> dict[str, Any]:
    """Members it concerns see it with their progress; committees that follow it see it too."""
    campaign = await svc.load_campaign(campaign_id)
    now = svc.clock()
    if caller.member_id:
        try:
            _, who = await svc.member_campaign(caller, campaign_id)
        except Forbidden:
            if not await svc.may_read_target(caller, campaign.unit_id):
                raise
        else:
            enrolment = await svc.enrolment_of(campaign.id, who.member.member_id)
            return campaign_view(campaign, now) | {
                "progress": progress_view(campaign, enrolment, now)
            }
    elif not await svc.may_read_target(caller, campaign.unit_id):
        raise Forbidden(
            "Tài khoản không có quyền xem đợt học tập này", field="campaign_id", code="out_of_scope"
        )
    return campaign_view(campaign, now)


@router.get("/campaigns/{campaign_id}/materials/{material_id}", tags=["campaigns"])
async def get_material(
    campaign_id: Code, material_id: Code, caller: Caller, svc: Service
) -> dict[str, Any]:
    campaign, body = await svc.material_body(caller, campaign_id, material_id)
    material = campaign.material(material_id)
    return material.model_dump(mode="json", exclude_none=True) | {"body": body}


# Campaigns: members --------------------------------------------------------------------------


@router.get("/me/campaigns", tags=["members"])
async def my_campaigns(caller: Caller, svc: Service, read: Read) -> list[dict[str, Any]]:
    """The campaigns that concern the caller's branch, with their progress."""
    who = await svc.acting_member(caller)
    docs = await read.campaigns_concerning(who.branch_path)
    rows = await read.participation(who.member.member_id, [d["_id"] for d in docs])
    now = svc.clock()
    found = []
    for doc in docs:
        row = rows.get(doc["_id"]) or {}
        found.append(
            campaign_doc_view(doc, now)
            | {
                "progress": {
                    "started": bool(row.get("started")),
                    "materials_studied": len(row.get("materials", [])),
                    "best_score": row.get("best_score"),
                    "passed": bool(row.get("passed")),
                    "studied": bool(row.get("studied")),
                    "reflection": row.get("reflection"),
                }
            }
        )
    return found


@router.post("/campaigns/{campaign_id}/start", tags=["members"])
async def start_study(campaign_id: Code, caller: Caller, svc: Service) -> dict[str, Any]:
    campaign, enrolment = await svc.start_study(caller, campaign_id)
    return progress_view(campaign, enrolment, svc.clock())


@router.get("/campaigns/{campaign_id}/progress", tags=["members"])
async def my_progress(campaign_id: Code, caller: Caller, svc: Service) -> dict[str, Any]:
    campaign, who = await svc.member_campaign(caller, campaign_id)
    enrolment = await svc.enrolment_of(campaign.id, who.member.member_id)
    return progress_view(campaign, enrolment, svc.clock())


@router.post("/campaigns/{campaign_id}/materials/{material_id}/studied", tags=["members"])
async def material_studied(
    campaign_id: Code, material_id: Code, caller: Caller, svc: Service
) -> dict[str, Any]:
    campaign, enrolment = await svc.study_material(caller, campaign_id, material_id)
    return progress_view(campaign, enrolment, svc.clock())


@router.post(
    "/campaigns/{campaign_id}/quiz/attempts", status_code=201, responses=AGAIN, tags=["members"]
)
async def start_attempt(
    campaign_id: Code, caller: Caller, svc: Service, response: Response
) -> dict[str, Any]:
    """Draws a paper (201), or shows the open one again (200). Never the answer key."""
    paper = await svc.start_attempt(caller, campaign_id)
    if not paper.created:
        response.status_code = 200
    return paper_view(paper, campaign_id=campaign_id)


@router.post("/campaigns/{campaign_id}/quiz/attempts/{attempt}/answers", tags=["members"])
async def submit_answers(
    campaign_id: Code, attempt: Turn, body: SubmitAnswers, caller: Caller, svc: Service
) -> dict[str, Any]:
    answers = [Answer(a.question_id, frozenset(a.option_ids)) for a in body.answers]
    result = await svc.submit_attempt(caller, campaign_id, attempt, answers)
    campaign = await svc.load_campaign(campaign_id)
    return result_view(result, campaign.quiz.pass_mark if campaign.quiz else None)


@router.post("/campaigns/{campaign_id}/reflection", status_code=201, tags=["members"])
async def submit_reflection(
    campaign_id: Code, body: SubmitReflection, caller: Caller, svc: Service
) -> dict[str, Any]:
    campaign, enrolment = await svc.submit_reflection(caller, campaign_id, body.text)
    return progress_view(campaign, enrolment, svc.clock())


# Reflections: branch secretaries -------------------------------------------------------------


def reflection_view(doc: dict[str, Any], status: str | None) -> dict[str, Any]:
    review = doc.get("review")
    return {
        "member_id": doc.get("member_id"),
        "submission": doc.get("submission"),
        "text": doc.get("text"),
        "submitted_at": _when(doc.get("submitted_at")),
        "status": status,
        "review": (
            {
                "verdict": review["verdict"],
                "comment": review["comment"],
                "reviewed_by": review["reviewed_by"],
                "reviewed_at": _when(review["reviewed_at"]),
            }
            if review
            else None
        ),
    }


@router.get("/campaigns/{campaign_id}/reflections", tags=["reflections"])
async def list_reflections(
    campaign_id: Code,
    caller: Caller,
    svc: Service,
    read: Read,
    branch_id: Code,
    status: Literal["submitted", "approved", "needs_revision"] | None = None,
    limit: Limit = 100,
) -> list[dict[str, Any]]:
    """A branch's reflections, for its secretary to review (oldest first). Committees above
    see how many were submitted and approved in the results, never the texts."""
    await svc.load_campaign(campaign_id)
    path = await svc.unit_path(branch_id, "branch_id")
    if not caller.covers([Role.branch_secretary], path):
        raise Forbidden(
            "Chỉ bí thư chi bộ được xem bài thu hoạch của đảng viên chi bộ mình", field="branch_id"
        )
    rows = await read.reflections(campaign_id, branch_id, status, limit)
    return [
        reflection_view(r["text"] or {"member_id": r["member_id"]}, r.get("reflection"))
        | {"full_name": r["full_name"]}
        for r in rows
    ]


@router.get("/campaigns/{campaign_id}/reflections/{member_id}", tags=["reflections"])
async def get_reflection(
    campaign_id: Code, member_id: Code, caller: Caller, svc: Service
) -> dict[str, Any]:
    doc = await svc.reflection_text(caller, campaign_id, member_id)
    return reflection_view(doc, doc.get("status"))


@router.post("/campaigns/{campaign_id}/reflections/{member_id}/review", tags=["reflections"])
async def review_reflection(
    campaign_id: Code, member_id: Code, body: ReviewReflection, caller: Caller, svc: Service
) -> dict[str, Any]:
    enrolment = await svc.review_reflection(
        caller, campaign_id, member_id, body.verdict, body.comment
    )
    return {
        "campaign_id": campaign_id,
        "member_id": member_id,
        "status": enrolment.reflection_status,
        "verdict": body.verdict,
    }


# Results -------------------------------------------------------------------------------------


async def _results(
    svc: LearningService, read: Read, caller: Principal, target_id: str, unit_id: str
) -> dict[str, Any]:
    path = await svc.unit_path(unit_id)
    caller.require(READ_ROLES, path)
    row = await read.result(target_id, unit_id)
    if row is None:
        raise NotFound(
            f"Chưa có số liệu của đơn vị {unit_id} (đơn vị không thuộc phạm vi "
            "hoặc số liệu đang được tổng hợp)",
            field="unit_id",
        )
    children = await read.result_children(target_id, unit_id)
    return {"unit": result_row(row), "children": [result_row(c) for c in children]}


@router.get("/campaigns/{campaign_id}/results", tags=["results"])
async def campaign_results(
    campaign_id: Code,
    caller: Caller,
    svc: Service,
    read: Read,
    unit_id: Code | None = None,
) -> dict[str, Any]:
    """A unit's figures and its direct subordinates' (branch → commune → province)."""
    campaign = await svc.load_campaign(campaign_id)
    unit = unit_id or (await svc.unit_path(campaign.unit_id))[-1]
    return {"campaign_id": campaign_id} | await _results(svc, read, caller, campaign_id, unit)


@router.get("/campaigns/{campaign_id}/results/members", tags=["results"])
async def branch_members(
    campaign_id: Code,
    caller: Caller,
    svc: Service,
    read: Read,
    branch_id: Code,
) -> dict[str, Any]:
    """Who in a branch must take part, and where each stands (for the branch's committee)."""
    campaign = await svc.load_campaign(campaign_id)
    path = await svc.unit_path(branch_id, "branch_id")
    caller.require(READ_ROLES, path)
    if not await svc.concerns(campaign.unit_id, path):
        raise Forbidden("Chi bộ không thuộc phạm vi đợt học tập", field="branch_id")
    members = await read.branch_members(campaign_id, branch_id)
    return {
        "campaign_id": campaign_id,
        "branch_id": branch_id,
        "members": [
            {
                "member_id": m["_id"],
                "full_name": m.get("full_name", ""),
                "status": m.get("status"),
                "started": bool((m["participation"] or {}).get("started")),
                "materials_studied": len((m["participation"] or {}).get("materials", [])),
                "best_score": (m["participation"] or {}).get("best_score"),
                "passed": bool((m["participation"] or {}).get("passed")),
                "studied": bool((m["participation"] or {}).get("studied")),
                "reflection": (m["participation"] or {}).get("reflection"),
            }
            for m in members
        ],
    }


# Contests ------------------------------------------------------------------------------------


@router.post("/contests", status_code=201, responses=AGAIN, tags=["contests"])
async def open_contest(
    body: OpenContest, caller: Caller, svc: Service, response: Response
) -> dict[str, Any]:
    contest, created = await svc.open_contest(caller, **body.model_dump())
    if not created:
        response.status_code = 200
    return contest_view(contest, svc.clock())


@router.get("/contests/{contest_id}", tags=["contests"])
async def get_contest(contest_id: Code, caller: Caller, svc: Service) -> dict[str, Any]:
    contest = await svc.load_contest(contest_id)
    if not await svc.may_read_target(caller, contest.unit_id):
        await svc.member_contest(caller, contest_id)
    return contest_view(contest, svc.clock())


@router.post("/contests/{contest_id}/close", tags=["contests"])
async def close_contest(contest_id: Code, caller: Caller, svc: Service) -> dict[str, Any]:
    return contest_view(await svc.close_contest(caller, contest_id), svc.clock())


@router.get("/me/contests", tags=["members"])
async def my_contests(caller: Caller, svc: Service, read: Read) -> list[dict[str, Any]]:
    who = await svc.acting_member(caller)
    docs = await read.contests_concerning(who.branch_path)
    mine = await read.entries(who.member.member_id, [d["_id"] for d in docs])
    now = svc.clock()
    out = []
    for doc in docs:
        contest = Contest(doc["_id"])
        contest.unit_id, contest.title = doc["unit_id"], doc["title"]
        contest.resolution_code = doc.get("resolution_code")
        contest.question_count = doc["question_count"]
        contest.time_limit_minutes = doc["time_limit_minutes"]
        contest.max_entries = doc["max_entries"]
        contest.starts_at, contest.ends_at = doc["starts_at"], doc["ends_at"]
        contest.closed = doc["status"] == "closed"
        entry = mine.get(doc["_id"]) or {}
        out.append(
            contest_view(contest, now)
            | {"my_entries": entry.get("entries", 0), "my_best_score": entry.get("best_score")}
        )
    return out


@router.post("/contests/{contest_id}/entries", status_code=201, responses=AGAIN, tags=["contests"])
async def start_entry(
    contest_id: Code, caller: Caller, svc: Service, response: Response
) -> dict[str, Any]:
    paper = await svc.start_entry(caller, contest_id)
    if not paper.created:
        response.status_code = 200
    return paper_view(paper, contest_id=contest_id)


@router.post("/contests/{contest_id}/entries/{attempt}/answers", tags=["contests"])
async def submit_entry(
    contest_id: Code, attempt: Turn, body: SubmitAnswers, caller: Caller, svc: Service
) -> dict[str, Any]:
    answers = [Answer(a.question_id, frozenset(a.option_ids)) for a in body.answers]
    return result_view(await svc.submit_entry(caller, contest_id, attempt, answers), None)


async def _contest_reader(
    svc: LearningService, caller: Principal, contest_id: str
) -> tuple[Contest, str | None]:
    """Committees following the contest and members taking part may see its rankings."""
    contest = await svc.load_contest(contest_id)
    if await svc.may_read_target(caller, contest.unit_id):
        return contest, caller.member_id
    _, who = await svc.member_contest(caller, contest_id)
    return contest, who.member.member_id


@router.get("/contests/{contest_id}/rankings/members", tags=["contests"])
async def member_ranking(
    contest_id: Code,
    caller: Caller,
    svc: Service,
    read: Read,
    unit_id: Code | None = None,
    limit: Limit = 50,
) -> dict[str, Any]:
    """Best score first, then the shorter time, then the earlier entry."""
    contest, member_id = await _contest_reader(svc, caller, contest_id)
    rows = await read.member_ranking(contest_id, unit_id, limit)
    names = await read.names([r["member_id"] for r in rows])
    units = await read.unit_names(r.get("current_branch") or r["branch_id"] for r in rows)
    ranking = []
    for rank, row in enumerate(rows, start=1):
        branch = row.get("current_branch") or row["branch_id"]
        ranking.append(
            {
                "rank": rank,
                "member_id": row["member_id"],
                "full_name": names.get(row["member_id"], ""),
                "branch_id": branch,
                "branch_name": units.get(branch, ""),
                "best_score": row["best_score"],
                "duration_seconds": row["best_duration"],
                "entries": row.get("entries", 0),
            }
        )
    return {
        "contest_id": contest.id,
        "unit_id": unit_id or contest.unit_id,
        "ranking": ranking,
        "my_rank": await read.member_rank(contest_id, member_id) if member_id else None,
    }


@router.get("/contests/{contest_id}/rankings/units", tags=["contests"])
async def unit_ranking(
    contest_id: Code,
    caller: Caller,
    svc: Service,
    read: Read,
    unit_id: Code | None = None,
    level: OrgLevel | None = None,
) -> dict[str, Any]:
    """Units under `unit_id` (its direct subordinates, or every unit of `level`), best first:
    average score, then the share of members who took part."""
    contest, _ = await _contest_reader(svc, caller, contest_id)
    root = unit_id or (await svc.unit_path(contest.unit_id))[-1]
    if await read.result(contest_id, root) is None:
        raise NotFound(f"Chưa có số liệu của đơn vị {root} trong cuộc thi", field="unit_id")
    rows = (
        await read.result_level(contest_id, root, level.value)
        if level
        else await read.result_children(contest_id, root)
    )
    rows.sort(key=lambda r: (-(r.get("average_score") or 0), -(r.get("rate") or 0), r["unit_id"]))
    return {
        "contest_id": contest_id,
        "unit_id": root,
        "level": level,
        "ranking": [{"rank": i, **result_row(r)} for i, r in enumerate(rows, start=1)],
    }
