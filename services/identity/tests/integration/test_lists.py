"""Bulk onboarding from CSV and Excel, and the reconciliation report, over HTTP."""

import io
from datetime import datetime

import pytest
from openpyxl import Workbook

from sotay_platform.auth import Role

from .conftest import World, bearer, person

pytestmark = pytest.mark.asyncio(loop_scope="session")

HEADER = "Họ và tên,Ngày sinh,Giới tính,Ngày vào Đảng,Ngày chính thức,Số thẻ đảng viên,Mã chi bộ,CCCD,SĐT"


def row(data: dict[str, str], branch: str) -> str:
    return ",".join(
        [
            data["full_name"],
            data["birth_date"],
            data["gender"],
            data["admitted_on"],
            data["official_on"],
            data["party_card_no"],
            branch,
            data["citizen_id"],
            data["phone"],
        ]
    )


async def test_import_then_reconcile(world: World) -> None:
    client = world.client
    admin = world.headers(Role.committee_admin, "HN.X")
    people = [person() for _ in range(4)]
    csv = "\n".join([HEADER, *(row(p, world.u("CB1")) for p in people[:3])]).encode()
    files = {"file": ("danh-sach.csv", csv, "text/csv")}
    r = await client.post(
        "/imports/members", params={"unit_id": world.u("HN.X")}, files=files, headers=admin
    )
    assert r.status_code == 200, r.text
    assert (r.json()["created"], r.json()["rejected"]) == (3, 0)
    r = await client.post(
        "/imports/members", params={"unit_id": world.u("HN.X")}, files=files, headers=admin
    )
    assert r.json()["unchanged"] == 3

    # An imported member gets an account when the secretary sets a password.
    first = next(x for x in r.json()["rows"] if x["row"] == 2)["member_id"]
    r = await client.post(
        f"/members/{first}/password",
        json={"password": "tamthoi123"},
        headers=world.headers(Role.branch_secretary, "CB1"),
    )
    assert r.status_code == 200 and r.json()["account_active"]
    tokens = await world.login(people[0]["phone"], "tamthoi123")
    assert (await client.get("/me", headers=bearer(tokens))).status_code == 403  # change it first
    r = await client.post(
        "/auth/password",
        json={"current_password": "tamthoi123", "new_password": "cuaminh123"},
        headers=bearer(tokens),
    )
    assert r.status_code == 204, r.text
    refreshed = await client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert not refreshed.json()["must_change_password"]
    r = await client.get("/me", headers=bearer(refreshed.json()))
    assert r.json()["registered_by"] == "import"

    # The official list: people[0] with another name, people[1], and people[3] (not imported).
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(
        [
            "Họ và tên",
            "Ngày sinh",
            "Giới tính",
            "Ngày vào Đảng",
            "Ngày chính thức",
            "Số thẻ đảng viên",
            "Mã chi bộ",
            "Số định danh công dân",
        ]
    )
    for p, name in ((people[0], "Nguyễn Văn Ân"), (people[1], None), (people[3], None)):
        day, month, year = (int(x) for x in p["birth_date"].split("/"))
        sheet.append(
            [
                name or p["full_name"],
                datetime(year, month, day),
                p["gender"],
                p["admitted_on"],
                p["official_on"],
                p["party_card_no"],
                world.u("CB1"),
                p["citizen_id"],
            ]
        )
    content = io.BytesIO()
    book.save(content)
    r = await client.post(
        "/reconciliation",
        params={"unit_id": world.u("HN.X")},
        files={"file": ("ds.xlsx", content.getvalue(), "application/octet-stream")},
        headers=admin,
    )
    assert r.status_code == 200, r.text
    report = r.json()
    assert [m["row"] for m in report["missing_in_platform"]] == [4]
    assert [m["full_name"] for m in report["not_on_list"]] == [people[2]["full_name"]]
    (diff,) = report["differences"]
    assert diff["fields"][0]["field"] == "full_name"
    assert report["accounts_not_activated"] == 2
    for p in people:
        assert p["citizen_id"] not in r.text


async def test_bad_files_are_refused_naming_the_field(world: World) -> None:
    admin = world.headers(Role.committee_admin, "HN.X")
    for name, content in (
        ("ds.txt", b"x"),
        ("ds.csv", b"Ten\nAn"),
        ("ds.csv", "Họ tên".encode("utf-16")),
    ):
        r = await world.client.post(
            "/imports/members",
            params={"unit_id": world.u("HN.X")},
            files={"file": (name, content, "text/csv")},
            headers=admin,
        )
        assert r.status_code == 422 and r.json()["field"] == "file", r.text
