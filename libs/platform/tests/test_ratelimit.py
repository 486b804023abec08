"""The rate limiter against the real Redis (the `infra` fixture's)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import Depends, FastAPI, Request
from redis.asyncio import Redis

from sotay_platform.errors import install_error_handlers
from sotay_platform.ratelimit import RateLimiter, RateLimitSettings, per_client, rate_limit
from sotay_platform.settings import InfraSettings


@pytest.fixture
async def redis(infra: InfraSettings) -> AsyncIterator[Redis]:
    client = Redis.from_url(infra.redis_url)
    yield client
    await client.aclose()


def make_app(limiter: RateLimiter, scope: str) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    app.state.rate_limiter = limiter

    @app.post("/register", dependencies=[Depends(per_client(scope, 3, 60))])
    async def register(body: dict[str, Any], request: Request) -> dict[str, bool]:
        await rate_limit(request, f"{scope}-phone", body["phone"], limit=2, window=60)
        return {"ok": True}

    return app


def client_of(app: FastAPI, address: str = "203.0.113.7") -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(address, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://t")


async def test_per_client_limit_answers_429_with_retry_after(redis: Redis) -> None:
    scope = f"t{uuid.uuid4().hex[:8]}"
    app = make_app(RateLimiter(redis, RateLimitSettings(secret="s")), scope)
    async with client_of(app) as one, client_of(app, "198.51.100.9") as other:
        codes = [
            (await one.post("/register", json={"phone": f"09{i}"})).status_code for i in range(4)
        ]
        assert codes == [200, 200, 200, 429]
        r = await one.post("/register", json={"phone": "0999"})
        body = r.json()
        assert (body["error"], body["field"]) == ("too_many_requests", None)
        assert "thử lại sau" in body["message"]
        assert 1 <= int(r.headers["retry-after"]) <= 60
        assert (await other.post("/register", json={"phone": "0988"})).status_code == 200


async def test_per_key_limit_and_keys_never_in_clear(redis: Redis) -> None:
    scope = f"t{uuid.uuid4().hex[:8]}"
    app = make_app(RateLimiter(redis, RateLimitSettings(secret="s")), scope)
    phone = "0912345678"
    async with client_of(app, "192.0.2.1") as a, client_of(app, "192.0.2.2") as b:
        assert (await a.post("/register", json={"phone": phone})).status_code == 200
        assert (await b.post("/register", json={"phone": phone})).status_code == 200
        assert (await a.post("/register", json={"phone": phone})).status_code == 429
    keys = [k.decode() async for k in redis.scan_iter(match=f"ratelimit:{scope}*")]
    assert keys and not any(phone in k or "192.0.2" in k for k in keys)
    ttls = [await redis.ttl(k) for k in keys]
    assert all(0 < ttl <= 61 for ttl in ttls)


async def test_forwarded_for_is_trusted_only_behind_a_proxy(redis: Redis) -> None:
    scope = f"t{uuid.uuid4().hex[:8]}"
    direct = make_app(RateLimiter(redis, RateLimitSettings(secret="s")), scope)
    async with client_of(direct) as c:
        # Without a trusted proxy a forged header changes nothing: same peer, same counter.
        codes = [
            (
                await c.post(
                    "/register",
                    json={"phone": f"08{i}"},
                    headers={"x-forwarded-for": f"10.0.0.{i}"},
                )
            ).status_code
            for i in range(4)
        ]
        assert codes[-1] == 429

    scope = f"t{uuid.uuid4().hex[:8]}"
    behind = make_app(RateLimiter(redis, RateLimitSettings(secret="s", trusted_proxies=1)), scope)
    async with client_of(behind, "10.1.1.1") as proxy:
        for i in range(4):
            # The client put a forged entry first; the proxy appended the real address.
            r = await proxy.post(
                "/register",
                json={"phone": f"07{i}"},
                headers={"x-forwarded-for": f"6.6.6.6, 100.64.0.{i}"},
            )
            assert r.status_code == 200


def test_client_address_rules() -> None:
    limiter = RateLimiter(Redis(), RateLimitSettings(trusted_proxies=2))

    def request(peer: str, forwarded: str | None) -> Request:
        headers = [(b"x-forwarded-for", forwarded.encode())] if forwarded else []
        return Request({"type": "http", "client": (peer, 1), "headers": headers})

    assert limiter.client(request("10.0.0.1", "1.1.1.1, 2.2.2.2, 10.0.0.2")) == "2.2.2.2"
    assert limiter.client(request("10.0.0.1", "2.2.2.2")) == "2.2.2.2"
    assert limiter.client(request("10.0.0.1", "not-an-ip, 10.0.0.2")) == "10.0.0.1"
    assert limiter.client(request("2001:db8::1", None)) == "2001:db8::/64"


async def test_redis_down_lets_requests_through() -> None:
    dead = Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    limiter = RateLimiter(dead, RateLimitSettings(secret="s"))
    assert await limiter.hit("x", "y", limit=0, window=60) is None
    await dead.aclose()
