"""The feedback app against the real servers, one app per test module.

The tree arrives the way it does in production: org-tree's events on their
topic, through the app's own broker. The app's clock is the test's.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import pytest_asyncio
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from sotay_feedback.main import create_app
from sotay_feedback.settings import FeedbackSettings
from sotay_platform.auth import Grant, Role, TokenIssuer
from sotay_platform.ratelimit import RateLimiter
from sotay_platform.settings import AuthSettings, InfraSettings
from sotay_platform.testing import EventFeed


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)  # Tuesday 09:00 in Hà Nội

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture(scope="module")
def feedback_settings(infra: InfraSettings) -> FeedbackSettings:
    unique = uuid.uuid4().hex[:8]
    return FeedbackSettings(
        **{
            **infra.model_dump(),
            "database": f"feedback_{unique}",
            "consumer_group_prefix": f"test-{unique}",
            "relay_idle_interval": 0.05,
            "kafka_partitions": 3,
            "watcher_interval_seconds": 0.2,
            "submit_limit_per_hour": 10,
        }
    )


@pytest.fixture(scope="module")
def clock() -> Clock:
    return Clock()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def app(
    feedback_settings: FeedbackSettings, auth_settings: AuthSettings, clock: Clock
) -> AsyncIterator[FastAPI]:
    app = create_app(feedback_settings, auth_settings)
    app.state.service.clock = clock
    # Counts of this module's own, whatever Redis it shares with other runs.
    app.state.rate_limiter = RateLimiter(
        app.state.runtime.redis, prefix=f"ratelimit-{feedback_settings.database}"
    )
    async with LifespanManager(app, startup_timeout=60, shutdown_timeout=30):
        # The broker starts beside the app (commands never wait for Kafka); the feed does.
        await asyncio.wait_for(app.state.runtime.broker_started.wait(), 60)
        yield app


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://feedback") as client:
        yield client


@pytest.fixture(scope="module")
def feed(app: FastAPI) -> EventFeed:
    return EventFeed(app)


@pytest.fixture(scope="module")
def bearer(token_issuer: TokenIssuer) -> Callable[..., dict[str, str]]:
    def make(
        member_id: str | None, role: Role, unit: str, subject: str | None = None
    ) -> dict[str, str]:
        token = token_issuer.issue(
            subject or member_id or f"{role.value}-{unit}", [Grant(role, unit)], member_id=member_id
        )
        return {"Authorization": f"Bearer {token}"}

    return make
