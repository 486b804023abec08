"""Two months of one province, end to end against the real embedded servers.

Org-tree, identity, meetings and learning events are published on Kafka as
those services' relays would; the figures are read through the API. The
first month's report is issued late: after the second month's events, a merge,
a move and a new branch. Every figure of the live view, both months, the trend
rows and both frozen reports must equal what had happened by its date, on the
tree of that date. The module's history is published once (a module fixture);
each test reads or issues what it needs, so any of them runs alone.
"""

from __future__ import annotations

import asyncio
import io
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI
from openpyxl import load_workbook

from sotay_events.catalogue.content import PieceKind, PiecePublished, PieceRead
from sotay_events.catalogue.feedback import (
    FeedbackAnswered,
    FeedbackBody,
    FeedbackKind,
    FeedbackSubject,
    FeedbackSubmitted,
)
from sotay_events.catalogue.identity import (
    AccountActivated,
    Gender,
    MemberRegistered,
    MemberRegistrationApproved,
    MemberSignedIn,
    MemberStatus,
)
from sotay_events.catalogue.learning import ResolutionStudied, StudyCampaignLaunched
from sotay_events.catalogue.meetings import MeetingClosed, MeetingKind
from sotay_events.catalogue.org_tree import OrgLevel, UnitCreated, UnitMerged, UnitMoved
from sotay_platform.auth import Role
from sotay_platform.testing import eventually
from sotay_reporting.figures import TZ, add_months, month_key, strip_zeros
from sotay_reporting.projections import ROLLUPS
from sotay_reporting.rebuild import rebuild

from .conftest import History

pytestmark = pytest.mark.asyncio(loop_scope="module")

TODAY = datetime.now(TZ).date()
THIS = month_key(TODAY)
M1 = add_months(THIS, -2)
M2 = add_months(THIS, -1)
BEFORE = add_months(THIS, -3)
HISTORY = History()
UNITS = ["T2P", "T2X1", "T2X2", "T2B1", "T2B2", "T2B3", "T2B4"]


def on(month: str, day: int, hour: int = 9) -> datetime:
    year, m = (int(p) for p in month.split("-"))
    return datetime(year, m, day, hour, tzinfo=TZ).astimezone(UTC)


def unit(code: str, level: OrgLevel, parent: str | None, at: datetime) -> Any:
    names = {
        "TW": "Trung ương",
        "T2P": "Đảng bộ tỉnh Thử Hai",
        "T2X1": "Đảng bộ xã Hòa Bình",
        "T2X2": "Đảng bộ phường Đông Hải",
        "T2B1": "Chi bộ thôn Một",
        "T2B2": "Chi bộ thôn Hai",
        "T2B3": "Chi bộ khu phố Ba",
        "T2B4": "Chi bộ khu phố Bốn",
    }
    event = UnitCreated(unit_id=code, name=names[code], level=level, parent_id=parent)
    return HISTORY.make(event, code, at)


def member(mid: str, branch: str, at: datetime, *, by: str = "import", **kw: Any) -> list[Any]:
    out = [
        HISTORY.make(
            MemberRegistered(
                member_id=mid,
                full_name=f"Nguyễn Văn {mid}",
                gender=Gender.male,
                branch_id=branch,
                status=kw.get("status", MemberStatus.official),
                admitted_on=date(2000, 1, 1),
                registered_by=by,  # type: ignore[arg-type]
            ),
            mid,
            at,
        )
    ]
    if by != "self":
        approved = MemberRegistrationApproved(member_id=mid, branch_id=branch, approved_by="bt")
        out.append(HISTORY.make(approved, mid, at))
    return out


def activated(mid: str, branch: str, at: datetime) -> Any:
    return HISTORY.make(AccountActivated(member_id=mid, branch_id=branch), mid, at)


def signed_in(mid: str, branch: str, at: datetime) -> Any:
    return HISTORY.make(MemberSignedIn(member_id=mid, branch_id=branch), mid, at)


def closed(mid: str, branch: str, at: datetime, invited: int, present: int, excused: int) -> Any:
    event = MeetingClosed(
        meeting_id=mid,
        unit_id=branch,
        kind=MeetingKind.regular,
        invited=invited,
        present=present,
        excused=excused,
        absent_without_leave=invited - present - excused,
    )
    return HISTORY.make(event, mid, at)


def studied(mid: str, branch: str, at: datetime) -> Any:
    event = ResolutionStudied(
        campaign_id="T2K",
        member_id=mid,
        unit_id=branch,
        resolution_code="57-NQ/TW",
        resolution_title="Đột phá phát triển khoa học, công nghệ",
        materials_completed=2,
    )
    return HISTORY.make(event, f"T2K|{mid}", at)


def feedback(fid: str, branch: str, sent: datetime, answered: datetime, days: int) -> list[Any]:
    """A proposal sent from `branch` and answered; the deadline is `days` after sending."""
    common = {
        "feedback_id": fid,
        "branch_id": branch,
        "kind": FeedbackKind.proposal,
        "subject": FeedbackSubject.organisation,
    }
    deadline = sent + timedelta(days=days)
    return [
        HISTORY.make(
            FeedbackSubmitted(
                **common, addressed_to="branch", to_unit_id=branch, submitted_at=sent
            ),
            fid,
            sent,
        ),
        HISTORY.make(
            FeedbackAnswered(
                **common,
                unit_id=branch,
                body=FeedbackBody.branch,
                visibility="public",
                submitted_at=sent,
                received_at=sent,
                answered_at=answered,
                deadline=deadline,
                on_time=answered <= deadline,
                answered_by="bt",
            ),
            fid,
            answered,
        ),
    ]


def content() -> list[Any]:
    """A resolution published to the province in month 2, read by two of its members."""
    published = PiecePublished(
        piece_id="T2NQ57",
        unit_id="T2P",
        kind=PieceKind.resolution,
        title="Nghị quyết về đột phá phát triển khoa học, công nghệ",
        number_symbol="57-NQ/TW",
        revision=1,
        approved_by="bbt",
        published_at=on(M2, 6),
    )
    reads = [
        HISTORY.make(
            PieceRead(
                piece_id="T2NQ57",
                member_id=m,
                unit_id="T2P",
                kind=PieceKind.resolution,
                branch_id=b,
            ),
            f"T2NQ57|{m}",
            on(M2, 7),
        )
        for m, b in (("t2a1", "T2B1"), ("t2c1", "T2B3"))
    ]
    return [HISTORY.make(published, "T2NQ57", on(M2, 6)), *reads]


def two_months() -> list[Any]:
    return [
        unit("TW", OrgLevel.central, None, on(M1, 1, 6)),
        unit("T2P", OrgLevel.province, "TW", on(M1, 1, 7)),
        unit("T2X1", OrgLevel.commune, "T2P", on(M1, 1, 7)),
        unit("T2X2", OrgLevel.commune, "T2P", on(M1, 1, 7)),
        unit("T2B1", OrgLevel.branch, "T2X1", on(M1, 1, 7)),
        unit("T2B2", OrgLevel.branch, "T2X1", on(M1, 1, 7)),
        unit("T2B3", OrgLevel.branch, "T2X2", on(M1, 1, 7)),
        # month 1
        *member("t2a1", "T2B1", on(M1, 2)),
        *member("t2a2", "T2B1", on(M1, 2)),
        *member("t2a3", "T2B1", on(M1, 2), by="self"),  # pending: never counted
        *member("t2b1", "T2B2", on(M1, 2)),
        *member("t2c1", "T2B3", on(M1, 2)),
        *member("t2c2", "T2B3", on(M1, 2), status=MemberStatus.exempted),
        HISTORY.make(
            StudyCampaignLaunched(
                campaign_id="T2K",
                unit_id="T2P",
                resolution_code="57-NQ/TW",
                resolution_title="Đột phá phát triển khoa học, công nghệ",
                deadline=on(THIS, 1),
            ),
            "T2K",
            on(M1, 2),
        ),
        activated("t2a1", "T2B1", on(M1, 3)),
        activated("t2b1", "T2B2", on(M1, 3)),
        signed_in("t2a1", "T2B1", on(M1, 5)),
        signed_in("t2b1", "T2B2", on(M1, 27)),  # after the report day: next period
        closed("t2m1", "T2B1", on(M1, 6, 20), invited=2, present=2, excused=0),
        closed("t2m2", "T2B2", on(M1, 26, 20), invited=1, present=0, excused=0),  # nobody came
        studied("t2a1", "T2B1", on(M1, 10)),
        # month 2: a new branch, a merge, a move
        unit("T2B4", OrgLevel.branch, "T2X2", on(M2, 2, 7)),
        *member("t2d1", "T2B4", on(M2, 2)),
        studied("t2b1", "T2B2", on(M2, 3)),
        activated("t2a2", "T2B1", on(M2, 4)),
        closed("t2m3", "T2B1", on(M2, 5, 20), invited=3, present=3, excused=0),
        closed("t2m4", "T2B3", on(M2, 8, 20), invited=2, present=1, excused=1),
        signed_in("t2c1", "T2B3", on(M2, 10)),
        *content(),
        *feedback("t2f1", "T2B1", on(M2, 3), on(M2, 5), days=7),  # answered in 2 days
        *feedback("t2f2", "T2B3", on(M2, 3), on(M2, 13), days=7),  # 10 days: late
        HISTORY.make(UnitMerged(unit_id="T2B2", into_unit_id="T2B1"), "T2B2", on(M2, 15)),
        HISTORY.make(
            UnitMoved(unit_id="T2B3", from_parent_id="T2X2", to_parent_id="T2X1"),
            "T2B3",
            on(M2, 20),
        ),
    ]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def driven(app: FastAPI, client: httpx.AsyncClient, bearer: Any) -> AsyncIterator[None]:
    events = two_months()
    await HISTORY.publish(app, events)
    await HISTORY.publish(app, events[-8:])  # a redelivery changes nothing
    viewer = bearer(Role.province_admin, "T2P")

    async def settled() -> bool:
        r = await client.get("/units/T2P/figures", params={"month": M2}, headers=viewer)
        if r.status_code != 200:
            return False
        f = r.json()["unit"]["figures"]
        rows = {c["code"]: c for c in r.json()["children"]}
        return (
            f["members_on_list"] == 6
            and f["meetings_held"] == 2
            and rows.get("T2X1", {}).get("figures", {}).get("members_on_list") == 5
            and f["study_completed"] == 2
        )

    await eventually(settled, timeout=60)
    yield


async def figures(
    client: httpx.AsyncClient, headers: dict[str, str], code: str, month: str | None = None
) -> dict[str, Any]:
    r = await client.get(
        f"/units/{code}/figures", params={"month": month} if month else {}, headers=headers
    )
    assert r.status_code == 200, r.text
    return r.json()


def rows_of(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["code"]: c for c in body["children"]}


async def test_each_month_counts_what_had_happened_on_the_tree_of_its_date(
    driven: None, client: httpx.AsyncClient, bearer: Any
) -> None:
    viewer = bearer(Role.province_admin, "T2P")
    m1 = await figures(client, viewer, "T2P", M1)
    f = m1["unit"]["figures"]
    assert (f["members_on_list"], f["members_in_scope"], f["pending_approval"]) == (5, 4, 1)
    assert f["registered"] == 2 and f["registered_rate"] == 50.0
    assert (f["branches"], f["branches_met"], f["meetings_held"]) == (3, 2, 2)
    assert (f["invited"], f["present"], f["absent_without_leave"]) == (3, 2, 1)
    assert f["attendance_rate"] == 66.7
    assert f["active_in_month"] == 2 and f["study_completed"] == 1
    rows = rows_of(m1)
    assert set(rows) == {"T2X1", "T2X2"}  # the tree of M1's end: no T2B4 yet
    assert rows["T2X1"]["figures"]["members_on_list"] == 3
    assert rows["T2X2"]["figures"]["members_on_list"] == 2
    # a branch with no meeting is not a 0% meeting
    assert rows["T2X2"]["figures"]["attendance_rate"] is None
    assert rows["T2X2"]["attendance_label"] == "Chưa họp"
    b2 = await figures(client, viewer, "T2B2", M1)
    assert b2["unit"]["figures"]["attendance_rate"] == 0.0
    assert b2["unit"]["attendance_label"] is None

    m2 = await figures(client, viewer, "T2P", M2)
    f = m2["unit"]["figures"]
    assert (f["members_on_list"], f["members_in_scope"], f["registered"]) == (6, 5, 4)
    assert (f["branches"], f["branches_met"], f["meetings_held"]) == (3, 2, 2)
    assert (f["invited"], f["present"], f["excused"]) == (5, 4, 1)
    assert f["study_completed"] == 2 and f["active_in_month"] == 1
    rows = rows_of(m2)
    # T2B2 merged into T2B1, T2B3 moved to T2X1 (before the month's end): all under T2X1
    assert rows["T2X1"]["figures"]["members_on_list"] == 5
    assert rows["T2X1"]["figures"]["meetings_held"] == 2  # T2B3's meeting, before its move
    assert rows["T2X2"]["figures"]["members_on_list"] == 1
    assert rows["T2X2"]["attendance_label"] == "Chưa họp"
    # content and feedback of the month, no text or person in them
    assert (f["documents_published"], f["feedback_received"], f["feedback_answered"]) == (1, 2, 2)
    assert (f["feedback_answered_on_time"], f["feedback_overdue"]) == (1, 1)
    assert f["feedback_median_days"] == 6.0  # 2 and 10 days
    (document,) = [d for d in m2["documents"] if d["piece_id"] == "T2NQ57"]
    assert (document["readers"], document["members_on_list"], document["read_rate"]) == (2, 6, 33.3)
    assert not [d for d in m1["documents"] if d["piece_id"] == "T2NQ57"]  # not published yet
    x1 = await figures(client, viewer, "T2X1", M2)
    assert set(rows_of(x1)) == {"T2B1", "T2B3"}
    assert rows_of(x1)["T2B1"]["figures"]["members_on_list"] == 3  # its own two and T2B2's

    campaign = next(c for c in m2["campaigns"] if c["campaign_id"] == "T2K")
    assert (campaign["completed"], campaign["expected"], campaign["completion_rate"]) == (
        2,
        5,
        40.0,
    )
    campaign = next(c for c in m1["campaigns"] if c["campaign_id"] == "T2K")
    assert (campaign["completed"], campaign["expected"], campaign["completion_rate"]) == (
        1,
        4,
        25.0,
    )

    live = await figures(client, viewer, "T2P")
    f = live["unit"]["figures"]
    assert live["view"]["kind"] == "live" and f["members_on_list"] == 6
    assert f["meetings_held"] == 0 and live["unit"]["attendance_label"] == "Chưa họp"
    assert "registered_rate" in live["unit"]["behind_targets"]
    trends = {t["month"]: t for t in live["trends"]}
    assert trends[BEFORE]["exists"] is False and trends[BEFORE]["figures"] is None
    assert trends[M1]["figures"]["meetings"] == 2 and trends[M1]["figures"]["on_list"] == 5
    assert trends[M2]["figures"]["meetings"] == 2 and trends[M2]["figures"]["studied"] == 1
    assert trends[M1]["figures"]["branches_met"] == 2
    assert live["legend"][0]["text"].startswith("Danh sách đảng viên")

    # a unit before it existed shows "—"
    b4 = await figures(client, viewer, "T2B4", M1)
    assert b4["unit"]["exists"] is False and b4["unit"]["figures"] is None


async def test_reports_issued_late_follow_the_tree_of_their_report_day(
    driven: None, client: httpx.AsyncClient, bearer: Any
) -> None:
    admin = bearer(Role.province_admin, "T2P", subject="t2-admin")
    r = await client.post(f"/reports/T2P/{M1}", headers=admin)
    assert r.status_code in (200, 201), r.text
    report = r.json()
    f = report["figures"]
    assert report["as_of"].startswith(f"{M1}-25T16:59:59")
    assert (f["members_on_list"], f["members_in_scope"], f["registered"]) == (5, 4, 2)
    # on the 25th: one meeting held (T2B2's was on the 26th), one branch of three met
    assert (f["meetings_held"], f["branches"], f["branches_met"]) == (1, 3, 1)
    assert f["attendance_rate"] == 100.0 and f["study_completed"] == 1
    assert f["active_30d"] == 1  # the reporting period: 26th of the month before to the 25th
    rows = {row["unit_id"]: row["figures"] for row in report["rows"]}
    assert set(rows) == {"T2X1", "T2X2"}  # the tree of the 25th, though issued after changes
    assert rows["T2X1"]["members_on_list"] == 3 and rows["T2X2"]["members_on_list"] == 2
    assert rows["T2X2"]["branches"] == 1 and rows["T2X2"]["meetings_held"] == 0
    assert report["issued_as"] is None

    system = bearer(Role.system_admin, "TW", subject="sysadmin")
    r = await client.post(f"/reports/T2P/{M2}", headers=system)
    assert r.status_code in (200, 201), r.text
    report2 = r.json()
    assert (report2["issued_by"], report2["issued_as"]) == ("sysadmin", "system_admin")
    f = report2["figures"]
    # t2c1 holds an account from their first sign-in (10th)
    assert (f["members_on_list"], f["registered"], f["branches"], f["branches_met"]) == (6, 4, 3, 2)
    assert f["active_30d"] == 2  # t2b1 on the 27th of M1 and t2c1 on the 10th
    rows = {row["unit_id"]: row["figures"] for row in report2["rows"]}
    assert rows["T2X1"]["members_on_list"] == 5 and rows["T2X2"]["members_on_list"] == 1

    again = await client.post(f"/reports/T2P/{M1}", headers=admin)
    assert again.status_code == 200 and again.json() == report
    assert (await client.get(f"/reports/T2P/{M1}", headers=admin)).json() == report

    xlsx = await client.get(f"/reports/T2P/{M1}/xlsx", headers=admin)
    assert xlsx.status_code == 200
    assert xlsx.headers["content-type"].startswith("application/vnd.openxmlformats")
    sheet = load_workbook(io.BytesIO(xlsx.content))["Báo cáo"]
    values = [c for row in sheet.iter_rows(values_only=True) for c in row if c is not None]
    assert values[0].startswith("BÁO CÁO KẾT QUẢ TRIỂN KHAI")
    assert "Đảng bộ xã Hòa Bình" in values
    csv = await client.get(f"/reports/T2P/{M1}/csv", headers=admin)
    text = csv.content.decode("utf-8-sig")
    assert text.splitlines()[0].startswith("Mã đơn vị,Tên đơn vị,Cấp,Đảng viên trong danh sách")

    secretary = bearer(Role.branch_secretary, "T2B1")
    assert (await client.post(f"/reports/T2P/{M1}", headers=secretary)).status_code == 403
    current = await client.post(f"/reports/T2P/{THIS}", headers=admin)
    if TODAY.day <= 25:
        assert current.status_code == 422 and current.json()["field"] == "month"


async def test_bad_months_and_tokens_are_refused_in_the_error_shape(
    driven: None, client: httpx.AsyncClient, bearer: Any
) -> None:
    viewer = bearer(Role.province_admin, "T2P")
    for month in ("0000-01", "9999-12", "2026-13", "x" * 5000):
        r = await client.get("/units/T2P/figures", params={"month": month}, headers=viewer)
        assert r.status_code == 422 and r.json()["field"] == "month", (month, r.text)
        page = await client.get("/dashboard/T2P", params={"month": month}, headers=viewer)
        assert page.status_code == 422
    assert (await client.post("/reports/T2P/9999-12", headers=viewer)).status_code == 422
    assert (await client.get("/units/" + "A" * 300 + "/figures", headers=viewer)).status_code == 422
    # the token travels in the header only: no ?token=, no cookie
    token = viewer["Authorization"][7:]
    assert (await client.get("/units/T2P/figures", params={"token": token})).status_code == 401
    page = await client.get("/dashboard/T2P", params={"token": token})
    assert page.status_code == 401 and "set-cookie" not in page.headers
    secretary = bearer(Role.branch_secretary, "T2B1")
    assert (await client.get("/units/T2B1/figures", headers=secretary)).status_code == 200
    denied = await client.get("/units/T2P/figures", headers=secretary)
    assert denied.status_code == 403 and "quyền" in denied.json()["message"]
    page = await client.get("/dashboard/T2P", headers=secretary)
    assert page.status_code == 403 and "Không thể hiển thị" in page.text


async def test_dashboard_page_sorts_drills_down_and_states_the_rules(
    driven: None, client: httpx.AsyncClient, bearer: Any
) -> None:
    viewer = bearer(Role.central_office, "TW")
    page = await client.get("/dashboard/T2P", params={"month": M1}, headers=viewer)
    assert page.status_code == 200
    html = page.text
    assert "Đảng bộ tỉnh Thử Hai" in html and 'href="/dashboard/T2X1?month=' in html
    assert "Chưa họp" in html and "Chưa đạt" in html
    assert "không tính hồ sơ tự đăng ký đang chờ duyệt" in html
    assert "theo cây tổ chức đúng như vào ngày đó" in html
    ordered = await client.get(
        "/dashboard/T2P",
        params={"month": M1, "sort": "members_on_list", "dir": "desc"},
        headers=viewer,
    )
    assert ordered.text.index("Đảng bộ xã Hòa Bình") < ordered.text.index("Đảng bộ phường Đông Hải")
    home = await client.get("/", headers=viewer)
    assert home.status_code == 303 and home.headers["location"] == "/dashboard/TW"


async def test_rebuild_from_the_topics_equals_the_live_projection(
    driven: None, app: FastAPI
) -> None:
    runtime = app.state.runtime
    settings = runtime.settings
    target = f"{settings.database}_rebuilt"
    applied = await rebuild(
        runtime.mongo, settings.kafka_bootstrap, target, settings.report_day, batch_size=7
    )
    assert applied >= len(HISTORY.envelopes)
    ours = {"_id": {"$in": UNITS}}
    live = [strip_zeros(d) async for d in runtime.db[ROLLUPS].find(ours).sort("_id", 1)]
    again = [strip_zeros(d) async for d in runtime.mongo[target][ROLLUPS].find(ours).sort("_id", 1)]
    assert len(live) == len(UNITS) and again == live
    await runtime.mongo.drop_database(target)


async def test_usage_stream_goes_through_the_outbox_to_the_central_office(
    driven: None, app: FastAPI, client: httpx.AsyncClient, bearer: Any
) -> None:
    central = bearer(Role.central_office, "TW")
    r = await client.post("/usage/publish", params={"unit": "T2P"}, headers=central)
    assert r.status_code == 200 and r.json()["published"] == 3  # T2P, T2X1, T2X2
    unpublished = {"aggregate_type": "UsageFigures", "aggregate_id": "T2X1"}
    assert await app.state.runtime.store.events.count_documents(unpublished) >= 1
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "sotay_reporting.follow_usage",
        "--bootstrap",
        app.state.runtime.settings.kafka_bootstrap,
        "--unit",
        "T2X1",
        "--from-beginning",
        "--max",
        "1",
        "--timeout",
        "60",
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONIOENCODING": "utf-8"},
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=90)
    assert process.returncode == 0, err.decode()
    assert out.decode().startswith("T2X1 | Đảng bộ xã Hòa Bình")
    assert "Nguyễn" not in out.decode()  # aggregate figures only, no personal data
