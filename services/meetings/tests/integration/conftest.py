"""The meetings app against the real servers, one app per test module.

The roster and the tree are fed the way they are in production: identity's and
org-tree's events published on their topics, through the app's own broker. The
app is shared by a module's tests, their data is not: each test gets a `world`
of its own (a province, a commune, two branches and their members under ids no
other test uses), so every test passes alone and in any order.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest
import pytest_asyncio
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from sotay_events import topics
from sotay_events.catalogue.identity import (
    Gender,
    MemberRegistered,
    MemberRegistrationApproved,
    MemberStatus,
    RoleGranted,
)
from sotay_events.catalogue.org_tree import OrgLevel
from sotay_meetings.main import create_app
from sotay_meetings.settings import MeetingsSettings
from sotay_platform.auth import Grant, Role, TokenIssuer
from sotay_platform.settings import AuthSettings, InfraSettings
from sotay_platform.testing import EventFeed, eventually


class Clock:
    """The app's clock, moved by the tests: meetings happen in minutes, not hours.

    It runs with real time, shifted: facts from other services carry real moments,
    and what counted at the app's "now" must include what was just published."""

    def __init__(self) -> None:
        self.offset = timedelta()

    @property
    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.offset += timedelta(**delta)

    def reset(self, offset: timedelta = timedelta()) -> None:
        self.offset = offset


class Feed(EventFeed):
    """Publishes identity's facts as it would, beside org-tree's."""

    async def member(
        self,
        member_id: str,
        branch: str,
        status: MemberStatus = MemberStatus.official,
        approved: bool = True,
        name: str | None = None,
        occurred_at: datetime | None = None,
    ) -> None:
        await self.send(
            topics.IDENTITY,
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
            occurred_at=occurred_at,
        )
        if approved:
            await self.send(
                topics.IDENTITY,
                member_id,
                MemberRegistrationApproved(member_id=member_id, branch_id=branch, approved_by="s"),
                occurred_at=occurred_at,
            )

    async def role(self, member_id: str, role: Role, unit_id: str) -> None:
        await self.send(
            topics.IDENTITY,
            member_id,
            RoleGranted(member_id=member_id, role=role.value, unit_id=unit_id, granted_by="admin"),
        )


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


CB1_EXPECTED = ["m0", "m1", "m2", "m3", "m4", "m5"]


@dataclass
class World:
    """One test's own tree and people: P > X1 (commune committee) > CB1, CB2 (branches),
    and an empty commune X2. CB1: m0 (the secretary), m1..m5 official or probationary,
    m6 exempted, m7 not approved. CB2: x1. X1's committee office: c0. `id("m1")` is the
    member id, `unit("CB1")` the unit id, `people["m1"]` the member's headers."""

    suffix: str
    people: dict[str, dict[str, str]] = field(default_factory=dict)

    def id(self, short: str) -> str:
        return f"{self.suffix}-{short}"

    def unit(self, short: str) -> str:
        return f"{short}{self.suffix}"

    def ids(self, shorts: list[str]) -> list[str]:
        return [self.id(s) for s in shorts]


async def build_world(
    client: httpx.AsyncClient,
    feed: Feed,
    bearer: Callable[..., dict[str, str]],
    *,
    created_at: datetime | None = None,
    extra_cb1: int = 0,
) -> World:
    """Publish a fresh world and wait until the app's projections hold it."""
    world = World(uuid.uuid4().hex[:8].upper())
    u, m = world.unit, world.id
    await feed.unit(u("P"), OrgLevel.province, None, created_at)
    await feed.unit(u("X1"), OrgLevel.commune, u("P"), created_at)
    await feed.unit(u("X2"), OrgLevel.commune, u("P"), created_at)
    await feed.unit(u("CB1"), OrgLevel.branch, u("X1"), created_at)
    await feed.unit(u("CB2"), OrgLevel.branch, u("X1"), created_at)
    extra = [f"e{i}" for i in range(extra_cb1)]
    for short in [*CB1_EXPECTED, *extra]:
        status = MemberStatus.probationary if short == "m5" else MemberStatus.official
        await feed.member(m(short), u("CB1"), status, occurred_at=created_at)
    await feed.member(m("m6"), u("CB1"), MemberStatus.exempted, occurred_at=created_at)
    await feed.member(m("m7"), u("CB1"), approved=False, occurred_at=created_at)
    await feed.member(m("x1"), u("CB2"), occurred_at=created_at)
    await feed.role(m("m0"), Role.branch_secretary, u("CB1"))
    world.people = {
        "secretary": bearer(m("m0"), Role.branch_secretary, u("CB1")),
        "other_secretary": bearer(m("x1"), Role.branch_secretary, u("CB2")),
        "committee": bearer(m("c0"), Role.committee_admin, u("X1")),
        "central": bearer(subject=f"ops-{world.suffix}", role=Role.system_admin, unit="TW"),
        **{s: bearer(m(s), Role.member, u("CB1")) for s in [*CB1_EXPECTED, "m6", "m7", *extra]},
        "x1": bearer(m("x1"), Role.member, u("CB2")),
    }

    async def arrived(branch: str, count: int) -> bool:
        r = await client.get(f"/units/{branch}/roster", headers=world.people["committee"])
        if r.status_code != 200:
            return False
        return sum(x["expected_at_meetings"] for x in r.json()["members"]) == count

    await eventually(lambda: arrived(u("CB1"), len(CB1_EXPECTED) + extra_cb1))
    await eventually(lambda: arrived(u("CB2"), 1))
    return world


@pytest_asyncio.fixture(loop_scope="module")
async def world(
    client: httpx.AsyncClient, feed: Feed, bearer: Callable[..., dict[str, str]]
) -> World:
    return await build_world(client, feed, bearer)


@pytest.fixture
def make_world(
    client: httpx.AsyncClient, feed: Feed, bearer: Callable[..., dict[str, str]]
) -> Callable[..., Any]:
    """For a test that needs a world built its own way (`build_world`'s keywords)."""

    async def make(**options: Any) -> World:
        return await build_world(client, feed, bearer, **options)

    return make


__all__ = ["Any", "Clock", "Feed", "World", "build_world", "iso"]
