"""Sign-in, lockout, refresh, logout, revocation, password reset, key rotation."""

import os
from pathlib import Path

import httpx
import pytest

from sotay_identity.main import create_app
from sotay_identity.security import write_key
from sotay_platform.auth import Role, TokenVerifier
from sotay_platform.settings import AuthSettings, InfraSettings

from .conftest import PASSWORD, World, bearer, identity_settings

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_lockout_after_repeated_failures_then_reset_by_the_secretary(world: World) -> None:
    client = world.client
    member_id, data = await world.member("CB1")
    wrong = {"phone": data["phone"], "password": "saimatkhau1"}
    for left in (2, 1):
        r = await client.post("/auth/login", json=wrong)
        assert r.status_code == 401 and f"còn {left} lần" in r.json()["message"]
    r = await client.post("/auth/login", json=wrong)
    assert r.status_code == 429
    assert int(r.headers["Retry-After"]) > 0
    assert "tạm khóa" in r.json()["message"]
    r = await client.post("/auth/login", json={"phone": data["phone"], "password": PASSWORD})
    assert r.status_code == 429  # the right password waits too

    secretary = world.headers(Role.branch_secretary, "CB1")
    r = await client.post(
        f"/members/{member_id}/password", json={"password": "ngan"}, headers=secretary
    )
    assert r.status_code == 422 and r.json()["field"] == "password"
    r = await client.post(
        f"/members/{member_id}/password", json={"password": "tamthoi123"}, headers=secretary
    )
    assert r.status_code == 200, r.text
    tokens = await world.login(data["phone"], "tamthoi123")
    assert tokens["must_change_password"]
    # A temporary password allows nothing but changing it.
    for method, url in (("GET", "/me"), ("PATCH", "/me"), ("POST", "/auth/logout")):
        r = await client.request(method, url, json={}, headers=bearer(tokens))
        assert r.status_code == 403 and r.json()["field"] == "password", url
    r = await client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert r.json()["must_change_password"]
    r = await client.get("/me", headers=bearer(r.json()))
    assert r.status_code == 403
    r = await client.post(
        "/auth/password",
        json={"current_password": "tamthoi123", "new_password": "moi12345"},
        headers=bearer(tokens),
    )
    assert r.status_code == 204, r.text
    assert not (await world.login(data["phone"], "moi12345"))["must_change_password"]


async def test_refresh_logout_and_revocation(world: World) -> None:
    client = world.client
    member_id, data = await world.member("CB1")
    tokens = await world.login(data["phone"])
    r = await client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert r.status_code == 200, r.text
    fresh = r.json()
    r = await client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert r.status_code == 401  # spent; reuse ends the session
    r = await client.post("/auth/refresh", json={"refresh_token": fresh["refresh_token"]})
    assert r.status_code == 401
    assert (await client.get("/me", headers=bearer(fresh))).status_code == 401

    tokens = await world.login(data["phone"])
    assert (await client.get("/me", headers=bearer(tokens))).status_code == 200
    assert (await client.post("/auth/logout", headers=bearer(tokens))).status_code == 200
    assert (await client.get("/me", headers=bearer(tokens))).status_code == 401
    r = await client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert r.status_code == 401

    # The secretary ends every session of a member (a lost phone).
    a, b = await world.login(data["phone"]), await world.login(data["phone"])
    r = await client.post(
        f"/members/{member_id}/sessions/revoke",
        headers=world.headers(Role.branch_secretary, "CB1"),
    )
    assert r.json()["sessions_ended"] == 3  # the first, with the temporary password, too
    for t in (a, b):
        assert (await client.get("/me", headers=bearer(t))).status_code == 401


async def test_removed_members_cannot_sign_in(world: World) -> None:
    member_id, data = await world.member("CB1")
    tokens = await world.login(data["phone"])
    r = await world.client.post(
        f"/members/{member_id}/remove",
        json={"reason": "deceased"},
        headers=world.headers(Role.branch_secretary, "CB1"),
    )
    assert r.status_code == 200 and r.json()["state"] == "removed"
    assert (await world.client.get("/me", headers=bearer(tokens))).status_code == 401
    r = await world.client.post("/auth/login", json={"phone": data["phone"], "password": PASSWORD})
    assert r.status_code == 401


async def test_roles_are_granted_only_within_scope(world: World) -> None:
    client = world.client
    member_id, data = await world.member("CB1")
    commune = world.headers(Role.committee_admin, "HN.X")
    for role, unit, status, field in (
        ("branch_secretary", "CB2", 422, "unit_id"),  # not the member's branch
        ("province_admin", "HN", 403, None),  # beyond the commune
        ("member", "CB1", 422, "role"),
        ("chief", "CB1", 422, "role"),
    ):
        r = await client.post(
            f"/members/{member_id}/roles",
            json={"role": role, "unit_id": world.u(unit)},
            headers=commune,
        )
        assert r.status_code == status, (role, r.text)
        if field:
            assert r.json()["field"] == field
    r = await client.post(
        f"/members/{member_id}/roles",
        json={"role": "branch_secretary", "unit_id": world.u("CB1")},
        headers=commune,
    )
    assert r.status_code == 200
    tokens = await world.login(data["phone"])
    me = (await client.get("/me", headers=bearer(tokens))).json()
    assert {r["role"] for r in me["roles"]} == {"branch_secretary"}
    r = await client.delete(
        f"/members/{member_id}/roles/branch_secretary/{world.u('CB1')}", headers=commune
    )
    assert r.status_code == 200 and r.json()["roles"] == []


async def test_a_units_office_is_listed_for_its_officers_only(world: World) -> None:
    """Who holds a role at a unit, for handing work to a colleague: names and roles there,
    nothing personal; a plain member, another province or a forged token sees nothing."""
    client = world.client
    member_id, data = await world.member("CB1")
    commune = world.headers(Role.committee_admin, "HN.X")
    r = await client.post(
        f"/members/{member_id}/roles",
        json={"role": "branch_secretary", "unit_id": world.u("CB1")},
        headers=commune,
    )
    assert r.status_code == 200
    r = await client.get(f"/units/{world.u('CB1')}/office", headers=commune)
    assert r.status_code == 200, r.text
    [officer] = r.json()["items"]
    assert officer["member_id"] == member_id
    assert officer["full_name"] == data["full_name"]
    assert [g["role"] for g in officer["roles"]] == ["branch_secretary"]
    assert officer["roles"][0]["label"]
    assert set(officer) == {"member_id", "full_name", "roles"}
    r = await client.get(f"/units/{world.u('CB2')}/office", headers=commune)
    assert r.status_code == 200 and r.json()["items"] == []
    for headers in (
        world.headers(Role.member, "CB1"),
        world.headers(Role.province_admin, "HP"),
        {"Authorization": "Bearer forged.token.here"},
        {},
    ):
        r = await client.get(f"/units/{world.u('CB1')}/office", headers=headers)
        assert r.status_code in (401, 403), r.text
    r = await client.get(f"/units/{world.u('NOPE')}/office", headers=commune)
    assert r.status_code == 404 and r.json()["field"] == "unit_id"
    plain_id, _ = await world.member("CB1")
    asked = {"member_id": [member_id, plain_id, "nobody"]}
    r = await client.get("/officers", params=asked, headers=commune)
    assert r.status_code == 200, r.text
    assert [o["member_id"] for o in r.json()["items"]] == [member_id]  # only role holders
    r = await client.get("/officers", params=asked, headers=world.headers(Role.editor, "HP"))
    assert r.status_code == 200 and r.json()["items"] == []  # not over that unit
    r = await client.get("/officers", params=asked, headers=world.headers(Role.member, "CB1"))
    assert r.status_code == 403
    r = await client.get("/officers", params={"member_id": ["x"] * 51}, headers=commune)
    assert r.status_code == 422 and r.json()["field"] == "member_id"


async def test_a_key_directory_rotates_without_logging_anyone_out(
    infra: InfraSettings, auth_settings: AuthSettings, tmp_path: Path
) -> None:
    """Served from the app's own routes; no servers needed for the JWKS."""
    write_key(tmp_path, "2026-01")
    settings = identity_settings(
        infra, identity_keys_dir=str(tmp_path), identity_pii_key="test-secret"
    )
    first = create_app(settings, auth_settings)
    old_token = first.state.issuer.issue("m1", [], member_id="m1")
    write_key(tmp_path, "2026-02")
    os.utime(tmp_path / "2026-02.pem", (2_000_000_000, 2_000_000_000))
    second = create_app(settings, auth_settings)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=second), base_url="http://identity"
    ) as client:
        jwks = (await client.get("/.well-known/jwks.json")).json()
    assert {k["kid"] for k in jwks["keys"]} == {"2026-01", "2026-02"}
    assert second.state.issuer.current_kid == "2026-02"
    assert TokenVerifier(AuthSettings(), jwks).verify(old_token).member_id == "m1"
