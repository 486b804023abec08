from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from sotay_orgtree.main import create_app
from sotay_orgtree.settings import OrgTreeSettings
from sotay_platform.auth import Grant, Role, TokenIssuer
from sotay_platform.settings import AuthSettings


@pytest.fixture
async def app(
    service_settings: Callable[..., dict[str, Any]], auth_settings: AuthSettings
) -> AsyncIterator[FastAPI]:
    app = create_app(OrgTreeSettings(**service_settings("org-tree")), auth_settings)
    async with LifespanManager(app, startup_timeout=60, shutdown_timeout=30):
        yield app


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://org-tree") as client:
        yield client


@pytest.fixture
def bearer(token_issuer: TokenIssuer) -> Callable[..., dict[str, str]]:
    def make(
        role: Role = Role.system_admin, unit: str = "TW", subject: str = "tester"
    ) -> dict[str, str]:
        token = token_issuer.issue(subject, [Grant(role, unit)])
        return {"Authorization": f"Bearer {token}"}

    return make
