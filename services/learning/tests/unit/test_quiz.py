"""The quiz engine without I/O: building questions, drawing papers, scoring."""

import random

import pytest

from sotay_events.catalogue.learning import QuestionKind
from sotay_learning.errors import RuleBroken
from sotay_learning.quiz import (
    Answer,
    OptionDraft,
    build_question,
    client_paper,
    draw_paper,
    score_paper,
)


def single(text: str = "Nghị quyết 57-NQ/TW bàn về lĩnh vực nào?"):
    return build_question(
        "B",
        QuestionKind.single,
        text,
        [
            OptionDraft("Khoa học, công nghệ, đổi mới sáng tạo và chuyển đổi số", True),
            OptionDraft("Nông nghiệp"),
            OptionDraft("Quốc phòng"),
            OptionDraft("Du lịch"),
        ],
    )


def multiple():
    return build_question(
        "B",
        QuestionKind.multiple,
        "Những đối tượng nào sử dụng Sổ tay đảng viên điện tử?",
        [
            OptionDraft("Đảng viên chính thức", True),
            OptionDraft("Đảng viên dự bị", True),
            OptionDraft("Đảng viên được miễn sinh hoạt"),
        ],
    )


def test_options_get_opaque_ids_and_the_key_is_kept_apart() -> None:
    q = single()
    assert len(q.correct) == 1
    assert all(o.option_id.startswith("o") and len(o.option_id) == 13 for o in q.options)
    assert q.options[0].text.startswith("Khoa học")


@pytest.mark.parametrize(
    ("kind", "options", "field"),
    [
        (QuestionKind.single, [OptionDraft("A", True)], "options"),
        (QuestionKind.single, [OptionDraft("A", True), OptionDraft("B", True)], "options"),
        (QuestionKind.multiple, [OptionDraft("A"), OptionDraft("B")], "options"),
        (QuestionKind.single, [OptionDraft("A", True), OptionDraft(" a ")], "options.1"),
        (QuestionKind.single, [OptionDraft("A", True), OptionDraft("  ")], "options.1"),
    ],
)
def test_bad_questions_are_refused_naming_the_field(kind, options, field) -> None:
    with pytest.raises(RuleBroken) as err:
        build_question("B", kind, "Một câu hỏi đủ dài?", options, field_prefix="questions.0.")
    assert err.value.field == f"questions.0.{field}"


def test_a_paper_is_a_shuffled_sample_and_the_client_never_sees_the_key() -> None:
    questions = [single(f"Câu hỏi số {i} về nghị quyết?") for i in range(20)]
    by_id = {q.question_id: q for q in questions}
    paper = draw_paper(questions, 5, random.Random(7))
    assert len(set(paper.question_ids)) == 5
    other = draw_paper(questions, 5, random.Random(8))
    assert paper.question_ids != other.question_ids
    shuffled = sum(
        list(item.option_ids) != [o.option_id for o in by_id[item.question_id].options]
        for item in paper.items
    )
    assert shuffled >= 1
    shown = client_paper(paper, by_id)
    assert [q["question_id"] for q in shown] == paper.question_ids
    assert all(set(q) == {"number", "question_id", "kind", "text", "options"} for q in shown)
    assert all(set(o) == {"option_id", "text"} for q in shown for o in q["options"])


def test_too_small_a_bank_is_refused() -> None:
    with pytest.raises(RuleBroken) as err:
        draw_paper([single()], 2, random.Random(1))
    assert err.value.code == "bank_too_small"


def test_scoring_is_all_or_nothing_per_question() -> None:
    s, m = single(), multiple()
    by_id = {s.question_id: s, m.question_id: m}
    paper = draw_paper([s, m], 2, random.Random(3))
    right = [Answer(q.question_id, q.correct) for q in (s, m)]
    assert score_paper(paper, right, by_id).score == 100
    half = [Answer(s.question_id, s.correct), Answer(m.question_id, frozenset(list(m.correct)[:1]))]
    result = score_paper(paper, half, by_id)
    assert (result.score, result.correct_count, result.question_count) == (50, 1, 2)
    assert result.per_question == {s.question_id: True, m.question_id: False}
    assert score_paper(paper, [], by_id).score == 0  # unanswered counts as wrong


def test_answers_that_do_not_fit_the_paper_are_refused_naming_the_field() -> None:
    s, m = single(), multiple()
    by_id = {s.question_id: s, m.question_id: m}
    paper = draw_paper([s, m], 2, random.Random(3))
    cases = [
        ([Answer("q-nope", frozenset())], "answers.0.question_id"),
        ([Answer(s.question_id, frozenset({"o-nope"}))], "answers.0.option_ids"),
        (
            [Answer(m.question_id, m.correct), Answer(m.question_id, m.correct)],
            "answers.1.question_id",
        ),
        (
            [Answer(s.question_id, frozenset(o.option_id for o in s.options[:2]))],
            "answers.0.option_ids",
        ),
    ]
    for answers, field in cases:
        with pytest.raises(RuleBroken) as err:
            score_paper(paper, answers, by_id)
        assert err.value.field == field
