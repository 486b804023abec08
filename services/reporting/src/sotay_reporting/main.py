"""The bootstrap: the one place that wires reporting together."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

from fastapi import FastAPI

from sotay_events import topics
from sotay_platform.auth import Grant, Principal, Role
from sotay_platform.runtime import ServiceRuntime
from sotay_platform.settings import AuthSettings
from sotay_reporting import api
from sotay_reporting.figures import add_months, end_of_day_utc, month_key, report_date, today_local
from sotay_reporting.projections import UsageProjection
from sotay_reporting.queries import UsageQueries
from sotay_reporting.reports import ReportService
from sotay_reporting.settings import ReportingSettings
from sotay_reporting.usage_stream import UsagePublisher

log = logging.getLogger(__name__)

# One projection reads the tree and every service's facts, so each batch sees one tree.
USAGE_SOURCES = [
    topics.ORG_TREE,
    topics.IDENTITY,
    topics.MEETINGS,
    topics.LEARNING,
    topics.CONTENT,
    topics.FEEDBACK,
]
SYSTEM = Principal(subject="reporting-scheduler")


def create_app(
    settings: ReportingSettings | None = None, auth: AuthSettings | None = None
) -> FastAPI:
    settings = settings or ReportingSettings()
    runtime = ServiceRuntime(settings, auth)
    usage = UsageProjection(settings.report_day)
    runtime.add_projection(usage, USAGE_SOURCES)
    runtime.startup_hooks.append(lambda: usage.create_indexes(runtime.db))

    queries = UsageQueries(runtime.db, settings.report_day, settings.cache_seconds)
    ahead = timedelta(days=settings.report_clock_ahead_days)
    reports = ReportService(
        runtime.store, queries, settings.report_day, clock=lambda: datetime.now(UTC) + ahead
    )
    publisher = UsagePublisher(runtime.store, runtime.db, queries, settings.usage_levels)

    if settings.usage_publish_interval > 0:
        runtime.workers.append(
            (
                "usage-stream",
                lambda: publisher.run(settings.usage_publish_interval, runtime.redis),
            )
        )
    if settings.auto_report_units:
        runtime.workers.append(("monthly-reports", lambda: _auto_reports(reports, settings)))
    runtime.readiness_checks["usage_stream"] = publisher.health

    app = FastAPI(
        title="Sổ tay — reporting",
        description=(
            "Bảng theo dõi triển khai, sử dụng Sổ tay đảng viên điện tử; báo cáo định kỳ "
            "ngày 25 hằng tháng; luồng số liệu sử dụng cho Trung ương."
        ),
        lifespan=runtime.lifespan,
    )
    runtime.install(app)
    app.state.queries = queries
    app.state.reports = reports
    app.state.publisher = publisher
    app.include_router(api.router)
    return app


async def _auto_reports(reports: ReportService, settings: ReportingSettings) -> None:
    """Issue last due month's report for the configured units once its report day is over."""

    scheduler = Principal(
        subject=SYSTEM.subject,
        grants=tuple(Grant(Role.system_admin, u) for u in settings.auto_report_units),
    )
    while True:
        now = reports.clock()
        month = month_key(today_local(now))
        if now < end_of_day_utc(report_date(month, settings.report_day)):
            month = add_months(month, -1)
        for unit in settings.auto_report_units:
            try:
                await reports.issue(scheduler, unit, month)  # the stream gets it in its commit
            except Exception:
                log.exception("automatic monthly report for %s %s failed", unit, month)
        await asyncio.sleep(settings.auto_report_check_interval)
