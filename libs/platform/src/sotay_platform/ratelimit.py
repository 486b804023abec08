"""Rate limits for anonymous endpoints: fixed windows counted in Redis, shared by every pod.

Per client, as a dependency (the client is the peer address, or the X-Forwarded-For entry
set by the outermost trusted proxy when SOTAY_RATELIMIT_TRUSTED_PROXIES > 0; IPv6 clients
count per /64):

    from sotay_platform.ratelimit import per_client, rate_limit

    @router.post("/registrations", dependencies=[Depends(per_client("register", 20, 3600))])
    async def register(body: RegisterIn, request: Request, ...):
        await rate_limit(request, "register-phone", body.phone, limit=3, window=3600)

Per key (a normalised phone, a citizen ID): `rate_limit(request, scope, key, ...)`. Keys are
HMAC-SHA256 digests under SOTAY_RATELIMIT_SECRET (set it in production; every pod the
same), so no phone number or address is ever written to Redis in clear. Over the limit,
`TooManyRequests` answers 429 in the platform shape with Retry-After. Redis unreachable:
the request passes (a limiter must not take registration down with it) and a warning is
logged. The limiter uses the runtime's Redis (`app.state.runtime.redis`), or
`app.state.rate_limiter` when a test or a service sets one.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import math
import time
from collections.abc import Awaitable, Callable

from fastapi import Request
from pydantic_settings import BaseSettings, SettingsConfigDict
from redis.asyncio import Redis
from redis.exceptions import RedisError

from sotay_platform.errors import TooManyRequests

log = logging.getLogger(__name__)


class RateLimitSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SOTAY_RATELIMIT_", extra="ignore")

    secret: str = ""
    # How many reverse proxies stand in front of the service; 0: trust no X-Forwarded-For.
    trusted_proxies: int = 0
    enabled: bool = True


def _wait(seconds: int) -> str:
    if seconds < 90:
        return f"{seconds} giây"
    return f"{math.ceil(seconds / 60)} phút"


class RateLimiter:
    def __init__(
        self, redis: Redis, settings: RateLimitSettings | None = None, prefix: str = "ratelimit"
    ) -> None:
        self.redis = redis
        self.settings = settings or RateLimitSettings()
        self.prefix = prefix
        self._secret = self.settings.secret.encode()

    def digest(self, scope: str, key: str) -> str:
        return hmac.new(self._secret, f"{scope}\0{key}".encode(), hashlib.sha256).hexdigest()[:32]

    async def hit(self, scope: str, key: str, limit: int, window: int) -> int | None:
        """Count one request; the seconds until the window ends when over `limit`, else None."""
        if not self.settings.enabled:
            return None
        now = time.time()
        start = int(now // window) * window
        name = f"{self.prefix}:{scope}:{self.digest(scope, key)}:{start}"
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.incr(name)
                pipe.expire(name, window + 1)
                count, _ = await pipe.execute()
        except (RedisError, OSError) as exc:
            log.warning("rate limiter unavailable, request let through: %s", type(exc).__name__)
            return None
        if int(count) <= limit:
            return None
        return max(1, math.ceil(start + window - now))

    async def check(self, scope: str, key: str, limit: int, window: int) -> None:
        retry_after = await self.hit(scope, key, limit, window)
        if retry_after is not None:
            raise TooManyRequests(
                f"Quá nhiều yêu cầu, vui lòng thử lại sau {_wait(retry_after)}", retry_after
            )

    def client(self, request: Request) -> str:
        """Who is asking: the peer, or what the outermost trusted proxy saw."""
        peer = request.client.host if request.client else ""
        address = peer
        hops = self.settings.trusted_proxies
        if hops > 0:
            forwarded = [
                part.strip()
                for header in request.headers.getlist("x-forwarded-for")
                for part in header.split(",")
                if part.strip()
            ]
            if forwarded:
                address = forwarded[-hops] if len(forwarded) >= hops else forwarded[0]
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return peer or "unknown"
        if ip.version == 6:
            return str(ipaddress.ip_network(f"{ip}/64", strict=False))
        return str(ip)


def limiter_of(request: Request) -> RateLimiter:
    state = request.app.state
    limiter: RateLimiter | None = getattr(state, "rate_limiter", None)
    if limiter is None:
        limiter = RateLimiter(state.runtime.redis)
        state.rate_limiter = limiter
    return limiter


def per_client(scope: str, limit: int, window: int) -> Callable[[Request], Awaitable[None]]:
    """A dependency: at most `limit` requests per client per `window` seconds."""

    async def dependency(request: Request) -> None:
        limiter = limiter_of(request)
        await limiter.check(scope, limiter.client(request), limit, window)

    return dependency


async def rate_limit(request: Request, scope: str, key: str, limit: int, window: int) -> None:
    """At most `limit` requests for `key` (stored hashed) per `window` seconds."""
    await limiter_of(request).check(scope, key, limit, window)
