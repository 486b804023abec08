"""The bootstrap: the one place that wires learning together."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi import FastAPI

from sotay_events import topics
from sotay_learning import api
from sotay_learning.handlers import LearningService
from sotay_learning.projections import (
    LearningProjection,
    LearningTree,
    MongoDirectory,
    RosterProjection,
)
from sotay_learning.projections import create_indexes as create_learning_indexes
from sotay_learning.queries import Reads
from sotay_learning.rollup import Rollup
from sotay_learning.settings import LearningSettings
from sotay_platform.health import Check
from sotay_platform.org_units import create_indexes as create_tree_indexes
from sotay_platform.runtime import ServiceRuntime
from sotay_platform.settings import AuthSettings


class LearningRuntime(ServiceRuntime):
    """The shared runtime, with the roll-up worker and its health."""

    def __init__(self, settings: LearningSettings, auth: AuthSettings | None = None) -> None:
        super().__init__(settings, auth)
        self.rollup = Rollup(self.db, settings.rollup_interval, settings.rollup_lease_seconds)
        self.workers.append(("learning-rollup", self.rollup.run))

    def health_checks(self) -> dict[str, Check]:
        checks = super().health_checks()

        async def rollup() -> dict[str, Any]:
            return {
                "ok": self.rollup.last_error is None,
                "active": self.rollup.lease.held,
                "runs": self.rollup.runs,
                "last_run_at": (
                    self.rollup.last_run_at.isoformat() if self.rollup.last_run_at else None
                ),
                "last_error": self.rollup.last_error,
            }

        return checks | {"rollup": rollup}


def create_app(
    settings: LearningSettings | None = None, auth: AuthSettings | None = None
) -> FastAPI:
    settings = settings or LearningSettings()
    runtime = LearningRuntime(settings, auth)
    runtime.add_projection(LearningTree(), [topics.ORG_TREE])
    runtime.add_projection(RosterProjection(), [topics.IDENTITY])
    runtime.add_projection(LearningProjection(), [topics.LEARNING, topics.IDENTITY])
    runtime.startup_hooks.append(lambda: create_tree_indexes(runtime.db))
    runtime.startup_hooks.append(lambda: create_learning_indexes(runtime.db))

    app = FastAPI(
        title="Sổ tay — learning",
        description=(
            "Học tập, quán triệt nghị quyết: đợt học tập, tài liệu, bài kiểm tra, "
            "ngân hàng câu hỏi, cuộc thi tìm hiểu, bài thu hoạch, kết quả theo đơn vị."
        ),
        lifespan=runtime.lifespan,
    )
    runtime.install(app)
    app.state.service = LearningService(
        runtime.store,
        MongoDirectory(runtime.db),
        submit_grace=timedelta(seconds=settings.submit_grace_seconds),
    )
    app.state.reads = Reads(runtime.db, runtime.store)
    app.include_router(api.router)

    return app
