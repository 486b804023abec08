"""Sign-in sessions: the browser holds a random id, Redis holds the tokens.

The cookie carries only the session id (httpOnly, SameSite=Lax). Identity's
access and refresh tokens stay here, under a key derived from the id (a Redis
dump does not hand out cookies), with a TTL equal to the refresh token's
remaining life: the session ends when identity's does. The access token is
refreshed shortly before it expires, under a per-session lock, because two
requests presenting the same refresh token would look like a stolen one to
identity and end the session.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import jwt
from redis.asyncio import Redis

from sotay_platform.auth import Role

ADMIN = {Role.committee_admin.value, Role.province_admin.value, Role.system_admin.value}
SECRETARY = {Role.branch_secretary.value, Role.branch_committee_member.value}


@dataclass
class Session:
    sid: str
    csrf: str
    created_at: float
    access_token: str | None = None
    access_expires_at: float = 0.0
    refresh_token: str | None = None
    refresh_expires_at: float = 0.0
    member_id: str | None = None
    must_change_password: bool = False
    grants: list[dict[str, str]] = field(default_factory=list)
    full_name: str = ""
    branch_id: str | None = None
    branch_name: str | None = None

    @property
    def signed_in(self) -> bool:
        return self.access_token is not None

    def roles(self, *roles: str) -> list[str]:
        """Units where the person holds one of `roles`."""
        return [g["unit"] for g in self.grants if g["role"] in roles]

    @property
    def secretary_units(self) -> list[str]:
        return self.roles(*SECRETARY)

    @property
    def admin_units(self) -> list[str]:
        return self.roles(*ADMIN)

    @property
    def editor_units(self) -> list[str]:
        return self.roles(Role.editor.value)


def new_session(now: float) -> Session:
    return Session(sid=secrets.token_urlsafe(32), csrf=secrets.token_urlsafe(32), created_at=now)


def csrf_ok(session: Session, presented: str | None) -> bool:
    return bool(presented) and hmac.compare_digest(session.csrf, presented or "")


def grants_of(access_token: str) -> list[dict[str, str]]:
    """The grants the token carries, for choosing which screens to offer. Not verified here:
    the token came straight from identity, and every service verifies it on every call."""
    claims = jwt.decode(access_token, options={"verify_signature": False})
    return [{"role": str(g["role"]), "unit": str(g["unit"])} for g in claims.get("grants", [])]


def signed_in(session: Session, tokens: dict[str, Any], now: float) -> Session:
    """A fresh session (new id, new CSRF token: no fixation) holding identity's tokens."""
    fresh = new_session(now)
    apply_tokens(fresh, tokens, now)
    return fresh


def apply_tokens(session: Session, tokens: dict[str, Any], now: float) -> None:
    session.access_token = tokens["access_token"]
    session.access_expires_at = now + int(tokens["expires_in"])
    session.refresh_token = tokens["refresh_token"]
    session.refresh_expires_at = now + int(tokens["refresh_expires_in"])
    session.member_id = tokens.get("member_id")
    session.must_change_password = bool(tokens.get("must_change_password"))
    session.grants = grants_of(tokens["access_token"])


def needs_refresh(session: Session, now: float, margin: float) -> bool:
    return session.signed_in and session.access_expires_at - now < margin


def ttl_seconds(session: Session, now: float, anonymous_ttl: int) -> int:
    if not session.signed_in:
        return anonymous_ttl
    return max(1, int(session.refresh_expires_at - now))


class SessionEnded(Exception):
    """Identity no longer honours the session's refresh token."""


Refresher = Callable[[str], Awaitable[dict[str, Any]]]


class SessionStore:
    def __init__(self, redis: Redis, anonymous_ttl: int, margin: float) -> None:
        self.redis = redis
        self.anonymous_ttl = anonymous_ttl
        self.margin = margin

    @staticmethod
    def _key(sid: str) -> str:
        return "web:session:" + hashlib.sha256(sid.encode()).hexdigest()

    async def load(self, sid: str | None) -> Session | None:
        if not sid or len(sid) > 100:
            return None
        raw = await self.redis.get(self._key(sid))
        if raw is None:
            return None
        data = json.loads(raw)
        return Session(**data)

    async def save(self, session: Session, now: float | None = None) -> None:
        now = time.time() if now is None else now
        await self.redis.set(
            self._key(session.sid),
            json.dumps(asdict(session)),
            ex=ttl_seconds(session, now, self.anonymous_ttl),
        )

    async def delete(self, session: Session) -> None:
        await self.redis.delete(self._key(session.sid))

    # A notice for the next page, kept apart from the session record: only sign-in and
    # refresh write that record, so a stale copy never overwrites a rotated refresh token.
    async def set_flash(self, session: Session, message: str) -> None:
        await self.redis.set(self._key(session.sid) + ":flash", message, ex=300)

    async def pop_flash(self, session: Session) -> str | None:
        raw = await self.redis.getdel(self._key(session.sid) + ":flash")
        return raw.decode() if isinstance(raw, bytes) else raw

    async def fresh_access(self, session: Session, refresh: Refresher) -> Session:
        """The session with an access token good for a while: refreshed by one request only."""
        now = time.time()
        if not needs_refresh(session, now, self.margin):
            return session
        lock = self._key(session.sid) + ":refresh"
        token = secrets.token_hex(8)
        for _ in range(100):
            if await self.redis.set(lock, token, nx=True, px=15_000):
                try:
                    current = await self.load(session.sid)
                    if current is None or not current.signed_in:
                        raise SessionEnded
                    if not needs_refresh(current, time.time(), self.margin):
                        return current
                    assert current.refresh_token
                    try:
                        tokens = await refresh(current.refresh_token)
                    except SessionEnded:
                        await self.delete(current)
                        raise
                    apply_tokens(current, tokens, time.time())
                    await self.save(current)
                    return current
                finally:
                    if await self.redis.get(lock) == token.encode():
                        await self.redis.delete(lock)
            await asyncio.sleep(0.05)
            current = await self.load(session.sid)
            if current is None or not current.signed_in:
                raise SessionEnded
            if not needs_refresh(current, time.time(), self.margin):
                return current
        raise SessionEnded
