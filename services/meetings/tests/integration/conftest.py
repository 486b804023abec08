"""The meetings app against the real servers, one app per test module.

The roster and the tree are fed the way they are in production: identity's and
org-tree's events published on their topics, through the app's own broker.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest
import pytest_asyncio
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from sotay_events import DomainEvent, EventEnvelope, topics
from sotay_events.catalogue.identity import (
    Gender,
    MemberRegistered,
    MemberRegistrationApproved,
    MemberStatus,
    RoleGranted,
)
from sotay_events.catalogue.org_tree import OrgLevel, UnitCreated
from sotay_meetings.main import create_app
from sotay_meetings.settings import MeetingsSettings
from sotay_platform.auth import Grant, Role, TokenIssuer
from sotay_platform.settings import AuthSettings, InfraSettings


class Clock:
    """The app's clock, moved by the tests: meetings happen in minutes, not hours."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC).replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


class Feed:
    """Publishes other services' events as they would: enveloped, keyed by aggregate id."""

    def __init__(self, app: FastAPI) -> None:
        self.broker = app.state.runtime.broker
        self.versions: dict[str, int] = {}

    async def publish(
        self,
        topic: str,
        aggregate_type: str,
        aggregate_id: str,
        event: DomainEvent,
        org_path: tuple[str, ...] = (),
    ) -> None:
        key = f"{aggregate_type}-{aggregate_id}"
        self.versions[key] = self.versions.get(key, 0) + 1
        envelope = EventEnvelope(
            event_type=event.event_type,
            schema_version=event.schema_version,
            aggregate_type=aggregate_type,
            aggregate_id=aggregate_id,
            aggregate_version=self.versions[key],
            org_path=org_path,
            payload=event.model_dump(mode="json"),
        )
        await self.broker.publish(envelope.to_bytes(), topic, key=aggregate_id.encode())

    async def unit(self, unit_id: str, level: OrgLevel, parent: str | None) -> None:
        await self.publish(
            topics.ORG_TREE,
            "OrgUnit",
            unit_id,
            UnitCreated(unit_id=unit_id, name=f"Đơn vị {unit_id}", level=level, parent_id=parent),
        )

    async def member(
        self,
        member_id: str,
        branch: str,
        status: MemberStatus = MemberStatus.official,
        approved: bool = True,
        name: str | None = None,
    ) -> None:
        await self.publish(
            topics.IDENTITY,
            "Member",
            member_id,
            MemberRegistered(
                member_id=member_id,
                full_name=name or f"Đồng chí {member_id}",
                gender=Gender.male,
                branch_id=branch,
                status=status,
                admitted_on=date(2010, 5, 19),
                registered_by="secretary" if approved else "self",
            ),
        )
        if approved:
            await self.publish(
                topics.IDENTITY,
                "Member",
                member_id,
                MemberRegistrationApproved(member_id=member_id, branch_id=branch, approved_by="s"),
            )

    async def role(self, member_id: str, role: Role, unit_id: str) -> None:
        await self.publish(
            topics.IDENTITY,
            "Member",
            member_id,
            RoleGranted(member_id=member_id, role=role.value, unit_id=unit_id, granted_by="admin"),
        )

    async def event(
        self, topic: str, aggregate_type: str, aggregate_id: str, event: DomainEvent
    ) -> None:
        await self.publish(topic, aggregate_type, aggregate_id, event)


@pytest.fixture(scope="module")
def meetings_settings(infra: InfraSettings) -> MeetingsSettings:
    unique = uuid.uuid4().hex[:8]
    return MeetingsSettings(
        **{
            **infra.model_dump(),
            "database": f"meetings_{unique}",
            "consumer_group_prefix": f"test-{unique}",
            "relay_idle_interval": 0.05,
            "kafka_partitions": 3,
            "checkin_secret": "integration-secret",
        }
    )


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def app(
    meetings_settings: MeetingsSettings, auth_settings: AuthSettings
) -> AsyncIterator[FastAPI]:
    app = create_app(meetings_settings, auth_settings)
    async with LifespanManager(app, startup_timeout=60, shutdown_timeout=30):
        yield app


@pytest.fixture(scope="module")
def clock(app: FastAPI) -> Clock:
    clock = Clock()
    app.state.service.clock = clock
    return clock


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://meetings") as client:
        yield client


@pytest.fixture(scope="module")
def feed(app: FastAPI) -> Feed:
    return Feed(app)


@pytest.fixture(scope="module")
def bearer(token_issuer: TokenIssuer) -> Callable[..., dict[str, str]]:
    def make(
        member_id: str | None = None,
        role: Role = Role.member,
        unit: str = "TW",
        subject: str | None = None,
    ) -> dict[str, str]:
        token = token_issuer.issue(
            subject or member_id or "tester", [Grant(role, unit)], member_id=member_id
        )
        return {"Authorization": f"Bearer {token}"}

    return make


def iso(moment: datetime) -> str:
    return moment.isoformat()


__all__ = ["Any", "Clock", "Feed", "iso"]
