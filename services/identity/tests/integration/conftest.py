"""One identity app for the whole suite, against the real servers (`infra`).

Each test builds a small org tree of its own (unique unit codes) by publishing
org-tree's `UnitCreated` events on Kafka, the way org-tree would, and waits
for identity's projection to hold it.
"""

from __future__ import annotations

import itertools
import random
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import pytest_asyncio
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from sotay_events import EventEnvelope, topics
from sotay_events.catalogue.org_tree import OrgLevel, UnitCreated, UnitMerged
from sotay_identity.main import create_app
from sotay_identity.settings import IdentitySettings
from sotay_platform.auth import Grant, Role, TokenIssuer
from sotay_platform.settings import AuthSettings, InfraSettings
from sotay_platform.testing import eventually

PASSWORD = "matkhau123"
TEMPORARY = "tamthoi123"
_counter = itertools.count(random.randint(0, 400_000))


def identity_settings(infra: InfraSettings, **overrides: Any) -> IdentitySettings:
    unique = uuid.uuid4().hex[:8]
    values: dict[str, Any] = {
        **infra.model_dump(),
        "database": f"identity_{unique}",
        "consumer_group_prefix": f"test-{unique}",
        "relay_idle_interval": 0.05,
        "kafka_partitions": 3,
        "argon2_time_cost": 1,
        "argon2_memory_kib": 8192,
        "argon2_parallelism": 1,
        "login_max_failures": 3,
        # The suite signs in and registers far more often than a person would; the limits
        # themselves are tested by lowering them (test_limits.py).
        "identity_limit_register_per_client": 10_000,
        "identity_limit_login_per_client": 10_000,
        "identity_limit_refresh_per_client": 10_000,
    }
    values.update(overrides)
    return IdentitySettings(**values)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def app(infra: InfraSettings, auth_settings: AuthSettings) -> AsyncIterator[FastAPI]:
    app = create_app(identity_settings(infra), auth_settings)
    async with LifespanManager(app, startup_timeout=60, shutdown_timeout=30):
        yield app


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://identity") as client:
        yield client


FAMILY = ["Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Vũ", "Đặng", "Bùi", "Đỗ", "Ngô"]
GIVEN = {
    "Nam": ["An", "Bảo", "Cường", "Dũng", "Hùng", "Khánh", "Minh", "Phúc", "Quang", "Sơn"],
    "Nữ": ["Bình", "Dung", "Giang", "Hà", "Lan", "Mai", "Ngọc", "Thảo", "Trang", "Yến"],
}


def person(gender: str = "Nam", year: int = 1975) -> dict[str, str]:
    """A valid, never-used-before member: name, citizen ID, phone and party card differ."""
    n = next(_counter)
    code = (0 if gender == "Nam" else 1) + (2 if year >= 2000 else 0)
    middle = "Văn" if gender == "Nam" else "Thị"
    given = GIVEN[gender][n % 10]
    return {
        "full_name": f"{FAMILY[(n // 10) % 10]} {middle} {given}",
        "birth_date": f"{n % 28 + 1:02d}/08/{year}",
        "gender": gender,
        "admitted_on": f"03/02/{year + 25}",
        "official_on": f"03/02/{year + 26}",
        "party_card_no": f"{90_000_000 + n}",
        "citizen_id": f"001{code}{year % 100:02d}{n:06d}",
        "phone": f"09{n:08d}",
    }


@dataclass
class World:
    """A fresh piece of the tree: TW > HN > HN.X (commune) > CB1, CB2; TW > HP > HP.CB1."""

    app: FastAPI
    client: httpx.AsyncClient
    issuer: TokenIssuer
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:6])

    def u(self, name: str) -> str:
        return f"{self.tag}.{name}"

    def headers(self, role: Role, unit: str, subject: str = "tester", **kw: Any) -> dict[str, str]:
        token = self.issuer.issue(subject, [Grant(role, self.u(unit))], **kw)
        return {"Authorization": f"Bearer {token}"}

    @property
    def admin(self) -> dict[str, str]:
        return self.headers(Role.system_admin, "TW", "operator:test")

    async def publish(self, event: UnitCreated | UnitMerged, version: int = 1) -> None:
        envelope = EventEnvelope(
            event_type=event.event_type,
            schema_version=event.schema_version,
            aggregate_type="OrgUnit",
            aggregate_id=event.unit_id,
            aggregate_version=version,
            payload=event.model_dump(mode="json"),
        )
        await self.app.state.runtime.broker.publish(
            envelope.to_bytes(), topics.ORG_TREE, key=event.unit_id.encode()
        )

    async def build(self) -> World:
        units = [
            ("TW", OrgLevel.central, None),
            ("HN", OrgLevel.province, "TW"),
            ("HN.X", OrgLevel.commune, "HN"),
            ("CB1", OrgLevel.branch, "HN.X"),
            ("CB2", OrgLevel.branch, "HN.X"),
            ("HP", OrgLevel.province, "TW"),
            ("HP.CB1", OrgLevel.grassroots_branch, "HP"),
        ]
        for name, level, parent in units:
            await self.publish(
                UnitCreated(
                    unit_id=self.u(name),
                    name=f"Đơn vị {name}",
                    level=level,
                    parent_id=self.u(parent) if parent else None,
                )
            )
        tree = self.app.state.service.tree

        depth = {"TW": 1, "HN": 2, "HN.X": 3, "CB1": 4, "CB2": 4, "HP": 2, "HP.CB1": 3}

        async def ready() -> bool:
            # Units are keyed by id, so they may land in any order: wait for every path.
            for name, length in depth.items():
                if len(await tree.scope_path(self.u(name))) != length:
                    return False
            return True

        await eventually(ready, timeout=60)  # the first build waits for the consumers to join
        return self

    async def member(
        self, branch: str = "CB1", password: str | None = PASSWORD, **overrides: str
    ) -> tuple[str, dict[str, str]]:
        """An approved member created by an admin; with a password, one they chose (signed
        in once with the temporary one and changed it). Returns (member id, their data)."""
        data = {**person(), **overrides}
        body = {**data, "branch_id": self.u(branch)}
        if password:
            body["password"] = TEMPORARY
        r = await self.client.post("/members", json=body, headers=self.admin)
        assert r.status_code == 201, r.text
        member_id = str(r.json()["member_id"])
        if password:
            first = await self.login(data["phone"], TEMPORARY)
            r = await self.client.post(
                "/auth/password",
                json={"current_password": TEMPORARY, "new_password": password},
                headers=bearer(first),
            )
            assert r.status_code == 204, r.text
        return member_id, data

    async def login(self, phone: str, password: str = PASSWORD) -> dict[str, Any]:
        r = await self.client.post("/auth/login", json={"phone": phone, "password": password})
        assert r.status_code == 200, r.text
        tokens: dict[str, Any] = r.json()
        return tokens

    async def secretary(self, branch: str = "CB1") -> tuple[str, dict[str, str]]:
        """A real secretary: created, granted the role, signed in through identity."""
        member_id, data = await self.member(branch)
        r = await self.client.post(
            f"/members/{member_id}/roles",
            json={"role": "branch_secretary", "unit_id": self.u(branch)},
            headers=self.admin,
        )
        assert r.status_code == 200, r.text
        tokens = await self.login(data["phone"])
        return member_id, {"Authorization": f"Bearer {tokens['access_token']}"}


@pytest_asyncio.fixture(loop_scope="session")
async def world(app: FastAPI, client: httpx.AsyncClient, token_issuer: TokenIssuer) -> World:
    return await World(app, client, token_issuer).build()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def module_world(app: FastAPI, client: httpx.AsyncClient, token_issuer: TokenIssuer) -> World:
    """One tree for a module whose tests only read it (a fresh one costs a Kafka round)."""
    return await World(app, client, token_issuer).build()


def bearer(tokens: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens['access_token']}"}


__all__ = ["PASSWORD", "World", "bearer", "person", "pytest"]
