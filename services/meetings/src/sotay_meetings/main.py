"""The bootstrap: the one place that wires meetings together."""

from __future__ import annotations

from datetime import timedelta

from fastapi import FastAPI
from redis.asyncio import BlockingConnectionPool, Redis

from sotay_events import GroupCommit, topics
from sotay_meetings import api
from sotay_meetings.checkin import CheckinCodes, MongoLedger, RedisMeetingCache
from sotay_meetings.domain import Window
from sotay_meetings.handlers import MeetingsService
from sotay_meetings.projections import (
    MeetingViews,
    MeetingViewsProjection,
    Roster,
    RosterProjection,
)
from sotay_meetings.settings import MeetingsSettings
from sotay_platform.org_units import OrgUnits, OrgUnitsProjection
from sotay_platform.runtime import ServiceRuntime
from sotay_platform.settings import AuthSettings


def create_app(
    settings: MeetingsSettings | None = None, auth: AuthSettings | None = None
) -> FastAPI:
    settings = settings or MeetingsSettings()
    runtime = ServiceRuntime(settings, auth)
    # A burst (a whole branch checking in at once) waits for a Redis connection instead of
    # failing: the default pool refuses the 101st concurrent command ("Too many connections").
    runtime.redis = Redis(
        connection_pool=BlockingConnectionPool.from_url(
            settings.redis_url, max_connections=settings.redis_max_connections, timeout=10
        )
    )
    tree_projection = OrgUnitsProjection()
    runtime.add_projection(tree_projection, [topics.ORG_TREE])
    runtime.add_projection(RosterProjection(), [topics.IDENTITY])
    views_projection = MeetingViewsProjection()
    views_runner = runtime.add_projection(views_projection, [topics.MEETINGS])

    units = OrgUnits(runtime.db)
    roster = Roster(runtime.db)
    views = MeetingViews(runtime.db)
    ledger = MongoLedger(runtime.store)

    async def create_indexes() -> None:
        await tree_projection.create_indexes(runtime.db)
        await roster.create_indexes()
        await views_projection.create_indexes(runtime.db)
        await ledger.create_indexes()

    runtime.startup_hooks.append(create_indexes)

    app = FastAPI(
        title="Sổ tay — meetings",
        description=(
            "Sinh hoạt chi bộ: mời họp, xin vắng, điểm danh, lấy ý kiến, biên bản, "
            "đánh giá và báo cáo lên cấp ủy cấp trên."
        ),
        lifespan=runtime.lifespan,
    )
    runtime.install(app)
    app.state.service = MeetingsService(
        runtime.store,
        units=units,
        roster=roster,
        cache=RedisMeetingCache(runtime.redis),
        hot_path=GroupCommit(
            runtime.store,
            max_batch=settings.attendance_batch_max,
            flushers=settings.attendance_flushers,
        ),
        ledger=ledger,
        codes=CheckinCodes(
            settings.checkin_secret.get_secret_value().encode(),
            digits=settings.checkin_code_digits,
            step_seconds=settings.checkin_code_step_seconds,
            link_base=settings.checkin_link_base,
        ),
        window=Window(
            opens_before=timedelta(minutes=settings.checkin_opens_before_minutes),
            closes_after=timedelta(minutes=settings.checkin_closes_after_minutes),
        ),
        max_wrong_codes=settings.checkin_max_wrong_codes,
        typed_at_skew=timedelta(seconds=settings.checkin_typed_at_skew_seconds),
        typed_at_max_age=timedelta(hours=settings.checkin_typed_at_max_age_hours),
    )
    app.state.units = units
    app.state.roster = roster
    app.state.views = views
    app.state.views_runner = views_runner
    app.include_router(api.router)

    return app
