"""Aggregates: every rule about campaigns, study, quizzes and contests, without I/O.

A member's study of a campaign is its own stream (`Enrolment`, id
`<campaign>:<member>`), and so is a member's part in a contest (`ContestEntry`):
a province-wide campaign is hundreds of thousands of small streams, never one
big one. Commands take the time (`now`) and whatever else they need to decide
as arguments; handlers load those.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import ClassVar
from urllib.parse import urlparse

from sotay_events import Aggregate, DomainEvent
from sotay_events.catalogue.learning import (
    CampaignMaterial,
    ContestClosed,
    ContestEntryStarted,
    ContestEntrySubmitted,
    ContestOpened,
    MaterialKind,
    MaterialStudied,
    QuestionAdded,
    QuestionBankCreated,
    QuestionKind,
    QuestionRetired,
    QuizAttemptStarted,
    QuizAttemptSubmitted,
    QuizSettings,
    ReflectionReviewed,
    ReflectionSubmitted,
    ResolutionStudied,
    StudyCampaignClosed,
    StudyCampaignDeadlineExtended,
    StudyCampaignLaunched,
    StudyStarted,
)
from sotay_learning.errors import RuleBroken, conflict
from sotay_learning.quiz import Question, Score
from sotay_learning.timefmt import vn_datetime
from sotay_platform.errors import Forbidden, NotFound

ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
RESOLUTION_CODE = re.compile(r"^[0-9]{1,4}[A-Za-z0-9/.\- ]{0,40}$")
MAX_HORIZON = timedelta(days=3 * 366)
VERDICTS = {"đạt": True, "chưa đạt": False}


def check_id(value: str, field: str) -> str:
    if not ID_PATTERN.match(value):
        raise RuleBroken(
            "Mã chỉ gồm chữ không dấu, số, dấu chấm, gạch dưới, gạch ngang; tối đa 64 ký tự",
            field,
            code="bad_id",
        )
    return value


def clean_text(value: str, field: str, label: str, max_len: int, min_len: int = 1) -> str:
    value = " ".join(value.split())
    if len(value) < min_len:
        raise RuleBroken(f"{label} không được để trống", field)
    if len(value) > max_len:
        raise RuleBroken(f"{label} dài quá {max_len} ký tự", field)
    return value


# Question banks ---------------------------------------------------------------------------


class QuestionBank(Aggregate):
    aggregate_type: ClassVar[str] = "QuestionBank"

    def __init__(self, aggregate_id: str) -> None:
        super().__init__(aggregate_id)
        self.unit_id = ""
        self.title = ""
        self.kinds: dict[str, QuestionKind] = {}
        self.retired: set[str] = set()

    def apply(self, event: DomainEvent) -> None:
        match event:
            case QuestionBankCreated():
                self.unit_id, self.title = event.unit_id, event.title
            case QuestionAdded():
                self.kinds[event.question_id] = event.kind
            case QuestionRetired():
                self.retired.add(event.question_id)

    @property
    def active_ids(self) -> list[str]:
        return [q for q in self.kinds if q not in self.retired]

    @classmethod
    def create(cls, bank_id: str, unit_id: str, title: str) -> QuestionBank:
        check_id(bank_id, "bank_id")
        bank = cls(bank_id)
        bank.record(
            QuestionBankCreated(
                bank_id=bank_id,
                unit_id=unit_id,
                title=clean_text(title, "title", "Tên ngân hàng câu hỏi", 200),
            )
        )
        return bank

    def add(self, questions: Sequence[Question]) -> None:
        if not questions:
            raise RuleBroken("Cần ít nhất một câu hỏi", "questions")
        if len(self.kinds) + len(questions) > 5000:
            raise RuleBroken("Một ngân hàng có tối đa 5.000 câu hỏi", "questions")
        for question in questions:
            self.record(
                QuestionAdded(
                    bank_id=self.id,
                    unit_id=self.unit_id,
                    question_id=question.question_id,
                    kind=question.kind,
                    option_count=len(question.options),
                )
            )

    def retire(self, question_id: str) -> None:
        if question_id not in self.kinds:
            raise NotFound(f"Không có câu hỏi {question_id} trong ngân hàng", "question_id")
        if question_id not in self.retired:
            self.record(
                QuestionRetired(bank_id=self.id, unit_id=self.unit_id, question_id=question_id)
            )


# Study campaigns ---------------------------------------------------------------------------


@dataclass(frozen=True)
class MaterialDraft:
    kind: MaterialKind
    title: str
    required: bool = True
    body: str | None = None
    url: str | None = None
    file_name: str | None = None
    document_id: str | None = None
    duration_minutes: int | None = None
    material_id: str | None = None


def _check_url(url: str | None, field: str) -> str | None:
    if url is None:
        return None
    url = url.strip()
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc or len(url) > 2000:
        raise RuleBroken("Đường dẫn phải là địa chỉ http(s) hợp lệ", field, code="bad_url")
    return url


def build_materials(
    drafts: Sequence[MaterialDraft],
) -> tuple[list[CampaignMaterial], dict[str, str]]:
    """The campaign's materials and, apart, the bodies of its text materials."""
    if not drafts:
        raise RuleBroken("Đợt học tập cần ít nhất một tài liệu", "materials")
    if len(drafts) > 100:
        raise RuleBroken("Một đợt học tập có tối đa 100 tài liệu", "materials")
    materials: list[CampaignMaterial] = []
    bodies: dict[str, str] = {}
    for i, draft in enumerate(drafts, start=1):
        field = f"materials.{i - 1}"
        material_id = check_id(draft.material_id or f"m{i}", f"{field}.material_id")
        if any(m.material_id == material_id for m in materials):
            raise RuleBroken(f"Mã tài liệu {material_id} bị trùng", f"{field}.material_id")
        title = clean_text(draft.title, f"{field}.title", "Tên tài liệu", 300)
        url = _check_url(draft.url, f"{field}.url")
        if draft.kind is MaterialKind.text:
            body = (draft.body or "").strip()
            if not body:
                raise RuleBroken("Tài liệu dạng văn bản cần có nội dung", f"{field}.body")
            if len(body) > 500_000:
                raise RuleBroken("Nội dung tài liệu dài quá 500.000 ký tự", f"{field}.body")
            bodies[material_id] = body
        elif draft.kind is MaterialKind.attachment:
            if not (url or draft.document_id):
                raise RuleBroken(
                    "Tệp đính kèm cần đường dẫn tải về hoặc mã tài liệu", f"{field}.url"
                )
        elif not url:
            raise RuleBroken("Liên kết và video cần có đường dẫn", f"{field}.url")
        materials.append(
            CampaignMaterial(
                material_id=material_id,
                kind=draft.kind,
                title=title,
                required=draft.required,
                url=url,
                file_name=draft.file_name,
                document_id=draft.document_id,
                duration_minutes=draft.duration_minutes,
            )
        )
    return materials, bodies


class StudyCampaign(Aggregate):
    aggregate_type: ClassVar[str] = "StudyCampaign"

    def __init__(self, aggregate_id: str) -> None:
        super().__init__(aggregate_id)
        self.unit_id = ""
        self.title = ""
        self.resolution_code = ""
        self.resolution_title = ""
        self.deadline = datetime.min
        self.materials: list[CampaignMaterial] = []
        self.quiz: QuizSettings | None = None
        self.closed = False

    def apply(self, event: DomainEvent) -> None:
        match event:
            case StudyCampaignLaunched():
                self.unit_id = event.unit_id
                self.resolution_code = event.resolution_code
                self.resolution_title = event.resolution_title
                self.title = event.title or event.resolution_title
                self.deadline = event.deadline
                self.materials = list(event.materials)
                self.quiz = event.quiz
            case StudyCampaignDeadlineExtended():
                self.deadline = event.deadline
            case StudyCampaignClosed():
                self.closed = True

    @property
    def required_material_ids(self) -> list[str]:
        return [m.material_id for m in self.materials if m.required]

    def material(self, material_id: str) -> CampaignMaterial:
        for material in self.materials:
            if material.material_id == material_id:
                return material
        raise NotFound(f"Đợt học tập không có tài liệu {material_id}", "material_id")

    @classmethod
    def launch(
        cls,
        campaign_id: str,
        unit_id: str,
        resolution_code: str,
        resolution_title: str,
        title: str | None,
        deadline: datetime,
        materials: list[CampaignMaterial],
        quiz: QuizSettings | None,
        bank: QuestionBank | None,
        unit_path: Sequence[str],
        now: datetime,
    ) -> StudyCampaign:
        check_id(campaign_id, "campaign_id")
        code = " ".join(resolution_code.split())
        if not RESOLUTION_CODE.match(code):
            raise RuleBroken("Số hiệu nghị quyết không hợp lệ (ví dụ: 57-NQ/TW)", "resolution_code")
        resolution_title = clean_text(resolution_title, "resolution_title", "Tên nghị quyết", 500)
        title = clean_text(title, "title", "Tên đợt học tập", 300) if title else None
        _check_future(deadline, now, "deadline")
        if not any(m.required for m in materials) and quiz is None:
            raise RuleBroken(
                "Đợt học tập cần ít nhất một tài liệu bắt buộc hoặc một bài kiểm tra",
                "materials",
            )
        if quiz is not None:
            _check_bank(bank, quiz.bank_id, quiz.question_count, unit_path)
        campaign = cls(campaign_id)
        campaign.record(
            StudyCampaignLaunched(
                campaign_id=campaign_id,
                unit_id=unit_id,
                resolution_code=code,
                resolution_title=resolution_title,
                title=title,
                deadline=deadline,
                material_ids=[m.material_id for m in materials],
                has_quiz=quiz is not None,
                materials=materials,
                quiz=quiz,
            )
        )
        return campaign

    def extend_deadline(self, deadline: datetime, now: datetime) -> None:
        self.require_open()
        _check_future(deadline, now, "deadline")
        if deadline <= self.deadline:
            raise RuleBroken(
                f"Hạn mới phải sau hạn hiện tại ({vn_datetime(self.deadline)})", "deadline"
            )
        self.record(
            StudyCampaignDeadlineExtended(
                campaign_id=self.id,
                unit_id=self.unit_id,
                deadline=deadline,
                previous_deadline=self.deadline,
            )
        )

    def close(self) -> None:
        if not self.closed:
            self.record(StudyCampaignClosed(campaign_id=self.id, unit_id=self.unit_id))

    def require_open(self) -> None:
        if self.closed:
            raise conflict("Đợt học tập đã kết thúc", "campaign_id", "campaign_closed")

    def ensure_running(self, now: datetime) -> None:
        """Members may study, answer and hand in only while the campaign runs."""
        self.require_open()
        if now > self.deadline:
            raise RuleBroken(
                f"Đợt học tập đã hết hạn lúc {vn_datetime(self.deadline)}",
                "campaign_id",
                code="deadline_passed",
            )


def _check_future(moment: datetime, now: datetime, field: str) -> None:
    if moment <= now:
        raise RuleBroken("Thời hạn phải ở tương lai", field, code="in_the_past")
    if moment - now > MAX_HORIZON:
        raise RuleBroken("Thời hạn không được quá 3 năm kể từ hôm nay", field)


def _check_bank(
    bank: QuestionBank | None, bank_id: str, count: int, unit_path: Sequence[str]
) -> None:
    """A committee draws from its own banks and from those of the committees above it."""
    if bank is None:
        raise RuleBroken(
            f"Không tìm thấy ngân hàng câu hỏi {bank_id}", "quiz.bank_id", code="not_found"
        )
    if bank.unit_id not in unit_path:
        raise RuleBroken(
            "Chỉ dùng được ngân hàng câu hỏi của cấp ủy mình hoặc cấp trên",
            "quiz.bank_id",
            code="bank_out_of_scope",
        )
    if len(bank.active_ids) < count:
        raise RuleBroken(
            f"Ngân hàng câu hỏi chỉ có {len(bank.active_ids)} câu đang dùng, "
            f"không đủ {count} câu cho một bài",
            "quiz.question_count",
            code="bank_too_small",
        )


# Attempts: shared by campaign quizzes and contest entries -----------------------------------


@dataclass
class Attempt:
    number: int
    started_at: datetime
    expires_at: datetime
    question_count: int
    submitted: bool = False
    score: float | None = None
    passed: bool | None = None

    def is_open(self, now: datetime) -> bool:
        return not self.submitted and now <= self.expires_at


class _Attempts:
    """A member's turns at papers drawn from a bank: a campaign's quiz or a contest's entries.

    `Enrolment` and `ContestEntry` share it: the same turns, time limits and refusals, and
    the same handler code (`begin`, `check_can_submit`, `hand_in` on each).
    """

    aggregate_type: ClassVar[str]
    id: str
    attempts: dict[int, Attempt]

    def paper_id(self, number: int) -> str:
        """Where the paper of turn `number` is kept (learning's private records)."""
        return f"{self.aggregate_type}:{self.id}:{number}"

    def open_attempt(self, now: datetime) -> Attempt | None:
        for attempt in self.attempts.values():
            if attempt.is_open(now):
                return attempt
        return None

    @property
    def best_score(self) -> float | None:
        scores = [a.score for a in self.attempts.values() if a.score is not None]
        return max(scores) if scores else None

    def _next_turn(
        self, now: datetime, limit_minutes: int, ends_at: datetime, max_turns: int, noun: str
    ) -> tuple[int, datetime]:
        """The next turn's number and when it expires (never after `ends_at`)."""
        if len(self.attempts) >= max_turns:
            raise conflict(
                f"Đồng chí đã dùng hết {max_turns} lượt {noun}", "attempt", "attempt_limit"
            )
        return len(self.attempts) + 1, min(now + timedelta(minutes=limit_minutes), ends_at)

    def check_can_submit(
        self, target: StudyCampaign | Contest, number: int, now: datetime, grace: timedelta
    ) -> Attempt:
        """Closed, twice and late are refused before any answer is even read."""
        target.require_open()
        attempt = self.attempts.get(number)
        if attempt is None:
            raise NotFound(f"Không có lần làm bài số {number}", "attempt", code="no_such_attempt")
        if attempt.submitted:
            raise conflict(
                f"Bài làm lần {number} đã được nộp, không nộp lại được",
                "attempt",
                "already_submitted",
            )
        if now > attempt.expires_at + grace:
            raise RuleBroken(
                f"Bài làm lần {number} đã hết giờ lúc {vn_datetime(attempt.expires_at)}: "
                "không nhận bài nộp muộn",
                "answers",
                code="late",
            )
        return attempt


class Enrolment(_Attempts, Aggregate):
    """One member's study of one campaign."""

    aggregate_type: ClassVar[str] = "Enrolment"

    def __init__(self, aggregate_id: str) -> None:
        super().__init__(aggregate_id)
        self.campaign_id, _, self.member_id = aggregate_id.partition(":")
        self.started = False
        self.studied_ids: list[str] = []
        self.attempts: dict[int, Attempt] = {}
        self.passed = False
        self.completed = False
        self.reflection_submissions = 0
        self.reflection_status: str | None = None  # submitted, approved, needs_revision

    @staticmethod
    def id_for(campaign_id: str, member_id: str) -> str:
        return f"{campaign_id}:{member_id}"

    def apply(self, event: DomainEvent) -> None:
        match event:
            case StudyStarted():
                self.started = True
            case MaterialStudied():
                self.studied_ids.append(event.material_id)
            case QuizAttemptStarted():
                self.attempts[event.attempt] = Attempt(
                    event.attempt, event.started_at, event.expires_at, event.question_count
                )
            case QuizAttemptSubmitted():
                attempt = self.attempts[event.attempt]
                attempt.submitted, attempt.score, attempt.passed = True, event.score, event.passed
                self.passed = self.passed or event.passed
            case ResolutionStudied():
                self.completed = True
            case ReflectionSubmitted():
                self.reflection_submissions += 1
                self.reflection_status = "submitted"
            case ReflectionReviewed():
                approved = event.approved if event.approved is not None else event.verdict == "đạt"
                self.reflection_status = "approved" if approved else "needs_revision"

    def _ensure_started(self, campaign: StudyCampaign, branch_id: str) -> None:
        if not self.started:
            self.record(
                StudyStarted(campaign_id=campaign.id, member_id=self.member_id, unit_id=branch_id)
            )

    def start(self, campaign: StudyCampaign, branch_id: str, now: datetime) -> None:
        campaign.ensure_running(now)
        self._ensure_started(campaign, branch_id)

    def required_done(self, campaign: StudyCampaign) -> bool:
        return set(campaign.required_material_ids) <= set(self.studied_ids)

    def study(
        self, campaign: StudyCampaign, material_id: str, branch_id: str, now: datetime
    ) -> None:
        campaign.ensure_running(now)
        campaign.material(material_id)
        self._ensure_started(campaign, branch_id)
        if material_id in self.studied_ids:
            return
        self.record(
            MaterialStudied(
                campaign_id=campaign.id,
                member_id=self.member_id,
                unit_id=branch_id,
                material_id=material_id,
                required_completed=set(campaign.required_material_ids)
                <= {*self.studied_ids, material_id},
            )
        )
        self._maybe_completed(campaign, branch_id)

    def begin(self, campaign: StudyCampaign, branch_id: str, now: datetime) -> tuple[Attempt, bool]:
        """The open attempt if there is one (False), else a new one (True)."""
        campaign.ensure_running(now)
        quiz = campaign.quiz
        if quiz is None:
            raise RuleBroken("Đợt học tập này không có bài kiểm tra", "campaign_id", "no_quiz")
        current = self.open_attempt(now)
        if current is not None:
            return current, False
        if self.passed:
            raise conflict("Đồng chí đã đạt bài kiểm tra của đợt học tập này", "attempt", "passed")
        number, expires = self._next_turn(
            now, quiz.time_limit_minutes, campaign.deadline, quiz.max_attempts, "làm bài"
        )
        self._ensure_started(campaign, branch_id)
        self.record(
            QuizAttemptStarted(
                campaign_id=campaign.id,
                member_id=self.member_id,
                unit_id=branch_id,
                attempt=number,
                question_count=quiz.question_count,
                started_at=now,
                expires_at=expires,
            )
        )
        return self.attempts[number], True

    def hand_in(
        self,
        campaign: StudyCampaign,
        number: int,
        result: Score,
        branch_id: str,
        now: datetime,
        grace: timedelta,
    ) -> bool:
        """Records the score; returns whether the quiz is passed."""
        self.check_can_submit(campaign, number, now, grace)
        assert campaign.quiz is not None
        passed = result.passed(campaign.quiz.pass_mark)
        self.record(
            QuizAttemptSubmitted(
                campaign_id=campaign.id,
                member_id=self.member_id,
                unit_id=branch_id,
                attempt=number,
                score=result.score,
                passed=passed,
                correct_count=result.correct_count,
                question_count=result.question_count,
            )
        )
        self._maybe_completed(campaign, branch_id)
        return passed

    def _maybe_completed(self, campaign: StudyCampaign, branch_id: str) -> None:
        if self.completed or not self.required_done(campaign):
            return
        if campaign.quiz is not None and not self.passed:
            return
        self.record(
            ResolutionStudied(
                campaign_id=campaign.id,
                member_id=self.member_id,
                unit_id=branch_id,
                resolution_code=campaign.resolution_code,
                resolution_title=campaign.resolution_title,
                materials_completed=len(self.studied_ids),
                score=self.best_score if campaign.quiz is not None else None,
                passed=True if campaign.quiz is not None else None,
                material_ids=list(self.studied_ids),
            )
        )

    def submit_reflection(self, campaign: StudyCampaign, branch_id: str, now: datetime) -> int:
        """Returns the submission's number (1, then 2 after a revision…)."""
        campaign.ensure_running(now)
        if self.reflection_status == "submitted":
            raise conflict(
                "Bài thu hoạch đã nộp và đang chờ bí thư chi bộ nhận xét",
                "text",
                "reflection_pending",
            )
        if self.reflection_status == "approved":
            raise conflict("Bài thu hoạch đã được đánh giá đạt", "text", "reflection_approved")
        self._ensure_started(campaign, branch_id)
        number = self.reflection_submissions + 1
        self.record(
            ReflectionSubmitted(
                campaign_id=campaign.id,
                member_id=self.member_id,
                unit_id=branch_id,
                submission=number,
            )
        )
        return number

    def review_reflection(self, reviewer: str, verdict: str, branch_id: str) -> bool:
        if verdict not in VERDICTS:
            raise RuleBroken("Kết quả đánh giá là “đạt” hoặc “chưa đạt”", "verdict")
        if reviewer == self.member_id:
            raise Forbidden("Không tự đánh giá bài thu hoạch của mình", "member_id", "self_review")
        if self.reflection_status is None:
            raise NotFound("Đảng viên chưa nộp bài thu hoạch", "member_id", "no_reflection")
        if self.reflection_status != "submitted":
            raise conflict("Bài thu hoạch này đã được đánh giá", "member_id", "already_reviewed")
        approved = VERDICTS[verdict]
        self.record(
            ReflectionReviewed(
                campaign_id=self.campaign_id,
                member_id=self.member_id,
                unit_id=branch_id,
                reviewed_by=reviewer,
                verdict=verdict,
                approved=approved,
            )
        )
        return approved


# Contests ------------------------------------------------------------------------------------


class Contest(Aggregate):
    aggregate_type: ClassVar[str] = "Contest"

    def __init__(self, aggregate_id: str) -> None:
        super().__init__(aggregate_id)
        self.unit_id = ""
        self.title = ""
        self.resolution_code: str | None = None
        self.bank_id = ""
        self.question_count = 0
        self.time_limit_minutes = 0
        self.max_entries = 1
        self.starts_at = datetime.min
        self.ends_at = datetime.min
        self.closed = False

    def apply(self, event: DomainEvent) -> None:
        match event:
            case ContestOpened():
                self.unit_id, self.title = event.unit_id, event.title
                self.resolution_code, self.bank_id = event.resolution_code, event.bank_id
                self.question_count = event.question_count
                self.time_limit_minutes = event.time_limit_minutes
                self.max_entries = event.max_entries
                self.starts_at, self.ends_at = event.starts_at, event.ends_at
            case ContestClosed():
                self.closed = True

    @classmethod
    def open(
        cls,
        contest_id: str,
        unit_id: str,
        title: str,
        resolution_code: str | None,
        bank: QuestionBank | None,
        bank_id: str,
        question_count: int,
        time_limit_minutes: int,
        max_entries: int,
        starts_at: datetime,
        ends_at: datetime,
        unit_path: Sequence[str],
        now: datetime,
    ) -> Contest:
        check_id(contest_id, "contest_id")
        title = clean_text(title, "title", "Tên cuộc thi", 300)
        if ends_at <= starts_at:
            raise RuleBroken("Thời điểm kết thúc phải sau thời điểm bắt đầu", "ends_at")
        _check_future(ends_at, now, "ends_at")
        if starts_at - now > MAX_HORIZON:
            raise RuleBroken("Cuộc thi phải bắt đầu trong vòng 3 năm", "starts_at")
        try:
            _check_bank(bank, bank_id, question_count, unit_path)
        except RuleBroken as exc:
            exc.field = (exc.field or "").replace("quiz.", "")
            raise
        contest = cls(contest_id)
        contest.record(
            ContestOpened(
                contest_id=contest_id,
                unit_id=unit_id,
                title=title,
                resolution_code=" ".join(resolution_code.split()) if resolution_code else None,
                bank_id=bank_id,
                question_count=question_count,
                time_limit_minutes=time_limit_minutes,
                max_entries=max_entries,
                starts_at=starts_at,
                ends_at=ends_at,
            )
        )
        return contest

    def close(self) -> None:
        if not self.closed:
            self.record(ContestClosed(contest_id=self.id, unit_id=self.unit_id))

    def require_open(self) -> None:
        if self.closed:
            raise conflict("Cuộc thi đã kết thúc", "contest_id", "contest_closed")

    def ensure_running(self, now: datetime) -> None:
        self.require_open()
        if now < self.starts_at:
            raise RuleBroken(
                f"Cuộc thi bắt đầu lúc {vn_datetime(self.starts_at)}", "contest_id", "not_started"
            )
        if now > self.ends_at:
            raise RuleBroken(
                f"Cuộc thi đã kết thúc lúc {vn_datetime(self.ends_at)}",
                "contest_id",
                "deadline_passed",
            )


class ContestEntry(_Attempts, Aggregate):
    """One member's entries in one contest; the best one ranks."""

    aggregate_type: ClassVar[str] = "ContestEntry"

    def __init__(self, aggregate_id: str) -> None:
        super().__init__(aggregate_id)
        self.contest_id, _, self.member_id = aggregate_id.partition(":")
        self.attempts: dict[int, Attempt] = {}

    @staticmethod
    def id_for(contest_id: str, member_id: str) -> str:
        return f"{contest_id}:{member_id}"

    def apply(self, event: DomainEvent) -> None:
        match event:
            case ContestEntryStarted():
                self.attempts[event.attempt] = Attempt(
                    event.attempt, event.started_at, event.expires_at, event.question_count
                )
            case ContestEntrySubmitted():
                attempt = self.attempts[event.attempt]
                attempt.submitted, attempt.score = True, event.score

    def begin(self, contest: Contest, branch_id: str, now: datetime) -> tuple[Attempt, bool]:
        """The open entry if there is one (False), else a new one (True)."""
        contest.ensure_running(now)
        current = self.open_attempt(now)
        if current is not None:
            return current, False
        number, expires = self._next_turn(
            now, contest.time_limit_minutes, contest.ends_at, contest.max_entries, "dự thi"
        )
        self.record(
            ContestEntryStarted(
                contest_id=contest.id,
                member_id=self.member_id,
                unit_id=branch_id,
                attempt=number,
                question_count=contest.question_count,
                started_at=now,
                expires_at=expires,
            )
        )
        return self.attempts[number], True

    def hand_in(
        self,
        contest: Contest,
        number: int,
        result: Score,
        branch_id: str,
        now: datetime,
        grace: timedelta,
    ) -> float:
        attempt = self.check_can_submit(contest, number, now, grace)
        limit = (attempt.expires_at - attempt.started_at).total_seconds()
        duration = min(max((now - attempt.started_at).total_seconds(), 0.0), limit)
        self.record(
            ContestEntrySubmitted(
                contest_id=contest.id,
                member_id=self.member_id,
                unit_id=branch_id,
                attempt=number,
                score=result.score,
                correct_count=result.correct_count,
                question_count=result.question_count,
                duration_seconds=round(duration, 3),
            )
        )
        return duration
