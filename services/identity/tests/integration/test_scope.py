"""A secretary of one branch can neither approve, read nor change a member of another:
every endpoint that names a member or a unit is tried, and nothing changes."""

from typing import Any

import httpx
import pytest

from sotay_platform.auth import Role

from .conftest import PASSWORD, World, person

pytestmark = pytest.mark.asyncio(loop_scope="session")

CSV = (
    "Họ và tên,Ngày sinh,Giới tính,Ngày vào Đảng,Ngày chính thức,Số định danh công dân\n"
    "Lê Văn Cường,01/01/1990,Nam,01/01/2015,01/01/2016,001090000001\n"
).encode()


async def test_every_endpoint_refuses_a_secretary_of_another_branch(world: World) -> None:
    client = world.client
    member_id, _ = await world.member("CB1")
    await client.post(
        f"/members/{member_id}/roles",
        json={"role": "branch_committee_member", "unit_id": world.u("CB1")},
        headers=world.headers(Role.branch_secretary, "CB1"),
    )
    r = await client.post(
        "/registrations", json={**person(), "branch_id": world.u("CB1"), "password": PASSWORD}
    )
    pending = r.json()["member_id"]
    _, outsider = await world.secretary("CB2")  # a real one, signed in through identity
    storage = world.app.state.storage
    before = {m: await storage.member_row(m) for m in (member_id, pending)}
    cb1 = world.u("CB1")
    files = {"file": ("ds.csv", CSV, "text/csv")}

    attempts: list[tuple[str, str, dict[str, Any]]] = [
        ("GET", "/members", {"params": {"unit_id": cb1}}),
        ("GET", "/registrations", {"params": {"unit_id": cb1}}),
        ("POST", f"/registrations/{pending}/approve", {}),
        ("POST", f"/registrations/{pending}/reject", {"json": {"reason": "Không rõ"}}),
        ("POST", "/members", {"json": {**person(), "branch_id": cb1}}),
        ("GET", f"/members/{member_id}", {}),
        ("GET", f"/members/{pending}", {}),
        ("PATCH", f"/members/{member_id}", {"json": {"full_name": "Người Khác Sửa"}}),
        ("PATCH", f"/members/{pending}", {"json": {"full_name": "Người Khác Sửa"}}),
        (
            "POST",
            f"/members/{member_id}/status",
            {"json": {"status": "exempted", "effective_on": "01/01/2026"}},
        ),
        ("POST", f"/members/{member_id}/transfer", {"json": {"to_branch_id": world.u("CB2")}}),
        ("POST", f"/members/{member_id}/remove", {"json": {"reason": "left"}}),
        ("POST", f"/members/{member_id}/password", {"json": {"password": "tamthoi123"}}),
        ("POST", f"/members/{member_id}/sessions/revoke", {}),
        (
            "POST",
            f"/members/{member_id}/roles",
            {"json": {"role": "branch_committee_member", "unit_id": cb1}},
        ),
        ("DELETE", f"/members/{member_id}/roles/branch_committee_member/{cb1}", {}),
        ("POST", "/imports/members", {"params": {"unit_id": cb1}, "files": files}),
        ("POST", "/reconciliation", {"params": {"unit_id": cb1}, "files": files}),
    ]
    for method, url, kw in attempts:
        r = await client.request(method, url, headers=outsider, **kw)
        assert r.status_code == 403, (method, url, r.status_code, r.text)
        assert r.json()["error"] == "forbidden"

    after = {m: await storage.member_row(m) for m in (member_id, pending)}
    assert after == before
    # The member's own secretary may do what the other may not.
    own = world.headers(Role.branch_secretary, "CB1")
    assert (await client.get(f"/members/{member_id}", headers=own)).status_code == 200
    assert (await client.post(f"/registrations/{pending}/approve", headers=own)).status_code == 200


async def test_a_committee_admin_covers_the_branches_under_it(world: World) -> None:
    member_id, _ = await world.member("CB2")
    admin = world.headers(Role.committee_admin, "HN.X")
    r = await world.client.get("/members", params={"unit_id": world.u("HN")}, headers=admin)
    assert r.status_code == 403  # above the commune
    r = await world.client.get("/members", params={"unit_id": world.u("HN.X")}, headers=admin)
    assert member_id in [m["member_id"] for m in r.json()["items"]]
    other_province = world.headers(Role.province_admin, "HP")
    r = await world.client.get(f"/members/{member_id}", headers=other_province)
    assert r.status_code == 403


async def test_without_a_token_nothing_is_served(client: httpx.AsyncClient) -> None:
    for method, url in (("GET", "/me"), ("GET", "/members?unit_id=x"), ("POST", "/members")):
        r = await client.request(method, url)
        assert r.status_code == 401
