"""Access tokens: issued by identity, verified offline by every service.

A token carries grants: a role and the org unit whose subtree it covers.
`Principal.require(roles, org_path)` is the one-line check every endpoint makes.
"""

from __future__ import annotations

import json
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

from sotay_platform.errors import Forbidden, Unauthorized
from sotay_platform.settings import AuthSettings

ALGORITHM = "ES256"


class Role(StrEnum):
    member = "member"
    branch_committee_member = "branch_committee_member"
    branch_secretary = "branch_secretary"  # secretary or deputy secretary
    committee_admin = "committee_admin"  # a commune or grassroots committee's office
    province_admin = "province_admin"
    editor = "editor"  # editorial board
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
    """Verifies tokens against identity's published keys; refreshes them on an unknown kid."""

    def __init__(self, settings: AuthSettings, jwks: dict[str, Any] | None = None) -> None:
        self.settings = settings
        self._keys: dict[str, PyJWK] = {}
        if jwks is not None:
            self._load(jwks)

    def _load(self, jwks: dict[str, Any]) -> None:
        self._keys = {k.key_id: k for k in PyJWKSet.from_dict(jwks).keys if k.key_id}

    def _fetch(self) -> None:
        source = self.settings.jwks.strip()
        if not source:
            return
        if source.startswith("{"):
            self._load(json.loads(source))
        elif source.startswith(("http://", "https://")):
            self._load(httpx.get(source, timeout=5).json())
        else:
            self._load(json.loads(Path(source).read_text()))

    def verify(self, token: str) -> Principal:
        try:
            kid = jwt.get_unverified_header(token).get("kid")
            if kid not in self._keys:
                self._fetch()
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
        grants = tuple(Grant(Role(g["role"]), g["unit"]) for g in claims.get("grants", []))
        return Principal(
            subject=claims["sub"], grants=grants, member_id=claims.get("member_id"), claims=claims
        )


_bearer = HTTPBearer(auto_error=False)


async def current_principal(
    request: Request,
    credentials: HTTPAuthorizationCredentials | None = Depends(_bearer),
) -> Principal:
    """FastAPI dependency: the verified caller, or 401."""
    if credentials is None:
        raise Unauthorized("Cần đăng nhập: thiếu mã truy cập (Authorization: Bearer …)")
    verifier: TokenVerifier = request.app.state.token_verifier
    return verifier.verify(credentials.credentials)
