"""Hostile input at the boundary: each of issue 11's findings for identity is a 4xx."""

import json

import pytest

from sotay_platform.auth import Role

from .conftest import PASSWORD, World, person

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_offsets_beyond_eight_bytes_are_refused(module_world: World) -> None:
    admin = module_world.admin
    for offset in (2**63, -1, 10**30):
        r = await module_world.client.get(
            "/members", params={"unit_id": module_world.u("CB1"), "offset": offset}, headers=admin
        )
        assert r.status_code == 422 and r.json()["field"] == "offset", r.text


async def test_lone_surrogates_are_refused_even_anonymously(module_world: World) -> None:
    client = module_world.client
    # A lone surrogate cannot be encoded by json.dumps(ensure_ascii=False): send it escaped.
    for url, body, field in (
        ("/auth/login", {"phone": "0912345678", "password": "ab\ud800cd12"}, "password"),
        (
            "/registrations",
            {**person(), "branch_id": module_world.u("CB1"), "password": "ab\ud800cd12"},
            "password",
        ),
        (
            "/registrations",
            {**person(), "full_name": "Nguyễn \ud800An", "branch_id": module_world.u("CB1")},
            "full_name",
        ),
    ):
        r = await client.post(
            url, content=json.dumps(body), headers={"Content-Type": "application/json"}
        )
        assert r.status_code == 422 and r.json()["field"] == field, r.text


async def test_calendar_ends_and_oversized_text_are_refused(module_world: World) -> None:
    client = module_world.client
    for change, field in (
        ({"birth_date": "0001-01-01"}, "birth_date"),
        ({"admitted_on": "9999-12-31"}, "admitted_on"),
        ({"full_name": "Nguyễn " + "A" * 1_000_000}, "full_name"),
        ({"work_history": [{"content": "x" * 1001}]}, "work_history.0.content"),
        ({"work_history": [{"content": "Giáo viên"}] * 201}, "work_history"),
    ):
        body = {**person(), **change, "branch_id": module_world.u("CB1"), "password": PASSWORD}
        r = await client.post("/registrations", json=body)
        assert r.status_code in (413, 422), (change.keys(), r.text)
        if r.status_code == 422:
            assert r.json()["field"] == field


async def test_csv_cells_over_the_bound_are_refused(module_world: World) -> None:
    admin = module_world.headers(Role.committee_admin, "HN.X")
    huge = "Họ và tên,Ngày sinh,Ngày vào Đảng,CCCD\n" + "A" * (128 * 1024 + 1) + ",1,1,1\n"
    for url in ("/imports/members", "/reconciliation"):
        r = await module_world.client.post(
            url,
            params={"unit_id": module_world.u("HN.X")},
            files={"file": ("ds.csv", huge.encode(), "text/csv")},
            headers=admin,
        )
        assert r.status_code == 422 and r.json()["field"] == "file", r.text
        r = await module_world.client.post(
            url,
            params={"unit_id": module_world.u("HN.X")},
            files={"file": ("ds.xlsx", b"PK\x03\x04 not a workbook", "application/octet-stream")},
            headers=admin,
        )
        assert r.status_code == 422 and r.json()["field"] == "file", r.text


async def test_errors_name_no_unit_outside_the_callers_scope(module_world: World) -> None:
    """A secretary of CB1 naming the other province's branch learns nothing of its name."""
    world = module_world
    r = await world.client.post(
        "/members",
        json={**person(), "branch_id": world.u("HP")},
        headers=world.headers(Role.branch_secretary, "CB1"),
    )
    assert r.status_code == 422 and r.json()["field"] == "branch_id"
    assert "Đơn vị HP" not in r.text  # the unit's name, as org-tree gave it
    r = await world.client.post(
        "/registrations", json={**person(), "branch_id": world.u("HP"), "password": PASSWORD}
    )
    assert r.status_code == 422 and "Đơn vị HP" not in r.text
