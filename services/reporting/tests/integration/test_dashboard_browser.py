"""The dashboard in a real headless Chromium: Vietnamese renders, the table drills down.

Debian's chromium is driven by Playwright through `executable_path`; the test
installs what is missing (apt-get as root, pip for playwright) rather than skip.
The screenshot is written next to the committed one as `dashboard.png.actual`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import uvicorn

from sotay_events.catalogue.identity import (
    AccountActivated,
    Gender,
    MemberRegistered,
    MemberRegistrationApproved,
    MemberSignedIn,
    MemberStatus,
)
from sotay_events.catalogue.learning import (
    ResolutionStudied,
    StudyCampaignLaunched,
    StudyStarted,
)
from sotay_events.catalogue.meetings import MeetingClosed, MeetingKind
from sotay_events.catalogue.org_tree import OrgLevel, UnitCreated
from sotay_platform.auth import Grant, Role, TokenIssuer
from sotay_platform.settings import AuthSettings, InfraSettings
from sotay_platform.testing import eventually
from sotay_reporting.main import create_app

from .conftest import History, reporting_settings

pytestmark = pytest.mark.asyncio(loop_scope="module")

CHROMIUM = os.environ.get("SOTAY_CHROMIUM", "/usr/bin/chromium")
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
SCREENSHOTS = Path(__file__).resolve().parents[1] / "screenshots"

COMMUNES = [
    ("QNG.XA", "Đảng bộ xã Bình Sơn"),
    ("QNG.XB", "Đảng bộ phường Trương Quang Trọng"),
    ("QNG.XC", "Đảng bộ xã Đức Phổ"),
    ("QNG.XD", "Đảng bộ đặc khu Lý Sơn"),
    ("QNG.XE", "Đảng bộ xã Sơn Hà"),
]
BRANCH_NAMES = [
    "Chi bộ thôn Phú Lộc",
    "Chi bộ khu dân cư số 3",
    "Chi bộ Trường THCS Nguyễn Nghiêm",
    "Chi bộ thôn Đông Yên",
]


def ensure_browser() -> None:
    try:
        import playwright  # noqa: F401
    except ImportError:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "playwright"], check=True)
    if not Path(CHROMIUM).exists():
        if os.geteuid() != 0 or not shutil.which("apt-get"):
            pytest.fail("chromium is missing and cannot be installed here (needs root and apt-get)")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
        subprocess.run(["apt-get", "install", "-y", "-qq", "chromium"], check=True, env=env)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def province_history() -> History:
    """A small province: five communes, four branches each, members, sign-ins and meetings."""
    history = History()
    now = datetime.now(UTC)
    start = now - timedelta(days=200)
    history.make(
        UnitCreated(unit_id="TW", name="Trung ương", level=OrgLevel.central), "TW", start, ("TW",)
    )
    history.make(
        UnitCreated(
            unit_id="QNG", name="Đảng bộ tỉnh Quảng Ngãi", level=OrgLevel.province, parent_id="TW"
        ),
        "QNG",
        start,
        ("TW", "QNG"),
    )
    history.make(
        StudyCampaignLaunched(
            campaign_id="QNG-57",
            unit_id="QNG",
            resolution_code="57-NQ/TW",
            resolution_title="Đột phá phát triển khoa học, công nghệ, đổi mới sáng tạo và chuyển đổi số",
            deadline=now + timedelta(days=20),
            has_quiz=True,
        ),
        "QNG-57",
        now - timedelta(days=40),
        ("TW", "QNG"),
    )
    for c, (commune, commune_name) in enumerate(COMMUNES):
        history.make(
            UnitCreated(
                unit_id=commune, name=commune_name, level=OrgLevel.commune, parent_id="QNG"
            ),
            commune,
            start,
            ("TW", "QNG", commune),
        )
        for b, branch_name in enumerate(BRANCH_NAMES):
            branch = f"{commune}-{b}"
            path = ("TW", "QNG", commune, branch)
            history.make(
                UnitCreated(
                    unit_id=branch, name=branch_name, level=OrgLevel.branch, parent_id=commune
                ),
                branch,
                start,
                path,
            )
            size = 6 + 3 * b
            for m in range(size):
                member_id = f"{branch}-m{m}"
                history.make(
                    MemberRegistered(
                        member_id=member_id,
                        full_name="Đảng viên",
                        gender=Gender.female if m % 2 else Gender.male,
                        branch_id=branch,
                        status=MemberStatus.official,
                        admitted_on=start.date(),
                        registered_by="import",
                    ),
                    member_id,
                    start + timedelta(days=1),
                    path,
                )
                history.make(
                    MemberRegistrationApproved(
                        member_id=member_id, branch_id=branch, approved_by="bt"
                    ),
                    member_id,
                    start + timedelta(days=1),
                    path,
                )
                if (m + b) % 3 == 0:
                    enrolment = f"QNG-57|{member_id}"
                    history.make(
                        StudyStarted(campaign_id="QNG-57", member_id=member_id, unit_id=branch),
                        enrolment,
                        now - timedelta(days=30),
                        path,
                    )
                    history.make(
                        ResolutionStudied(
                            campaign_id="QNG-57",
                            member_id=member_id,
                            unit_id=branch,
                            resolution_code="57-NQ/TW",
                            resolution_title="Đột phá phát triển khoa học, công nghệ",
                            materials_completed=4,
                            score=85 if m % 4 else 60,
                            passed=bool(m % 4),
                        ),
                        enrolment,
                        now - timedelta(days=29 - c),
                        path,
                    )
                if (m + c) % 5 != 0:
                    history.make(
                        AccountActivated(member_id=member_id, branch_id=branch),
                        member_id,
                        start + timedelta(days=2),
                        path,
                    )
                    for back in range(0, 180, 30 + 10 * ((m + b + c) % 4)):
                        history.make(
                            MemberSignedIn(member_id=member_id, branch_id=branch),
                            member_id,
                            now - timedelta(days=back, minutes=5),
                            path,
                        )
            for back in range(0, 6):
                if (back + b + c) % 4 == 3:
                    continue
                meeting_id = f"{branch}-h{back}"
                present = size - 1 - (back + b) % 3
                history.make(
                    MeetingClosed(
                        meeting_id=meeting_id,
                        unit_id=branch,
                        kind=MeetingKind.regular,
                        invited=size,
                        present=present,
                        excused=1,
                        absent_without_leave=size - present - 1,
                    ),
                    meeting_id,
                    now - timedelta(days=30 * back + 1),
                    path,
                )
    return history


async def _started(server: uvicorn.Server) -> bool:
    return bool(server.started)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def served(
    infra: InfraSettings, auth_settings: AuthSettings
) -> AsyncIterator[tuple[str, Any]]:
    ensure_browser()
    app = create_app(reporting_settings(infra), auth_settings)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    task = asyncio.create_task(server.serve())
    await eventually(lambda: _started(server), timeout=60, interval=0.05)
    try:
        yield f"http://127.0.0.1:{port}", app
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, timeout=30)


async def test_dashboard_renders_vietnamese_in_headless_chromium(
    served: tuple[str, Any], token_issuer: TokenIssuer, tmp_path: Path
) -> None:
    from playwright.async_api import async_playwright

    base, app = served
    history = province_history()
    await history.publish(app, history.envelopes)
    queries = app.state.queries

    async def projected() -> bool:
        try:
            rollup = await queries.rollup("QNG", queries.view())
        except Exception:
            return False
        return (
            rollup.total.counters["on_list"] == 5 * sum(6 + 3 * b for b in range(4))
            and len(rollup.children) == 5
        )

    await eventually(projected, timeout=90, interval=0.5)
    token = token_issuer.issue("tinh-uy", [Grant(Role.province_admin, "QNG")], ttl_seconds=600)

    async with async_playwright() as p:
        context = await p.chromium.launch_persistent_context(
            str(tmp_path / "profile"),
            executable_path=CHROMIUM,
            headless=True,
            args=FLAGS,
            viewport={"width": 1600, "height": 1000},
            locale="vi-VN",
            timezone_id="Asia/Ho_Chi_Minh",
            # the token travels as a header, as the web front's proxy sends it
            extra_http_headers={"Authorization": f"Bearer {token}"},
        )
        try:
            page = await context.new_page()
            response = await page.goto(f"{base}/dashboard/QNG?sort=registered_rate&dir=asc")
            assert response is not None and response.ok
            assert not await context.cookies()  # no token kept in the browser
            await page.wait_for_selector("table")
            text = await page.inner_text("body")
            for phrase in (
                "Đảng bộ tỉnh Quảng Ngãi",
                "Đảng viên trong danh sách",
                "Chi bộ sinh hoạt trên phần mềm",
                "Đơn vị trực thuộc (5)",
                "Diễn biến theo tháng",
                "Đảng bộ đặc khu Lý Sơn",
                "57-NQ/TW",
            ):
                assert phrase in text, phrase
            # Every Vietnamese letter is drawn with a real glyph, not the missing-glyph box.
            missing = await page.evaluate(
                """() => {
                    const ctx = document.createElement('canvas').getContext('2d');
                    ctx.font = getComputedStyle(document.body).fontSize + ' ' + getComputedStyle(document.body).fontFamily;
                    const tofu = ctx.measureText('\\u0378').width;
                    return [...'Đđảạấầẩẫậắằẳẵặẻẽếềểễệỉịọỏốồổỗộớờởỡợụủứừửữựỳỵỷỹơư']
                        .filter(ch => ctx.measureText(ch).width === tofu);
                }"""
            )
            assert missing == [], f"drawn as missing glyphs: {missing}"
            behind = await page.locator("tr.behind").count()
            assert behind >= 1
            color = await page.eval_on_selector(
                "tr.behind td", "td => getComputedStyle(td).borderLeftColor"
            )
            assert color == "rgb(198, 40, 40)"
            # Wall-screen layout: nothing overflows sideways, the six headline cards share a row.
            layout = await page.evaluate(
                """() => ({
                    overflow: document.documentElement.scrollWidth - window.innerWidth,
                    cardTops: [...document.querySelectorAll('.card')].map(c => Math.round(c.getBoundingClientRect().top)),
                })"""
            )
            assert layout["overflow"] <= 0, layout
            assert len(layout["cardTops"]) == 6 and len(set(layout["cardTops"])) == 1, layout
            SCREENSHOTS.mkdir(exist_ok=True)
            shot = SCREENSHOTS / "dashboard.png.actual"
            await page.screenshot(path=str(shot), full_page=True, type="png")
            assert shot.stat().st_size > 50_000
            # drill down into a commune, then its branch
            await page.click("text=Đảng bộ đặc khu Lý Sơn")
            await page.wait_for_url("**/dashboard/QNG.XD**")
            assert "Chi bộ thôn Phú Lộc" in await page.inner_text("body")
            await page.click("text=Chi bộ thôn Phú Lộc")
            await page.wait_for_url("**/dashboard/QNG.XD-0**")
            assert "Đơn vị không có đơn vị trực thuộc" in await page.inner_text("body")
        finally:
            await context.close()
