"""One learning app per module against the real servers, and a small world to feed it.

The tree and the roster reach learning the way they do in production: as
org-tree's and identity's events on Kafka, published here with the app's own
broker. Ids carry a suffix of the module's own, because the embedded broker's
topics are shared by every test of the session.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
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
from sotay_events.catalogue.org_tree import OrgLevel, UnitCreated
from sotay_learning.main import create_app
from sotay_learning.settings import LearningSettings
from sotay_platform.auth import Grant, Role, TokenIssuer
from sotay_platform.settings import AuthSettings, InfraSettings
from sotay_platform.testing import EventFeed, eventually


class ShiftedClock:
    """Real time plus an offset the test moves: late answers without waiting."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


class Feed(EventFeed):
    """Publishes other services' facts on their topics, each with its unit's path."""

    async def unit_at(self, unit_id: str, name: str, level: OrgLevel, path: Sequence[str]) -> None:
        parent = path[-2] if len(path) > 1 else None
        event = UnitCreated(unit_id=unit_id, name=name, level=level, parent_id=parent)
        await self.send(topics.ORG_TREE, unit_id, event, path)

    async def member(
        self,
        member_id: str,
        name: str,
        branch: str,
        path: Sequence[str],
        status: MemberStatus = MemberStatus.official,
        approved: bool = True,
    ) -> None:
        registered = MemberRegistered(
            member_id=member_id,
            full_name=name,
            gender=Gender.female if member_id.startswith(("a", "c")) else Gender.male,
            branch_id=branch,
            status=status,
            admitted_on=datetime(2010, 5, 19).date(),
            registered_by="secretary" if approved else "self",
        )
        await self.send(topics.IDENTITY, member_id, registered, path)
        if approved:
            approval = MemberRegistrationApproved(
                member_id=member_id, branch_id=branch, approved_by="secretary"
            )
            await self.send(topics.IDENTITY, member_id, approval, path)


@dataclass
class World:
    """TW ─ P ─ X1 ─ CB1 (a1, a2 dự bị, a3 miễn, s1 bí thư), CB2 (b1, b2)
    │        └ X2 ─ CB3 (c1; c2 self-registered, not approved)
    └ Q ─ Y ─ CB9 (z1)"""

    suffix: str
    ids: dict[str, str]
    paths: dict[str, list[str]]

    def __getitem__(self, key: str) -> str:
        return self.ids[key]


@pytest.fixture(scope="module")
def suffix() -> str:
    return uuid.uuid4().hex[:6]


@pytest.fixture(scope="module")
def learning_settings(infra: InfraSettings, suffix: str) -> LearningSettings:
    return LearningSettings(
        **{
            **infra.model_dump(),
            "database": f"learning_{suffix}",
            "consumer_group_prefix": f"test-{suffix}",
            "relay_idle_interval": 0.05,
            "kafka_partitions": 3,
            "rollup_interval": 0.2,
        }
    )


@pytest.fixture(scope="module")
def clock() -> ShiftedClock:
    return ShiftedClock()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def app(
    learning_settings: LearningSettings, auth_settings: AuthSettings, clock: ShiftedClock
) -> AsyncIterator[FastAPI]:
    app = create_app(learning_settings, auth_settings)
    async with LifespanManager(app, startup_timeout=60, shutdown_timeout=30):
        app.state.service.clock = clock
        yield app


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://learning") as client:
        yield client


@pytest.fixture(scope="module")
def bearer(token_issuer: TokenIssuer) -> Callable[..., dict[str, str]]:
    def make(*grants: tuple[Role, str], member_id: str | None = None) -> dict[str, str]:
        token = token_issuer.issue(
            member_id or f"admin-{'-'.join(u for _, u in grants)}",
            [Grant(role, unit) for role, unit in grants],
            member_id=member_id,
        )
        return {"Authorization": f"Bearer {token}"}

    return make


@pytest.fixture(scope="module")
def feed(app: FastAPI) -> Feed:
    return Feed(app)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(
    app: FastAPI,
    client: httpx.AsyncClient,
    feed: Feed,
    suffix: str,
    bearer: Callable[..., dict[str, str]],
) -> World:
    s = suffix
    ids = {k: f"{k}-{s}" for k in ("TW", "P", "X1", "X2", "CB1", "CB2", "CB3", "Q", "Y", "CB9")}
    ids |= {m: f"{m}-{s}" for m in ("a1", "a2", "a3", "s1", "b1", "b2", "c1", "c2", "z1")}
    paths = {
        "TW": ["TW"],
        "P": ["TW", "P"],
        "X1": ["TW", "P", "X1"],
        "X2": ["TW", "P", "X2"],
        "CB1": ["TW", "P", "X1", "CB1"],
        "CB2": ["TW", "P", "X1", "CB2"],
        "CB3": ["TW", "P", "X2", "CB3"],
        "Q": ["TW", "Q"],
        "Y": ["TW", "Q", "Y"],
        "CB9": ["TW", "Q", "Y", "CB9"],
    }
    real = {k: [ids[u] for u in p] for k, p in paths.items()}
    units = [
        ("TW", "Trung ương", OrgLevel.central),
        ("P", "Đảng bộ tỉnh Thanh Hóa", OrgLevel.province),
        ("X1", "Đảng bộ xã Thọ Xuân", OrgLevel.commune),
        ("X2", "Đảng bộ xã Xuân Lập", OrgLevel.commune),
        ("CB1", "Chi bộ thôn Đông", OrgLevel.branch),
        ("CB2", "Chi bộ thôn Tây", OrgLevel.branch),
        ("CB3", "Chi bộ thôn Nam", OrgLevel.branch),
        ("Q", "Đảng bộ tỉnh Quảng Ngãi", OrgLevel.province),
        ("Y", "Đảng bộ xã Bình Sơn", OrgLevel.commune),
        ("CB9", "Chi bộ thôn Bắc", OrgLevel.branch),
    ]
    for key, name, level in units:
        await feed.unit_at(ids[key], name, level, real[key])
    people = [
        ("a1", "Nguyễn Thị Mai", "CB1", MemberStatus.official, True),
        ("a2", "Lê Văn Hùng", "CB1", MemberStatus.probationary, True),
        ("a3", "Trần Văn Bảy", "CB1", MemberStatus.exempted, True),
        ("s1", "Phạm Quốc Toản", "CB1", MemberStatus.official, True),
        ("b1", "Hoàng Văn Nam", "CB2", MemberStatus.official, True),
        ("b2", "Đỗ Minh Đức", "CB2", MemberStatus.official, True),
        ("c1", "Vũ Thị Hoa", "CB3", MemberStatus.official, True),
        ("c2", "Bùi Thị Lan", "CB3", MemberStatus.official, False),
        ("z1", "Đặng Văn Sơn", "CB9", MemberStatus.official, True),
    ]
    for key, name, branch, status, approved in people:
        await feed.member(ids[key], name, ids[branch], real[branch], status, approved)
    await feed.send(
        topics.IDENTITY,
        ids["s1"],
        RoleGranted(
            member_id=ids["s1"],
            role=Role.branch_secretary.value,
            unit_id=ids["CB1"],
            granted_by="x",
        ),
        real["CB1"],
    )

    async def ready() -> bool:
        for key, branch in (("a1", "CB1"), ("b2", "CB2"), ("c1", "CB3"), ("z1", "CB9")):
            r = await client.get(
                "/me/campaigns", headers=bearer((Role.member, ids[branch]), member_id=ids[key])
            )
            if r.status_code != 200:
                return False
        return True

    await eventually(ready, timeout=40)
    return World(s, ids, real)


def walk(node: Any) -> list[tuple[str, Any]]:
    """Every (key, value) in a JSON document, at any depth."""
    found: list[tuple[str, Any]] = []
    if isinstance(node, dict):
        for key, value in node.items():
            found.append((key, value))
            found.extend(walk(value))
    elif isinstance(node, list):
        for item in node:
            found.extend(walk(item))
    return found
