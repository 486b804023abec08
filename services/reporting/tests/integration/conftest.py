from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
import pytest_asyncio
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from sotay_events import DomainEvent, EventEnvelope
from sotay_events.outbox import headers_of
from sotay_platform.auth import Grant, Role, TokenIssuer
from sotay_platform.settings import AuthSettings, InfraSettings
from sotay_platform.testing import EventHistory
from sotay_reporting.main import create_app
from sotay_reporting.settings import ReportingSettings


def reporting_settings(infra: InfraSettings, **overrides: Any) -> ReportingSettings:
    unique = uuid.uuid4().hex[:8]
    values: dict[str, Any] = {
        **infra.model_dump(),
        "database": f"reporting_{unique}",
        "consumer_group_prefix": f"test-{unique}",
        "relay_idle_interval": 0.05,
        "kafka_partitions": 3,
        "cache_seconds": 0,
        "usage_publish_interval": 0,
        **overrides,
    }
    return ReportingSettings(**values)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def app(infra: InfraSettings, auth_settings: AuthSettings) -> AsyncIterator[FastAPI]:
    app = create_app(reporting_settings(infra), auth_settings)
    async with LifespanManager(app, startup_timeout=60, shutdown_timeout=30):
        yield app


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://reporting") as client:
        yield client


@pytest.fixture(scope="session")
def bearer(token_issuer: TokenIssuer) -> Callable[..., dict[str, str]]:
    def make(
        role: Role = Role.central_office, unit: str = "TW", subject: str = "viewer"
    ) -> dict[str, str]:
        token = token_issuer.issue(subject, [Grant(role, unit)], ttl_seconds=3600)
        return {"Authorization": f"Bearer {token}"}

    return make


class History(EventHistory):
    """Envelopes as the producing services would publish them, with their versions."""

    async def publish(self, app: FastAPI, envelopes: list[EventEnvelope]) -> None:
        """As the producing service's relay would: keyed by aggregate, routing headers."""
        broker = app.state.runtime.broker
        for envelope in envelopes:
            topic = type(_model(envelope)).topic
            await broker.publish(
                envelope.to_bytes(),
                topic,
                key=envelope.aggregate_id.encode(),
                headers=headers_of(envelope),
            )


def _model(envelope: EventEnvelope) -> DomainEvent:
    from sotay_events import decode

    return decode(envelope)
