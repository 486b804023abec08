"""The background workers: the hourly usage stream and the automatic monthly report."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import pytest_asyncio
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from sotay_events.catalogue.org_tree import OrgLevel, UnitCreated
from sotay_platform.auth import Grant, Role, TokenIssuer
from sotay_platform.settings import AuthSettings, InfraSettings
from sotay_platform.testing import eventually
from sotay_reporting.figures import TZ, add_months, month_key
from sotay_reporting.main import create_app

from .conftest import History, reporting_settings

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def app(infra: InfraSettings, auth_settings: AuthSettings) -> AsyncIterator[FastAPI]:
    settings = reporting_settings(
        infra,
        usage_publish_interval=0.5,
        auto_report_units=["WK"],
        auto_report_check_interval=0.5,
        usage_levels=["province"],
    )
    app = create_app(settings, auth_settings)
    async with LifespanManager(app, startup_timeout=60, shutdown_timeout=30):
        yield app


async def test_workers_publish_the_stream_and_issue_the_due_report(
    app: FastAPI, token_issuer: TokenIssuer
) -> None:
    history = History()
    start = datetime.now(UTC) - timedelta(days=90)
    history.make(
        UnitCreated(unit_id="WK", name="Đảng bộ tỉnh Thử nghiệm", level=OrgLevel.province),
        "WK",
        start,
        ("WK",),
    )
    await history.publish(app, history.envelopes)
    today = datetime.now(TZ).date()
    due = month_key(today) if today.day > 25 else add_months(month_key(today), -1)
    token = token_issuer.issue("wk", [Grant(Role.province_admin, "WK")])
    headers = {"Authorization": f"Bearer {token}"}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://reporting") as client:

        async def issued() -> bool:
            r = await client.get(f"/reports/WK/{due}", headers=headers)
            return r.status_code == 200 and r.json()["issued_by"] == "reporting-scheduler"

        await eventually(issued, timeout=30)
        publisher = app.state.publisher
        await eventually(lambda: _published(publisher), timeout=30)
        ready = (await client.get("/health/ready")).json()
        assert ready["checks"]["usage_stream"]["ok"] is True
        assert ready["checks"]["usage_stream"]["published"] >= 1


async def _published(publisher: object) -> bool:
    return bool(getattr(publisher, "published_total", 0) >= 2)
