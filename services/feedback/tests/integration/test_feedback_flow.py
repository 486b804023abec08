"""The issue's "done when", through the API against the real Kafka, MongoDB and Redis.

Tree: TW > HN > X1 (commune) > CB1, CB2; HN > X2 > CB3.
Members m1 (CB1), m2 (CB2, same subtree as m1 under X1), m3 (CB3, outside it).
X1's committee office answers for X1's bodies; HN's is the superior committee.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import pytest_asyncio

from sotay_events.catalogue.org_tree import OrgLevel
from sotay_feedback import demo
from sotay_feedback.handlers import AUTHOR_ACTOR
from sotay_feedback.watcher import DeadlineWatcher
from sotay_platform.attachments import build_pdf
from sotay_platform.auth import Role
from sotay_platform.testing import eventually

pytestmark = pytest.mark.asyncio(loop_scope="module")

PROPOSAL = "fb-proposal-0001"
QUESTION_TEXT = "Đồng chí Nguyễn Văn An, chi bộ 1, hỏi cách đổi mật khẩu ứng dụng Sổ tay"


@pytest.fixture(scope="module")
def people(bearer):  # type: ignore[no-untyped-def]
    return {
        "m1": bearer("m1", Role.member, "CB1"),
        "m2": bearer("m2", Role.member, "CB2"),
        "m3": bearer("m3", Role.member, "CB3"),
        "sec1": bearer("s1", Role.branch_secretary, "CB1"),
        "x1": bearer(None, Role.committee_admin, "X1", "van-phong-x1"),
        "hn": bearer(None, Role.committee_admin, "HN", "van-phong-hn"),
    }


TABLE = {
    "routes": {"organisation": "organisation_department", "app": "office"},
    "deadline_days": {"question": 3, "proposal": 10},
    "reminder_days": 1,
}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(client: httpx.AsyncClient, feed, people):  # type: ignore[no-untyped-def]
    """The tree, from org-tree's events, and X1's routing table: what every test stands on."""
    await feed.unit("TW", OrgLevel.central, None)
    await feed.unit("HN", OrgLevel.province, "TW")
    await feed.unit("X1", OrgLevel.commune, "HN")
    await feed.unit("X2", OrgLevel.commune, "HN")
    for branch, parent in (("CB1", "X1"), ("CB2", "X1"), ("CB3", "X2")):
        await feed.unit(branch, OrgLevel.branch, parent)

    async def known() -> bool:
        r = await client.get("/routing-tables/CB3", headers=people["m3"])
        return r.status_code == 200

    assert await eventually(known)
    r = await client.put("/routing-tables/X1", json=TABLE, headers=people["x1"])
    assert r.status_code == 200, r.text
    return people


async def submit(client: httpx.AsyncClient, who: dict[str, str], **overrides: object) -> dict:  # type: ignore[type-arg]
    body = {
        "kind": "question",
        "subject": "organisation",
        "title": "Thủ tục chuyển sinh hoạt đảng",
        "text": "Xin hỏi thủ tục chuyển sinh hoạt đảng tạm thời",
        **overrides,
    }
    r = await client.post("/feedback", json=body, headers=who)
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def at(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


async def test_a_committee_sets_its_routing_table(client: httpx.AsyncClient, world) -> None:  # type: ignore[no-untyped-def]
    people, table = world, TABLE
    r = await client.put("/routing-tables/X1", json=table, headers=people["m1"])
    assert r.status_code == 403, r.text
    r = await client.put("/routing-tables/X1", json=table, headers=people["sec1"])
    assert r.status_code == 403, r.text
    bad = {**table, "deadline_days": {"question": 0}}
    r = await client.put("/routing-tables/X1", json=bad, headers=people["x1"])
    assert (r.status_code, r.json()["field"]) == (422, "deadline_days.question"), r.text
    r = await client.put(
        "/routing-tables/X1", json={**table, "routes": {"app": "nowhere"}}, headers=people["x1"]
    )
    assert r.status_code == 422 and r.json()["field"].startswith("routes"), r.text
    r = await client.put("/routing-tables/X1", json=table, headers=people["x1"])
    assert r.status_code == 200, r.text
    assert r.json()["own_table"] and r.json()["deadline_days"]["question"] == 3
    assert r.json()["routes"]["organisation"]["body_label"] == "Ban Tổ chức"


async def test_a_proposal_is_routed_forwarded_answered_publicly_and_found(
    client: httpx.AsyncClient, world
) -> None:  # type: ignore[no-untyped-def]
    people = world
    body = {
        "kind": "proposal",
        "subject": "organisation",
        "addressed_to": "committee",
        "title": "Đề nghị tổ chức hỏi đáp trực tuyến về công tác đảng viên",
        "text": "Chi bộ chúng tôi đề nghị cấp ủy mở chuyên mục hỏi đáp trực tuyến hằng tháng.",
        "feedback_id": PROPOSAL,
    }
    r = await client.post("/feedback", json={**body, "kind": "khác"}, headers=people["m1"])
    assert (r.status_code, r.json()["field"]) == (422, "kind"), r.text
    r = await client.post("/feedback", json={**body, "title": "x" * 201}, headers=people["m1"])
    assert (r.status_code, r.json()["field"]) == (422, "title"), r.text
    r = await client.post("/feedback", json=body, headers=people["x1"])
    assert r.status_code == 403, r.text
    r = await client.post("/feedback", json=body, headers=people["m1"])
    assert r.status_code == 201, r.text
    sent = r.json()
    assert (sent["holder"]["unit_id"], sent["holder"]["body"]) == ("X1", "organisation_department")
    assert sent["kind_label"] == "Đề xuất" and sent["holder"]["deadline_display"].count("/") == 2
    r = await client.post("/feedback", json=body, headers=people["m1"])  # a retry
    assert (r.status_code, r.json()["feedback_id"]) == (200, PROPOSAL), r.text

    # It lands in the organisation department's queue, which only X1's bodies read.
    async def queue(body_name: str, who: str = "x1") -> list[str] | None:
        r = await client.get(f"/queues/X1/{body_name}", headers=people[who])
        assert r.status_code == 200, r.text
        return [i["feedback_id"] for i in r.json()["items"]]

    async def holds(body_name: str) -> bool:
        return PROPOSAL in (await queue(body_name) or [])

    assert await eventually(lambda: holds("organisation_department"))
    for who in ("m1", "sec1"):
        r = await client.get("/queues/X1/organisation_department", headers=people[who])
        assert r.status_code == 403, r.text

    # The member attaches a document: checked from its bytes; a fake or a classified one is refused.
    pdf = build_pdf(["Danh sách đề xuất của chi bộ 1"])
    r = await client.post(
        f"/feedback/{PROPOSAL}/attachments",
        files={"file": ("de-xuat.pdf", pdf, "application/pdf")},
        headers=people["m1"],
    )
    assert r.status_code == 201, r.text
    [attached] = r.json()["attachments"]
    r = await client.post(
        f"/feedback/{PROPOSAL}/attachments",
        files={"file": ("gia.pdf", b"not a pdf at all", "application/pdf")},
        headers=people["m1"],
    )
    assert (r.status_code, r.json()["field"]) == (422, "file"), r.text
    r = await client.post(
        f"/feedback/{PROPOSAL}/attachments",
        files={"file": ("mat.pdf", build_pdf(["TỐI MẬT", "Nội dung"]), "application/pdf")},
        headers=people["m1"],
    )
    assert (r.status_code, r.json()["error"]) == (422, "classified"), r.text
    r = await client.get(
        f"/feedback/{PROPOSAL}/attachments/{attached['file_id']}", headers=people["x1"]
    )
    assert (r.status_code, r.content) == (200, pdf)

    # Forwarded once, to the office, with a reason.
    r = await client.post(
        f"/feedback/{PROPOSAL}/forward",
        json={"to_body": "office", "up": False, "reason": ""},
        headers=people["x1"],
    )
    assert (r.status_code, r.json()["field"]) == (422, "reason"), r.text
    r = await client.post(
        f"/feedback/{PROPOSAL}/forward",
        json={"to_body": "office", "reason": "Nội dung do Văn phòng tổng hợp"},
        headers=people["x1"],
    )
    assert r.status_code == 200, r.text
    assert (r.json()["holder"]["body"], r.json()["holder"]["hop"]) == ("office", 2)
    assert await eventually(lambda: holds("office"))
    assert not await holds("organisation_department")

    # Answered publicly, the asker anonymised.
    r = await client.post(
        f"/feedback/{PROPOSAL}/answer",
        json={
            "visibility": "public",
            "question": "Đề nghị tổ chức hỏi đáp trực tuyến về công tác đảng viên",
            "text": "Cấp ủy tiếp thu: chuyên mục hỏi đáp trực tuyến mở từ tháng 01/2027.",
        },
        headers=people["x1"],
    )
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "answered"

    async def found(who: str, q: str) -> list[dict]:  # type: ignore[type-arg]
        r = await client.get("/qa", params={"q": q}, headers=people[who])
        assert r.status_code == 200, r.text
        return r.json()["items"]

    # Another member of X1's subtree finds it without diacritics, đ typed as d.
    [entry] = await eventually(lambda: found("m2", "hoi dap truc tuyen dang vien"))
    assert entry["feedback_id"] == PROPOSAL and entry["asked_by"] == "Một đảng viên"
    assert "member_id" not in entry and entry["unit_id"] == "X1"
    assert [e["feedback_id"] for e in await found("m2", "HỎI ĐÁP")] == [PROPOSAL]
    assert await found("m2", "hoi dap bau cu") == []
    # A member outside X1's subtree does not.
    assert await found("m3", "hoi dap truc tuyen") == []
    r = await client.get("/qa", params={"unit_id": "X1"}, headers=people["m3"])
    assert r.status_code == 404, r.text

    # The member reads the answer; another member cannot read the submission.
    r = await client.get(f"/feedback/{PROPOSAL}", headers=people["m1"])
    assert r.json()["answers"][0]["visibility"] == "public"
    r = await client.get(f"/feedback/{PROPOSAL}", headers=people["m2"])
    assert r.status_code == 403, r.text
    r = await client.post(f"/feedback/{PROPOSAL}/accept", headers=people["m1"])
    assert r.json()["state"] == "closed", r.text
    r = await client.get("/feedback/mine", headers=people["m1"])
    assert {i["feedback_id"]: i["state"] for i in r.json()["items"]}[PROPOSAL] == "closed"


async def test_an_unanswered_question_passes_its_deadline_and_escalates(
    app, client: httpx.AsyncClient, clock, world
) -> None:  # type: ignore[no-untyped-def]
    people = world
    clock.now = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)  # Tuesday 09:00 in Hà Nội
    body = {
        "kind": "question",
        "subject": "app",
        "title": "Đổi mật khẩu",
        "text": QUESTION_TEXT,
        "public_allowed": False,
    }
    r = await client.post("/feedback", json=body, headers=people["m1"])
    assert r.status_code == 201, r.text
    question = r.json()
    qid, deadline = question["feedback_id"], at(question["holder"]["deadline"])
    assert question["holder"]["body"] == "office"
    # X1 gives questions three working days: from Tuesday 01/12/2026, the end of Friday 04/12.
    assert question["holder"]["deadline_display"] == "04/12/2026"
    store = app.state.runtime.store

    async def types() -> list[str]:
        return [e.event_type for e in await store.load("Feedback", qid)]

    clock.now = deadline - timedelta(hours=12)  # inside the last working day: a reminder
    assert await eventually(lambda: _has(types, "FeedbackReminded"))
    clock.now = deadline + timedelta(minutes=1)
    # Two more replicas' watchers at the same moment as the app's own: one escalation.
    replicas = [DeadlineWatcher(app.state.service, app.state.runtime.db) for _ in range(2)]
    await asyncio.gather(*(w.tick() for w in replicas))

    async def escalated() -> dict | None:  # type: ignore[type-arg]
        r = await client.get(f"/feedback/{qid}", headers=people["hn"])
        return r.json() if r.status_code == 200 and r.json()["holder"]["unit_id"] == "HN" else None

    view = await eventually(escalated)
    assert view["escalations"] == ["overdue"] and not view["holder"]["overdue"]
    assert (await types()).count("FeedbackEscalated") == 1
    assert (await types()).count("FeedbackReminded") == 1
    r = await client.get(f"/feedback/{qid}", headers=people["x1"])
    assert r.status_code == 403, r.text  # no longer X1's to read
    r = await client.post(
        f"/feedback/{qid}/answer",
        json={"text": "Trả lời", "visibility": "public"},
        headers=people["hn"],
    )
    assert (r.status_code, r.json()["field"]) == (422, "visibility"), r.text  # no consent

    async def in_hn_queue() -> list[dict] | None:  # type: ignore[type-arg]
        r = await client.get("/queues/HN/office", headers=people["hn"])
        items = r.json()["items"]
        return items if any(i["feedback_id"] == qid for i in items) else None

    [item] = [i for i in await eventually(in_hn_queue) if i["feedback_id"] == qid]
    assert item["escalated"] == 1 and item["hop"] == 2


async def _has(types, wanted: str) -> bool:  # type: ignore[no-untyped-def]
    return wanted in await types()


async def test_no_event_names_the_member_or_carries_their_text(
    app, client: httpx.AsyncClient, world
) -> None:  # type: ignore[no-untyped-def]
    sent = await submit(client, world["m1"], text=QUESTION_TEXT)
    r = await client.post(
        f"/feedback/{sent['feedback_id']}/answer",
        json={"text": "Trả lời riêng cho đồng chí", "visibility": "private"},
        headers=world["x1"],
    )
    assert r.status_code == 200, r.text
    history = await app.state.runtime.store.all_events()
    assert any(e.aggregate_id == sent["feedback_id"] for e in history)
    for envelope in history:
        raw = envelope.model_dump_json()
        assert '"m1"' not in raw  # the member is named by no event of any test
        if envelope.aggregate_id == sent["feedback_id"]:  # nor is this submission's text
            assert "Nguyễn" not in raw and "Trả lời riêng" not in raw
        if envelope.aggregate_type == "Feedback" and envelope.event_type == "FeedbackSubmitted":
            assert envelope.actor == AUTHOR_ACTOR
            assert envelope.org_path[-1] == envelope.payload["branch_id"]
            if envelope.aggregate_id == sent["feedback_id"]:
                assert envelope.org_path[:2] == ("TW", "HN")


async def test_the_rebuilt_projections_equal_the_live_ones(
    app, client: httpx.AsyncClient, world
) -> None:  # type: ignore[no-untyped-def]
    runtime, views = app.state.runtime, app.state.views
    sent = await submit(client, world["m2"], title="Hỏi về đóng đảng phí")
    r = await client.post(
        f"/feedback/{sent['feedback_id']}/answer",
        json={"text": "Mức đảng phí theo Quy định 01-QĐ/TW.", "visibility": "public"},
        headers=world["x1"],
    )
    assert r.status_code == 200, r.text

    async def settled():  # type: ignore[no-untyped-def]
        history = await runtime.store.all_events()
        for runner in (app.state.queue_runner, app.state.qa_runner):
            applied = [d["v"] async for d in runner.tracking.find({})]
            if sum(applied) != len(history):
                return None
        return history

    history = await eventually(settled)
    live = await views.snapshot()
    assert live["feedback_queue"] and live["qa_entries"]
    await app.state.queue_runner.rebuild(history)
    await app.state.qa_runner.rebuild(history)
    assert await views.snapshot() == live


async def test_a_member_cannot_flood_a_committee(client: httpx.AsyncClient, bearer, world) -> None:  # type: ignore[no-untyped-def]
    flooder = bearer("m4", Role.member, "CB3")
    for _ in range(10):
        await submit(client, flooder, kind="comment", subject="other")
    r = await client.post(
        "/feedback",
        json={"kind": "comment", "subject": "other", "title": "Lần 11", "text": "Góp ý"},
        headers=flooder,
    )
    assert (r.status_code, r.json()["error"]) == (429, "too_many_requests"), r.text
    assert "Retry-After" in r.headers


async def test_the_demo_runs_beside_the_service(
    app, client: httpx.AsyncClient, feed, bearer, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    await feed.unit("TW", OrgLevel.central, None)
    await feed.unit("QNG", OrgLevel.province, "TW")
    await feed.unit("QNG.BSON", OrgLevel.commune, "QNG")
    for branch in demo.BRANCHES:
        await feed.unit(branch, OrgLevel.branch, "QNG.BSON")
    monkeypatch.setenv("SOTAY_DATABASE", app.state.runtime.settings.database)
    assert await demo._main() == 0
    # What the demo committed leaves through the service's own relay, into its Q&A.
    member = bearer("demo-member", Role.member, demo.BRANCHES[1])

    async def found() -> list[dict]:  # type: ignore[type-arg]
        r = await client.get("/qa", params={"q": "chuyen sinh hoat dang"}, headers=member)
        return r.json()["items"]  # type: ignore[no-any-return]

    [entry] = await eventually(found)
    assert entry["unit_id"] == "QNG.BSON"
