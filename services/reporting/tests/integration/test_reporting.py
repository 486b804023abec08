"""Reporting end to end against the real embedded servers.

Events from org-tree, identity, meetings and learning are published on the
app's broker as those services would; the figures are read through the API.
The tests of this module share one app and build on each other's history.
"""

from __future__ import annotations

import asyncio
import io
import os
import random
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from openpyxl import load_workbook

from sotay_events.catalogue.identity import (
    AccountActivated,
    Gender,
    MemberRegistered,
    MemberRegistrationApproved,
    MemberSignedIn,
    MemberStatus,
)
from sotay_events.catalogue.learning import (
    QuizAttemptSubmitted,
    ResolutionStudied,
    StudyCampaignLaunched,
    StudyStarted,
)
from sotay_events.catalogue.meetings import MeetingClosed, MeetingConvened, MeetingKind
from sotay_events.catalogue.org_tree import OrgLevel, UnitCreated, UnitMerged, UnitMoved
from sotay_events.consumer import ProjectionRunner
from sotay_platform.auth import Role
from sotay_platform.org_units import OrgUnits, OrgUnitsProjection
from sotay_platform.testing import eventually
from sotay_reporting.figures import TZ, add_months, month_key, strip_zeros
from sotay_reporting.projections import STATS
from sotay_reporting.queries import UsageQueries
from sotay_reporting.rebuild import rebuild

from .conftest import History

pytestmark = pytest.mark.asyncio(loop_scope="module")

NOW = datetime.now(UTC)
TODAY = NOW.astimezone(TZ).date()
THIS_MONTH = month_key(TODAY)
PREV = add_months(THIS_MONTH, -1)
HISTORY = History()


def prev_day(day: int, hour: int = 9) -> datetime:
    """A moment on `day` of last month, Hà Nội time."""
    year, month = (int(p) for p in PREV.split("-"))
    return datetime(year, month, day, hour, 0, tzinfo=TZ).astimezone(UTC)


PATHS = {
    "TW": ("TW",),
    "QN": ("TW", "QN"),
    "X1": ("TW", "QN", "X1"),
    "X2": ("TW", "QN", "X2"),
    "CB1": ("TW", "QN", "X1", "CB1"),
    "CB2": ("TW", "QN", "X1", "CB2"),
    "CB3": ("TW", "QN", "X2", "CB3"),
}


def unit(code: str, name: str, level: OrgLevel, parent: str | None) -> Any:
    return HISTORY.make(
        UnitCreated(unit_id=code, name=name, level=level, parent_id=parent),
        code,
        prev_day(1, 7),
        PATHS[code],
    )


def member(member_id: str, branch: str, *, by: str = "import", approve: bool = True) -> list[Any]:
    out = [
        HISTORY.make(
            MemberRegistered(
                member_id=member_id,
                full_name=f"Nguyễn Văn {member_id}",
                gender=Gender.male,
                branch_id=branch,
                status=MemberStatus.official,
                admitted_on=datetime(2000, 1, 1).date(),
                registered_by=by,  # type: ignore[arg-type]
            ),
            member_id,
            prev_day(3),
            PATHS[branch],
        )
    ]
    if approve:
        out.append(
            HISTORY.make(
                MemberRegistrationApproved(member_id=member_id, branch_id=branch, approved_by="bt"),
                member_id,
                prev_day(3, 10),
                PATHS[branch],
            )
        )
    return out


def activate(member_id: str, branch: str) -> Any:
    return HISTORY.make(
        AccountActivated(member_id=member_id, branch_id=branch),
        member_id,
        prev_day(4),
        PATHS[branch],
    )


def sign_in(member_id: str, branch: str, at: datetime) -> Any:
    return HISTORY.make(
        MemberSignedIn(member_id=member_id, branch_id=branch), member_id, at, PATHS[branch]
    )


def meeting(
    meeting_id: str, branch: str, day: int, invited: int, present: int, excused: int
) -> list[Any]:
    starts = prev_day(day, 19)
    return [
        HISTORY.make(
            MeetingConvened(
                meeting_id=meeting_id,
                unit_id=branch,
                kind=MeetingKind.regular,
                title=f"Sinh hoạt chi bộ thường kỳ tháng {PREV[5:]}",
                starts_at=starts,
                ends_at=starts + timedelta(hours=2),
            ),
            meeting_id,
            prev_day(1, 8),
            PATHS[branch],
        ),
        HISTORY.make(
            MeetingClosed(
                meeting_id=meeting_id,
                unit_id=branch,
                kind=MeetingKind.regular,
                invited=invited,
                present=present,
                excused=excused,
                absent_without_leave=invited - present - excused,
            ),
            meeting_id,
            starts + timedelta(hours=2),
            PATHS[branch],
        ),
    ]


def initial_history() -> list[Any]:
    recent = NOW - timedelta(minutes=1)
    events = [
        unit("TW", "Trung ương", OrgLevel.central, None),
        unit("QN", "Đảng bộ tỉnh Quảng Ngãi", OrgLevel.province, "TW"),
        unit("X1", "Đảng bộ xã Tịnh Ấn", OrgLevel.commune, "QN"),
        unit("X2", "Đảng bộ phường Nghĩa Lộ", OrgLevel.commune, "QN"),
        unit("CB1", "Chi bộ thôn Ấn Phú", OrgLevel.branch, "X1"),
        unit("CB2", "Chi bộ thôn Đông Dương", OrgLevel.branch, "X1"),
        unit("CB3", "Chi bộ khu phố 2", OrgLevel.branch, "X2"),
        *member("a1", "CB1"),
        *member("a2", "CB1"),
        *member("a3", "CB1", by="self", approve=False),
        *member("b1", "CB2"),
        *member("b2", "CB2"),
        *member("c1", "CB3"),
        activate("a1", "CB1"),
        activate("a2", "CB1"),
        activate("b1", "CB2"),
        activate("c1", "CB3"),
        sign_in("a1", "CB1", recent),
        sign_in("a2", "CB1", prev_day(10)),
        sign_in("b1", "CB2", prev_day(10)),
        sign_in("c1", "CB3", recent),
        *meeting("H1", "CB1", 5, invited=3, present=2, excused=1),
        *meeting("H3", "CB3", 6, invited=1, present=1, excused=0),
        HISTORY.make(
            StudyCampaignLaunched(
                campaign_id="K1",
                unit_id="QN",
                resolution_code="57-NQ/TW",
                resolution_title="Đột phá phát triển khoa học, công nghệ, đổi mới sáng tạo",
                deadline=NOW + timedelta(days=30),
                has_quiz=True,
            ),
            "K1",
            prev_day(1, 9),
            PATHS["QN"],
        ),
        HISTORY.make(
            StudyStarted(campaign_id="K1", member_id="a1", unit_id="CB1"),
            "K1|a1",
            prev_day(8),
            PATHS["CB1"],
        ),
        HISTORY.make(
            QuizAttemptSubmitted(
                campaign_id="K1", member_id="a1", unit_id="CB1", attempt=1, score=90, passed=True
            ),
            "K1|a1",
            prev_day(8, 10),
            PATHS["CB1"],
        ),
        HISTORY.make(
            ResolutionStudied(
                campaign_id="K1",
                member_id="a1",
                unit_id="CB1",
                resolution_code="57-NQ/TW",
                resolution_title="Đột phá phát triển khoa học, công nghệ, đổi mới sáng tạo",
                materials_completed=3,
                score=90,
                passed=True,
            ),
            "K1|a1",
            prev_day(8, 11),
            PATHS["CB1"],
        ),
        HISTORY.make(
            StudyStarted(campaign_id="K1", member_id="c1", unit_id="CB3"),
            "K1|c1",
            prev_day(9),
            PATHS["CB3"],
        ),
        HISTORY.make(
            QuizAttemptSubmitted(
                campaign_id="K1", member_id="c1", unit_id="CB3", attempt=1, score=40, passed=False
            ),
            "K1|c1",
            prev_day(9, 10),
            PATHS["CB3"],
        ),
    ]
    return events


async def figures(
    client: httpx.AsyncClient, headers: dict[str, str], code: str, month: str | None = None
) -> dict[str, Any]:
    r = await client.get(
        f"/units/{code}/figures", params={"month": month} if month else {}, headers=headers
    )
    assert r.status_code == 200, r.text
    return r.json()


async def test_events_from_every_service_move_the_figures(
    app: FastAPI, client: httpx.AsyncClient, bearer
) -> None:
    viewer = bearer(Role.province_admin, "QN")
    events = initial_history()
    await HISTORY.publish(app, events)
    # redelivery changes nothing: the same envelopes again
    await HISTORY.publish(app, events[-12:])

    async def settled() -> dict[str, Any] | None:
        r = await client.get("/units/QN/figures", headers=viewer)
        if r.status_code != 200:
            return None
        body = r.json()
        f = body["unit"]["figures"]
        done = f["members_on_list"] == 6 and f["active_7d"] == 2 and body["campaigns"]
        done = done and body["campaigns"][0]["quiz_takers"] == 2 and len(body["children"]) == 2
        return body if done else None

    body = await eventually(settled, timeout=40)
    f = body["unit"]["figures"]
    assert f["members_in_scope"] == 6
    assert f["registered"] == 5  # four activated accounts and one self-registration
    assert f["approved"] == 5
    assert f["pending_approval"] == 1
    assert f["active_7d"] == 2 and f["active_30d"] >= 2
    assert f["branches"] == 3
    assert f["registered_rate"] == 83.3
    assert set(body["unit"]["behind_targets"]) >= {"registered_rate"}

    campaign = body["campaigns"][0]
    assert campaign["resolution_code"] == "57-NQ/TW"
    assert (campaign["started"], campaign["completed"], campaign["expected"]) == (2, 1, 6)
    assert (campaign["completion_rate"], campaign["pass_rate"]) == (16.7, 50.0)

    rows = {c["code"]: c for c in body["children"]}
    assert rows["X1"]["figures"]["members_on_list"] == 5
    assert rows["X2"]["figures"]["members_on_list"] == 1

    last = await figures(client, viewer, "QN", PREV)
    lf = last["unit"]["figures"]
    assert (lf["branches"], lf["branches_met"], lf["meetings_held"]) == (3, 2, 2)
    assert (lf["invited"], lf["present"], lf["excused"], lf["absent_without_leave"]) == (4, 3, 1, 0)
    assert (lf["attendance_rate"], lf["excused_rate"], lf["unexcused_rate"]) == (75.0, 25.0, 0.0)
    assert lf["branches_met_rate"] == 66.7
    assert lf["active_in_month"] >= 2
    prev_trend = next(t for t in body["trends"] if t["month"] == PREV)
    assert prev_trend["figures"]["branches_met"] == 2
    assert last["activity"]["MeetingClosed"] == 2

    lag = (await client.get("/lag", headers=viewer)).json()
    assert lag["projections"]["usage"]["applied"] >= len(events) - 7
    assert lag["newest_event_at"] is not None


async def test_figures_follow_moves_and_merges(
    app: FastAPI, client: httpx.AsyncClient, bearer
) -> None:
    viewer = bearer(Role.province_admin, "QN")
    later = NOW - timedelta(seconds=30)
    await HISTORY.publish(
        app,
        [
            HISTORY.make(
                UnitMoved(unit_id="CB3", from_parent_id="X2", to_parent_id="X1"),
                "CB3",
                later,
                ("TW", "QN", "X1", "CB3"),
            ),
            HISTORY.make(UnitMerged(unit_id="CB2", into_unit_id="CB1"), "CB2", later, PATHS["CB2"]),
        ],
    )

    async def moved() -> dict[str, Any] | None:
        body = await figures(client, viewer, "X1")
        rows = {c["code"]: c for c in body["children"]}
        return (
            body
            if set(rows) == {"CB1", "CB3"} and rows["CB1"]["figures"]["members_on_list"] == 5
            else None
        )

    body = await eventually(moved, timeout=30)
    assert body["unit"]["figures"]["members_on_list"] == 6
    assert body["unit"]["figures"]["branches"] == 2
    x2 = await figures(client, viewer, "X2")
    assert x2["unit"]["figures"]["members_on_list"] == 0 and x2["children"] == []
    qn = await figures(client, viewer, "QN")
    assert qn["unit"]["figures"]["members_on_list"] == 6  # nothing lost, nothing counted twice


def _comparable(body: dict[str, Any]) -> dict[str, Any]:
    body = dict(body)
    for key in ("computed_at", "lag"):
        body.pop(key, None)
    return body


async def test_rebuild_from_history_equals_the_live_projection(app: FastAPI) -> None:
    runtime = app.state.runtime
    settings = runtime.settings
    live_queries = app.state.queries
    rebuilt_db = f"{settings.database}_rebuild"
    # Another order: each aggregate's events keep their order, aggregates interleave at random.
    streams: dict[tuple[str, str], list[Any]] = {}
    for envelope in HISTORY.envelopes:
        streams.setdefault((envelope.aggregate_type, envelope.aggregate_id), []).append(envelope)
    rng = random.Random(7)
    order: list[Any] = []
    queues = [list(s) for s in streams.values()]
    while queues:
        queue = rng.choice(queues)
        order.append(queue.pop(0))
        if not queue:
            queues.remove(queue)
    applied = await rebuild(runtime.mongo, order, rebuilt_db, settings.report_day, batch_size=5)
    assert sum(applied) == len(order)
    shared = ProjectionRunner(runtime.mongo, f"{rebuilt_db}_shared", OrgUnitsProjection())
    await shared.rebuild([e for e in order if e.aggregate_type == "OrgUnit"], batch_size=3)

    # reporting's tree projection builds the same tree as the shared one
    rebuilt_tree = await OrgUnits(runtime.mongo[rebuilt_db]).snapshot()
    assert rebuilt_tree == await OrgUnits(runtime.mongo[f"{rebuilt_db}_shared"]).snapshot()
    assert [u for u in await OrgUnits(runtime.db).snapshot() if u["_id"] in PATHS] == rebuilt_tree
    await runtime.mongo.drop_database(f"{rebuilt_db}_shared")

    # Every test module's app reads the same topics: compare what this module's history made.
    ours = {"_id": {"$in": list(PATHS)}}
    live_stats = [strip_zeros(d) async for d in runtime.db[STATS].find(ours).sort("_id", 1)]
    rebuilt_stats = [
        strip_zeros(d) async for d in runtime.mongo[rebuilt_db][STATS].find(ours).sort("_id", 1)
    ]
    assert len(rebuilt_stats) == 4 and rebuilt_stats == live_stats  # QN, CB1, CB2, CB3

    rebuilt_queries = UsageQueries(runtime.mongo[rebuilt_db], settings.report_day)
    for code in [c for c in PATHS if c != "TW"]:
        for month in (None, PREV):
            view = live_queries.view("live", month)
            live = await live_queries.rollup(code, view)
            again = await rebuilt_queries.rollup(code, view)
            assert again.total.figures() == live.total.figures(), code
            assert [r.figures() for r in again.children] == [r.figures() for r in live.children]
            assert again.trends == live.trends
    await runtime.mongo.drop_database(rebuilt_db)


async def test_monthly_report_is_frozen_and_downloads_as_excel_and_csv(
    app: FastAPI, client: httpx.AsyncClient, bearer
) -> None:
    admin = bearer(Role.province_admin, "QN", subject="qn-admin")
    current = await client.post(f"/reports/QN/{THIS_MONTH}", headers=admin)
    if TODAY.day <= 25:
        assert current.status_code == 422 and current.json()["field"] == "month"
    assert (await client.get(f"/reports/QN/{PREV}/xlsx", headers=admin)).status_code == 404

    r = await client.post(f"/reports/QN/{PREV}", headers=admin)
    assert r.status_code == 201, r.text
    report = r.json()
    assert report["figures"]["branches_met"] == 2 and report["figures"]["meetings_held"] == 2
    assert report["as_of"].startswith(f"{PREV}-25T16:59:59")
    assert {row["unit_id"] for row in report["rows"]} == {"X1", "X2"}
    again = await client.post(f"/reports/QN/{PREV}", headers=admin)
    assert again.status_code == 200 and again.json() == report

    # a late event about last month: the live figures move, the issued report does not
    await HISTORY.publish(app, meeting("H9", "CB1", 20, invited=3, present=3, excused=0))

    async def moved() -> bool:
        body = await figures(client, admin, "QN", PREV)
        return body["unit"]["figures"]["meetings_held"] == 3

    await eventually(moved, timeout=30)
    assert (await client.get(f"/reports/QN/{PREV}", headers=admin)).json() == report

    xlsx = await client.get(f"/reports/QN/{PREV}/xlsx", headers=admin)
    assert xlsx.status_code == 200
    assert xlsx.headers["content-type"].startswith("application/vnd.openxmlformats")
    book = load_workbook(io.BytesIO(xlsx.content))
    sheet = book["Báo cáo"]
    values = [c for row in sheet.iter_rows(values_only=True) for c in row if c is not None]
    assert values[0].startswith("BÁO CÁO KẾT QUẢ TRIỂN KHAI")
    assert "Đảng bộ xã Tịnh Ấn" in values and "Tổng cộng Đảng bộ tỉnh Quảng Ngãi" in values
    assert "Tỷ lệ chi bộ sinh hoạt trên phần mềm (%)" in values

    csv = await client.get(f"/reports/QN/{PREV}/csv", headers=admin)
    text = csv.content.decode("utf-8-sig")
    assert text.splitlines()[0].startswith("Mã đơn vị,Tên đơn vị,Cấp,Đảng viên trong danh sách")
    assert "X1,Đảng bộ xã Tịnh Ấn" in text

    secretary = bearer(Role.branch_secretary, "CB1")
    assert (await client.post(f"/reports/QN/{PREV}", headers=secretary)).status_code == 403


async def test_access_follows_the_viewer_scope(client: httpx.AsyncClient, bearer) -> None:
    secretary = bearer(Role.branch_secretary, "CB1")
    assert (await client.get("/units/CB1/figures", headers=secretary)).status_code == 200
    denied = await client.get("/units/QN/figures", headers=secretary)
    assert denied.status_code == 403 and "quyền" in denied.json()["message"]
    assert (await client.get("/units/QN/figures")).status_code == 401
    member = bearer(Role.member, "CB1")
    assert (await client.get("/units/CB1/figures", headers=member)).status_code == 403
    page = await client.get("/dashboard/QN", headers=secretary)
    assert page.status_code == 403 and "Không thể hiển thị" in page.text


async def test_dashboard_page_sorts_and_drills_down(client: httpx.AsyncClient, bearer) -> None:
    token = bearer(Role.central_office, "TW")["Authorization"][7:]
    home = await client.get("/", params={"token": token})
    assert home.status_code == 303 and home.headers["location"] == "/dashboard/TW"
    assert "sotay_token=" in home.headers["set-cookie"] and "HttpOnly" in home.headers["set-cookie"]
    client.cookies.clear()
    r = await client.get("/dashboard/QN", params={"token": token, "month": PREV})
    assert r.status_code == 303 and "token" not in r.headers["location"]
    client.cookies.set("sotay_token", token)
    try:
        page = await client.get(r.headers["location"])
        assert page.status_code == 200
        html = page.text
        assert "Đảng bộ tỉnh Quảng Ngãi" in html and "Đơn vị trực thuộc" in html
        assert 'href="/dashboard/X1?month=' in html  # drill down
        assert "Chưa đạt" in html and "Chi bộ sinh hoạt trên phần mềm" in html
        ordered = await client.get(
            "/dashboard/QN", params={"sort": "members_on_list", "dir": "desc"}
        )
        assert ordered.text.index("Đảng bộ xã Tịnh Ấn") < ordered.text.index(
            "Đảng bộ phường Nghĩa Lộ"
        )
        ordered = await client.get(
            "/dashboard/QN", params={"sort": "members_on_list", "dir": "asc"}
        )
        assert ordered.text.index("Đảng bộ phường Nghĩa Lộ") < ordered.text.index(
            "Đảng bộ xã Tịnh Ấn"
        )
    finally:
        client.cookies.clear()


async def test_usage_stream_is_followed_by_the_command_line_consumer(
    app: FastAPI, client: httpx.AsyncClient, bearer
) -> None:
    central = bearer(Role.central_office, "TW")
    r = await client.post("/usage/publish", params={"unit": "QN"}, headers=central)
    assert r.status_code == 200 and r.json()["published"] == 3  # QN, X1, X2
    bootstrap = app.state.runtime.settings.kafka_bootstrap
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "sotay_reporting.follow_usage",
        "--bootstrap",
        bootstrap,
        "--unit",
        "X1",
        "--from-beginning",
        "--max",
        "2",
        "--timeout",
        "60",
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONIOENCODING": "utf-8"},
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=90)
    assert process.returncode == 0, err.decode()
    lines = out.decode().splitlines()
    assert len(lines) == 2
    assert all(line.startswith("X1 | Đảng bộ xã Tịnh Ấn") for line in lines)
    assert any("báo cáo tháng" in line for line in lines)
    assert any("lũy kế tháng" in line for line in lines)
    assert "Nguyễn" not in out.decode()  # aggregate figures only, no personal data
