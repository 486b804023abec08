"""One method per command: load, authorize against the tree, decide, commit.

Who a member is and where they sit come from learning's own roster and tree
projections (`Directory`); what campaigns, enrolments and banks hold comes from
the event store, never from a read model. Every command persists through one
unit of work (`store.unit_of_work()`): its events, and the private records they
refer to (papers, answers, reflection texts, question keys), in one retried
transaction. A command that raced another on the same stream is decided again
on fresh state (`retry_on_conflict`): ten members' clients starting the same
attempt at once get one attempt, the others see it again.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol, TypeAlias

from sotay_events import (
    CommandContext,
    EventStore,
    EventTooLarge,
    UnitOfWork,
    new_event_id,
    retry_on_conflict,
)
from sotay_events.catalogue.learning import QuestionKind, QuizSettings
from sotay_learning.domain import (
    Attempt,
    Contest,
    ContestEntry,
    Enrolment,
    MaterialDraft,
    QuestionBank,
    StudyCampaign,
    build_materials,
    check_id,
)
from sotay_learning.errors import conflict
from sotay_learning.quiz import (
    Answer,
    OptionDraft,
    Paper,
    Question,
    Score,
    build_question,
    client_paper,
    draw_paper,
    score_paper,
)
from sotay_learning.store import (
    ANSWERS,
    MATERIALS,
    PAPERS,
    QUESTIONS,
    REFLECTIONS,
)
from sotay_learning.timefmt import as_utc, utc_now
from sotay_platform.auth import ADMIN_ROLES, READ_ROLES, Principal, Role
from sotay_platform.errors import Forbidden, Invalid, NotFound

MIN_REFLECTION, MAX_REFLECTION = 50, 50_000


@dataclass(frozen=True)
class MemberInfo:
    member_id: str
    full_name: str
    branch_id: str
    status: str
    eligible: bool  # must study now (sotay_platform.roster: Purpose.study)
    approved: bool = True
    removed: bool = False


class Directory(Protocol):
    """Learning's own copy of identity's roster and org-tree's tree."""

    async def member(self, member_id: str) -> MemberInfo | None: ...

    async def path(self, unit_id: str) -> list[str]:
        """Root .. unit, following merges to the unit that carries on; [] if unknown."""
        ...


@dataclass(frozen=True)
class QuestionDraft:
    kind: QuestionKind
    text: str
    options: Sequence[OptionDraft]
    explanation: str = ""


@dataclass(frozen=True)
class QuizPaper:
    """An attempt as the member sees it: no answer key."""

    attempt: Attempt
    questions: list[dict[str, Any]]
    created: bool


@dataclass(frozen=True)
class QuizResult:
    attempt: int
    score: Score
    passed: bool
    finished: bool  # no further attempt: the key may be shown
    review: list[dict[str, Any]] = field(default_factory=list)
    studied: bool = False
    duration_seconds: float | None = None


@dataclass
class MemberContext:
    """The member acting, where they sit, and the campaign or contest they act on."""

    member: MemberInfo
    branch_path: list[str]


Sitting: TypeAlias = Enrolment | ContestEntry
Target: TypeAlias = StudyCampaign | Contest


class LearningService:
    def __init__(
        self,
        store: EventStore,
        directory: Directory,
        *,
        clock: Callable[[], datetime] = utc_now,
        rng: random.Random | None = None,
        submit_grace: timedelta = timedelta(seconds=15),
        bank_cache_seconds: float = 30.0,
    ) -> None:
        self.store = store
        self.directory = directory
        self.clock = clock
        self.rng = rng or random.SystemRandom()
        self.submit_grace = submit_grace
        self.bank_cache_seconds = bank_cache_seconds
        self._banks: dict[str, tuple[float, QuestionBank]] = {}

    # Units of work -----------------------------------------------------------------------

    @staticmethod
    def _context(
        principal: Principal, org_path: Sequence[str], correlation_id: str | None = None
    ) -> CommandContext:
        return CommandContext(
            actor=principal.subject,
            org_path=tuple(org_path),
            correlation_id=correlation_id or new_event_id(),
        )

    async def unit_path(self, unit_id: str, field: str = "unit_id") -> list[str]:
        path = await self.directory.path(unit_id)
        if not path:
            raise NotFound(f"Không tìm thấy đơn vị có mã {unit_id}", field=field)
        return path

    # Question banks ----------------------------------------------------------------------

    async def load_bank(
        self, bank_id: str, field: str = "bank_id", uow: UnitOfWork | None = None
    ) -> QuestionBank:
        bank = await (uow or self.store.unit_of_work()).get(QuestionBank, bank_id)
        if bank is None:
            raise NotFound(f"Không tìm thấy ngân hàng câu hỏi {bank_id}", field=field)
        return bank

    @retry_on_conflict()
    async def create_bank(
        self, principal: Principal, bank_id: str | None, unit_id: str, title: str
    ) -> tuple[QuestionBank, bool]:
        path = await self.unit_path(unit_id)
        principal.require(ADMIN_ROLES, path)
        bank_id = check_id(bank_id, "bank_id") if bank_id else f"nh-{new_event_id()[-12:]}"
        uow = self.store.unit_of_work()
        existing = await uow.get(QuestionBank, bank_id)
        if existing is not None:
            if existing.unit_id == unit_id and existing.title == " ".join(title.split()):
                return existing, False
            raise conflict(f"Mã ngân hàng {bank_id} đã được dùng", "bank_id", "duplicate_id")
        bank = QuestionBank.create(bank_id, unit_id, title)
        uow.add(bank)
        await _commit(uow, self._context(principal, path))
        return bank, True

    @retry_on_conflict()
    async def add_questions(
        self, principal: Principal, bank_id: str, drafts: Sequence[QuestionDraft]
    ) -> list[Question]:
        uow = self.store.unit_of_work()
        bank = await self.load_bank(bank_id, uow=uow)
        path = await self.unit_path(bank.unit_id)
        principal.require(ADMIN_ROLES, path)
        questions = [
            build_question(
                bank.id, d.kind, d.text, d.options, d.explanation, field_prefix=f"questions.{i}."
            )
            for i, d in enumerate(drafts)
        ]
        bank.add(questions)
        for question in questions:
            uow.private(QUESTIONS, question.to_record())
        await _commit(uow, self._context(principal, path))
        self._banks.pop(bank.id, None)
        return questions

    @retry_on_conflict()
    async def retire_question(
        self, principal: Principal, bank_id: str, question_id: str
    ) -> QuestionBank:
        uow = self.store.unit_of_work()
        bank = await self.load_bank(bank_id, uow=uow)
        path = await self.unit_path(bank.unit_id)
        principal.require(ADMIN_ROLES, path)
        bank.retire(question_id)
        await _commit(uow, self._context(principal, path))
        self._banks.pop(bank.id, None)
        return bank

    async def bank_with_questions(
        self, principal: Principal, bank_id: str
    ) -> tuple[QuestionBank, list[Question]]:
        """The authors' view, with the key: only administrators of the owning committee."""
        bank = await self.load_bank(bank_id)
        principal.require(ADMIN_ROLES, await self.unit_path(bank.unit_id))
        docs = await self.store.private_records(QUESTIONS, bank.kinds)
        return bank, [Question.of_record(docs[q]) for q in bank.kinds if q in docs]

    async def _bank_for_drawing(self, bank_id: str) -> QuestionBank:
        """Banks change rarely and are read at every attempt: keep them a little while."""
        now = time.monotonic()
        cached = self._banks.get(bank_id)
        if cached and cached[0] > now:
            return cached[1]
        bank = await self.load_bank(bank_id)
        self._banks[bank_id] = (now + self.bank_cache_seconds, bank)
        return bank

    async def _draw(self, bank_id: str, count: int) -> tuple[Paper, dict[str, Question]]:
        bank = await self._bank_for_drawing(bank_id)
        active = bank.active_ids
        if len(active) < count:
            raise conflict(
                "Ngân hàng câu hỏi không còn đủ câu hỏi cho bài làm; "
                "đề nghị liên hệ cấp ủy tổ chức",
                "attempt",
                "bank_too_small",
            )
        chosen = self.rng.sample(active, count)
        docs = await self.store.private_records(QUESTIONS, chosen)
        questions = {q: Question.of_record(docs[q]) for q in chosen}
        return draw_paper(list(questions.values()), count, self.rng), questions

    async def _paper(self, paper_id: str) -> tuple[Paper, dict[str, Question]]:
        doc = await self.store.private_record(PAPERS, paper_id)
        if doc is None:
            raise NotFound("Không tìm thấy đề bài của lần làm bài này", field="attempt")
        paper = Paper.of_record(doc)
        docs = await self.store.private_records(QUESTIONS, paper.question_ids)
        return paper, {q: Question.of_record(d) for q, d in docs.items()}

    # Campaigns ---------------------------------------------------------------------------

    async def load_campaign(self, campaign_id: str, uow: UnitOfWork | None = None) -> StudyCampaign:
        campaign = await (uow or self.store.unit_of_work()).get(StudyCampaign, campaign_id)
        if campaign is None:
            raise NotFound(f"Không tìm thấy đợt học tập {campaign_id}", field="campaign_id")
        return campaign

    @retry_on_conflict()
    async def launch_campaign(
        self,
        principal: Principal,
        *,
        campaign_id: str | None,
        unit_id: str,
        resolution_code: str,
        resolution_title: str,
        title: str | None,
        deadline: datetime,
        materials: Sequence[MaterialDraft],
        quiz: QuizSettings | None,
        correlation_id: str | None = None,
    ) -> tuple[StudyCampaign, bool]:
        path = await self.unit_path(unit_id)
        principal.require(ADMIN_ROLES, path)
        campaign_id = check_id(campaign_id, "campaign_id") if campaign_id else _new_id("hd")
        uow = self.store.unit_of_work()
        existing = await uow.get(StudyCampaign, campaign_id)
        if existing is not None:
            if (existing.unit_id, existing.resolution_code) == (unit_id, resolution_code.strip()):
                return existing, False  # the same launch, retried
            raise conflict(
                f"Mã đợt học tập {campaign_id} đã được dùng", "campaign_id", "duplicate_id"
            )
        built, bodies = build_materials(materials)
        bank = await uow.get(QuestionBank, quiz.bank_id) if quiz else None
        campaign = StudyCampaign.launch(
            campaign_id,
            unit_id,
            resolution_code,
            resolution_title,
            title,
            as_utc(deadline),
            built,
            quiz,
            bank,
            path,
            self.clock(),
        )
        uow.add(campaign)
        for mid, body in bodies.items():
            uow.private(MATERIALS, {"_id": f"{campaign_id}:{mid}", "body": body})
        await _commit(uow, self._context(principal, path, correlation_id))
        return campaign, True

    async def _admin_campaign(
        self, uow: UnitOfWork, principal: Principal, campaign_id: str
    ) -> tuple[StudyCampaign, list[str]]:
        campaign = await self.load_campaign(campaign_id, uow)
        path = await self.unit_path(campaign.unit_id)
        principal.require(ADMIN_ROLES, path)
        return campaign, path

    @retry_on_conflict()
    async def extend_deadline(
        self, principal: Principal, campaign_id: str, deadline: datetime
    ) -> StudyCampaign:
        uow = self.store.unit_of_work()
        campaign, path = await self._admin_campaign(uow, principal, campaign_id)
        campaign.extend_deadline(as_utc(deadline), self.clock())
        await _commit(uow, self._context(principal, path))
        return campaign

    @retry_on_conflict()
    async def close_campaign(self, principal: Principal, campaign_id: str) -> StudyCampaign:
        uow = self.store.unit_of_work()
        campaign, path = await self._admin_campaign(uow, principal, campaign_id)
        campaign.close()
        await _commit(uow, self._context(principal, path))
        return campaign

    async def acting_member(self, principal: Principal) -> MemberContext:
        if not principal.member_id:
            raise Forbidden("Tài khoản không gắn với đảng viên nào")
        member = await self.directory.member(principal.member_id)
        if member is not None and member.removed:
            raise Forbidden("Đồng chí không còn trong danh sách đảng viên", code="removed")
        if member is None or not member.approved:
            raise Forbidden(
                "Chưa có đồng chí trong danh sách đảng viên (đăng ký chưa được duyệt "
                "hoặc dữ liệu đang được đồng bộ)",
                code="not_in_roster",
            )
        if not member.eligible:
            raise Forbidden(
                "Đảng viên được miễn công tác và sinh hoạt đảng không thuộc đối tượng tham gia",
                code="not_eligible",
            )
        branch_path = await self.directory.path(member.branch_id)
        if not branch_path:
            raise Forbidden(
                "Chưa có chi bộ của đồng chí trong cây tổ chức (dữ liệu đang được đồng bộ)",
                code="unknown_branch",
            )
        return MemberContext(member, branch_path)

    async def concerns(self, unit_id: str, branch_path: Sequence[str]) -> bool:
        """A campaign or contest of `unit_id` concerns a branch under it (following merges)."""
        unit_path = await self.directory.path(unit_id)
        return bool(unit_path) and unit_path[-1] in branch_path

    async def _member_target(self, principal: Principal, target: Target) -> MemberContext:
        who = await self.acting_member(principal)
        if not await self.concerns(target.unit_id, who.branch_path):
            if isinstance(target, StudyCampaign):
                message, field_name = (
                    "Đợt học tập này không dành cho chi bộ của đồng chí",
                    "campaign_id",
                )
            else:
                message, field_name = (
                    "Cuộc thi này không dành cho chi bộ của đồng chí",
                    "contest_id",
                )
            raise Forbidden(message, field=field_name, code="out_of_scope")
        return who

    async def member_campaign(
        self, principal: Principal, campaign_id: str, uow: UnitOfWork | None = None
    ) -> tuple[StudyCampaign, MemberContext]:
        campaign = await self.load_campaign(campaign_id, uow)
        return campaign, await self._member_target(principal, campaign)

    async def enrolment_of(
        self, campaign_id: str, member_id: str, uow: UnitOfWork | None = None
    ) -> Enrolment:
        """The member's stream for the campaign (a new one if none yet), tracked by `uow`."""
        uow = uow or self.store.unit_of_work()
        enrolment_id = Enrolment.id_for(campaign_id, member_id)
        enrolment = await uow.get(Enrolment, enrolment_id)
        if enrolment is None:
            enrolment = Enrolment(enrolment_id)
            uow.add(enrolment)
        return enrolment

    @retry_on_conflict()
    async def _member_command(
        self,
        principal: Principal,
        campaign_id: str,
        act: Callable[[StudyCampaign, Enrolment, MemberContext, UnitOfWork], None],
    ) -> tuple[StudyCampaign, Enrolment]:
        uow = self.store.unit_of_work()
        campaign, who = await self.member_campaign(principal, campaign_id, uow)
        enrolment = await self.enrolment_of(campaign.id, who.member.member_id, uow)
        act(campaign, enrolment, who, uow)
        await _commit(uow, self._context(principal, who.branch_path))
        return campaign, enrolment

    async def start_study(
        self, principal: Principal, campaign_id: str
    ) -> tuple[StudyCampaign, Enrolment]:
        def act(c: StudyCampaign, e: Enrolment, who: MemberContext, _: UnitOfWork) -> None:
            e.start(c, who.member.branch_id, self.clock())

        return await self._member_command(principal, campaign_id, act)

    async def study_material(
        self, principal: Principal, campaign_id: str, material_id: str
    ) -> tuple[StudyCampaign, Enrolment]:
        def act(c: StudyCampaign, e: Enrolment, who: MemberContext, _: UnitOfWork) -> None:
            e.study(c, material_id, who.member.branch_id, self.clock())

        return await self._member_command(principal, campaign_id, act)

    async def material_body(
        self, principal: Principal, campaign_id: str, material_id: str
    ) -> tuple[StudyCampaign, str | None]:
        campaign = await self.load_campaign(campaign_id)
        if not await self.may_read_target(principal, campaign.unit_id):
            await self._member_target(principal, campaign)
        material = campaign.material(material_id)
        doc = await self.store.private_record(MATERIALS, f"{campaign.id}:{material.material_id}")
        return campaign, doc["body"] if doc else None

    # Papers: a campaign's quiz and a contest's entries alike ----------------------------------

    @retry_on_conflict()
    async def _start_paper(
        self, principal: Principal, kind: type[Target], target_id: str
    ) -> QuizPaper:
        uow = self.store.unit_of_work()
        target, who, sitting = await self._sitting(uow, principal, kind, target_id)
        attempt, created = sitting.begin(target, who.member.branch_id, self.clock())
        paper_id = sitting.paper_id(attempt.number)
        if not created:  # the open attempt, shown again in the same order
            paper, questions = await self._paper(paper_id)
            return QuizPaper(attempt, client_paper(paper, questions), False)
        bank_id, count = _source(target)
        paper, questions = await self._draw(bank_id, count)
        key = "campaign_id" if isinstance(target, StudyCampaign) else "contest_id"
        uow.private(PAPERS, paper.to_record(paper_id, **{key: target.id}))
        # The loser of a race meets a stream that moved (ConcurrencyConflict) and is run
        # again: it then finds this attempt open and shows it.
        await _commit(uow, self._context(principal, who.branch_path))
        return QuizPaper(attempt, client_paper(paper, questions), True)

    async def _sitting(
        self, uow: UnitOfWork, principal: Principal, kind: type[Target], target_id: str
    ) -> tuple[Target, MemberContext, Sitting]:
        target: Target
        if kind is StudyCampaign:
            target = await self.load_campaign(target_id, uow)
        else:
            target = await self.load_contest(target_id, uow)
        who = await self._member_target(principal, target)
        sitting: Sitting
        if isinstance(target, StudyCampaign):
            sitting = await self.enrolment_of(target.id, who.member.member_id, uow)
        else:
            entry_id = ContestEntry.id_for(target.id, who.member.member_id)
            sitting = await uow.get(ContestEntry, entry_id) or ContestEntry(entry_id)
            uow.add(sitting)
        return target, who, sitting

    @retry_on_conflict()
    async def _hand_in(
        self,
        principal: Principal,
        kind: type[Target],
        target_id: str,
        number: int,
        answers: Sequence[Answer],
    ) -> tuple[Target, Sitting, Score, Any, Paper, dict[str, Question]]:
        uow = self.store.unit_of_work()
        target, who, sitting = await self._sitting(uow, principal, kind, target_id)
        now = self.clock()
        sitting.check_can_submit(target, number, now, self.submit_grace)
        paper_id = sitting.paper_id(number)
        paper, questions = await self._paper(paper_id)
        result = score_paper(paper, answers, questions)
        outcome = sitting.hand_in(
            target,
            number,
            result,
            who.member.branch_id,
            now,
            self.submit_grace,
        )
        uow.private(ANSWERS, _answers_record(paper_id, answers, result, now))
        await _commit(uow, self._context(principal, who.branch_path))
        return target, sitting, result, outcome, paper, questions

    async def start_attempt(self, principal: Principal, campaign_id: str) -> QuizPaper:
        return await self._start_paper(principal, StudyCampaign, campaign_id)

    async def submit_attempt(
        self, principal: Principal, campaign_id: str, number: int, answers: Sequence[Answer]
    ) -> QuizResult:
        campaign, enrolment, result, passed, paper, questions = await self._hand_in(
            principal, StudyCampaign, campaign_id, number, answers
        )
        assert isinstance(campaign, StudyCampaign) and isinstance(enrolment, Enrolment)
        assert campaign.quiz is not None
        finished = enrolment.passed or len(enrolment.attempts) >= campaign.quiz.max_attempts
        return QuizResult(
            attempt=number,
            score=result,
            passed=bool(passed),
            finished=finished,
            review=_review(paper, questions, answers, result, reveal=finished),
            studied=enrolment.completed,
        )

    async def start_entry(self, principal: Principal, contest_id: str) -> QuizPaper:
        return await self._start_paper(principal, Contest, contest_id)

    async def submit_entry(
        self, principal: Principal, contest_id: str, number: int, answers: Sequence[Answer]
    ) -> QuizResult:
        contest, entry, result, duration, paper, questions = await self._hand_in(
            principal, Contest, contest_id, number, answers
        )
        assert isinstance(contest, Contest)
        # The key stays hidden while the contest runs: others are still answering.
        return QuizResult(
            attempt=number,
            score=result,
            passed=True,
            finished=len(entry.attempts) >= contest.max_entries,
            review=_review(paper, questions, answers, result, reveal=False),
            duration_seconds=round(float(duration), 1),
        )

    # Reflections -------------------------------------------------------------------------

    async def submit_reflection(
        self, principal: Principal, campaign_id: str, text: str
    ) -> tuple[StudyCampaign, Enrolment]:
        text = text.strip()
        if len(text) < MIN_REFLECTION:
            raise Invalid(f"Bài thu hoạch cần ít nhất {MIN_REFLECTION} ký tự", "text", "too_short")
        if len(text) > MAX_REFLECTION:
            raise Invalid(f"Bài thu hoạch dài quá {MAX_REFLECTION:,} ký tự", "text", "too_long")

        def act(c: StudyCampaign, e: Enrolment, who: MemberContext, uow: UnitOfWork) -> None:
            now = self.clock()
            number = e.submit_reflection(c, who.member.branch_id, now)
            uow.private(
                REFLECTIONS,
                {
                    "_id": f"{e.id}:{number}",
                    "campaign_id": c.id,
                    "member_id": e.member_id,
                    "submission": number,
                    "text": text,
                    "submitted_at": now,
                    "review": None,
                },
            )

        return await self._member_command(principal, campaign_id, act)

    async def _reviewable(
        self, principal: Principal, campaign_id: str, member_id: str, uow: UnitOfWork
    ) -> tuple[StudyCampaign, Enrolment, MemberInfo, list[str]]:
        campaign = await self.load_campaign(campaign_id, uow)
        member = await self.directory.member(member_id)
        if member is None:
            raise NotFound(f"Không tìm thấy đảng viên {member_id}", field="member_id")
        branch_path = await self.unit_path(member.branch_id, "member_id")
        if not principal.covers([Role.branch_secretary], branch_path):
            raise Forbidden(
                "Chỉ bí thư chi bộ của đảng viên được nhận xét bài thu hoạch", field="member_id"
            )
        enrolment = await uow.get(Enrolment, Enrolment.id_for(campaign.id, member_id))
        if enrolment is None:
            raise NotFound("Đảng viên chưa tham gia đợt học tập này", field="member_id")
        return campaign, enrolment, member, branch_path

    @retry_on_conflict()
    async def review_reflection(
        self, principal: Principal, campaign_id: str, member_id: str, verdict: str, comment: str
    ) -> Enrolment:
        if len(comment) > 5000:
            raise Invalid("Nhận xét dài quá 5.000 ký tự", "comment")
        uow = self.store.unit_of_work()
        _, enrolment, member, branch_path = await self._reviewable(
            principal, campaign_id, member_id, uow
        )
        reviewer = principal.member_id or principal.subject
        enrolment.review_reflection(reviewer, verdict.strip(), member.branch_id)
        record_id = f"{enrolment.id}:{enrolment.reflection_submissions}"
        doc = await self.store.private_record(REFLECTIONS, record_id) or {"_id": record_id}
        doc["review"] = {
            "verdict": verdict.strip(),
            "comment": comment.strip(),
            "reviewed_by": reviewer,
            "reviewed_at": self.clock(),
        }
        uow.private(REFLECTIONS, doc)
        await _commit(uow, self._context(principal, branch_path))
        return enrolment

    async def reflection_text(
        self, principal: Principal, campaign_id: str, member_id: str
    ) -> dict[str, Any]:
        """The member's own reflection, or one their branch secretary reviews."""
        uow = self.store.unit_of_work()
        if principal.member_id != member_id:
            await self._reviewable(principal, campaign_id, member_id, uow)
        enrolment = await uow.get(Enrolment, Enrolment.id_for(campaign_id, member_id))
        if enrolment is None or not enrolment.reflection_submissions:
            raise NotFound("Chưa có bài thu hoạch", field="member_id")
        doc = await self.store.private_record(
            REFLECTIONS, f"{enrolment.id}:{enrolment.reflection_submissions}"
        )
        if doc is None:
            raise NotFound("Chưa có bài thu hoạch", field="member_id")
        return doc | {"status": enrolment.reflection_status}

    # Reading rights ----------------------------------------------------------------------

    async def may_read_target(self, principal: Principal, unit_id: str) -> bool:
        """Committees above a campaign's unit, and those inside its subtree, may follow it."""
        unit_path = await self.directory.path(unit_id)
        if not unit_path:
            return False
        if principal.covers(READ_ROLES, unit_path):
            return True
        for grant in principal.grants:
            if grant.role in READ_ROLES and unit_path[-1] in await self.directory.path(
                grant.unit_id
            ):
                return True
        return False

    # Contests ----------------------------------------------------------------------------

    async def load_contest(self, contest_id: str, uow: UnitOfWork | None = None) -> Contest:
        contest = await (uow or self.store.unit_of_work()).get(Contest, contest_id)
        if contest is None:
            raise NotFound(f"Không tìm thấy cuộc thi {contest_id}", field="contest_id")
        return contest

    @retry_on_conflict()
    async def open_contest(
        self,
        principal: Principal,
        *,
        contest_id: str | None,
        unit_id: str,
        title: str,
        resolution_code: str | None,
        bank_id: str,
        question_count: int,
        time_limit_minutes: int,
        max_entries: int,
        starts_at: datetime,
        ends_at: datetime,
    ) -> tuple[Contest, bool]:
        path = await self.unit_path(unit_id)
        principal.require(ADMIN_ROLES, path)
        contest_id = check_id(contest_id, "contest_id") if contest_id else _new_id("ct")
        uow = self.store.unit_of_work()
        existing = await uow.get(Contest, contest_id)
        if existing is not None:
            if (existing.unit_id, existing.title) == (unit_id, " ".join(title.split())):
                return existing, False
            raise conflict(f"Mã cuộc thi {contest_id} đã được dùng", "contest_id", "duplicate_id")
        contest = Contest.open(
            contest_id,
            unit_id,
            title,
            resolution_code,
            await uow.get(QuestionBank, bank_id),
            bank_id,
            question_count,
            time_limit_minutes,
            max_entries,
            as_utc(starts_at),
            as_utc(ends_at),
            path,
            self.clock(),
        )
        uow.add(contest)
        await _commit(uow, self._context(principal, path))
        return contest, True

    @retry_on_conflict()
    async def close_contest(self, principal: Principal, contest_id: str) -> Contest:
        uow = self.store.unit_of_work()
        contest = await self.load_contest(contest_id, uow)
        path = await self.unit_path(contest.unit_id)
        principal.require(ADMIN_ROLES, path)
        contest.close()
        await _commit(uow, self._context(principal, path))
        return contest

    async def member_contest(
        self, principal: Principal, contest_id: str
    ) -> tuple[Contest, MemberContext]:
        contest = await self.load_contest(contest_id)
        return contest, await self._member_target(principal, contest)


async def _commit(uow: UnitOfWork, context: CommandContext) -> None:
    try:
        await uow.commit(context)
    except EventTooLarge:
        # The request models bound every field; this is the last line before the broker.
        raise Invalid(
            "Nội dung quá lớn để lưu và gửi đi, đề nghị rút gọn", field=None, code="too_large"
        ) from None


def _source(target: Target) -> tuple[str, int]:
    """The bank a paper is drawn from, and how many questions."""
    if isinstance(target, StudyCampaign):
        assert target.quiz is not None  # begin() refused a campaign without a quiz
        return target.quiz.bank_id, target.quiz.question_count
    return target.bank_id, target.question_count


def _new_id(prefix: str) -> str:
    return f"{prefix}-{new_event_id().replace('-', '')[-16:]}"


def _answers_record(
    paper_id: str, answers: Sequence[Answer], result: Score, now: datetime
) -> dict[str, Any]:
    return {
        "_id": paper_id,
        "answers": [
            {"question_id": a.question_id, "option_ids": sorted(a.option_ids)} for a in answers
        ],
        "correct": result.per_question,
        "score": result.score,
        "submitted_at": now,
    }


def _review(
    paper: Paper,
    questions: dict[str, Question],
    answers: Sequence[Answer],
    result: Score,
    reveal: bool,
) -> list[dict[str, Any]]:
    """Right or wrong for each question; the key itself only once no attempt is left."""
    chosen = {a.question_id: sorted(a.option_ids) for a in answers}
    review = []
    for number, item in enumerate(paper.items, start=1):
        row: dict[str, Any] = {
            "number": number,
            "question_id": item.question_id,
            "chosen": chosen.get(item.question_id, []),
            "correct": result.per_question[item.question_id],
        }
        if reveal:
            question = questions[item.question_id]
            row["correct_option_ids"] = sorted(question.correct)
            row["explanation"] = question.explanation
        review.append(row)
    return review
