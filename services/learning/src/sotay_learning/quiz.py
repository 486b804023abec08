"""Questions, papers and scoring: pure functions, shared by campaign quizzes and contests.

A question's text, options and answer key live in learning's private records,
never in an event. A paper is what one attempt drew: which questions, in which
order, and each question's options in which order. Scoring happens here, on the
server, against the key; what a client receives is built by `client_paper`,
which has no way to carry the key.
"""

from __future__ import annotations

import random
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sotay_events.catalogue.learning import QuestionKind
from sotay_learning.errors import RuleBroken

MIN_OPTIONS, MAX_OPTIONS = 2, 10


def new_id(prefix: str) -> str:
    """Opaque ids: an option's id says nothing about its position or correctness."""
    return f"{prefix}{secrets.token_hex(6)}"


@dataclass(frozen=True)
class Option:
    option_id: str
    text: str


@dataclass(frozen=True)
class Question:
    question_id: str
    bank_id: str
    kind: QuestionKind
    text: str
    options: tuple[Option, ...]
    correct: frozenset[str]
    explanation: str = ""

    def to_record(self) -> dict[str, Any]:
        return {
            "_id": self.question_id,
            "bank_id": self.bank_id,
            "kind": self.kind.value,
            "text": self.text,
            "options": [{"option_id": o.option_id, "text": o.text} for o in self.options],
            "correct": sorted(self.correct),
            "explanation": self.explanation,
        }

    @classmethod
    def of_record(cls, doc: Mapping[str, Any]) -> Question:
        return cls(
            question_id=doc["_id"],
            bank_id=doc["bank_id"],
            kind=QuestionKind(doc["kind"]),
            text=doc["text"],
            options=tuple(Option(o["option_id"], o["text"]) for o in doc["options"]),
            correct=frozenset(doc["correct"]),
            explanation=doc.get("explanation", ""),
        )


@dataclass(frozen=True)
class OptionDraft:
    text: str
    correct: bool = False


def build_question(
    bank_id: str,
    kind: QuestionKind,
    text: str,
    options: Sequence[OptionDraft],
    explanation: str = "",
    field_prefix: str = "",
) -> Question:
    """Check an author's question and give it and its options opaque ids."""
    text = " ".join(text.split())
    if len(text) < 5:
        raise RuleBroken("Nội dung câu hỏi quá ngắn (tối thiểu 5 ký tự)", f"{field_prefix}text")
    if len(text) > 2000:
        raise RuleBroken("Nội dung câu hỏi dài quá 2.000 ký tự", f"{field_prefix}text")
    if not MIN_OPTIONS <= len(options) <= MAX_OPTIONS:
        raise RuleBroken(
            f"Mỗi câu hỏi có từ {MIN_OPTIONS} đến {MAX_OPTIONS} phương án trả lời",
            f"{field_prefix}options",
        )
    seen: set[str] = set()
    built: list[Option] = []
    correct: set[str] = set()
    for i, draft in enumerate(options):
        option_text = " ".join(draft.text.split())
        if not option_text:
            raise RuleBroken("Phương án trả lời không được để trống", f"{field_prefix}options.{i}")
        if option_text.casefold() in seen:
            raise RuleBroken(
                f"Phương án trả lời bị trùng: {option_text}", f"{field_prefix}options.{i}"
            )
        seen.add(option_text.casefold())
        option = Option(new_id("o"), option_text)
        built.append(option)
        if draft.correct:
            correct.add(option.option_id)
    if not correct:
        raise RuleBroken("Câu hỏi phải có ít nhất một đáp án đúng", f"{field_prefix}options")
    if kind is QuestionKind.single and len(correct) != 1:
        raise RuleBroken(
            "Câu hỏi một lựa chọn phải có đúng một đáp án đúng", f"{field_prefix}options"
        )
    return Question(
        question_id=new_id("q"),
        bank_id=bank_id,
        kind=kind,
        text=text,
        options=tuple(built),
        correct=frozenset(correct),
        explanation=explanation.strip(),
    )


@dataclass(frozen=True)
class PaperItem:
    question_id: str
    option_ids: tuple[str, ...]  # in the order this paper shows them


@dataclass(frozen=True)
class Paper:
    items: tuple[PaperItem, ...]

    @property
    def question_ids(self) -> list[str]:
        return [i.question_id for i in self.items]

    def to_record(self, paper_id: str, **extra: Any) -> dict[str, Any]:
        return {
            "_id": paper_id,
            "items": [
                {"question_id": i.question_id, "option_ids": list(i.option_ids)} for i in self.items
            ],
            **extra,
        }

    @classmethod
    def of_record(cls, doc: Mapping[str, Any]) -> Paper:
        return cls(tuple(PaperItem(i["question_id"], tuple(i["option_ids"])) for i in doc["items"]))


def draw_paper(questions: Sequence[Question], count: int, rng: random.Random) -> Paper:
    """`count` questions at random, in a random order, each with its options shuffled."""
    if len(questions) < count:
        raise RuleBroken(
            f"Ngân hàng câu hỏi chỉ còn {len(questions)} câu, không đủ {count} câu cho một bài",
            "question_count",
            code="bank_too_small",
        )
    chosen = rng.sample(list(questions), count)
    items = []
    for question in chosen:
        option_ids = [o.option_id for o in question.options]
        rng.shuffle(option_ids)
        items.append(PaperItem(question.question_id, tuple(option_ids)))
    return Paper(tuple(items))


def client_paper(paper: Paper, questions: Mapping[str, Question]) -> list[dict[str, Any]]:
    """What a member sees: texts and options in the paper's order. Never the key."""
    shown = []
    for number, item in enumerate(paper.items, start=1):
        question = questions[item.question_id]
        texts = {o.option_id: o.text for o in question.options}
        shown.append(
            {
                "number": number,
                "question_id": question.question_id,
                "kind": question.kind.value,
                "text": question.text,
                "options": [{"option_id": oid, "text": texts[oid]} for oid in item.option_ids],
            }
        )
    return shown


@dataclass(frozen=True)
class Answer:
    question_id: str
    option_ids: frozenset[str]


@dataclass(frozen=True)
class Score:
    score: float  # out of 100
    correct_count: int
    question_count: int
    per_question: dict[str, bool] = field(default_factory=dict)

    def passed(self, pass_mark: float) -> bool:
        return self.score >= pass_mark


def parse_answers(paper: Paper, raw: Sequence[Answer], questions: Mapping[str, Question]) -> None:
    """Refuse answers that do not fit the paper, naming the field at fault."""
    by_id = {i.question_id: i for i in paper.items}
    seen: set[str] = set()
    for i, answer in enumerate(raw):
        item = by_id.get(answer.question_id)
        if item is None:
            raise RuleBroken(
                "Câu hỏi không thuộc bài làm này", f"answers.{i}.question_id", code="not_in_paper"
            )
        if answer.question_id in seen:
            raise RuleBroken(
                "Một câu hỏi được trả lời hai lần", f"answers.{i}.question_id", code="duplicate"
            )
        seen.add(answer.question_id)
        unknown = answer.option_ids - set(item.option_ids)
        if unknown:
            raise RuleBroken(
                "Phương án không thuộc câu hỏi này", f"answers.{i}.option_ids", code="bad_option"
            )
        if questions[answer.question_id].kind is QuestionKind.single and len(answer.option_ids) > 1:
            raise RuleBroken(
                "Câu hỏi một lựa chọn chỉ được chọn một phương án",
                f"answers.{i}.option_ids",
                code="single_choice",
            )


def score_paper(
    paper: Paper, answers: Sequence[Answer], questions: Mapping[str, Question]
) -> Score:
    """All or nothing per question: exactly the correct options, no more, no fewer."""
    parse_answers(paper, answers, questions)
    chosen = {a.question_id: a.option_ids for a in answers}
    per_question = {
        item.question_id: chosen.get(item.question_id, frozenset())
        == questions[item.question_id].correct
        for item in paper.items
    }
    correct = sum(per_question.values())
    total = len(paper.items)
    return Score(round(100 * correct / total, 2), correct, total, per_question)
