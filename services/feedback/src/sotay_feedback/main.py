"""The bootstrap: the one place that wires feedback together."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from gridfs import AsyncGridFSBucket

from sotay_events import topics
from sotay_feedback import api
from sotay_feedback.handlers import FeedbackService
from sotay_feedback.projections import QaProjection, QueueProjection, Views
from sotay_feedback.settings import FeedbackSettings
from sotay_feedback.units import UnitDirectory
from sotay_feedback.watcher import DeadlineWatcher
from sotay_platform.org_units import OrgUnitsProjection
from sotay_platform.org_units import create_indexes as create_tree_indexes
from sotay_platform.runtime import ServiceRuntime
from sotay_platform.settings import AuthSettings


def create_app(
    settings: FeedbackSettings | None = None, auth: AuthSettings | None = None
) -> FastAPI:
    settings = settings or FeedbackSettings()
    runtime = ServiceRuntime(settings, auth)
    runtime.add_projection(OrgUnitsProjection(), [topics.ORG_TREE])
    queue_runner = runtime.add_projection(QueueProjection(), [topics.FEEDBACK])
    qa_runner = runtime.add_projection(QaProjection(), [topics.FEEDBACK])

    service = FeedbackService(
        runtime.store, units=UnitDirectory(runtime.db), on_saved=runtime.relay.wake
    )
    views = Views(runtime.db)
    watcher = DeadlineWatcher(
        service,
        runtime.db,
        interval=settings.watcher_interval_seconds,
        batch=settings.watcher_batch,
        lease_timeout=settings.watcher_lease_timeout_seconds,
    )
    runtime.workers.append(("feedback-deadlines", watcher.run))

    async def create_indexes() -> None:
        await create_tree_indexes(runtime.db)
        await views.create_indexes()
        await watcher.create_indexes()

    runtime.startup_hooks.append(create_indexes)

    async def deadline_watcher() -> dict[str, Any]:
        return {
            "ok": watcher.last_error is None,
            "holds_lease": watcher.lease.held,
            "runs": watcher.runs,
            "reminded": watcher.reminded,
            "escalated": watcher.escalated,
            "last_error": watcher.last_error,
        }

    runtime.readiness_checks["deadline_watcher"] = deadline_watcher

    app = FastAPI(
        title="Sổ tay — feedback",
        description=(
            "Góp ý, phản ánh, đề xuất, kiến nghị, hỏi đáp của đảng viên: chuyển tới bộ phận "
            "có thẩm quyền theo bảng phân công, theo dõi thời hạn, trả lời riêng hoặc công khai."
        ),
        lifespan=runtime.lifespan,
    )
    runtime.install(app)
    app.state.service = service
    app.state.views = views
    app.state.watcher = watcher
    app.state.submit_limit = settings.submit_limit_per_hour
    app.state.files = AsyncGridFSBucket(runtime.db, bucket_name="attachments")
    app.state.queue_runner = queue_runner
    app.state.qa_runner = qa_runner
    app.include_router(api.router)
    return app
