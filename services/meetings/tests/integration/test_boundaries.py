"""Hostile input, the broker's message size, figures on the tree of their date, the
central office acting for a committee, and schemathesis over the whole OpenAPI."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from sotay_events import topics
from sotay_events.catalogue.org_tree import UnitMoved
from sotay_events.uow import MAX_EVENT_BYTES
from sotay_meetings.display import month_key
from sotay_platform.auth import Grant, Role
from sotay_platform.testing import eventually, fuzz_openapi

pytestmark = pytest.mark.asyncio(loop_scope="module")


def convene_body(world, start: datetime, **overrides):  # type: ignore[no-untyped-def]
    return {
        "unit_id": world.unit("CB1"),
        "title": "Sinh hoạt chi bộ",
        "starts_at": start.isoformat(),
        "ends_at": (start + timedelta(hours=1)).isoformat(),
        "location": "Hội trường",
        **overrides,
    }


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"starts_at": "0001-01-01T00:00:00"}, "starts_at"),
        ({"ends_at": "9999-12-31T23:00:00-05:00"}, "ends_at"),
        ({"starts_at": "9999-12-31T23:59:59.999999"}, "starts_at"),
        ({"agenda": ["x" * 1_000_000]}, "agenda.0"),
        ({"agenda": ["Nội dung"] * 51}, "agenda"),
        ({"document_ids": ["d"] * 101}, "document_ids"),
        ({"title": "ab\ud800cd"}, "title"),
        ({"unit_id": "CB\u0661"}, "unit_id"),
    ],
)
async def test_hostile_convene_bodies_answer_422_naming_the_field(  # type: ignore[no-untyped-def]
    client, bearer, overrides, field
) -> None:
    start = datetime.now(UTC) + timedelta(days=1)
    body = {
        "unit_id": "CB-HOSTILE",
        "title": "Sinh hoạt chi bộ",
        "starts_at": start.isoformat(),
        "ends_at": (start + timedelta(hours=1)).isoformat(),
        "location": "Hội trường",
        **overrides,
    }
    # json.dumps escapes a lone surrogate as \ud800, as a hostile client would send it.
    r = await client.post(
        "/meetings",
        content=json.dumps(body),
        headers={
            **bearer("sec", Role.branch_secretary, "CB-HOSTILE"),
            "Content-Type": "application/json",
        },
    )
    assert (r.status_code, r.json()["field"]) == (422, field), r.text
    assert set(r.json()) >= {"error", "message", "field"}


@pytest.mark.parametrize("year", ["99999999999999999999", "-1", "0", "1999", "2101", "năm"])
async def test_a_year_out_of_range_answers_422(client, bearer, year) -> None:  # type: ignore[no-untyped-def]
    sec = bearer("sec", Role.branch_secretary, "CB-ANY")
    for path in ("/units/CB-ANY/statistics", "/members/m1/statistics", "/units/CB-ANY/meetings"):
        r = await client.get(f"{path}?year={year}", headers=sec)
        assert (r.status_code, r.json()["field"]) == (422, "year"), (path, r.text)


async def test_the_largest_minutes_stay_under_the_brokers_message_size(  # type: ignore[no-untyped-def]
    app, client, clock, world
) -> None:
    sec = world.people["secretary"]
    start = clock.now + timedelta(minutes=5)
    r = await client.post("/meetings", json=convene_body(world, start), headers=sec)
    mid = r.json()["meeting_id"]
    clock.advance(minutes=10)
    widest = "𝔸"  # four bytes in UTF-8: the worst case for every bounded field
    minutes = {
        "content": widest * 40_000,
        "conclusions": [widest * 1000] * 20,
        "document_ids": [f"tai-lieu-{i:054d}" for i in range(100)],
    }
    r = await client.post(f"/meetings/{mid}/minutes", json=minutes, headers=sec)
    assert r.status_code == 200, r.text[:300]
    doc = await app.state.runtime.store.events.find_one(
        {"stream_id": f"Meeting-{mid}", "event_type": "MinutesRecorded"}
    )
    from sotay_events.store import from_document

    assert len(from_document(doc).to_bytes()) < MAX_EVENT_BYTES
    too_long = {**minutes, "content": "x" * 40_001}
    r = await client.post(f"/meetings/{mid}/minutes", json=too_long, headers=sec)
    assert (r.status_code, r.json()["field"]) == (422, "content"), r.text[:300]


async def test_figures_follow_the_tree_as_it_stood_on_their_date(  # type: ignore[no-untyped-def]
    client, clock, feed, make_world
) -> None:
    """CB2 held a meeting under X1 weeks ago, then moved to X2 and held another: X1's
    month shows the first, X2's current month the second, and neither shows both."""
    world = await make_world(created_at=datetime.now(UTC) - timedelta(days=70))
    u = world.unit
    sec2 = world.people["other_secretary"]  # x1, secretary of CB2
    committee = world.people["committee"]

    async def held(title: str) -> datetime:
        start = clock.now + timedelta(minutes=5)
        body = convene_body(world, start, unit_id=u("CB2"), title=title)
        r = await client.post("/meetings", json=body, headers=sec2)
        assert r.status_code == 201, r.text
        mid = r.json()["meeting_id"]
        r = await client.post(
            f"/meetings/{mid}/attendance", json={"member_id": world.id("x1")}, headers=sec2
        )
        assert r.status_code == 201, r.text
        clock.advance(minutes=30)
        assert (await client.post(f"/meetings/{mid}/close", headers=sec2)).status_code == 200
        return start

    clock.reset(-timedelta(days=45))
    try:
        before = await held("Sinh hoạt trước khi chuyển")
    finally:
        clock.reset()
    await feed.send(
        topics.ORG_TREE,
        u("CB2"),
        UnitMoved(unit_id=u("CB2"), from_parent_id=u("X1"), to_parent_id=u("X2")),
        occurred_at=datetime.now(UTC) - timedelta(days=1),
    )
    province = world.people["central"]

    async def moved():  # type: ignore[no-untyped-def]
        r = await client.get(f"/units/{u('CB2')}/roster", headers=province)
        return r.status_code == 200 and r.json()["unit_id"] == u("CB2")

    await eventually(moved)
    after = await held("Sinh hoạt sau khi chuyển")
    (y1, m1), (y2, m2) = month_key(before), month_key(after)

    async def months(unit: str, year: int) -> dict[int, int] | None:
        r = await client.get(f"/units/{unit}/statistics?year={year}", headers=province)
        assert r.status_code == 200, r.text
        return {m["month"]: m["meetings"] for m in r.json()["months"]}

    async def settled():  # type: ignore[no-untyped-def]
        x1_then, x2_now = await months(u("X1"), y1), await months(u("X2"), y2)
        return (x1_then, x2_now) if x1_then.get(m1) and x2_now.get(m2) else None

    x1_then, x2_now = await eventually(settled)
    assert x1_then.get(m1) == 1 and x2_now.get(m2) == 1
    assert (await months(u("X2"), y1)).get(m1) is None  # CB2 was not under X2 then
    assert (await months(u("X1"), y2)).get(m2) is None  # nor under X1 now
    # The commune's committee still reads X1's past months (scope on today's tree).
    r = await client.get(f"/units/{u('X1')}/statistics?year={y1}", headers=committee)
    assert r.status_code == 200


async def test_the_central_office_acknowledges_for_the_committee(  # type: ignore[no-untyped-def]
    client, clock, world, bearer
) -> None:
    sec = world.people["secretary"]
    start = clock.now + timedelta(minutes=5)
    mid = (await client.post("/meetings", json=convene_body(world, start), headers=sec)).json()[
        "meeting_id"
    ]
    clock.advance(minutes=10)
    await client.post(f"/meetings/{mid}/minutes", json={"content": "Biên bản"}, headers=sec)
    assert (await client.post(f"/meetings/{mid}/close", headers=sec)).status_code == 200
    assert (await client.post(f"/meetings/{mid}/report", json={}, headers=sec)).status_code == 201
    reader = bearer(subject="reader", role=Role.central_office, unit="TW")
    r = await client.post(f"/meetings/{mid}/report/acknowledge", headers=reader)
    assert r.status_code == 403, r.text  # reading the nation is not acting for a committee
    r = await client.post(f"/meetings/{mid}/report/acknowledge", headers=world.people["central"])
    assert r.status_code == 200, r.text
    assert r.json()["report"]["acknowledged_on_behalf_of"] == world.unit("X1")
    assert r.json()["report"]["status"] == "acknowledged"


async def test_schemathesis_finds_no_server_error_and_no_schema_mismatch(  # type: ignore[no-untyped-def]
    app, world, token_issuer
) -> None:
    token = token_issuer.issue("fuzzer", [Grant(Role.system_admin, "TW")], member_id="fuzzer")
    sent = await fuzz_openapi(
        app,
        token=token,
        max_examples=3,
        exclude=lambda method, path: path.startswith("/health"),
    )
    assert sent > 100
