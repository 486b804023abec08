"""The bootstrap: the one place that wires meetings together."""

from __future__ import annotations

from datetime import timedelta

from fastapi import FastAPI

from sotay_events import topics
from sotay_meetings import api
from sotay_meetings.checkin import (
    BatchedStreamStarter,
    CheckinCodes,
    MongoLedger,
    RedisMeetingCache,
)
from sotay_meetings.domain import Window
from sotay_meetings.handlers import MeetingsService
from sotay_meetings.projections import (
    MeetingViews,
    MeetingViewsProjection,
    Roster,
    RosterProjection,
    UnitDirectory,
)
from sotay_meetings.settings import MeetingsSettings
from sotay_platform.org_units import OrgUnitsProjection
from sotay_platform.org_units import create_indexes as create_tree_indexes
from sotay_platform.runtime import ServiceRuntime
from sotay_platform.settings import AuthSettings


def create_app(
    settings: MeetingsSettings | None = None, auth: AuthSettings | None = None
) -> FastAPI:
    settings = settings or MeetingsSettings()
    runtime = ServiceRuntime(settings, auth)
    runtime.add_projection(OrgUnitsProjection(), [topics.ORG_TREE])
    runtime.add_projection(RosterProjection(), [topics.IDENTITY])
    views_runner = runtime.add_projection(MeetingViewsProjection(), [topics.MEETINGS])

    units = UnitDirectory(runtime.db)
    roster = Roster(runtime.db)
    views = MeetingViews(runtime.db)
    ledger = MongoLedger(runtime.store)

    async def create_indexes() -> None:
        await create_tree_indexes(runtime.db)
        await roster.create_indexes()
        await views.create_indexes()
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
        starter=BatchedStreamStarter(
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
        on_saved=runtime.relay.wake,
    )
    app.state.units = units
    app.state.roster = roster
    app.state.views = views
    app.state.views_runner = views_runner
    app.include_router(api.router)

    return app
