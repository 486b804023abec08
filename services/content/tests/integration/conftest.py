"""The content app against the real servers, one app per test module.

The tree is fed the way it is in production: org-tree's events published on
its topic, through the app's own broker.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
import pytest_asyncio
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from sotay_content.main import create_app
from sotay_content.settings import ContentSettings
from sotay_events.catalogue.org_tree import OrgLevel
from sotay_platform.auth import Grant, Role, TokenIssuer
from sotay_platform.settings import AuthSettings, InfraSettings
from sotay_platform.testing import EventFeed


@pytest.fixture(scope="module")
def content_settings(infra: InfraSettings) -> ContentSettings:
    unique = uuid.uuid4().hex[:8]
    return ContentSettings(
        **{
            **infra.model_dump(),
            "database": f"content_{unique}",
            "consumer_group_prefix": f"test-{unique}",
            "relay_idle_interval": 0.05,
            "kafka_partitions": 3,
            "scheduler_interval_seconds": 0.2,
        }
    )


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def app(
    content_settings: ContentSettings, auth_settings: AuthSettings
) -> AsyncIterator[FastAPI]:
    app = create_app(content_settings, auth_settings)
    async with LifespanManager(app, startup_timeout=60, shutdown_timeout=30):
        yield app


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://content") as client:
        yield client


@pytest.fixture(scope="module")
def feed(app: FastAPI) -> EventFeed:
    return EventFeed(app)


@pytest.fixture(scope="module")
def bearer(token_issuer: TokenIssuer) -> Callable[..., dict[str, str]]:
    def make(subject: str, *grants: tuple[Role, str], member: bool = False) -> dict[str, str]:
        token = token_issuer.issue(
            subject,
            [Grant(role, unit) for role, unit in grants],
            member_id=subject if member else None,
        )
        return {"Authorization": f"Bearer {token}"}

    return make


__all__ = ["EventFeed", "OrgLevel"]
