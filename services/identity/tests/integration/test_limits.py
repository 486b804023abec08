"""Anonymous endpoints are rate-limited per client address and per phone (shared limiter)."""

import dataclasses
from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI

from .conftest import PASSWORD, World, person

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest_asyncio.fixture(loop_scope="session")
async def stranger(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client from an address of its own, with low per-client limits while it runs."""
    saved = app.state.limits
    app.state.limits = dataclasses.replace(
        saved, register_per_client=2, login_per_client=2, refresh_per_client=2
    )
    transport = httpx.ASGITransport(app=app, client=(f"198.51.100.{id(saved) % 250}", 4000))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://identity") as client:
            yield client
    finally:
        app.state.limits = saved


async def test_a_client_is_limited_on_every_anonymous_endpoint(
    world: World, stranger: httpx.AsyncClient
) -> None:
    for url, body in (
        ("/registrations", {**person(), "branch_id": world.u("CB1"), "password": PASSWORD}),
        ("/auth/login", {"phone": person()["phone"], "password": PASSWORD}),
        ("/auth/refresh", {"refresh_token": "abc.def"}),
    ):
        answers = [(await stranger.post(url, json=body)).status_code for _ in range(3)]
        assert answers[-1] == 429 and 429 not in answers[:2], (url, answers)
    r = await stranger.post("/auth/login", json={"phone": person()["phone"], "password": "x"})
    assert r.status_code == 429 and int(r.headers["Retry-After"]) > 0
    assert r.json()["error"] == "too_many_requests" and "thử lại" in r.json()["message"]


async def test_a_phone_is_limited_whichever_client_asks(world: World) -> None:
    phone = person()["phone"]
    answers = []
    for _ in range(4):
        body = {**person(), "phone": phone, "branch_id": world.u("CB1"), "password": PASSWORD}
        answers.append((await world.client.post("/registrations", json=body)).status_code)
    assert answers == [201, 201, 201, 429]
