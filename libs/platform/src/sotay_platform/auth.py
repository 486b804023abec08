"""Access tokens: issued by identity, verified offline by every service.

A token carries grants: a role and the org unit whose subtree it covers.
`Principal.require(roles, org_path)` is the one-line check every endpoint makes.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from jwt import PyJWK, PyJWKSet
from jwt.algorithms import ECAlgorithm

from sotay_platform.errors import Forbidden, Unauthorized, Unavailable
from sotay_platform.settings import AuthSettings

ALGORITHM = "ES256"
# A token issued for a temporary password: it may only change that password.
PASSWORD_CHANGE_CLAIM = "pwd_change_required"

log = logging.getLogger(__name__)


class Role(StrEnum):
    member = "member"
    branch_committee_member = "branch_committee_member"
    branch_secretary = "branch_secretary"  # secretary or deputy secretary
    committee_admin = "committee_admin"  # a commune or grassroots committee's office
    province_admin = "province_admin"
    editor = "editor"  # editorial board: drafts and submits pieces
    editorial_reviewer = "editorial_reviewer"  # editorial board: reviews and publishes
    organisation_department = "organisation_department"  # a committee's Ban Tổ chức
    propaganda_department = "propaganda_department"  # a committee's Ban Tuyên giáo
    inspection_committee = "inspection_committee"  # a committee's Ủy ban Kiểm tra
    central_office = "central_office"  # national, read-only
    system_admin = "system_admin"  # platform operators: the national tree itself


# Roles that may administer the part of the tree their grant covers.
ADMIN_ROLES = frozenset({Role.committee_admin, Role.province_admin, Role.system_admin})
READ_ROLES = ADMIN_ROLES | {
    Role.central_office,
    Role.branch_secretary,
    Role.branch_committee_member,
}


@dataclass(frozen=True)
class Grant:
    role: Role
    unit_id: str  # the root of the subtree this grant covers

    def to_claim(self) -> dict[str, str]:
        return {"role": self.role.value, "unit": self.unit_id}


@dataclass(frozen=True)
class Principal:
    subject: str
    grants: tuple[Grant, ...] = ()
    member_id: str | None = None
    claims: dict[str, Any] = field(default_factory=dict, compare=False)

    def covers(self, roles: Iterable[Role], org_path: Sequence[str]) -> bool:
        """True if a grant of one of `roles` sits on `org_path` (root .. target)."""
        wanted = set(roles)
        on_path = set(org_path)
        return any(
            g.role in wanted and (g.unit_id in on_path or g.role is Role.system_admin)
            for g in self.grants
        )

    def require(self, roles: Iterable[Role], org_path: Sequence[str]) -> None:
        roles = list(roles)
        if not self.covers(roles, org_path):
            target = org_path[-1] if org_path else "toàn quốc"
            raise Forbidden(
                f"Tài khoản không có quyền ({', '.join(r.value for r in roles)}) "
                f"đối với đơn vị {target}"
            )

    def has_role(self, *roles: Role) -> bool:
        return any(g.role in roles for g in self.grants)


class TokenIssuer:
    """Signs access tokens. Identity holds the private keys; tests use a throwaway one."""

    def __init__(
        self, keys: dict[str, ec.EllipticCurvePrivateKey], current_kid: str, settings: AuthSettings
    ) -> None:
        self.keys = keys
        self.current_kid = current_kid
        self.settings = settings

    @classmethod
    def generate(cls, settings: AuthSettings | None = None, kid: str = "test-key") -> TokenIssuer:
        return cls({kid: ec.generate_private_key(ec.SECP256R1())}, kid, settings or AuthSettings())

    def jwks(self) -> dict[str, Any]:
        keys = []
        for kid, key in self.keys.items():
            jwk = json.loads(ECAlgorithm.to_jwk(key.public_key()))
            jwk.update({"kid": kid, "use": "sig", "alg": ALGORITHM})
            keys.append(jwk)
        return {"keys": keys}

    def issue(
        self,
        subject: str,
        grants: Sequence[Grant],
        *,
        member_id: str | None = None,
        ttl_seconds: int = 900,
        extra: dict[str, Any] | None = None,
    ) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "sub": subject,
            "iss": self.settings.issuer,
            "aud": self.settings.audience,
            "iat": now,
            "exp": now + ttl_seconds,
            "grants": [g.to_claim() for g in grants],
            **(extra or {}),
        }
        if member_id:
            claims["member_id"] = member_id
        return jwt.encode(
            claims,
            self.keys[self.current_kid],
            algorithm=ALGORITHM,
            headers={"kid": self.current_kid},
        )


class TokenVerifier:
    """Verifies tokens against identity's published keys, kept in memory.

    The key set is fetched without blocking the event loop, kept for
    `jwks_cache_seconds`, and fetched again at most every
    `jwks_min_refetch_seconds` when a token names a key id not seen yet (a
    rotation), so a flood of forged key ids costs identity nothing. When the
    key is unknown and identity cannot be reached, the answer is a 503, not
    a 500 and not a 401 (the token may well be good).

    A page of the web front sends the same token to several services, each
    several times a minute: a token once verified is remembered, under its
    SHA-256, until it expires (never longer) or the key set changes, at most
    `cache_size` of them, the oldest forgotten first. Only good tokens are kept.
    """

    def __init__(
        self, settings: AuthSettings, jwks: dict[str, Any] | None = None, cache_size: int = 10_000
    ) -> None:
        self.settings = settings
        self.cache_size = cache_size
        self._verified: dict[bytes, tuple[float, Principal]] = {}
        self._keys: dict[str, PyJWK] = {}
        self._fetched_at = float("-inf")
        self._tried_at = float("-inf")
        self._lock = asyncio.Lock()
        self._unreachable = False
        if jwks is not None:
            self._load(jwks)
            self._fetched_at = time.monotonic()

    def _load(self, jwks: dict[str, Any]) -> None:
        keys = {k.key_id: k for k in PyJWKSet.from_dict(jwks).keys if k.key_id}
        if {kid: k.key for kid, k in keys.items()} != {kid: k.key for kid, k in self._keys.items()}:
            self._verified.clear()  # a withdrawn key's tokens must stop verifying at once
        self._keys = keys

    async def refresh(self, *, force: bool = False) -> None:
        """Fetch the key set if it is stale (or, with `force`, unless fetched a moment ago)."""
        source = self.settings.jwks.strip()
        if not source:
            return
        now = time.monotonic()
        stale = now - self._fetched_at >= self.settings.jwks_cache_seconds
        if not stale and not (
            force and now - self._tried_at >= self.settings.jwks_min_refetch_seconds
        ):
            return
        async with self._lock:
            if time.monotonic() - self._tried_at < self.settings.jwks_min_refetch_seconds:
                return
            self._tried_at = time.monotonic()
            try:
                if source.startswith("{"):
                    self._load(json.loads(source))
                elif source.startswith(("http://", "https://")):
                    async with httpx.AsyncClient(timeout=3) as client:
                        answer = await client.get(source)
                        answer.raise_for_status()
                        self._load(answer.json())
                else:
                    self._load(json.loads(await asyncio.to_thread(Path(source).read_text)))
            except (httpx.HTTPError, OSError, ValueError) as exc:
                self._unreachable = True
                log.warning("could not fetch the JWKS: %r", exc)
                return
            self._unreachable = False
            self._fetched_at = time.monotonic()

    async def verify_async(self, token: str) -> Principal:
        """`verify`, fetching the key set first when it is stale or lacks the token's key."""
        try:
            kid = jwt.get_unverified_header(token).get("kid")
        except jwt.PyJWTError:
            raise Unauthorized("Mã truy cập không hợp lệ") from None
        await self.refresh(force=kid not in self._keys)
        if kid not in self._keys and self._unreachable:
            raise Unavailable(
                "Chưa kiểm tra được mã truy cập: dịch vụ định danh tạm thời không trả lời, "
                "vui lòng thử lại sau ít phút"
            )
        return self.verify(token)

    def verify(self, token: str) -> Principal:
        """Offline: only against keys already known (`verify_async` fetches them)."""
        digest = hashlib.sha256(token.encode()).digest()
        known = self._verified.get(digest)
        if known is not None:
            if time.time() < known[0]:
                return known[1]
            del self._verified[digest]
        principal = self._verify(token)
        expires = principal.claims.get("exp")
        if isinstance(expires, int | float) and self.cache_size > 0:
            while len(self._verified) >= self.cache_size:
                del self._verified[next(iter(self._verified))]
            self._verified[digest] = (float(expires), principal)
        return principal

    def _verify(self, token: str) -> Principal:
        try:
            kid = jwt.get_unverified_header(token).get("kid")
            key = self._keys.get(kid or "")
            if key is None:
                raise Unauthorized("Khóa ký của mã truy cập không được công nhận")
            claims = jwt.decode(
                token,
                key.key,
                algorithms=[ALGORITHM],
                audience=self.settings.audience,
                issuer=self.settings.issuer,
            )
        except jwt.ExpiredSignatureError:
            raise Unauthorized("Mã truy cập đã hết hạn") from None
        except jwt.PyJWTError:
            raise Unauthorized("Mã truy cập không hợp lệ") from None
        try:
            grants = tuple(Grant(Role(g["role"]), g["unit"]) for g in claims.get("grants", []))
        except (KeyError, TypeError, ValueError):
            raise Unauthorized("Mã truy cập không hợp lệ") from None
        return Principal(
            subject=claims["sub"], grants=grants, member_id=claims.get("member_id"), claims=claims
        )


_bearer = HTTPBearer(auto_error=False)


async def _verified(
    request: Request, credentials: HTTPAuthorizationCredentials | None
) -> Principal:
    if credentials is None:
        raise Unauthorized("Cần đăng nhập: thiếu mã truy cập (Authorization: Bearer …)")
    verifier: TokenVerifier = request.app.state.token_verifier
    return await verifier.verify_async(credentials.credentials)


async def current_principal_allowing_password_change(
    request: Request,
    credentials: HTTPAuthorizationCredentials | None = Depends(_bearer),
) -> Principal:
    """The verified caller, even one who signed in with a temporary password (to change it)."""
    return await _verified(request, credentials)


async def current_principal(
    request: Request,
    credentials: HTTPAuthorizationCredentials | None = Depends(_bearer),
) -> Principal:
    """FastAPI dependency: the verified caller, or 401; a temporary password allows nothing."""
    principal = await _verified(request, credentials)
    if principal.claims.get(PASSWORD_CHANGE_CLAIM):
        raise Forbidden(
            "Tài khoản đang dùng mật khẩu tạm thời: hãy đổi mật khẩu trước khi tiếp tục",
            field="password",
        )
    return principal
