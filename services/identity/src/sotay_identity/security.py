"""Signing keys, password hashing, lockout and revocation.

Signing keys: PEM files (EC P-256) in SOTAY_IDENTITY_KEYS_DIR, kid = file stem,
the newest file (modification time, then name) signs. Every key in the
directory is published in the JWKS, so a token signed by the previous key
keeps verifying until it expires: rotate by adding a file, remove the old one
after the access-token lifetime. Without a directory, one key is generated in
memory (development and tests: a restart logs everyone out).
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
import uuid
from pathlib import Path
from typing import Protocol

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from redis.asyncio import Redis

from sotay_platform.auth import Principal, TokenIssuer
from sotay_platform.settings import AuthSettings


class SigningKeyError(Exception):
    pass


def load_signing_keys(keys_dir: str) -> tuple[dict[str, ec.EllipticCurvePrivateKey], str]:
    """The keys of a directory and the kid of the current one (the newest file)."""
    directory = Path(keys_dir)
    files = sorted(
        (p for p in directory.glob("*.pem") if p.is_file()),
        key=lambda p: (p.stat().st_mtime, p.name),
    )
    if not files:
        raise SigningKeyError(f"no *.pem signing key in {keys_dir}")
    keys: dict[str, ec.EllipticCurvePrivateKey] = {}
    for path in files:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
            raise SigningKeyError(f"{path.name}: an ES256 key must be EC P-256")
        keys[path.stem] = key
    return keys, files[-1].stem


def make_issuer(keys_dir: str, auth: AuthSettings) -> TokenIssuer:
    if not keys_dir:
        return TokenIssuer.generate(auth, kid=f"dev-{uuid.uuid4().hex[:8]}")
    keys, current = load_signing_keys(keys_dir)
    return TokenIssuer(keys, current, auth)


def write_key(directory: Path, kid: str) -> Path:
    """A new P-256 private key as `<kid>.pem` (what `python -m sotay_identity.cli keygen` does)."""
    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    path = directory / f"{kid}.pem"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)
    return path


class Passwords:
    """argon2id; hashing runs in a thread so the event loop keeps serving."""

    def __init__(self, time_cost: int = 2, memory_kib: int = 19456, parallelism: int = 1) -> None:
        self.hasher = PasswordHasher(
            time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism
        )
        self._dummy = self.hasher.hash(secrets.token_urlsafe(16))

    async def hash(self, password: str) -> str:
        return await asyncio.to_thread(self.hasher.hash, password)

    async def verify(self, hashed: str | None, password: str) -> bool:
        """Unknown accounts cost the same as known ones: no timing oracle for phone numbers."""

        def check() -> bool:
            try:
                return self.hasher.verify(hashed or self._dummy, password) and hashed is not None
            except (VerificationError, InvalidHashError):
                return False

        return await asyncio.to_thread(check)

    def needs_rehash(self, hashed: str) -> bool:
        return self.hasher.check_needs_rehash(hashed)


def new_refresh_token(session_id: str) -> tuple[str, str]:
    """The token handed out (`<session>.<secret>`) and the hash kept of its secret."""
    secret = secrets.token_urlsafe(32)
    return f"{session_id}.{secret}", token_hash(secret)


def token_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class Counters(Protocol):
    async def incr(self, key: str, window: int) -> int: ...
    async def set(self, key: str, ttl: int) -> None: ...
    async def ttl(self, key: str) -> int: ...
    async def exists(self, key: str) -> bool: ...
    async def delete(self, *keys: str) -> None: ...


class RedisCounters:
    def __init__(self, redis: Redis, prefix: str = "identity") -> None:
        self.redis = redis
        self.prefix = prefix

    def _k(self, key: str) -> str:
        return f"{self.prefix}:{key}"

    async def incr(self, key: str, window: int) -> int:
        async with self.redis.pipeline(transaction=True) as pipe:
            # SET NX EX starts the window once (EXPIRE NX needs Redis 7); INCR keeps the TTL.
            pipe.set(self._k(key), 0, ex=window, nx=True)
            pipe.incr(self._k(key))
            _, count = await pipe.execute()
        return int(count)

    async def set(self, key: str, ttl: int) -> None:
        await self.redis.set(self._k(key), "1", ex=max(1, ttl))

    async def ttl(self, key: str) -> int:
        return max(0, int(await self.redis.ttl(self._k(key))))

    async def exists(self, key: str) -> bool:
        return bool(await self.redis.exists(self._k(key)))

    async def delete(self, *keys: str) -> None:
        if keys:
            await self.redis.delete(*(self._k(k) for k in keys))


class MemoryCounters:
    """Redis's few commands used here, in a dict with expiry times, for unit tests."""

    def __init__(self) -> None:
        self.values: dict[str, tuple[int, float]] = {}

    def _live(self, key: str) -> tuple[int, float] | None:
        item = self.values.get(key)
        if item and item[1] <= time.monotonic():
            del self.values[key]
            return None
        return item

    async def incr(self, key: str, window: int) -> int:
        item = self._live(key)
        count, expires = (item[0] + 1, item[1]) if item else (1, time.monotonic() + window)
        self.values[key] = (count, expires)
        return count

    async def set(self, key: str, ttl: int) -> None:
        self.values[key] = (1, time.monotonic() + ttl)

    async def ttl(self, key: str) -> int:
        item = self._live(key)
        return max(1, int(item[1] - time.monotonic())) if item else 0

    async def exists(self, key: str) -> bool:
        return self._live(key) is not None

    async def delete(self, *keys: str) -> None:
        for key in keys:
            self.values.pop(key, None)


class Lockout:
    """After `max_failures` wrong passwords within `window` seconds, the login is locked for
    `lock_seconds`. Keys are keyed hashes of the login, never the phone number itself."""

    def __init__(
        self, counters: Counters, max_failures: int = 5, window: int = 900, lock_seconds: int = 900
    ) -> None:
        self.counters = counters
        self.max_failures = max_failures
        self.window = window
        self.lock_seconds = lock_seconds

    async def locked_for(self, login_key: str) -> int:
        return await self.counters.ttl(f"locked:{login_key}")

    async def failed(self, login_key: str) -> tuple[int, int]:
        """(attempts left, seconds locked) after one more failure."""
        count = await self.counters.incr(f"failures:{login_key}", self.window)
        if count >= self.max_failures:
            await self.counters.set(f"locked:{login_key}", self.lock_seconds)
            await self.counters.delete(f"failures:{login_key}")
            return 0, self.lock_seconds
        return self.max_failures - count, 0

    async def clear(self, login_key: str) -> None:
        await self.counters.delete(f"failures:{login_key}", f"locked:{login_key}")


class Revocations:
    """Sessions ended before their access tokens expire: identity refuses those tokens at once.
    Other services verify offline and accept them until they expire (minutes)."""

    def __init__(self, counters: Counters, access_ttl: int) -> None:
        self.counters = counters
        self.access_ttl = access_ttl

    async def revoke(self, session_ids: list[str]) -> None:
        for sid in session_ids:
            await self.counters.set(f"revoked:{sid}", self.access_ttl + 60)

    async def is_revoked(self, principal: Principal) -> bool:
        sid = principal.claims.get("sid")
        return bool(sid) and await self.counters.exists(f"revoked:{sid}")
