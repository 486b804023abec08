"""Commands end to end on the in-memory store: rules, scope, and what the events carry."""

from __future__ import annotations

import asyncio
import json
import random
from datetime import timedelta

import pytest

from sotay_events import InMemoryEventStore, decode
from sotay_events.catalogue.learning import MaterialKind, QuestionKind, QuizSettings
from sotay_learning.domain import MaterialDraft
from sotay_learning.handlers import LearningService, QuestionDraft
from sotay_learning.quiz import Answer, OptionDraft
from sotay_learning.store import ANSWERS, PAPERS, QUESTIONS, REFLECTIONS
from sotay_platform.auth import Grant, Principal, Role
from sotay_platform.errors import Forbidden, ServiceError, status_of

PROVINCE_ADMIN = Principal("admin-t", (Grant(Role.province_admin, "T"),))
COMMUNE_ADMIN = Principal("admin-x1", (Grant(Role.committee_admin, "X1"),))
SECRETARY_CB1 = Principal("sec-cb1", (Grant(Role.branch_secretary, "CB1"),), member_id="s1")
SECRETARY_CB2 = Principal("sec-cb2", (Grant(Role.branch_secretary, "CB2"),), member_id="s2")
REFLECTION = "Qua học tập Nghị quyết, tôi nhận thức rõ hơn vai trò của khoa học, công nghệ. " * 2


def member(member_id: str, branch: str = "CB1") -> Principal:
    return Principal(f"u-{member_id}", (Grant(Role.member, branch),), member_id=member_id)


@pytest.fixture
def store() -> InMemoryEventStore:
    return InMemoryEventStore()


@pytest.fixture
def svc(store, directory, clock) -> LearningService:
    for m, b in [("m1", "CB1"), ("m2", "CB1"), ("m3", "CB3"), ("m9", "CB9"), ("s1", "CB1")]:
        directory.add(m, b)
    directory.add("mx", "CB1", status="exempted")
    return LearningService(store, directory, clock=clock, rng=random.Random(42))


def q(i: int, kind: QuestionKind = QuestionKind.single) -> QuestionDraft:
    options = [OptionDraft(f"Phương án đúng {i}", True), OptionDraft(f"Phương án sai {i}")]
    if kind is QuestionKind.multiple:
        options.append(OptionDraft(f"Phương án cũng đúng {i}", True))
    return QuestionDraft(kind, f"Câu hỏi số {i} về Nghị quyết 57?", options, f"Giải thích {i}")


async def make_bank(svc: LearningService, size: int = 6) -> None:
    await svc.create_bank(PROVINCE_ADMIN, "NH57", "T", "Ngân hàng Nghị quyết 57")
    kinds = [QuestionKind.single, QuestionKind.multiple]
    await svc.add_questions(PROVINCE_ADMIN, "NH57", [q(i, kinds[i % 2]) for i in range(size)])


async def launch(svc: LearningService, clock, quiz: bool = True, campaign_id: str = "HD57"):
    await make_bank(svc)
    campaign, created = await svc.launch_campaign(
        PROVINCE_ADMIN,
        campaign_id=campaign_id,
        unit_id="T",
        resolution_code="57-NQ/TW",
        resolution_title="Nghị quyết về đột phá phát triển khoa học, công nghệ",
        title=None,
        deadline=clock.now + timedelta(days=30),
        materials=[
            MaterialDraft(MaterialKind.text, "Toàn văn Nghị quyết", body="Nội dung nghị quyết…"),
            MaterialDraft(MaterialKind.video, "Bài giảng", url="https://video.example.vn/57"),
            MaterialDraft(MaterialKind.link, "Tham khảo", required=False, url="https://example.vn"),
        ],
        quiz=QuizSettings(
            bank_id="NH57", question_count=4, time_limit_minutes=15, max_attempts=2, pass_mark=75
        )
        if quiz
        else None,
    )
    assert created
    return campaign


async def key_for(store: InMemoryEventStore, question_ids: list[str]) -> list[Answer]:
    docs = await store.private_records(QUESTIONS, question_ids)
    return [Answer(i, frozenset(docs[i]["correct"])) for i in question_ids]


def events(store: InMemoryEventStore, prefix: str = "") -> list:
    return [e for e in store.all_events() if e.stream_id.startswith(prefix)]


async def test_only_a_committee_covering_the_unit_launches(svc, clock) -> None:
    await make_bank(svc)
    with pytest.raises(Forbidden):
        await svc.launch_campaign(
            COMMUNE_ADMIN,
            campaign_id="X",
            unit_id="T",
            resolution_code="57-NQ/TW",
            resolution_title="NQ",
            title=None,
            deadline=clock.now + timedelta(days=3),
            materials=[MaterialDraft(MaterialKind.link, "L", url="https://a.vn")],
            quiz=None,
        )


async def test_a_campaign_draws_only_from_banks_above_its_unit(svc, clock) -> None:
    await svc.create_bank(COMMUNE_ADMIN, "NHX1", "X1", "Ngân hàng xã")
    with pytest.raises(ServiceError) as err:
        await svc.launch_campaign(
            PROVINCE_ADMIN,
            campaign_id="HD",
            unit_id="T",
            resolution_code="57-NQ/TW",
            resolution_title="NQ",
            title=None,
            deadline=clock.now + timedelta(days=3),
            materials=[MaterialDraft(MaterialKind.link, "L", url="https://a.vn")],
            quiz=QuizSettings(
                bank_id="NHX1", question_count=1, time_limit_minutes=5, max_attempts=1, pass_mark=50
            ),
        )
    assert (err.value.field, err.value.code) == ("quiz.bank_id", "bank_out_of_scope")


async def test_launch_refuses_bad_input_naming_the_field(svc, clock) -> None:
    await make_bank(svc)
    base = dict(
        campaign_id="HD",
        unit_id="T",
        resolution_code="57-NQ/TW",
        resolution_title="NQ",
        title=None,
        deadline=clock.now + timedelta(days=3),
        materials=[MaterialDraft(MaterialKind.link, "L", url="https://a.vn")],
        quiz=None,
    )
    cases = [
        ({"deadline": clock.now - timedelta(hours=1)}, "deadline"),
        ({"materials": [MaterialDraft(MaterialKind.video, "V", url="ftp://x")]}, "materials.0.url"),
        ({"materials": [MaterialDraft(MaterialKind.text, "T")]}, "materials.0.body"),
        ({"resolution_code": "NQ"}, "resolution_code"),
        (
            {
                "quiz": QuizSettings(
                    bank_id="NH57",
                    question_count=7,
                    time_limit_minutes=5,
                    max_attempts=1,
                    pass_mark=50,
                )
            },
            "quiz.question_count",
        ),
        ({"unit_id": "NOPE"}, "unit_id"),
    ]
    for change, field in cases:
        with pytest.raises(ServiceError) as err:
            await svc.launch_campaign(PROVINCE_ADMIN, **(base | change))
        assert err.value.field == field, change


async def test_studying_and_passing_publishes_resolution_studied(svc, store, clock) -> None:
    await launch(svc, clock)
    who = member("m1")
    await svc.study_material(who, "HD57", "m1")
    await svc.study_material(who, "HD57", "m1")  # twice: recorded once
    _, enrolment = await svc.study_material(who, "HD57", "m2")
    assert enrolment.required_done(await svc.load_campaign("HD57"))
    assert not enrolment.completed  # the quiz is still to pass

    paper = await svc.start_attempt(who, "HD57")
    assert paper.created and len(paper.questions) == 4
    assert "correct" not in json.dumps(paper.questions)
    again = await svc.start_attempt(who, "HD57")  # the open attempt, same order
    assert not again.created and again.questions == paper.questions

    ids = [x["question_id"] for x in paper.questions]
    result = await svc.submit_attempt(who, "HD57", 1, await key_for(store, ids))
    assert result.passed and result.studied and result.score.score == 100
    assert result.finished and "correct_option_ids" in result.review[0]

    types = [e.event_type for e in events(store, "Enrolment-HD57:m1")]
    assert types == [
        "StudyStarted",
        "MaterialStudied",
        "MaterialStudied",
        "QuizAttemptStarted",
        "QuizAttemptSubmitted",
        "ResolutionStudied",
    ]
    studied = decode(events(store, "Enrolment-HD57:m1")[-1])
    assert (studied.score, studied.passed, studied.materials_completed) == (100, True, 2)
    assert studied.material_ids == ["m1", "m2"]
    assert events(store, "Enrolment-HD57:m1")[0].org_path == ("TW", "T", "X1", "CB1")


async def test_no_answer_key_question_text_answer_or_reflection_travels_in_events(
    svc, store, clock
) -> None:
    await launch(svc, clock)
    who = member("m1")
    paper = await svc.start_attempt(who, "HD57")
    ids = [x["question_id"] for x in paper.questions]
    await svc.submit_attempt(who, "HD57", 1, await key_for(store, ids))
    await svc.submit_reflection(who, "HD57", REFLECTION)
    everything = json.dumps([e.payload for e in store.all_events()], ensure_ascii=False)
    for doc in store.private[QUESTIONS].values():
        assert doc["text"] not in everything
        assert all(o["option_id"] not in everything for o in doc["options"])
    assert "nhận thức rõ hơn" not in everything
    assert store.private[ANSWERS] and store.private[REFLECTIONS]


async def test_late_twice_and_out_of_scope_answers_are_refused(svc, store, clock) -> None:
    await launch(svc, clock)
    who = member("m1")
    paper = await svc.start_attempt(who, "HD57")
    ids = [x["question_id"] for x in paper.questions]
    key = await key_for(store, ids)

    clock.advance(minutes=15, seconds=20)  # past the time limit and its grace
    with pytest.raises(ServiceError) as late:
        await svc.submit_attempt(who, "HD57", 1, key)
    assert (late.value.field, late.value.code, status_of(late.value)) == ("answers", "late", 422)
    assert "hết giờ" in late.value.message

    second = await svc.start_attempt(who, "HD57")  # the expired attempt used a turn
    assert second.attempt.number == 2
    ids2 = [x["question_id"] for x in second.questions]
    wrong = [Answer(i, frozenset()) for i in ids2]
    result = await svc.submit_attempt(who, "HD57", 2, wrong)
    assert not result.passed and result.finished
    with pytest.raises(ServiceError) as twice:
        await svc.submit_attempt(who, "HD57", 2, await key_for(store, ids2))
    assert (twice.value.field, twice.value.code, status_of(twice.value)) == (
        "attempt",
        "already_submitted",
        409,
    )
    with pytest.raises(ServiceError) as limit:
        await svc.start_attempt(who, "HD57")
    assert limit.value.code == "attempt_limit"

    with pytest.raises(Forbidden) as outside:
        await svc.start_attempt(member("m9", "CB9"), "HD57")
    assert outside.value.field == "campaign_id"


async def test_after_the_deadline_nothing_is_accepted(svc, store, clock) -> None:
    await launch(svc, clock)
    who = member("m1")
    clock.advance(days=29, hours=23, minutes=50)
    paper = await svc.start_attempt(who, "HD57")
    # The attempt ends with the campaign, not 15 minutes later.
    assert paper.attempt.expires_at == (await svc.load_campaign("HD57")).deadline
    clock.advance(minutes=11)
    with pytest.raises(ServiceError) as err:
        await svc.study_material(who, "HD57", "m1")
    assert (err.value.field, err.value.code) == ("campaign_id", "deadline_passed")
    ids = [x["question_id"] for x in paper.questions]
    with pytest.raises(ServiceError) as late:
        await svc.submit_attempt(who, "HD57", 1, await key_for(store, ids))
    assert late.value.code == "late"


async def test_exempted_and_unknown_members_take_no_part(svc, clock) -> None:
    await launch(svc, clock)
    with pytest.raises(Forbidden) as exempted:
        await svc.start_study(member("mx"), "HD57")
    assert exempted.value.code == "not_eligible"
    with pytest.raises(Forbidden) as unknown:
        await svc.start_study(member("nobody"), "HD57")
    assert unknown.value.code == "not_in_roster"


async def test_a_campaign_without_quiz_is_studied_with_its_required_materials(
    svc, store, clock
) -> None:
    await launch(svc, clock, quiz=False)
    who = member("m3", "CB3")
    await svc.study_material(who, "HD57", "m3")  # optional: not enough
    _, enrolment = await svc.study_material(who, "HD57", "m1")
    assert not enrolment.completed
    _, enrolment = await svc.study_material(who, "HD57", "m2")
    assert enrolment.completed
    studied = decode(events(store, "Enrolment-HD57:m3")[-1])
    assert (studied.score, studied.passed, studied.materials_completed) == (None, None, 3)
    with pytest.raises(ServiceError) as err:
        await svc.start_attempt(who, "HD57")
    assert err.value.code == "no_quiz"


async def test_reflections_are_reviewed_by_the_members_branch_secretary(svc, store, clock) -> None:
    await launch(svc, clock)
    with pytest.raises(ServiceError) as short:
        await svc.submit_reflection(member("m1"), "HD57", "Ngắn quá")
    assert short.value.field == "text"
    await svc.submit_reflection(member("m1"), "HD57", REFLECTION)
    with pytest.raises(ServiceError) as pending:
        await svc.submit_reflection(member("m1"), "HD57", REFLECTION)
    assert status_of(pending.value) == 409

    with pytest.raises(Forbidden):
        await svc.review_reflection(SECRETARY_CB2, "HD57", "m1", "đạt", "")
    with pytest.raises(Forbidden):
        await svc.review_reflection(PROVINCE_ADMIN, "HD57", "m1", "đạt", "")
    doc = await svc.reflection_text(SECRETARY_CB1, "HD57", "m1")
    assert doc["text"] == REFLECTION.strip()

    enrolment = await svc.review_reflection(SECRETARY_CB1, "HD57", "m1", "chưa đạt", "Viết thêm")
    assert enrolment.reflection_status == "needs_revision"
    await svc.submit_reflection(member("m1"), "HD57", REFLECTION + " Bổ sung.")
    enrolment = await svc.review_reflection(SECRETARY_CB1, "HD57", "m1", "đạt", "Tốt")
    assert enrolment.reflection_status == "approved"
    reviewed = decode(events(store, "Enrolment-HD57:m1")[-1])
    assert (reviewed.verdict, reviewed.approved, reviewed.reviewed_by) == ("đạt", True, "s1")
    mine = await svc.reflection_text(member("m1"), "HD57", "m1")
    assert mine["review"]["comment"] == "Tốt" and mine["submission"] == 2

    await svc.submit_reflection(SECRETARY_CB1, "HD57", REFLECTION)
    with pytest.raises(ServiceError) as own:
        await svc.review_reflection(SECRETARY_CB1, "HD57", "s1", "đạt", "")
    assert own.value.code == "self_review"


class InterleavingStore(InMemoryEventStore):
    """Every load lets the other commands run: racers all read before anyone commits."""

    async def load(self, aggregate_type: str, aggregate_id: str) -> list:
        await asyncio.sleep(0)
        return await super().load(aggregate_type, aggregate_id)


async def test_ten_racing_starts_of_one_member_give_one_attempt(directory, clock) -> None:
    store = InterleavingStore()
    for m, b in [("m1", "CB1")]:
        directory.add(m, b)
    svc = LearningService(store, directory, clock=clock, rng=random.Random(7))
    await launch(svc, clock)
    who = member("m1")
    commits = 0

    def count(_: list) -> None:
        nonlocal commits
        commits += 1

    store.listeners.append(count)
    papers = await asyncio.gather(*(svc.start_attempt(who, "HD57") for _ in range(10)))
    assert sorted(p.created for p in papers) == [False] * 9 + [True]
    assert {p.attempt.number for p in papers} == {1}
    assert all(p.questions == papers[0].questions for p in papers)  # the one paper drawn
    started = [e for e in events(store, "Enrolment-HD57:m1") if e.event_type.endswith("Started")]
    assert [e.event_type for e in started] == ["StudyStarted", "QuizAttemptStarted"]
    assert list(store.private[PAPERS]) == ["Enrolment:HD57:m1:1"]
    assert commits == 1  # the nine others lost the race, wrote nothing and saw the winner's


async def test_two_racing_submissions_of_one_attempt_score_once(svc, store, clock) -> None:
    await launch(svc, clock)
    who = member("m2")
    paper = await svc.start_attempt(who, "HD57")
    key = await key_for(store, [x["question_id"] for x in paper.questions])
    results = await asyncio.gather(
        svc.submit_attempt(who, "HD57", 1, key),
        svc.submit_attempt(who, "HD57", 1, key),
        return_exceptions=True,
    )
    kinds = sorted(type(r).__name__ for r in results)
    assert kinds == ["QuizResult", "RuleConflict"]
    refused = next(r for r in results if isinstance(r, ServiceError))
    assert refused.code == "already_submitted"
    submitted = [e for e in events(store, "Enrolment-HD57:m2") if "Submitted" in e.event_type]
    assert len(submitted) == 1


async def test_retired_questions_are_no_longer_drawn(svc, store, clock) -> None:
    await make_bank(svc, size=3)
    bank, questions = await svc.bank_with_questions(PROVINCE_ADMIN, "NH57")
    await svc.retire_question(PROVINCE_ADMIN, "NH57", questions[0].question_id)
    bank, _ = await svc.bank_with_questions(PROVINCE_ADMIN, "NH57")
    assert questions[0].question_id not in bank.active_ids and len(bank.active_ids) == 2
    with pytest.raises(Forbidden):
        await svc.bank_with_questions(member("m1"), "NH57")


async def test_contest_entries_score_time_and_limits(svc, store, clock) -> None:
    await make_bank(svc)
    await svc.open_contest(
        PROVINCE_ADMIN,
        contest_id="CT57",
        unit_id="T",
        title="Cuộc thi tìm hiểu Nghị quyết 57",
        resolution_code="57-NQ/TW",
        bank_id="NH57",
        question_count=3,
        time_limit_minutes=10,
        max_entries=2,
        starts_at=clock.now + timedelta(hours=1),
        ends_at=clock.now + timedelta(days=7),
    )
    with pytest.raises(ServiceError) as early:
        await svc.start_entry(member("m1"), "CT57")
    assert early.value.code == "not_started"
    clock.advance(hours=2)
    paper = await svc.start_entry(member("m1"), "CT57")
    clock.advance(seconds=95)
    key = await key_for(store, [x["question_id"] for x in paper.questions])
    result = await svc.submit_entry(member("m1"), "CT57", 1, key)
    assert result.score.score == 100 and result.duration_seconds == 95.0
    assert all("correct_option_ids" not in r for r in result.review)  # contest still running
    submitted = decode(events(store, "ContestEntry-CT57:m1")[-1])
    assert (submitted.score, submitted.duration_seconds, submitted.unit_id) == (100, 95.0, "CB1")
    with pytest.raises(Forbidden):
        await svc.start_entry(member("m9", "CB9"), "CT57")
    await svc.start_entry(member("m1"), "CT57")
    with pytest.raises(ServiceError) as limit:
        clock.advance(minutes=11)
        await svc.start_entry(member("m1"), "CT57")
    assert limit.value.code == "attempt_limit"
