"""learning through HTTP against the real servers, end to end.

The tests of this module share one app and one world (see conftest), which none
of them changes: each launches its own campaign or contest, and the test that
transfers, moves and merges builds its own corner of the tree. So each passes
alone and in any order.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI

from sotay_events import topics
from sotay_events.catalogue.identity import MemberTransferred
from sotay_events.catalogue.org_tree import OrgLevel, UnitMerged, UnitMoved
from sotay_events.consumer import ProjectionRunner
from sotay_events.lease import LeaseLost
from sotay_learning.projections import (
    CAMPAIGN_COUNTS,
    CONTEST_COUNTS,
    DIRTY,
    DIRTY_BRANCHES,
    RESULTS,
    LearningProjection,
    RosterProjection,
)
from sotay_learning.rollup import Rollup
from sotay_platform.auth import Grant, Role, TokenIssuer
from sotay_platform.testing import eventually, fuzz_openapi

from .conftest import Feed, ShiftedClock, World, walk

pytestmark = pytest.mark.asyncio(loop_scope="module")

REFLECTION = (
    "Qua học tập Nghị quyết 57-NQ/TW, tôi nhận thức sâu sắc hơn vai trò của khoa học, "
    "công nghệ, đổi mới sáng tạo và chuyển đổi số; bản thân sẽ ứng dụng vào công tác ở chi bộ."
)


@dataclass
class Api:
    client: httpx.AsyncClient
    world: World
    bearer: Callable[..., dict[str, str]]

    def member(self, key: str, branch: str) -> dict[str, str]:
        return self.bearer((Role.member, self.world[branch]), member_id=self.world[key])

    def admin(self, role: Role, unit: str) -> dict[str, str]:
        return self.bearer((role, self.world[unit]))

    @property
    def province(self) -> dict[str, str]:
        return self.admin(Role.province_admin, "P")

    @property
    def secretary(self) -> dict[str, str]:
        w = self.world
        return self.bearer(
            (Role.member, w["CB1"]), (Role.branch_secretary, w["CB1"]), member_id=w["s1"]
        )

    async def post(self, url: str, body: Any, headers: dict[str, str]) -> httpx.Response:
        return await self.client.post(url, json=body, headers=headers)

    async def get(self, url: str, headers: dict[str, str], **params: Any) -> httpx.Response:
        return await self.client.get(url, headers=headers, params=params)


@pytest.fixture(scope="module")
def api(client: httpx.AsyncClient, world: World, bearer: Callable[..., dict[str, str]]) -> Api:
    return Api(client, world, bearer)


def question(i: int, multiple: bool) -> dict[str, Any]:
    options = [
        {"text": f"Đáp án đúng của câu {i}", "correct": True},
        {"text": f"Phương án sai thứ nhất của câu {i}"},
        {"text": f"Phương án sai thứ hai của câu {i}"},
    ]
    if multiple:
        options.append({"text": f"Đáp án đúng thứ hai của câu {i}", "correct": True})
    return {
        "kind": "multiple" if multiple else "single",
        "text": f"Câu hỏi {i}: nội dung nào đúng với Nghị quyết 57-NQ/TW?",
        "options": options,
        "explanation": f"Theo mục {i} của Nghị quyết.",
    }


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def bank(api: Api) -> dict[str, list[str]]:
    """A province bank of eight questions; returns each question's key (authors' view)."""
    bank_id = f"NH57-{api.world.suffix}"
    r = await api.post(
        "/question-banks",
        {"bank_id": bank_id, "unit_id": api.world["P"], "title": "Ngân hàng câu hỏi NQ 57"},
        api.province,
    )
    assert r.status_code == 201, r.text
    r = await api.post(
        f"/question-banks/{bank_id}/questions",
        {"questions": [question(i, multiple=i % 2 == 1) for i in range(8)]},
        api.province,
    )
    assert r.status_code == 201, r.text
    r = await api.get(f"/question-banks/{bank_id}/questions", api.province)
    assert r.status_code == 200 and r.json()["active_count"] == 8
    return {
        q["question_id"]: [o["option_id"] for o in q["options"] if o["correct"]]
        for q in r.json()["questions"]
    }


def answers(paper: dict[str, Any], key: dict[str, list[str]], right: int) -> dict[str, Any]:
    """The first `right` questions answered correctly, the rest wrongly."""
    out = []
    for n, q in enumerate(paper["questions"]):
        correct = key[q["question_id"]]
        if n < right:
            out.append({"question_id": q["question_id"], "option_ids": correct})
        else:
            wrong = [o["option_id"] for o in q["options"] if o["option_id"] not in correct][:1]
            out.append({"question_id": q["question_id"], "option_ids": wrong})
    return {"answers": out}


async def launch(
    api: Api, campaign_id: str, quiz: bool, bank_id: str | None = None, unit: str = "P"
) -> None:
    body: dict[str, Any] = {
        "campaign_id": campaign_id,
        "unit_id": api.world[unit],
        "resolution_code": "57-NQ/TW",
        "resolution_title": "Nghị quyết về đột phá phát triển khoa học, công nghệ, "
        "đổi mới sáng tạo và chuyển đổi số quốc gia",
        "deadline": (datetime.now(UTC) + timedelta(days=30)).isoformat(),
        "materials": [
            {"kind": "text", "title": "Toàn văn Nghị quyết", "body": "Nội dung Nghị quyết 57…"},
            {
                "kind": "video",
                "title": "Bài giảng chuyên đề",
                "url": "https://video.example.vn/nq57",
                "duration_minutes": 45,
            },
            {
                "kind": "attachment",
                "title": "Đề cương tuyên truyền",
                "url": "https://tailieu.example.vn/de-cuong.pdf",
                "file_name": "de-cuong.pdf",
                "required": False,
            },
        ],
    }
    if quiz:
        body["quiz"] = {
            "bank_id": bank_id,
            "question_count": 4,
            "time_limit_minutes": 15,
            "max_attempts": 2,
            "pass_mark": 75,
        }
    r = await api.post("/campaigns", body, api.admin(Role.province_admin, unit))
    assert r.status_code == 201, r.text


async def study_required(api: Api, campaign_id: str, headers: dict[str, str]) -> dict[str, Any]:
    for material in ("m1", "m2"):
        r = await api.post(f"/campaigns/{campaign_id}/materials/{material}/studied", {}, headers)
        assert r.status_code == 200, r.text
    return r.json()


async def take_quiz(
    api: Api, campaign_id: str, headers: dict[str, str], key: dict[str, list[str]], right: int
) -> dict[str, Any]:
    r = await api.post(f"/campaigns/{campaign_id}/quiz/attempts", {}, headers)
    assert r.status_code == 201, r.text
    paper = r.json()
    r = await api.post(
        f"/campaigns/{campaign_id}/quiz/attempts/{paper['attempt']}/answers",
        answers(paper, key, right),
        headers,
    )
    assert r.status_code == 200, r.text
    return r.json()


PICK = (
    "required",
    "started",
    "finished",
    "passed",
    "studied",
    "average_score",
    "reflections_submitted",
    "reflections_approved",
)


async def figures(api: Api, campaign_id: str, unit: str, headers: dict[str, str]) -> Any:
    r = await api.get(f"/campaigns/{campaign_id}/results", headers, unit_id=api.world[unit])
    if r.status_code != 200:
        return r.status_code, r.json()
    body = r.json()
    return {k: body["unit"][k] for k in PICK}, [c["unit_id"] for c in body["children"]]


async def expect_figures(
    api: Api, campaign_id: str, expected: dict[str, dict[str, Any]], headers: dict[str, str]
) -> None:
    async def check() -> Any:
        got = {u: (await figures(api, campaign_id, u, headers))[0] for u in expected}
        return got if got == expected else False

    try:
        await eventually(check, timeout=30)
    except AssertionError:
        got = {u: (await figures(api, campaign_id, u, headers))[0] for u in expected}
        assert got == expected


def row(required: int, started: int, finished: int, passed: int, studied: int, **rest: Any):
    return {
        "required": required,
        "started": started,
        "finished": finished,
        "passed": passed,
        "studied": studied,
        "average_score": rest.get("avg"),
        "reflections_submitted": rest.get("refl", 0),
        "reflections_approved": rest.get("ok", 0),
    }


async def test_a_quiz_campaign_launched_by_a_province_runs_end_to_end(
    api: Api, bank: dict[str, list[str]]
) -> None:
    cid = f"HD57-{api.world.suffix}"
    await launch(api, cid, quiz=True, bank_id=f"NH57-{api.world.suffix}")
    a1, a2 = api.member("a1", "CB1"), api.member("a2", "CB1")
    b1, b2 = api.member("b1", "CB2"), api.member("b2", "CB2")
    c1 = api.member("c1", "CB3")

    # Members see the campaigns that concern them; the other province's member does not.
    async def listed() -> bool:
        r = await api.get("/me/campaigns", a1)
        return any(c["campaign_id"] == cid for c in r.json())

    await eventually(listed)
    mine = next(c for c in (await api.get("/me/campaigns", a1)).json() if c["campaign_id"] == cid)
    assert mine["has_quiz"] and mine["status"] == "open"
    assert mine["deadline_display"].split(" ngày ")[1].count("/") == 2  # hh:mm ngày dd/mm/yyyy
    r = await api.get("/me/campaigns", api.member("z1", "CB9"))
    assert all(c["campaign_id"] != cid for c in r.json())
    r = await api.get(f"/campaigns/{cid}/materials/m1", a1)
    assert r.status_code == 200 and r.json()["body"].startswith("Nội dung")

    # a1 studies and passes at once.
    progress = await study_required(api, cid, a1)
    assert progress["required_done"] and not progress["studied"]
    r = await api.post(f"/campaigns/{cid}/quiz/attempts", {}, a1)
    assert r.status_code == 201, r.text
    paper = r.json()
    assert len(paper["questions"]) == 4 and paper["expires_at"]["display"]
    keys = {k for k, _ in walk(paper)}
    assert not keys & {"correct", "correct_option_ids", "explanation"}, keys
    every_correct_option = {o for opts in bank.values() for o in opts}
    shown = {o["option_id"] for q in paper["questions"] for o in q["options"]}
    assert shown & every_correct_option  # the right options are there, unmarked
    again = await api.post(f"/campaigns/{cid}/quiz/attempts", {}, a1)
    assert again.status_code == 200 and again.json()["questions"] == paper["questions"]
    r = await api.post(
        f"/campaigns/{cid}/quiz/attempts/1/answers", answers(paper, bank, right=4), a1
    )
    assert r.status_code == 200, r.text
    result = r.json()
    assert (result["score"], result["passed"], result["studied"]) == (100, True, True)
    r = await api.get(f"/campaigns/{cid}", a1)
    assert r.json()["progress"]["studied"] and r.json()["progress"]["quiz"]["best_score"] == 100

    # a2 fails once (2 of 4 < 75), then passes with the second attempt.
    await study_required(api, cid, a2)
    first = await take_quiz(api, cid, a2, bank, right=2)
    assert (first["score"], first["passed"], first["finished"]) == (50, False, False)
    assert all("correct_option_ids" not in q for q in first["review"])  # a turn is left
    second = await take_quiz(api, cid, a2, bank, right=4)
    assert second["passed"] and second["studied"]

    # b1 finishes the materials and fails its one attempt so far; b2 only opens an attempt;
    # c1 reads one material.
    await study_required(api, cid, b1)
    assert (await take_quiz(api, cid, b1, bank, right=2))["score"] == 50
    assert (await api.post(f"/campaigns/{cid}/quiz/attempts", {}, b2)).status_code == 201
    r = await api.post(f"/campaigns/{cid}/materials/m1/studied", {}, c1)
    assert r.status_code == 200

    # Reflections: a1's is reviewed by the CB1 secretary; b1's waits.
    r = await api.post(f"/campaigns/{cid}/reflection", {"text": REFLECTION}, a1)
    assert r.status_code == 201, r.text
    r = await api.post(f"/campaigns/{cid}/reflection", {"text": REFLECTION}, b1)
    assert r.status_code == 201, r.text

    async def pending() -> Any:
        r = await api.get(
            f"/campaigns/{cid}/reflections", api.secretary, branch_id=api.world["CB1"]
        )
        return r.status_code == 200 and r.json()

    listed_reflections = await eventually(pending)
    assert [x["member_id"] for x in listed_reflections] == [api.world["a1"]]
    assert listed_reflections[0]["text"] == REFLECTION
    assert listed_reflections[0]["full_name"] == "Nguyễn Thị Mai"
    other_secretary = api.bearer((Role.branch_secretary, api.world["CB2"]), member_id="sec-cb2")
    review = {"verdict": "đạt", "comment": "Bài viết sâu sắc, liên hệ tốt"}
    r = await api.post(
        f"/campaigns/{cid}/reflections/{api.world['a1']}/review", review, other_secretary
    )
    assert r.status_code == 403 and r.json()["field"] == "member_id"
    r = await api.post(
        f"/campaigns/{cid}/reflections/{api.world['a1']}/review", review, api.secretary
    )
    assert r.status_code == 200 and r.json()["status"] == "approved", r.text
    r = await api.get(f"/campaigns/{cid}/reflections/{api.world['a1']}", a1)
    assert r.json()["review"]["verdict"] == "đạt"

    # Results, rolled up branch → commune → province.
    expected = {
        "CB1": row(3, 2, 2, 2, 2, avg=100.0, refl=1, ok=1),  # a1, a2, s1 (a3 is exempted)
        "CB2": row(2, 2, 1, 0, 0, avg=50.0, refl=1),
        "CB3": row(1, 1, 0, 0, 0),  # c2 was never approved
        "X1": row(5, 4, 3, 2, 2, avg=83.33, refl=2, ok=1),
        "X2": row(1, 1, 0, 0, 0),
        "P": row(6, 5, 3, 2, 2, avg=83.33, refl=2, ok=1),
    }
    await expect_figures(api, cid, expected, api.province)
    _, children = await figures(api, cid, "P", api.province)
    assert children == [api.world["X1"], api.world["X2"]]
    _, children = await figures(api, cid, "X1", api.province)
    assert children == [api.world["CB1"], api.world["CB2"]]

    # Each committee sees its own scope, not above it.
    commune = api.admin(Role.committee_admin, "X1")
    got, _ = await figures(api, cid, "X1", commune)
    assert got == expected["X1"]
    status, _ = await figures(api, cid, "P", commune)
    assert status == 403
    status, _ = await figures(api, cid, "CB9", api.admin(Role.province_admin, "Q"))
    assert status == 404

    # The branch table, for its secretary.
    r = await api.get(
        f"/campaigns/{cid}/results/members", api.secretary, branch_id=api.world["CB1"]
    )
    table = {m["full_name"]: m for m in r.json()["members"]}
    assert set(table) == {"Nguyễn Thị Mai", "Lê Văn Hùng", "Phạm Quốc Toản"}
    assert table["Phạm Quốc Toản"]["started"] is False and table["Lê Văn Hùng"]["studied"]


async def test_answers_late_twice_or_out_of_scope_are_refused_naming_the_field(
    api: Api, bank: dict[str, list[str]], clock: ShiftedClock
) -> None:
    cid = f"HDR-{api.world.suffix}"
    await launch(api, cid, quiz=True, bank_id=f"NH57-{api.world.suffix}")
    a1, b2 = api.member("a1", "CB1"), api.member("b2", "CB2")
    await study_required(api, cid, a1)
    await take_quiz(api, cid, a1, bank, right=4)

    # Twice: a1's first attempt is already in.
    r = await api.post(f"/campaigns/{cid}/quiz/attempts/1/answers", {"answers": []}, a1)
    assert r.status_code == 409, r.text
    assert (r.json()["field"], r.json()["error"]) == ("attempt", "already_submitted")
    assert "đã được nộp" in r.json()["message"]

    # Late: b2's open attempt, answered 20 minutes later (limit 15, grace 15 s).
    r = await api.post(f"/campaigns/{cid}/quiz/attempts", {}, b2)
    assert r.status_code == 201, r.text
    paper = r.json()
    clock.offset = timedelta(minutes=20)
    try:
        r = await api.post(f"/campaigns/{cid}/quiz/attempts/1/answers", answers(paper, bank, 4), b2)
        assert r.status_code == 422, r.text
        assert (r.json()["field"], r.json()["error"]) == ("answers", "late")
        assert "hết giờ" in r.json()["message"]

        # The expired attempt used a turn; answers that do not fit the new paper are refused.
        r = await api.post(f"/campaigns/{cid}/quiz/attempts", {}, b2)
        assert r.status_code == 201 and r.json()["attempt"] == 2
        bogus = {"answers": [{"question_id": "q-khong-co", "option_ids": []}]}
        r = await api.post(f"/campaigns/{cid}/quiz/attempts/2/answers", bogus, b2)
        assert r.status_code == 422 and r.json()["field"] == "answers.0.question_id"
        r = await api.post(f"/campaigns/{cid}/quiz/attempts/2/answers", {"answer": []}, b2)
        assert r.status_code == 422 and r.json()["field"] == "answers"
    finally:
        clock.offset = timedelta()

    # Out of scope: a member of another province.
    z1 = api.member("z1", "CB9")
    r = await api.post(f"/campaigns/{cid}/quiz/attempts", {}, z1)
    assert r.status_code == 403 and r.json()["field"] == "campaign_id"
    r = await api.post(f"/campaigns/{cid}/quiz/attempts/1/answers", {"answers": []}, z1)
    assert r.status_code == 403 and r.json()["field"] == "campaign_id"

    # The exempted member and a self-registration not yet approved take no part.
    r = await api.post(f"/campaigns/{cid}/start", {}, api.member("a3", "CB1"))
    assert r.status_code == 403 and r.json()["error"] == "not_eligible"
    r = await api.post(f"/campaigns/{cid}/start", {}, api.member("c2", "CB3"))
    assert r.status_code == 403 and r.json()["error"] == "not_in_roster"

    # A committee below the province cannot launch for it; bad input names its field.
    body = {
        "unit_id": api.world["P"],
        "resolution_code": "57-NQ/TW",
        "resolution_title": "NQ",
        "deadline": "2020-01-01T00:00:00",
        "materials": [{"kind": "link", "title": "L", "url": "https://a.vn"}],
    }
    r = await api.post("/campaigns", body, api.admin(Role.committee_admin, "X1"))
    assert r.status_code == 403
    r = await api.post("/campaigns", body, api.province)
    assert r.status_code == 422 and r.json()["field"] == "deadline"
    r = await api.post(
        "/campaigns", {k: v for k, v in body.items() if k != "deadline"}, api.province
    )
    assert r.status_code == 422 and r.json()["field"] == "deadline"
    later = (datetime.now(UTC) + timedelta(days=9)).isoformat()
    video_without_url = {"deadline": later, "materials": [{"kind": "video", "title": "Video"}]}
    r = await api.post("/campaigns", body | video_without_url, api.province)
    assert r.status_code == 422 and r.json()["field"] == "materials.0.url"
    r = await api.post("/campaigns", body | {"deadline": "2099-01-01T00:00:00"}, api.province)
    assert r.status_code == 422 and "3 năm" in r.json()["message"]

    # After the deadline nothing is accepted.
    clock.offset = timedelta(days=31)
    try:
        r = await api.post(f"/campaigns/{cid}/materials/m2/studied", {}, api.member("c1", "CB3"))
    finally:
        clock.offset = timedelta()
    assert r.status_code == 422 and r.json()["field"] == "campaign_id"
    assert "hết hạn" in r.json()["message"]


async def test_contest_ranks_members_and_units(
    api: Api, bank: dict[str, list[str]], clock: ShiftedClock
) -> None:
    w = api.world
    ct = f"CT57-{w.suffix}"
    now = datetime.now(UTC)
    r = await api.post(
        "/contests",
        {
            "contest_id": ct,
            "unit_id": w["P"],
            "title": "Cuộc thi tìm hiểu Nghị quyết 57-NQ/TW",
            "resolution_code": "57-NQ/TW",
            "bank_id": f"NH57-{w.suffix}",
            "question_count": 4,
            "time_limit_minutes": 10,
            "max_entries": 2,
            "starts_at": (now - timedelta(minutes=1)).isoformat(),
            "ends_at": (now + timedelta(days=7)).isoformat(),
        },
        api.province,
    )
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "open" and " – " in r.json()["period_display"]

    async def enter(key: str, branch: str, right: int, seconds: int) -> dict[str, Any]:
        headers = api.member(key, branch)
        r = await api.post(f"/contests/{ct}/entries", {}, headers)
        assert r.status_code == 201, r.text
        paper = r.json()
        assert not {k for k, _ in walk(paper)} & {"correct", "correct_option_ids"}
        clock.offset = timedelta(seconds=seconds)
        try:
            r = await api.post(
                f"/contests/{ct}/entries/{paper['attempt']}/answers",
                answers(paper, bank, right),
                headers,
            )
        finally:
            clock.offset = timedelta()
        assert r.status_code == 200, r.text
        return r.json()

    assert (await enter("a1", "CB1", 4, 60))["score"] == 100
    assert 200 <= (await enter("b1", "CB2", 4, 200))["duration_seconds"] < 230
    assert (await enter("c1", "CB3", 2, 100))["score"] == 50
    r = await api.post(f"/contests/{ct}/entries", {}, api.member("z1", "CB9"))
    assert r.status_code == 403 and r.json()["field"] == "contest_id"

    c1 = api.member("c1", "CB3")

    async def members_ranked() -> Any:
        r = await api.get(f"/contests/{ct}/rankings/members", c1)
        body = r.json()
        return len(body.get("ranking", [])) == 3 and body

    ranking = await eventually(members_ranked)
    assert [x["full_name"] for x in ranking["ranking"]] == [
        "Nguyễn Thị Mai",
        "Hoàng Văn Nam",
        "Vũ Thị Hoa",
    ]
    assert ranking["ranking"][0]["branch_name"] == "Chi bộ thôn Đông"
    assert ranking["my_rank"] == 3

    async def units_ranked() -> Any:
        r = await api.get(f"/contests/{ct}/rankings/units", api.province, level="commune")
        body = r.json()
        rows = body.get("ranking", [])
        return len(rows) == 2 and sum(x["participants"] for x in rows) == 3 and body

    units = await eventually(units_ranked)
    assert [x["unit_id"] for x in units["ranking"]] == [w["X1"], w["X2"]]
    first = units["ranking"][0]
    assert (first["participants"], first["average_score"], first["required"]) == (2, 100.0, 5)
    assert first["rate"] == 40.0


def nonzero(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    kept = []
    for doc in docs:
        doc = {k: v for k, v in doc.items() if v != 0}
        if set(doc) - {"_id", "campaign_id", "contest_id", "branch_id"}:
            kept.append(doc)
    return kept


async def test_projections_rebuild_to_the_live_model(
    app: FastAPI, api: Api, feed: Feed, suffix: str, bank: dict[str, list[str]]
) -> None:
    """Replaying identity's facts first, then learning's, gives what the live interleaving gave."""
    w = api.world
    cid, ct = f"HDB-{suffix}", f"CTB-{suffix}"
    await launch(api, cid, quiz=True, bank_id=f"NH57-{suffix}")
    a2 = api.member("a2", "CB1")
    await study_required(api, cid, a2)
    await take_quiz(api, cid, a2, bank, right=3)
    assert (await api.post(f"/campaigns/{cid}/reflection", {"text": REFLECTION}, a2)).is_success
    now = datetime.now(UTC)
    body = {
        "contest_id": ct,
        "unit_id": w["P"],
        "title": "Cuộc thi dựng lại",
        "bank_id": f"NH57-{suffix}",
        "question_count": 2,
        "time_limit_minutes": 10,
        "starts_at": (now - timedelta(minutes=1)).isoformat(),
        "ends_at": (now + timedelta(days=1)).isoformat(),
    }
    assert (await api.post("/contests", body, api.province)).status_code == 201
    r = await api.post(f"/contests/{ct}/entries", {}, a2)
    assert r.status_code == 201, r.text
    r = await api.post(f"/contests/{ct}/entries/1/answers", answers(r.json(), bank, 1), a2)
    assert r.status_code == 200, r.text

    runtime = app.state.runtime
    history = await runtime.store.all_events()
    identity = [e for e in feed.published if e.aggregate_type == "Member"]
    for projection, replay in (
        (LearningProjection(), identity + history),
        (RosterProjection(), identity),
    ):
        live = ProjectionRunner(runtime.mongo, runtime.settings.database, projection)
        last: dict[str, int] = {}
        for envelope in replay:
            last[envelope.stream_id] = max(
                last.get(envelope.stream_id, 0), envelope.aggregate_version
            )

        async def caught_up(runner: ProjectionRunner = live, wanted: dict = last) -> bool:
            tracked = {
                d["_id"]: d["v"] async for d in runner.tracking.find({"_id": {"$in": list(wanted)}})
            }
            return tracked == wanted

        await eventually(caught_up)
        rebuilt = ProjectionRunner(
            runtime.mongo, f"{runtime.settings.database}_rebuild", projection
        )
        await rebuilt.rebuild(replay, batch_size=7)
        for name in projection.collections:
            if name in (DIRTY, DIRTY_BRANCHES):  # marks the roll-up worker clears live
                continue
            # Other modules of the session publish on the same topics: compare ours.
            a = [
                d for d in await live.db[name].find({}).sort("_id").to_list() if suffix in d["_id"]
            ]
            b = await rebuilt.db[name].find({}).sort("_id").to_list()
            if name in (CAMPAIGN_COUNTS, CONTEST_COUNTS):
                # A counter that went back to 0 live (a member moved away) was never
                # written by the rebuild: the same figure.
                a, b = nonzero(a), nonzero(b)
            assert a, name
            assert json.dumps(a, default=str, sort_keys=True) == json.dumps(
                b, default=str, sort_keys=True
            ), name
        await runtime.mongo.drop_database(f"{runtime.settings.database}_rebuild")


async def test_one_replica_rolls_up_at_a_time_and_a_deposed_one_writes_nothing(
    app: FastAPI, api: Api
) -> None:
    runtime = app.state.runtime
    live = runtime.rollup
    other = Rollup(runtime.db, 0.2, lease_seconds=60)

    async def held() -> bool:
        return live.lease.held

    await eventually(held)
    assert await other.tick() == 0 and other.skipped == 1  # the app's worker holds the lease

    # The app's worker is deposed (its lease taken over): its next write is refused.
    cid = f"HDF-{api.world.suffix}"
    await launch(api, cid, quiz=False)

    async def results() -> Any:
        return await runtime.db[RESULTS].find_one({"_id": f"{cid}:{api.world['P']}"})

    await eventually(results)
    await runtime.db["leases"].update_one({"_id": live.lease.name}, {"$inc": {"epoch": 1}})
    before = await results()
    epoch = live.lease.epoch
    mark = {"_id": f"campaign:{cid}", "kind": "campaign", "target_id": cid, "seq": 1}
    await runtime.db[DIRTY].replace_one({"_id": mark["_id"]}, mark, upsert=True)
    await runtime.db[RESULTS].delete_one({"_id": before["_id"]})
    live.lease.epoch = epoch  # as if it had not noticed yet
    with pytest.raises(LeaseLost):
        await live.recompute("campaigns", cid, mark)
    assert await results() is None  # nothing written by the deposed worker
    await runtime.db["leases"].update_one({"_id": live.lease.name}, {"$set": {"holder": None}})
    await eventually(results)  # a holder again (this one or the other), and the row is back


async def test_results_follow_transfers_moves_and_merges(api: Api, feed: Feed) -> None:
    """On a corner of the tree of its own (under Q), so the other tests' figures stay put:
    Q ─ Y2 ─ CB4 (d1), CB5 (e1, e2)
      └ Y3 ─ CB6 (f1)"""
    w = api.world
    s = w.suffix
    ids = {k: f"{k}-{s}" for k in ("Y2", "Y3", "CB4", "CB5", "CB6", "d1", "e1", "e2", "f1")}
    paths = {
        "Y2": [w["TW"], w["Q"], ids["Y2"]],
        "Y3": [w["TW"], w["Q"], ids["Y3"]],
    }
    paths |= {"CB4": [*paths["Y2"], ids["CB4"]], "CB5": [*paths["Y2"], ids["CB5"]]}
    paths["CB6"] = [*paths["Y3"], ids["CB6"]]
    for key, name, level in (
        ("Y2", "Đảng bộ xã Bình Châu", OrgLevel.commune),
        ("Y3", "Đảng bộ xã Bình Hải", OrgLevel.commune),
        ("CB4", "Chi bộ thôn Một", OrgLevel.branch),
        ("CB5", "Chi bộ thôn Hai", OrgLevel.branch),
        ("CB6", "Chi bộ thôn Ba", OrgLevel.branch),
    ):
        await feed.unit_at(ids[key], name, level, paths[key])
    for key, name, branch in (
        ("d1", "Lý Văn Dũng", "CB4"),
        ("e1", "Mai Thị Én", "CB5"),
        ("e2", "Tô Văn Em", "CB5"),
        ("f1", "Hồ Thị Phương", "CB6"),
    ):
        await feed.member(ids[key], name, ids[branch], paths[branch])

    def who(key: str, branch: str) -> dict[str, str]:
        return api.bearer((Role.member, ids[branch]), member_id=ids[key])

    async def in_roster() -> bool:
        for key, branch in (("d1", "CB4"), ("e2", "CB5"), ("f1", "CB6")):
            if (await api.get("/me/campaigns", who(key, branch))).status_code != 200:
                return False
        return True

    await eventually(in_roster, timeout=30)
    cid = f"HDM-{s}"
    await launch(api, cid, quiz=False, unit="Q")
    q_admin = api.admin(Role.province_admin, "Q")
    await study_required(api, cid, who("e1", "CB5"))  # studied
    assert (await api.post(f"/campaigns/{cid}/start", {}, who("d1", "CB4"))).is_success
    r = await api.post(f"/campaigns/{cid}/materials/m1/studied", {}, who("f1", "CB6"))
    assert r.status_code == 200, r.text

    async def expect(expected: dict[str, dict[str, Any] | None]) -> None:
        async def got() -> dict[str, Any]:
            found = {}
            for unit in expected:
                r = await api.get(f"/campaigns/{cid}/results", q_admin, unit_id=unit)
                found[unit] = {k: r.json()["unit"][k] for k in PICK} if r.is_success else None
            return found

        async def check() -> bool:
            return await got() == expected

        try:
            await eventually(check, timeout=30)
        except AssertionError:
            assert await got() == expected

    await expect(
        {
            ids["CB4"]: row(1, 1, 0, 0, 0),
            ids["CB5"]: row(2, 1, 1, 0, 1),
            ids["Y2"]: row(3, 2, 1, 0, 1),
            ids["Y3"]: row(1, 1, 0, 0, 0),
            w["Q"]: row(5, 3, 1, 0, 1),  # z1 of CB9 must study too
        }
    )
    # e1 moves from CB5 to CB6: their study goes with them.
    await feed.send(
        topics.IDENTITY,
        ids["e1"],
        MemberTransferred(
            member_id=ids["e1"],
            from_branch_id=ids["CB5"],
            to_branch_id=ids["CB6"],
            effective_on=datetime.now(UTC).date(),
        ),
        paths["CB6"],
    )
    await expect(
        {
            ids["CB5"]: row(1, 0, 0, 0, 0),
            ids["CB6"]: row(2, 2, 1, 0, 1),
            ids["Y2"]: row(2, 1, 0, 0, 0),
            ids["Y3"]: row(2, 2, 1, 0, 1),
            w["Q"]: row(5, 3, 1, 0, 1),
        }
    )
    # CB6 moves from Y3 to Y2: its numbers follow it.
    await feed.send(
        topics.ORG_TREE,
        ids["CB6"],
        UnitMoved(unit_id=ids["CB6"], from_parent_id=ids["Y3"], to_parent_id=ids["Y2"]),
        [*paths["Y2"], ids["CB6"]],
    )
    await expect(
        {
            ids["Y2"]: row(4, 3, 1, 0, 1),
            ids["Y3"]: row(0, 0, 0, 0, 0),
            w["Q"]: row(5, 3, 1, 0, 1),
        }
    )
    # CB5 merges into CB4: its member counts in CB4, and CB5 has no row of its own.
    await feed.send(
        topics.ORG_TREE,
        ids["CB5"],
        UnitMerged(unit_id=ids["CB5"], into_unit_id=ids["CB4"]),
        paths["CB5"],
    )
    await expect({ids["CB4"]: row(2, 1, 0, 0, 0), ids["CB5"]: None, ids["Y2"]: row(4, 3, 1, 0, 1)})
    # e2, whose branch merged, still studies: CB5 resolves to CB4.
    r = await api.post(f"/campaigns/{cid}/materials/m1/studied", {}, who("e2", "CB5"))
    assert r.status_code == 200, r.text
    await expect({ids["CB4"]: row(2, 2, 0, 0, 0)})


async def test_ten_parallel_starts_by_one_member_start_one_attempt(
    app: FastAPI, api: Api, bank: dict[str, list[str]]
) -> None:
    cid = f"HDP-{api.world.suffix}"
    await launch(api, cid, quiz=True, bank_id=f"NH57-{api.world.suffix}")
    c1 = api.member("c1", "CB3")
    answers_ = await asyncio.gather(
        *(api.post(f"/campaigns/{cid}/quiz/attempts", {}, c1) for _ in range(10))
    )
    statuses = sorted(r.status_code for r in answers_)
    assert statuses[0] == 200 and statuses[-1] == 201 and statuses.count(201) == 1, [
        r.text for r in answers_
    ]
    assert {r.json()["attempt"] for r in answers_} == {1}
    assert len({json.dumps(r.json()["questions"]) for r in answers_}) == 1
    stream = await app.state.runtime.store.load("Enrolment", f"{cid}:{api.world['c1']}")
    assert [e.event_type for e in stream] == ["StudyStarted", "QuizAttemptStarted"]


@pytest.mark.parametrize(
    "change",
    [
        {"deadline": "0001-01-01T00:00:00"},
        {"deadline": "9999-12-31T23:00:00-05:00"},
        {"deadline": "2026-13-01T00:00:00"},
        {"title": "ab\ud800cd"},
        {"resolution_title": "x" * 100_000},
        {"materials": [{"kind": "link", "title": "L", "url": "https://a.vn"}] * 101},
        {"unit_id": "Ｐ\u0000"},
        {
            "quiz": {
                "bank_id": "B",
                "question_count": 10**20,
                "time_limit_minutes": 5,
                "max_attempts": 1,
                "pass_mark": 50,
            }
        },
    ],
)
async def test_hostile_input_is_a_clear_422_naming_the_field(
    api: Api, change: dict[str, Any]
) -> None:
    body = {
        "unit_id": api.world["P"],
        "resolution_code": "57-NQ/TW",
        "resolution_title": "Nghị quyết 57",
        "deadline": (datetime.now(UTC) + timedelta(days=9)).isoformat(),
        "materials": [{"kind": "link", "title": "L", "url": "https://a.vn"}],
    } | change
    raw = json.dumps(body)  # escapes the lone surrogate (\ud800), as a client may send it
    r = await api.client.post(
        "/campaigns", content=raw, headers=api.province | {"content-type": "application/json"}
    )
    assert r.status_code == 422, r.text
    field = next(iter(change))
    assert (r.json()["field"] or "").split(".")[0] == field, r.json()
    assert r.json()["message"]


async def test_dates_at_calendar_ends_are_refused_for_contests_and_deadlines(api: Api) -> None:
    cid = f"HDE-{api.world.suffix}"
    await launch(api, cid, quiz=False)
    for when in ("0001-01-01T00:00:00", "9999-12-31T23:00:00-05:00"):
        r = await api.post(f"/campaigns/{cid}/deadline", {"deadline": when}, api.province)
        assert r.status_code == 422 and r.json()["field"] == "deadline", r.text
        contest = {
            "unit_id": api.world["P"],
            "title": "Cuộc thi",
            "bank_id": "NH",
            "question_count": 1,
            "time_limit_minutes": 5,
            "starts_at": when,
            "ends_at": "2030-01-01T00:00:00",
        }
        r = await api.post("/contests", contest, api.province)
        assert r.status_code == 422 and r.json()["field"] == "starts_at", r.text


async def test_hostile_and_careless_requests_never_get_a_5xx_or_an_undocumented_answer(
    app: FastAPI, world: World, token_issuer: TokenIssuer
) -> None:
    """Schemathesis over the whole OpenAPI, valid and invalid requests alike. The caller is a
    province administrator who is also a member of one of its branches, so both kinds of
    routes get past authorization and the requests reach the handlers; the ids it makes up
    match nothing of the world, so the other tests' figures stay put."""
    token = token_issuer.issue(
        world["a1"],
        [Grant(Role.province_admin, world["P"]), Grant(Role.member, world["CB1"])],
        member_id=world["a1"],
    )
    sent = await fuzz_openapi(app, token=token, max_examples=2)
    assert sent > 60
