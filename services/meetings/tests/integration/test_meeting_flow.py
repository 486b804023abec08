"""A whole branch meeting through the API, against the real Kafka, MongoDB and Redis.

Each test builds its own world (see conftest): P > X1 (commune committee) > CB1, CB2.
CB1: m0 (the secretary), m1..m5 official or probationary, m6 exempted, m7 not approved.
CB2: x1. The committee office of X1: c0.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from datetime import datetime, timedelta

import httpx
import pytest

from sotay_events import topics
from sotay_events.catalogue.identity import MemberStatus, MemberStatusChanged, MemberTransferred
from sotay_events.catalogue.org_tree import UnitMerged
from sotay_platform.inputs import VIETNAM
from sotay_platform.testing import eventually

pytestmark = pytest.mark.asyncio(loop_scope="module")

CB1_EXPECTED = ["m0", "m1", "m2", "m3", "m4", "m5"]


def iso(moment: datetime) -> str:
    return moment.isoformat()


async def test_the_tree_and_roster_arrive_from_events(client, world) -> None:  # type: ignore[no-untyped-def]
    r = await client.get(f"/units/{world.unit('CB1')}/roster", headers=world.people["secretary"])
    assert r.status_code == 200, r.text
    expected = sorted(m["member_id"] for m in r.json()["members"] if m["expected_at_meetings"])
    assert expected == world.ids(CB1_EXPECTED)  # not m6 (exempted), not m7 (pending)
    listed = {m["member_id"] for m in r.json()["members"]}
    assert world.id("m6") in listed  # exempted: on the list, not expected
    r = await client.get(f"/units/{world.unit('CB1')}/roster", headers=world.people["m1"])
    assert r.status_code == 403


async def test_a_whole_meeting(client: httpx.AsyncClient, clock, world) -> None:  # type: ignore[no-untyped-def]
    people, w = world.people, world
    sec = people["secretary"]
    cb1, x1 = w.unit("CB1"), w.unit("X1")
    start = clock.now + timedelta(minutes=20)
    body = {
        "unit_id": cb1,
        "kind": "regular",
        "title": "Sinh hoạt chi bộ thường kỳ",
        "starts_at": iso(start),
        "ends_at": iso(start + timedelta(hours=2)),
        "location": "Nhà văn hóa khu phố 1",
        "agenda": ["Đánh giá công tác tháng", "Phương hướng tháng tới"],
        "document_ids": ["doc-nghi-quyet-01"],
    }

    # Convening: wrong role, wrong branch, wrong time are refused, naming the field.
    r = await client.post("/meetings", json=body, headers=people["m1"])
    assert r.status_code == 403, r.text
    r = await client.post("/meetings", json=body, headers=people["other_secretary"])
    assert r.status_code == 403, r.text
    r = await client.post(
        "/meetings", json={**body, "starts_at": iso(clock.now - timedelta(hours=1))}, headers=sec
    )
    assert (r.status_code, r.json()["field"]) == (422, "starts_at"), r.text
    r = await client.post("/meetings", json={**body, "location": None}, headers=sec)
    assert (r.status_code, r.json()["field"]) == (422, "location"), r.text
    r = await client.post("/meetings", json={**body, "ends_at": "không phải ngày"}, headers=sec)
    assert (r.status_code, r.json()["field"]) == (422, "ends_at"), r.text

    r = await client.post("/meetings", json=body, headers=sec)
    assert r.status_code == 201, r.text
    meeting = r.json()
    mid = meeting["meeting_id"]
    assert sorted(meeting["invitee_ids"]) == w.ids(CB1_EXPECTED)  # not m6 (exempted), not m7
    assert meeting["kind_label"] == "Sinh hoạt chi bộ thường kỳ"
    assert meeting["date_display"].count("/") == 2

    # Invitations reach every expected member's inbox, and no one else's.
    async def invited(who: str):  # type: ignore[no-untyped-def]
        r = await client.get("/inbox", headers=people[who])
        return [i for i in r.json()["invitations"] if i["meeting_id"] == mid]

    [invitation] = await eventually(lambda: invited("m1"))
    assert invitation["title"] == "Sinh hoạt chi bộ thường kỳ"
    assert invitation["location"] == "Nhà văn hóa khu phố 1"
    for who in CB1_EXPECTED:
        assert await eventually(lambda who=who: invited(who))
    assert await invited("m6") == []
    assert await invited("x1") == []

    # Absence: asked, duplicate refused, approved once.
    r = await client.post(
        f"/meetings/{mid}/absences", json={"reason": "Đi công tác"}, headers=people["m2"]
    )
    assert r.status_code == 201, r.text
    assert r.json()["late"] is False
    r = await client.post(
        f"/meetings/{mid}/absences", json={"reason": "Lần nữa"}, headers=people["m2"]
    )
    assert (r.status_code, r.json()["field"]) == (409, "member_id"), r.text
    r = await client.post(
        f"/meetings/{mid}/absences", json={"reason": "Không thuộc chi bộ"}, headers=people["x1"]
    )
    assert (r.status_code, r.json()["field"]) == (403, "member_id"), r.text
    r = await client.post(f"/meetings/{mid}/absences", json={"reason": ""}, headers=people["m3"])
    assert (r.status_code, r.json()["field"]) == (422, "reason"), r.text
    approve = f"/meetings/{mid}/absences/{w.id('m2')}/approve"
    r = await client.post(approve, headers=people["m1"])
    assert r.status_code == 403
    r = await client.post(approve, headers=people["other_secretary"])
    assert r.status_code == 403
    r = await client.post(approve, headers=sec)
    assert r.status_code == 200, r.text
    r = await client.post(approve, headers=sec)
    assert (r.status_code, r.json()["field"]) == (409, "member_id"), r.text

    # The code the secretary shows, as digits and as a QR image.
    r = await client.get(f"/meetings/{mid}/checkin-code", headers=people["m1"])
    assert r.status_code == 403
    r = await client.get(f"/meetings/{mid}/checkin-code", headers=sec)
    assert r.status_code == 200, r.text
    shown = r.json()
    code = shown["code"]
    assert len(code) == 6 and code.isdigit()
    assert shown["qr_svg"].startswith("data:image/svg+xml;base64,")
    r = await client.get(f"/meetings/{mid}/checkin-code/qr?format=png", headers=sec)
    assert r.headers["content-type"] == "image/png"
    assert r.content.startswith(b"\x89PNG")

    # Check-ins: self with the code, idempotent; by the secretary; refusals name the field.
    r = await client.post(f"/meetings/{mid}/check-in", json={"code": code}, headers=people["m1"])
    assert r.status_code == 201, r.text
    assert r.json()["recorded"] is True
    r = await client.post(f"/meetings/{mid}/check-in", json={"code": code}, headers=people["m1"])
    assert r.status_code == 200, r.text
    assert r.json()["already_recorded"] is True
    wrong = "000000" if code != "000000" else "111111"
    r = await client.post(f"/meetings/{mid}/check-in", json={"code": wrong}, headers=people["m3"])
    assert (r.status_code, r.json()["field"]) == (422, "code"), r.text
    r = await client.post(f"/meetings/{mid}/check-in", json={"code": code}, headers=people["x1"])
    assert (r.status_code, r.json()["field"]) == (403, "member_id"), r.text
    r = await client.post(f"/meetings/{mid}/check-in", json={"code": code}, headers=people["m6"])
    assert r.status_code == 403, r.text
    r = await client.post(f"/meetings/{mid}/check-in", json={"code": code}, headers=sec)
    assert r.status_code == 201, r.text
    r = await client.post(
        f"/meetings/{mid}/attendance",
        json={"member_id": w.id("m4")},
        headers=people["other_secretary"],
    )
    assert r.status_code == 403, r.text
    r = await client.post(
        f"/meetings/{mid}/attendance", json={"member_id": w.id("m4")}, headers=sec
    )
    assert (r.status_code, r.json()["method"]) == (201, "secretary"), r.text

    # During the meeting: a vote, one per member present.
    clock.advance(minutes=25)
    r = await client.post(
        f"/meetings/{mid}/polls",
        json={
            "question": "Thông qua nghị quyết tháng?",
            "options": ["Tán thành", "Không tán thành"],
        },
        headers=sec,
    )
    assert r.status_code == 201, r.text
    pid = r.json()["poll_id"]
    for who, option in (("m1", "Tán thành"), ("m0", "Tán thành"), ("m4", "Không tán thành")):
        r = await client.post(
            f"/meetings/{mid}/polls/{pid}/votes", json={"option": option}, headers=people[who]
        )
        assert r.status_code == 201, r.text
    r = await client.post(
        f"/meetings/{mid}/polls/{pid}/votes", json={"option": "Tán thành"}, headers=people["m1"]
    )
    assert (r.status_code, r.json()["field"]) == (409, "poll_id"), r.text
    r = await client.post(
        f"/meetings/{mid}/polls/{pid}/votes", json={"option": "Tán thành"}, headers=people["m5"]
    )
    assert (r.status_code, r.json()["error"]) == (403, "not_present"), r.text
    r = await client.post(
        f"/meetings/{mid}/polls/{pid}/votes", json={"option": "Có lẽ"}, headers=people["m0"]
    )
    assert (r.status_code, r.json()["field"]) == (422, "option"), r.text
    r = await client.post(f"/meetings/{mid}/polls/{pid}/close", headers=sec)
    assert r.status_code == 200, r.text
    assert r.json()["tally"] == {"Tán thành": 2, "Không tán thành": 1}

    # After: minutes, close, grade, report up, acknowledged by the superior committee.
    r = await client.post(f"/meetings/{mid}/report", json={}, headers=sec)
    assert (r.status_code, r.json()["field"]) == (409, "meeting_id"), r.text
    r = await client.post(
        f"/meetings/{mid}/minutes",
        json={
            "content": "Chi bộ họp lúc 19 giờ 30...",
            "conclusions": ["Hoàn thành nhiệm vụ tháng"],
        },
        headers=sec,
    )
    assert r.status_code == 200, r.text
    clock.advance(hours=1)
    r = await client.post(f"/meetings/{mid}/close", headers=people["m1"])
    assert r.status_code == 403
    r = await client.post(f"/meetings/{mid}/close", headers=sec)
    assert r.status_code == 200, r.text
    assert r.json()["attendance"] == {
        "invited": 6,
        "present": 3,
        "excused": 1,
        "absent_without_leave": 2,
    }
    r = await client.post(f"/meetings/{mid}/close", headers=sec)
    assert (r.status_code, r.json()["error"]) == (409, "duplicate"), r.text
    r = await client.post(f"/meetings/{mid}/check-in", json={"code": code}, headers=people["m3"])
    assert (r.status_code, r.json()["error"]) == (409, "closed"), r.text
    r = await client.post(f"/meetings/{mid}/grade", json={"grade": "bad"}, headers=sec)
    assert (r.status_code, r.json()["field"]) == (422, "grade"), r.text
    r = await client.post(f"/meetings/{mid}/grade", json={"grade": "good"}, headers=sec)
    assert (r.status_code, r.json()["grade_label"]) == (200, "Khá"), r.text
    r = await client.post(f"/meetings/{mid}/grade", json={"grade": "excellent"}, headers=sec)
    assert (r.status_code, r.json()["field"]) == (409, "grade"), r.text
    r = await client.post(
        f"/meetings/{mid}/report", json={"summary": "Chi bộ hoàn thành"}, headers=sec
    )
    assert r.status_code == 201, r.text
    assert r.json()["report"] == {
        "to_unit_id": x1,
        "status": "submitted",
        "summary": "Chi bộ hoàn thành",
        "acknowledged_on_behalf_of": None,
    }
    r = await client.post(f"/meetings/{mid}/report", json={}, headers=sec)
    assert r.status_code == 409
    r = await client.post(f"/meetings/{mid}/report/acknowledge", headers=sec)
    assert r.status_code == 403, r.text
    r = await client.post(f"/meetings/{mid}/report/acknowledge", headers=people["committee"])
    assert r.status_code == 200, r.text
    assert r.json()["report"]["status"] == "acknowledged"
    assert r.json()["report"]["acknowledged_on_behalf_of"] is None
    r = await client.post(f"/meetings/{mid}/report/acknowledge", headers=people["committee"])
    assert (r.status_code, r.json()["error"]) == (409, "duplicate"), r.text

    # Statistics match what happened.
    r = await client.get(f"/meetings/{mid}/statistics", headers=sec)
    stats = r.json()
    assert stats["final"] is True
    assert sorted(stats["present_ids"]) == w.ids(["m0", "m1", "m4"])
    assert stats["excused_ids"] == w.ids(["m2"])
    assert sorted(stats["absent_without_leave_ids"]) == w.ids(["m3", "m5"])

    async def unit_stats():  # type: ignore[no-untyped-def]
        r = await client.get(f"/units/{cb1}/statistics?year={clock.now.year}", headers=sec)
        return r.json() if r.json()["total"]["meetings"] == 1 else None

    figures = (await eventually(unit_stats))["total"]
    assert {k: figures[k] for k in ("invited", "present", "excused", "absent_without_leave")} == {
        "invited": 6,
        "present": 3,
        "excused": 1,
        "absent_without_leave": 2,
    }
    r = await client.get(
        f"/units/{x1}/statistics?year={clock.now.year}", headers=people["committee"]
    )
    assert r.json()["total"]["present"] == 3  # a committee sees the branches under it
    r = await client.get(f"/units/{cb1}/statistics", headers=people["other_secretary"])
    assert r.status_code == 403

    m3 = w.id("m3")
    r = await client.get(f"/members/{m3}/statistics?year={clock.now.year}", headers=people["m3"])
    assert r.json()["total"] == {
        "invited": 1,
        "present": 0,
        "excused": 0,
        "absent_without_leave": 1,
    }
    r = await client.get(f"/members/{m3}/statistics", headers=people["m1"])
    assert r.status_code == 403

    async def reports():  # type: ignore[no-untyped-def]
        r = await client.get(f"/units/{x1}/reports", headers=people["committee"])
        found = r.json()["reports"]
        return found if found and found[0]["report"]["status"] == "acknowledged" else None

    [report] = await eventually(reports)
    assert report["meeting_id"] == mid

    async def outcome():  # type: ignore[no-untyped-def]
        [inv] = await invited("m1")
        return inv if inv["outcome"] == "present" else None

    inv = await eventually(outcome)
    assert inv["checked_in"] is True and inv["meeting_status"] == "closed"


async def _quick_meeting(client, clock, world, title: str, present: list[str]) -> str:  # type: ignore[no-untyped-def]
    sec = world.people["secretary"]
    start = clock.now + timedelta(minutes=10)
    r = await client.post(
        "/meetings",
        json={
            "unit_id": world.unit("CB1"),
            "kind": "thematic",
            "title": title,
            "starts_at": iso(start),
            "ends_at": iso(start + timedelta(hours=1)),
            "online_url": "https://hop.example.vn/1",
        },
        headers=sec,
    )
    assert r.status_code == 201, r.text
    mid = r.json()["meeting_id"]
    for m in world.ids(present):
        r = await client.post(f"/meetings/{mid}/attendance", json={"member_id": m}, headers=sec)
        assert r.status_code == 201, r.text
    clock.advance(minutes=30)
    r = await client.post(f"/meetings/{mid}/close", headers=sec)
    assert r.status_code == 200, r.text
    return mid


async def test_three_absences_without_leave_flag_the_member(client, clock, world) -> None:  # type: ignore[no-untyped-def]
    sec = world.people["secretary"]
    await _quick_meeting(client, clock, world, "Chuyên đề học tập", ["m0", "m1", "m2", "m4", "m5"])
    await _quick_meeting(client, clock, world, "Chuyên đề nghị quyết", ["m0", "m1", "m2", "m4"])
    await _quick_meeting(client, clock, world, "Chuyên đề chuyển đổi số", ["m0", "m1", "m2", "m4"])
    cb1 = world.unit("CB1")

    async def flagged():  # type: ignore[no-untyped-def]
        r = await client.get(f"/units/{cb1}/statistics?year={clock.now.year}", headers=sec)
        body = r.json()
        return body if body["total"]["meetings"] == 3 else None

    body = await eventually(flagged)
    # m3 missed three, m5 two: only m3 is flagged.
    assert [f["member_id"] for f in body["flagged_members"]] == [world.id("m3")]
    assert body["flagged_members"][0]["absent_without_leave"] == 3
    assert "Điều lệ Đảng" in body["flagged_members"][0]["message"]
    m3 = world.id("m3")
    r = await client.get(f"/members/{m3}/statistics?year={clock.now.year}", headers=sec)
    assert r.json()["flagged"] is True


async def test_rescheduling_and_cancelling_notify_the_invitees(client, clock, world) -> None:  # type: ignore[no-untyped-def]
    people = world.people
    sec = people["secretary"]
    start = clock.now + timedelta(days=2)
    r = await client.post(
        "/meetings",
        json={
            "unit_id": world.unit("CB1"),
            "kind": "extraordinary",
            "title": "Họp bất thường",
            "starts_at": iso(start),
            "ends_at": iso(start + timedelta(hours=1)),
            "location": "Trụ sở",
        },
        headers=sec,
    )
    mid = r.json()["meeting_id"]
    later = start + timedelta(days=1)
    r = await client.post(
        f"/meetings/{mid}/reschedule",
        json={
            "starts_at": iso(later),
            "ends_at": iso(later + timedelta(hours=1)),
            "reason": "Trùng lịch họp của xã",
        },
        headers=sec,
    )
    assert r.status_code == 200, r.text
    r = await client.post(
        f"/meetings/{mid}/check-in", json={"code": "123456"}, headers=people["m1"]
    )
    assert (r.status_code, r.json()["error"]) == (422, "too_early"), r.text
    r = await client.post(f"/meetings/{mid}/cancel", json={"reason": "Bão số 9"}, headers=sec)
    assert r.status_code == 200, r.text
    r = await client.post(f"/meetings/{mid}/cancel", json={"reason": "Bão số 9"}, headers=sec)
    assert r.status_code == 409

    async def notices():  # type: ignore[no-untyped-def]
        r = await client.get("/inbox?upcoming=true", headers=people["m5"])
        [inv] = [i for i in r.json()["invitations"] if i["meeting_id"] == mid] or [None]
        return inv if inv and len(inv["notices"]) == 2 else None

    inv = await eventually(notices)
    assert [n["kind"] for n in inv["notices"]] == ["rescheduled", "cancelled"]
    assert inv["meeting_status"] == "cancelled"
    assert inv["notices"][0]["message"].startswith("Cuộc họp đã dời sang")


async def test_the_roster_follows_transfers_status_and_merges(client, clock, feed, world) -> None:  # type: ignore[no-untyped-def]
    sec = world.people["secretary"]
    u, m = world.unit, world.id
    await feed.send(
        topics.IDENTITY,
        m("m5"),
        MemberTransferred(
            member_id=m("m5"),
            from_branch_id=u("CB1"),
            to_branch_id=u("CB2"),
            effective_on=clock.now.date(),
        ),
    )
    await feed.send(
        topics.IDENTITY,
        m("m6"),
        MemberStatusChanged(
            member_id=m("m6"),
            branch_id=u("CB1"),
            status=MemberStatus.official,
            previous_status=MemberStatus.exempted,
            effective_on=clock.now.date(),
        ),
    )
    await feed.send(topics.ORG_TREE, u("CB2"), UnitMerged(unit_id=u("CB2"), into_unit_id=u("CB1")))

    async def expected():  # type: ignore[no-untyped-def]
        r = await client.get(f"/units/{u('CB1')}/roster", headers=sec)
        found = sorted(x["member_id"] for x in r.json()["members"] if x["expected_at_meetings"])
        return found if m("x1") in found and m("m6") in found and m("m5") in found else None

    # m5 moved to CB2, which merged into CB1: still expected at CB1's meetings.
    assert await eventually(expected) == world.ids(["m0", "m1", "m2", "m3", "m4", "m5", "m6", "x1"])
    start = clock.now + timedelta(hours=1)
    r = await client.post(
        "/meetings",
        json={
            "unit_id": u("CB1"),
            "title": "Sinh hoạt sau hợp nhất",
            "starts_at": iso(start),
            "ends_at": iso(start + timedelta(hours=1)),
            "location": "Hội trường mới",
        },
        headers=sec,
    )
    assert r.status_code == 201, r.text
    assert {m("x1"), m("m6"), m("m5")} <= set(r.json()["invitee_ids"])
    # The merged branch answers as its successor.
    r = await client.get(f"/units/{u('CB2')}/roster", headers=sec)
    assert (r.status_code, r.json()["unit_id"]) == (200, u("CB1"))


async def test_the_views_rebuilt_from_the_store_equal_the_live_ones(
    app, client, clock, world
) -> None:  # type: ignore[no-untyped-def]
    await _quick_meeting(client, clock, world, "Sinh hoạt để dựng lại", ["m0", "m1"])
    runtime = app.state.runtime
    views = app.state.views

    async def settled():  # type: ignore[no-untyped-def]
        history = await runtime.store.all_events()
        heads = {e.stream_id: e.aggregate_version for e in history}
        tracked = runtime.db["tracking.meeting_views"].find({})
        applied = {d["_id"]: d["v"] async for d in tracked}
        behind = {s: (applied.get(s), v) for s, v in heads.items() if applied.get(s) != v}
        return history if not behind else None

    # Everything this module's tests wrote must have reached the views first.
    history = await eventually(settled, timeout=90)
    # The topic is shared with every other app of the test session (other modules, other
    # packages' tests): the live views also hold what those published. Compare what this
    # store's history concerns.
    ours = {
        value
        for e in history
        for key in ("meeting_id", "unit_id", "member_id")
        if isinstance(value := e.payload.get(key), str)
    } | {m for e in history for m in e.payload.get("invitee_ids", [])}

    def own(snapshot):  # type: ignore[no-untyped-def]
        return {
            name: [
                d
                for d in docs
                if {d.get("meeting_id"), d.get("unit_id"), d.get("member_id"), d["_id"]} & ours
            ]
            for name, docs in snapshot.items()
        }

    live = own(await views.snapshot())
    assert live["meeting_summaries"] and live["branch_months"] and live["member_years"]
    await app.state.views_runner.rebuild(history)
    assert own(await views.snapshot()) == live


# Check-ins racing the close (issue 12, item 5): every accepted check-in is counted.
#
# The close counts who checked in, as the event store has it, and writes the one event
# of every other invitee's attendance stream in the same transaction. So a check-in in
# flight either lands before the close commits (the close conflicts, runs again and
# counts it) or finds its stream taken and is refused with a clear message; none is
# recorded and left out of the meeting's figures.

MEMBERS = 30
BURST = 120  # the Redis pool holds 100 connections


async def test_every_accepted_check_in_is_counted_by_the_close(  # type: ignore[no-untyped-def]
    app, client, clock, make_world
) -> None:
    world = await make_world(extra_cb1=MEMBERS)
    sec = world.people["secretary"]
    store = app.state.runtime.store
    rounds = 2
    for round_no in range(rounds):
        start = clock.now + timedelta(minutes=5)
        r = await client.post(
            "/meetings",
            json={
                "unit_id": world.unit("CB1"),
                "title": f"Sinh hoạt chi bộ, lượt {round_no + 1}",
                "starts_at": start.isoformat(),
                "ends_at": (start + timedelta(hours=1)).isoformat(),
                "location": "Hội trường",
            },
            headers=sec,
        )
        assert r.status_code == 201, r.text
        mid = r.json()["meeting_id"]
        invitees = r.json()["invitee_ids"]
        clock.advance(minutes=10)
        code = (await client.get(f"/meetings/{mid}/checkin-code", headers=sec)).json()["code"]
        extra = [f"e{i}" for i in range(MEMBERS)]

        async def check_in(short: str, mid: str = mid, code: str = code):  # type: ignore[no-untyped-def]
            await asyncio.sleep(random.uniform(0, 1.0))
            return short, await client.post(
                f"/meetings/{mid}/check-in", json={"code": code}, headers=world.people[short]
            )

        async def close(mid: str = mid):  # type: ignore[no-untyped-def]
            await asyncio.sleep(random.uniform(0.1, 0.3))
            while True:
                r = await client.post(f"/meetings/{mid}/close", headers=sec)
                if r.status_code != 409 or r.json()["error"] != "concurrent_change":
                    return r  # a client retries a 409 "try again"

        results = await asyncio.gather(close(), *(check_in(s) for s in extra))
        closing, answers = results[0], results[1:]
        assert closing.status_code == 200, closing.text
        statuses = Counter(r.status_code for _, r in answers)
        accepted = {world.id(s) for s, r in answers if r.status_code in (200, 201)}
        refused = {world.id(s) for s, r in answers if r.status_code == 409}
        assert set(statuses) <= {201, 409}, statuses
        for _, r in answers:
            if r.status_code == 409:
                assert r.json()["error"] == "closed", r.text
                assert r.json()["message"].startswith("Cuộc họp đã kết thúc")
        stats = (await client.get(f"/meetings/{mid}/statistics", headers=sec)).json()
        assert stats["final"] is True
        assert set(stats["present_ids"]) == accepted
        assert refused <= set(stats["absent_without_leave_ids"])
        assert stats["present"] + stats["excused"] + stats["absent_without_leave"] == len(invitees)
        # The store holds one event per invitee's attendance stream: recorded or closed.
        docs = await store.events.find(
            {"aggregate_type": "Attendance", "payload.meeting_id": mid}
        ).to_list()
        kinds = Counter(d["event_type"] for d in docs)
        assert kinds["AttendanceRecorded"] == len(accepted)
        assert kinds["AttendanceClosed"] == len(invitees) - len(accepted)
        assert len({d["stream_id"] for d in docs}) == len(docs) == len(invitees)

    # The figures the committee reads count exactly the accepted check-ins.
    everyone = await store.events.find(
        {"event_type": "MeetingClosed", "payload.unit_id": world.unit("CB1")}
    ).to_list()
    present = sum(d["payload"]["present"] for d in everyone)
    recorded = await store.events.count_documents(
        {
            "event_type": "AttendanceRecorded",
            "payload.meeting_id": {"$in": [d["payload"]["meeting_id"] for d in everyone]},
        }
    )
    assert present == recorded

    async def figures():  # type: ignore[no-untyped-def]
        r = await client.get(
            f"/units/{world.unit('CB1')}/statistics?year={clock.now.year}", headers=sec
        )
        total = r.json()["total"]
        return total if total["meetings"] == rounds else None

    assert (await eventually(figures))["present"] == recorded


async def test_a_branch_larger_than_the_redis_pool_checks_in_at_once(  # type: ignore[no-untyped-def]
    client, clock, make_world
) -> None:
    """More concurrent check-ins than Redis connections: they wait for one, none fails."""
    world = await make_world(extra_cb1=BURST)
    sec = world.people["secretary"]
    start = clock.now + timedelta(minutes=5)
    r = await client.post(
        "/meetings",
        json={
            "unit_id": world.unit("CB1"),
            "title": "Sinh hoạt chi bộ đông đảng viên",
            "starts_at": start.isoformat(),
            "ends_at": (start + timedelta(hours=1)).isoformat(),
            "location": "Hội trường",
        },
        headers=sec,
    )
    mid = r.json()["meeting_id"]
    code = (await client.get(f"/meetings/{mid}/checkin-code", headers=sec)).json()["code"]
    everyone = [f"e{i}" for i in range(BURST)]
    for expected in (201, 200):  # first check-ins, then every one again
        answers = await asyncio.gather(
            *(
                client.post(
                    f"/meetings/{mid}/check-in", json={"code": code}, headers=world.people[s]
                )
                for s in everyone
            )
        )
        assert Counter(r.status_code for r in answers) == {expected: BURST}


async def test_a_code_typed_offline_counts_when_sent_later(  # type: ignore[no-untyped-def]
    app, client, clock, world
) -> None:
    """The web app's offline queue: the code typed while offline, `typed_at` its moment."""
    sec, m1 = world.people["secretary"], world.people["m1"]
    start = clock.now + timedelta(minutes=5)
    r = await client.post(
        "/meetings",
        json={
            "unit_id": world.unit("CB1"),
            "title": "Sinh hoạt chi bộ, mạng yếu",
            "starts_at": iso(start),
            "ends_at": iso(start + timedelta(hours=1)),
            "location": "Hội trường",
        },
        headers=sec,
    )
    mid = r.json()["meeting_id"]
    code = (await client.get(f"/meetings/{mid}/checkin-code", headers=sec)).json()["code"]
    typed_at = clock.now
    clock.advance(minutes=15)  # back online a quarter of an hour later: the code rotated
    url = f"/meetings/{mid}/check-in"
    r = await client.post(url, json={"code": code}, headers=m1)
    assert (r.status_code, r.json()["error"]) == (422, "wrong_code"), r.text
    ahead = clock.now + timedelta(minutes=5)
    r = await client.post(url, json={"code": code, "typed_at": iso(ahead)}, headers=m1)
    assert (r.status_code, r.json()["field"], r.json()["error"]) == (
        422,
        "typed_at",
        "typed_in_future",
    ), r.text
    r = await client.post(url, json={"code": code, "typed_at": "hôm qua"}, headers=m1)
    assert (r.status_code, r.json()["field"]) == (422, "typed_at"), r.text
    local = typed_at.astimezone(VIETNAM).replace(tzinfo=None).isoformat()  # no zone: Vietnam
    for expected in (201, 200):  # the queue sends it twice: counted once
        r = await client.post(url, json={"code": code, "typed_at": local}, headers=m1)
        assert r.status_code == expected, r.text
    [doc] = await app.state.runtime.store.events.find(
        {"stream_id": f"Attendance-{mid}:{world.id('m1')}"}
    ).to_list()
    payload = doc["payload"]
    assert datetime.fromisoformat(payload["typed_at"]) == typed_at
    received = datetime.fromisoformat(payload["received_at"])
    assert received - datetime.fromisoformat(payload["typed_at"]) >= timedelta(minutes=15)
    clock.advance(minutes=10)
    r = await client.post(f"/meetings/{mid}/close", headers=sec)
    assert r.status_code == 200, r.text
    r = await client.post(url, json={"code": code, "typed_at": local}, headers=world.people["m2"])
    assert (r.status_code, r.json()["error"]) == (409, "closed"), r.text
    assert r.json()["message"].startswith("Cuộc họp đã kết thúc")


VOTERS = 30


async def test_every_accepted_vote_is_in_the_closed_tally(  # type: ignore[no-untyped-def]
    app, client, clock, make_world
) -> None:
    """Many votes racing one close of their poll: a vote is either in the tally or refused
    with a clear 409; the tally, the store and the meeting's summary agree."""
    world = await make_world(extra_cb1=VOTERS)
    sec = world.people["secretary"]
    store = app.state.runtime.store
    start = clock.now + timedelta(minutes=5)
    r = await client.post(
        "/meetings",
        json={
            "unit_id": world.unit("CB1"),
            "title": "Sinh hoạt chi bộ, biểu quyết",
            "starts_at": iso(start),
            "ends_at": iso(start + timedelta(hours=1)),
            "location": "Hội trường",
        },
        headers=sec,
    )
    mid = r.json()["meeting_id"]
    voters = [f"e{i}" for i in range(VOTERS)]
    await asyncio.gather(
        *(
            client.post(f"/meetings/{mid}/attendance", json={"member_id": world.id(s)}, headers=sec)
            for s in voters
        )
    )
    clock.advance(minutes=10)
    r = await client.post(
        f"/meetings/{mid}/polls",
        json={"question": "Thông qua nghị quyết?", "options": ["Tán thành", "Không tán thành"]},
        headers=sec,
    )
    assert r.status_code == 201, r.text
    pid = r.json()["poll_id"]

    async def vote(short: str):  # type: ignore[no-untyped-def]
        await asyncio.sleep(random.uniform(0, 1.5))
        option = "Tán thành" if int(short[1:]) % 3 else "Không tán thành"
        r = await client.post(
            f"/meetings/{mid}/polls/{pid}/votes",
            json={"option": option},
            headers=world.people[short],
        )
        return short, option, r

    async def close():  # type: ignore[no-untyped-def]
        await asyncio.sleep(random.uniform(0.1, 0.3))
        while True:
            r = await client.post(f"/meetings/{mid}/polls/{pid}/close", headers=sec)
            if r.status_code != 409 or r.json()["error"] != "concurrent_change":
                return r  # a client retries a 409 "try again"

    closing, *answers = await asyncio.gather(close(), *(vote(s) for s in voters))
    assert closing.status_code == 200, closing.text
    accepted = Counter(option for _, option, r in answers if r.status_code == 201)
    statuses = Counter(r.status_code for _, _, r in answers)
    assert set(statuses) <= {201, 409}, statuses
    for _, _, r in answers:
        if r.status_code == 409:
            assert (r.json()["error"], r.json()["field"]) == ("poll_closed", "poll_id"), r.text
    tally = closing.json()["tally"]
    assert {k: v for k, v in tally.items() if v} == dict(accepted)
    docs = await store.events.find(
        {"aggregate_type": "Vote", "payload.meeting_id": mid, "payload.poll_id": pid}
    ).to_list()
    kinds = Counter(d["event_type"] for d in docs)
    assert kinds["VoteRecorded"] == sum(accepted.values())
    invitees = (await client.get(f"/meetings/{mid}", headers=sec)).json()["invitee_ids"]
    assert kinds["VoteRecorded"] + kinds["VoteClosed"] == len(invitees)
    assert len({d["stream_id"] for d in docs}) == len(docs)

    r = await client.get(f"/meetings/{mid}", headers=sec)
    [poll] = r.json()["polls"]
    assert (poll["status"], poll["tally"]) == ("closed", tally)

    async def summary():  # type: ignore[no-untyped-def]
        r = await client.get(f"/units/{world.unit('CB1')}/meetings", headers=sec)
        [row] = [m for m in r.json()["meetings"] if m["meeting_id"] == mid]
        return (row.get("poll_results") or {}).get(pid)

    assert await eventually(summary) == tally  # the branch's summary shows the same figures
