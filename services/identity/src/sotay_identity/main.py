"""The bootstrap: the one place that wires identity together."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from sotay_events import topics
from sotay_identity import api
from sotay_identity.handlers import IdentityService
from sotay_identity.projections import MergeFollower
from sotay_identity.security import (
    Lockout,
    Passwords,
    RedisCounters,
    Revocations,
    make_issuer,
)
from sotay_identity.settings import DEV_PII_KEY, IdentitySettings
from sotay_identity.storage import KeyHasher, MongoStorage
from sotay_identity.tree import MongoTree
from sotay_platform.auth import TokenIssuer, TokenVerifier
from sotay_platform.org_units import OrgUnits, OrgUnitsProjection
from sotay_platform.runtime import ServiceRuntime
from sotay_platform.settings import AuthSettings
from sotay_platform.tree import TREE_EVENTS

log = logging.getLogger(__name__)


def trusted_jwks(issuer: TokenIssuer, auth: AuthSettings) -> dict[str, Any]:
    """Identity verifies its own tokens in process. Keys given in SOTAY_AUTH_JWKS (JSON or a
    file) are trusted too: tests and operators' bootstrap tokens use that."""
    keys = list(issuer.jwks()["keys"])
    source = auth.jwks.strip()
    extra: dict[str, Any] = {}
    if source.startswith("{"):
        extra = json.loads(source)
    elif source and not source.startswith(("http://", "https://")) and Path(source).is_file():
        extra = json.loads(Path(source).read_text())
    own = {k["kid"] for k in keys}
    keys += [k for k in extra.get("keys", []) if k.get("kid") not in own]
    return {"keys": keys}


def keep_personal_data_out_of_logs() -> None:
    """pymongo logs whole commands at DEBUG, documents included: a personal record insert
    would put a citizen ID in the log. Identity never lets those records be made."""
    for name in ("pymongo", "pymongo.command", "pymongo.connection"):
        logging.getLogger(name).setLevel(logging.INFO)


class OrgUnitsProjectionOfTree(OrgUnitsProjection):
    """The shared tree projection, declaring the only events it reads."""

    event_types = frozenset(e.event_type for e in TREE_EVENTS)


def create_app(
    settings: IdentitySettings | None = None, auth: AuthSettings | None = None
) -> FastAPI:
    settings = settings or IdentitySettings()
    auth = auth or AuthSettings()
    keep_personal_data_out_of_logs()
    if settings.identity_keys_dir and settings.identity_pii_key == DEV_PII_KEY:
        log.warning(
            "SOTAY_IDENTITY_PII_KEY is the development default: set a secret of your own "
            "before real members register (it keys the hashes of citizen IDs and phones)"
        )
    issuer = make_issuer(settings.identity_keys_dir, auth)
    jwks = trusted_jwks(issuer, auth)
    verifier_settings = AuthSettings(
        jwks=json.dumps(jwks), issuer=auth.issuer, audience=auth.audience
    )
    runtime = ServiceRuntime(settings, auth, verifier=TokenVerifier(verifier_settings, jwks))
    storage = MongoStorage(runtime.store)
    counters = RedisCounters(runtime.redis)
    revocations = Revocations(counters, settings.access_token_ttl_seconds)
    service = IdentityService(
        storage,
        MongoTree(OrgUnits(runtime.db)),
        KeyHasher(settings.identity_pii_key),
        Passwords(
            settings.argon2_time_cost, settings.argon2_memory_kib, settings.argon2_parallelism
        ),
        issuer,
        Lockout(
            counters,
            settings.login_max_failures,
            settings.login_failure_window_seconds,
            settings.login_lockout_seconds,
        ),
        revocations,
        access_ttl=settings.access_token_ttl_seconds,
        refresh_ttl=settings.refresh_token_ttl_seconds,
    )
    tree_projection = OrgUnitsProjectionOfTree()
    runtime.add_projection(tree_projection, [topics.ORG_TREE])
    runtime.add_projection(MergeFollower(service.follow_merge), [topics.ORG_TREE])
    runtime.startup_hooks.append(lambda: tree_projection.create_indexes(runtime.db))
    runtime.startup_hooks.append(storage.create_indexes)

    app = FastAPI(
        title="Sổ tay — identity",
        description="Đảng viên, đăng ký, tài khoản, vai trò, mã truy cập và hồ sơ cá nhân.",
        lifespan=runtime.lifespan,
    )
    runtime.install(app)
    app.state.service = service
    app.state.storage = storage
    app.state.issuer = issuer
    app.state.revocations = revocations
    app.state.limits = settings.limits()
    app.include_router(api.router)

    return app
