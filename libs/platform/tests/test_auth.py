"""Token verification: the key set fetched without blocking, cached, throttled; 503 when
identity is away; a temporary password allows nothing but changing it."""

import asyncio
import json
import socket
import time
from pathlib import Path

import httpx
import pytest
from fastapi import Depends, FastAPI

from sotay_platform.auth import (
    PASSWORD_CHANGE_CLAIM,
    Principal,
    TokenIssuer,
    TokenVerifier,
    current_principal,
    current_principal_allowing_password_change,
)
from sotay_platform.errors import Unauthorized, Unavailable, install_error_handlers
from sotay_platform.settings import AuthSettings


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_an_unknown_key_while_identity_is_away_is_a_503() -> None:
    issuer = TokenIssuer.generate(kid="k1")
    settings = AuthSettings(jwks=f"http://127.0.0.1:{closed_port()}/.well-known/jwks.json")
    with pytest.raises(Unavailable):
        await TokenVerifier(settings).verify_async(issuer.issue("m1", []))


async def test_a_rotated_key_is_fetched_once_then_throttled(tmp_path: Path) -> None:
    old, new = TokenIssuer.generate(kid="old"), TokenIssuer.generate(kid="new")
    source = tmp_path / "jwks.json"
    source.write_text(json.dumps(old.jwks()))
    settings = AuthSettings(jwks=str(source), jwks_min_refetch_seconds=0.3)
    verifier = TokenVerifier(settings)
    assert (await verifier.verify_async(old.issue("m1", []))).subject == "m1"

    forged = new.issue("m2", [])
    with pytest.raises(Unauthorized):
        await verifier.verify_async(forged)  # fetched: the key is not published
    source.write_text(json.dumps({"keys": old.jwks()["keys"] + new.jwks()["keys"]}))
    with pytest.raises(Unauthorized):
        await verifier.verify_async(forged)  # not fetched again so soon
    await asyncio.sleep(0.35)
    assert (await verifier.verify_async(forged)).subject == "m2"


async def test_a_temporary_password_allows_only_changing_it() -> None:
    issuer = TokenIssuer.generate()
    app = FastAPI()
    app.state.token_verifier = TokenVerifier(AuthSettings(), issuer.jwks())
    install_error_handlers(app)

    @app.get("/me")
    async def me(principal: Principal = Depends(current_principal)) -> dict[str, str]:
        return {"sub": principal.subject}

    @app.post("/me/password")
    async def change(
        principal: Principal = Depends(current_principal_allowing_password_change),
    ) -> dict[str, str]:
        return {"sub": principal.subject}

    temporary = issuer.issue("m1", [], extra={PASSWORD_CHANGE_CLAIM: True})
    headers = {"Authorization": f"Bearer {temporary}"}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        refused = await client.get("/me", headers=headers)
        assert refused.status_code == 403 and refused.json()["field"] == "password"
        assert (await client.post("/me/password", headers=headers)).status_code == 200
        normal = {"Authorization": f"Bearer {issuer.issue('m1', [])}"}
        assert (await client.get("/me", headers=normal)).status_code == 200


async def test_a_remembered_token_still_expires_on_time() -> None:
    issuer = TokenIssuer.generate()
    verifier = TokenVerifier(AuthSettings(), issuer.jwks())
    token = issuer.issue("m1", [], ttl_seconds=1)
    first = verifier.verify(token)
    assert verifier.verify(token) is first  # remembered, not verified again
    await asyncio.sleep(max(0.0, first.claims["exp"] - time.time()) + 0.05)
    with pytest.raises(Unauthorized, match="hết hạn"):
        verifier.verify(token)


async def test_a_withdrawn_key_ends_its_remembered_tokens(tmp_path: Path) -> None:
    old, new = TokenIssuer.generate(kid="old"), TokenIssuer.generate(kid="new")
    source = tmp_path / "jwks.json"
    source.write_text(json.dumps({"keys": old.jwks()["keys"] + new.jwks()["keys"]}))
    verifier = TokenVerifier(AuthSettings(jwks=str(source), jwks_min_refetch_seconds=0))
    token = old.issue("m1", [])
    assert (await verifier.verify_async(token)).subject == "m1"
    source.write_text(json.dumps(new.jwks()))
    await verifier.refresh(force=True)
    with pytest.raises(Unauthorized):
        await verifier.verify_async(token)
    assert (await verifier.verify_async(new.issue("m2", []))).subject == "m2"


def test_only_good_tokens_are_remembered_and_only_so_many() -> None:
    issuer, stranger = TokenIssuer.generate(kid="k"), TokenIssuer.generate(kid="k")
    verifier = TokenVerifier(AuthSettings(), issuer.jwks(), cache_size=3)
    forged = stranger.issue("m0", [])
    for _ in range(2):
        with pytest.raises(Unauthorized):
            verifier.verify(forged)
    tokens = [issuer.issue(f"m{n}", []) for n in range(5)]
    for token in tokens:
        verifier.verify(token)
    assert len(verifier._verified) == 3
    assert [verifier.verify(t).subject for t in tokens] == [f"m{n}" for n in range(5)]
