"""One method per command: load, authorize against the tree, decide, append.

Who a member is and where they sit come from learning's own roster and tree
projections (`Directory`); what campaigns, enrolments and banks hold comes from
the event store, never from a read model.
"""

from __future__ import annotations

import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol, TypeVar

from sotay_events import (
    Aggregate,
    CommandContext,
    ConcurrencyConflict,
    EventStore,
    PrivateRecord,
    decode,
    new_event_id,
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
from sotay_learning.errors import RuleBroken
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
from sotay_platform.errors import Forbidden, NotFound

A = TypeVar("A", bound=Aggregate)
T = TypeVar("T")

MIN_REFLECTION, MAX_REFLECTION = 50, 50_000


@dataclass(frozen=True)
class MemberInfo:
    member_id: str
    full_name: str
    branch_id: str
    status: str
    eligible: bool
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


class LearningService:
    def __init__(
        self,
        store: EventStore,
        directory: Directory,
        *,
        clock: Callable[[], datetime] = utc_now,
        rng: random.Random | None = None,
        submit_grace: timedelta = timedelta(seconds=15),
        on_saved: Callable[[], None] = lambda: None,
        bank_cache_seconds: float = 30.0,
    ) -> None:
        self.store = store
        self.directory = directory
        self.clock = clock
        self.rng = rng or random.SystemRandom()
        self.submit_grace = submit_grace
        self.on_saved = on_saved
        self.bank_cache_seconds = bank_cache_seconds
        self._banks: dict[str, tuple[float, QuestionBank]] = {}

    # Loading and saving ------------------------------------------------------------------

    async def _get(self, cls: type[A], aggregate_id: str) -> A | None:
        envelopes = await self.store.load(cls.aggregate_type, aggregate_id)
        if not envelopes:
            return None
        return cls.rebuild(aggregate_id, [decode(e) for e in envelopes])

    async def _save(
        self,
        aggregate: Aggregate,
        principal: Principal,
        org_path: Sequence[str],
        records: Sequence[PrivateRecord] = (),
        correlation_id: str | None = None,
    ) -> None:
        if not aggregate.pending and not records:
            return
        context = CommandContext(
            actor=principal.subject,
            org_path=tuple(org_path),
            correlation_id=correlation_id or new_event_id(),
        )
        await self.store.append(
            aggregate.aggregate_type,
            aggregate.id,
            aggregate.loaded_version,
            aggregate.pending,
            context,
            records,
        )
        aggregate.mark_saved()
        self.on_saved()

    @staticmethod
    async def _retrying(command: Callable[[], Awaitable[T]], tries: int = 3) -> T:
        """A member's command raced another on the same stream: decide again on fresh state."""
        for attempt in range(tries):
            try:
                return await command()
            except ConcurrencyConflict:
                if attempt == tries - 1:
                    raise
        raise AssertionError("unreachable")

    async def unit_path(self, unit_id: str, field: str = "unit_id") -> list[str]:
        path = await self.directory.path(unit_id)
        if not path:
            raise NotFound(f"Không tìm thấy đơn vị có mã {unit_id}", field=field)
        return path

    # Question banks ----------------------------------------------------------------------

    async def load_bank(self, bank_id: str, field: str = "bank_id") -> QuestionBank:
        bank = await self._get(QuestionBank, bank_id)
        if bank is None:
            raise NotFound(f"Không tìm thấy ngân hàng câu hỏi {bank_id}", field=field)
        return bank

    async def create_bank(
        self, principal: Principal, bank_id: str | None, unit_id: str, title: str
    ) -> tuple[QuestionBank, bool]:
        path = await self.unit_path(unit_id)
        principal.require(ADMIN_ROLES, path)
        bank_id = check_id(bank_id, "bank_id") if bank_id else f"nh-{new_event_id()[-12:]}"
        existing = await self._get(QuestionBank, bank_id)
        if existing is not None:
            if existing.unit_id == unit_id and existing.title == " ".join(title.split()):
                return existing, False
            raise RuleBroken(
                f"Mã ngân hàng {bank_id} đã được dùng", "bank_id", "duplicate_id", status_code=409
            )
        bank = QuestionBank.create(bank_id, unit_id, title)
        await self._save(bank, principal, path)
        return bank, True

    async def add_questions(
        self, principal: Principal, bank_id: str, drafts: Sequence[QuestionDraft]
    ) -> list[Question]:
        bank = await self.load_bank(bank_id)
        path = await self.unit_path(bank.unit_id)
        principal.require(ADMIN_ROLES, path)
        questions = [
            build_question(
                bank.id, d.kind, d.text, d.options, d.explanation, field_prefix=f"questions.{i}."
            )
            for i, d in enumerate(drafts)
        ]
        bank.add(questions)
        await self._save(
            bank, principal, path, [PrivateRecord(QUESTIONS, q.to_record()) for q in questions]
        )
        self._banks.pop(bank.id, None)
        return questions

    async def retire_question(
        self, principal: Principal, bank_id: str, question_id: str
    ) -> QuestionBank:
        bank = await self.load_bank(bank_id)
        path = await self.unit_path(bank.unit_id)
        principal.require(ADMIN_ROLES, path)
        bank.retire(question_id)
        await self._save(bank, principal, path)
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
            raise RuleBroken(
                "Ngân hàng câu hỏi không còn đủ câu hỏi cho bài làm; "
                "đề nghị liên hệ cấp ủy tổ chức",
                "attempt",
                code="bank_too_small",
                status_code=409,
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

    async def load_campaign(self, campaign_id: str) -> StudyCampaign:
        campaign = await self._get(StudyCampaign, campaign_id)
        if campaign is None:
            raise NotFound(f"Không tìm thấy đợt học tập {campaign_id}", field="campaign_id")
        return campaign

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
        existing = await self._get(StudyCampaign, campaign_id)
        if existing is not None:
            if (existing.unit_id, existing.resolution_code) == (unit_id, resolution_code.strip()):
                return existing, False  # the same launch, retried
            raise RuleBroken(
                f"Mã đợt học tập {campaign_id} đã được dùng",
                "campaign_id",
                "duplicate_id",
                status_code=409,
            )
        built, bodies = build_materials(materials)
        bank = await self._get(QuestionBank, quiz.bank_id) if quiz else None
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
        records = [
            PrivateRecord(MATERIALS, {"_id": f"{campaign_id}:{mid}", "body": body})
            for mid, body in bodies.items()
        ]
        await self._save(campaign, principal, path, records, correlation_id)
        return campaign, True

    async def _admin_campaign(
        self, principal: Principal, campaign_id: str
    ) -> tuple[StudyCampaign, list[str]]:
        campaign = await self.load_campaign(campaign_id)
        path = await self.unit_path(campaign.unit_id)
        principal.require(ADMIN_ROLES, path)
        return campaign, path

    async def extend_deadline(
        self, principal: Principal, campaign_id: str, deadline: datetime
    ) -> StudyCampaign:
        campaign, path = await self._admin_campaign(principal, campaign_id)
        campaign.extend_deadline(as_utc(deadline), self.clock())
        await self._save(campaign, principal, path)
        return campaign

    async def close_campaign(self, principal: Principal, campaign_id: str) -> StudyCampaign:
        campaign, path = await self._admin_campaign(principal, campaign_id)
        campaign.close()
        await self._save(campaign, principal, path)
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
                f"Chưa có chi bộ {member.branch_id} trong cây tổ chức (dữ liệu đang được đồng bộ)",
                code="unknown_branch",
            )
        return MemberContext(member, branch_path)

    async def concerns(self, unit_id: str, branch_path: Sequence[str]) -> bool:
        """A campaign or contest of `unit_id` concerns a branch under it (following merges)."""
        unit_path = await self.directory.path(unit_id)
        return bool(unit_path) and unit_path[-1] in branch_path

    async def member_campaign(
        self, principal: Principal, campaign_id: str
    ) -> tuple[StudyCampaign, MemberContext]:
        campaign = await self.load_campaign(campaign_id)
        who = await self.acting_member(principal)
        if not await self.concerns(campaign.unit_id, who.branch_path):
            raise Forbidden(
                "Đợt học tập này không dành cho chi bộ của đồng chí",
                field="campaign_id",
                code="out_of_scope",
            )
        return campaign, who

    async def enrolment_of(self, campaign_id: str, member_id: str) -> Enrolment:
        enrolment_id = Enrolment.id_for(campaign_id, member_id)
        return await self._get(Enrolment, enrolment_id) or Enrolment(enrolment_id)

    async def _member_command(
        self,
        principal: Principal,
        campaign_id: str,
        act: Callable[[StudyCampaign, Enrolment, MemberContext], list[PrivateRecord]],
    ) -> tuple[StudyCampaign, Enrolment]:
        async def once() -> tuple[StudyCampaign, Enrolment]:
            campaign, who = await self.member_campaign(principal, campaign_id)
            enrolment = await self.enrolment_of(campaign.id, who.member.member_id)
            records = act(campaign, enrolment, who)
            await self._save(enrolment, principal, who.branch_path, records)
            return campaign, enrolment

        return await self._retrying(once)

    async def start_study(
        self, principal: Principal, campaign_id: str
    ) -> tuple[StudyCampaign, Enrolment]:
        def act(c: StudyCampaign, e: Enrolment, who: MemberContext) -> list[PrivateRecord]:
            e.start(c, who.member.branch_id, self.clock())
            return []

        return await self._member_command(principal, campaign_id, act)

    async def study_material(
        self, principal: Principal, campaign_id: str, material_id: str
    ) -> tuple[StudyCampaign, Enrolment]:
        def act(c: StudyCampaign, e: Enrolment, who: MemberContext) -> list[PrivateRecord]:
            e.study(c, material_id, who.member.branch_id, self.clock())
            return []

        return await self._member_command(principal, campaign_id, act)

    async def material_body(
        self, principal: Principal, campaign_id: str, material_id: str
    ) -> tuple[StudyCampaign, str | None]:
        campaign = await self.load_campaign(campaign_id)
        if not await self.may_read_target(principal, campaign.unit_id):
            await self.member_campaign(principal, campaign_id)
        material = campaign.material(material_id)
        doc = await self.store.private_record(MATERIALS, f"{campaign.id}:{material.material_id}")
        return campaign, doc["body"] if doc else None

    async def start_attempt(self, principal: Principal, campaign_id: str) -> QuizPaper:
        async def once() -> QuizPaper:
            campaign, who = await self.member_campaign(principal, campaign_id)
            enrolment = await self.enrolment_of(campaign.id, who.member.member_id)
            attempt, created = enrolment.start_attempt(campaign, who.member.branch_id, self.clock())
            paper_id = f"{enrolment.aggregate_type}:{enrolment.id}:{attempt.number}"
            if not created:  # the open attempt, shown again in the same order
                paper, questions = await self._paper(paper_id)
                return QuizPaper(attempt, client_paper(paper, questions), False)
            assert campaign.quiz is not None
            paper, questions = await self._draw(campaign.quiz.bank_id, campaign.quiz.question_count)
            record = PrivateRecord(PAPERS, paper.to_record(paper_id, campaign_id=campaign.id))
            await self._save(enrolment, principal, who.branch_path, [record])
            return QuizPaper(attempt, client_paper(paper, questions), True)

        return await self._retrying(once)

    async def submit_attempt(
        self, principal: Principal, campaign_id: str, number: int, answers: Sequence[Answer]
    ) -> QuizResult:
        async def once() -> QuizResult:
            campaign, who = await self.member_campaign(principal, campaign_id)
            enrolment = await self.enrolment_of(campaign.id, who.member.member_id)
            now = self.clock()
            enrolment.check_can_submit(campaign, number, now, self.submit_grace)
            paper_id = f"{enrolment.aggregate_type}:{enrolment.id}:{number}"
            paper, questions = await self._paper(paper_id)
            result = score_paper(paper, answers, questions)
            passed = enrolment.submit_attempt(
                campaign, number, result, who.member.branch_id, now, self.submit_grace
            )
            record = PrivateRecord(ANSWERS, _answers_record(paper_id, answers, result, now))
            await self._save(enrolment, principal, who.branch_path, [record])
            assert campaign.quiz is not None
            finished = enrolment.passed or len(enrolment.attempts) >= campaign.quiz.max_attempts
            return QuizResult(
                attempt=number,
                score=result,
                passed=passed,
                finished=finished,
                review=_review(paper, questions, answers, result, reveal=finished),
                studied=enrolment.completed,
            )

        return await self._retrying(once)

    async def submit_reflection(
        self, principal: Principal, campaign_id: str, text: str
    ) -> tuple[StudyCampaign, Enrolment]:
        text = text.strip()
        if len(text) < MIN_REFLECTION:
            raise RuleBroken(
                f"Bài thu hoạch cần ít nhất {MIN_REFLECTION} ký tự", "text", "too_short"
            )
        if len(text) > MAX_REFLECTION:
            raise RuleBroken(f"Bài thu hoạch dài quá {MAX_REFLECTION:,} ký tự", "text", "too_long")

        def act(c: StudyCampaign, e: Enrolment, who: MemberContext) -> list[PrivateRecord]:
            now = self.clock()
            number = e.submit_reflection(c, who.member.branch_id, now)
            return [
                PrivateRecord(
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
            ]

        return await self._member_command(principal, campaign_id, act)

    async def _reviewable(
        self, principal: Principal, campaign_id: str, member_id: str
    ) -> tuple[StudyCampaign, Enrolment, MemberInfo, list[str]]:
        campaign = await self.load_campaign(campaign_id)
        member = await self.directory.member(member_id)
        if member is None:
            raise NotFound(f"Không tìm thấy đảng viên {member_id}", field="member_id")
        branch_path = await self.unit_path(member.branch_id, "member_id")
        if not principal.covers([Role.branch_secretary], branch_path):
            raise Forbidden(
                "Chỉ bí thư chi bộ của đảng viên được nhận xét bài thu hoạch", field="member_id"
            )
        enrolment = await self._get(Enrolment, Enrolment.id_for(campaign.id, member_id))
        if enrolment is None:
            raise NotFound("Đảng viên chưa tham gia đợt học tập này", field="member_id")
        return campaign, enrolment, member, branch_path

    async def review_reflection(
        self, principal: Principal, campaign_id: str, member_id: str, verdict: str, comment: str
    ) -> Enrolment:
        if len(comment) > 5000:
            raise RuleBroken("Nhận xét dài quá 5.000 ký tự", "comment")

        async def once() -> Enrolment:
            _, enrolment, member, branch_path = await self._reviewable(
                principal, campaign_id, member_id
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
            await self._save(enrolment, principal, branch_path, [PrivateRecord(REFLECTIONS, doc)])
            return enrolment

        return await self._retrying(once)

    async def reflection_text(
        self, principal: Principal, campaign_id: str, member_id: str
    ) -> dict[str, Any]:
        """The member's own reflection, or one their branch secretary reviews."""
        if principal.member_id != member_id:
            await self._reviewable(principal, campaign_id, member_id)
        enrolment = await self._get(Enrolment, Enrolment.id_for(campaign_id, member_id))
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

    async def load_contest(self, contest_id: str) -> Contest:
        contest = await self._get(Contest, contest_id)
        if contest is None:
            raise NotFound(f"Không tìm thấy cuộc thi {contest_id}", field="contest_id")
        return contest

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
        existing = await self._get(Contest, contest_id)
        if existing is not None:
            if (existing.unit_id, existing.title) == (unit_id, " ".join(title.split())):
                return existing, False
            raise RuleBroken(
                f"Mã cuộc thi {contest_id} đã được dùng", "contest_id", "duplicate_id", 409
            )
        contest = Contest.open(
            contest_id,
            unit_id,
            title,
            resolution_code,
            await self._get(QuestionBank, bank_id),
            bank_id,
            question_count,
            time_limit_minutes,
            max_entries,
            as_utc(starts_at),
            as_utc(ends_at),
            path,
            self.clock(),
        )
        await self._save(contest, principal, path)
        return contest, True

    async def close_contest(self, principal: Principal, contest_id: str) -> Contest:
        contest = await self.load_contest(contest_id)
        path = await self.unit_path(contest.unit_id)
        principal.require(ADMIN_ROLES, path)
        contest.close()
        await self._save(contest, principal, path)
        return contest

    async def member_contest(
        self, principal: Principal, contest_id: str
    ) -> tuple[Contest, MemberContext]:
        contest = await self.load_contest(contest_id)
        who = await self.acting_member(principal)
        if not await self.concerns(contest.unit_id, who.branch_path):
            raise Forbidden(
                "Cuộc thi này không dành cho chi bộ của đồng chí",
                field="contest_id",
                code="out_of_scope",
            )
        return contest, who

    async def entry_of(self, contest_id: str, member_id: str) -> ContestEntry:
        entry_id = ContestEntry.id_for(contest_id, member_id)
        return await self._get(ContestEntry, entry_id) or ContestEntry(entry_id)

    async def start_entry(self, principal: Principal, contest_id: str) -> QuizPaper:
        async def once() -> QuizPaper:
            contest, who = await self.member_contest(principal, contest_id)
            entry = await self.entry_of(contest.id, who.member.member_id)
            attempt, created = entry.start_entry(contest, who.member.branch_id, self.clock())
            paper_id = f"{entry.aggregate_type}:{entry.id}:{attempt.number}"
            if not created:
                paper, questions = await self._paper(paper_id)
                return QuizPaper(attempt, client_paper(paper, questions), False)
            paper, questions = await self._draw(contest.bank_id, contest.question_count)
            record = PrivateRecord(PAPERS, paper.to_record(paper_id, contest_id=contest.id))
            await self._save(entry, principal, who.branch_path, [record])
            return QuizPaper(attempt, client_paper(paper, questions), True)

        return await self._retrying(once)

    async def submit_entry(
        self, principal: Principal, contest_id: str, number: int, answers: Sequence[Answer]
    ) -> QuizResult:
        async def once() -> QuizResult:
            contest, who = await self.member_contest(principal, contest_id)
            entry = await self.entry_of(contest.id, who.member.member_id)
            now = self.clock()
            entry.check_can_submit(contest, number, now, self.submit_grace)
            paper_id = f"{entry.aggregate_type}:{entry.id}:{number}"
            paper, questions = await self._paper(paper_id)
            result = score_paper(paper, answers, questions)
            duration = entry.submit(
                contest, number, result, who.member.branch_id, now, self.submit_grace
            )
            record = PrivateRecord(ANSWERS, _answers_record(paper_id, answers, result, now))
            await self._save(entry, principal, who.branch_path, [record])
            # The key stays hidden while the contest runs: others are still answering.
            return QuizResult(
                attempt=number,
                score=result,
                passed=True,
                finished=len(entry.attempts) >= contest.max_entries,
                review=_review(paper, questions, answers, result, reveal=False),
                duration_seconds=round(duration, 1),
            )

        return await self._retrying(once)


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
