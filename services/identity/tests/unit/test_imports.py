"""Bulk onboarding and reconciliation on an in-memory store."""

import io
from collections.abc import Callable
from datetime import datetime

import pytest
from openpyxl import Workbook

from sotay_identity.handlers import IdentityService
from sotay_identity.imports import COLUMNS, import_members, reconcile
from sotay_platform.auth import Principal, Role
from sotay_platform.errors import Invalid
from sotay_platform.uploads import Row, read_table

HEADER = (
    "Họ và tên,Ngày sinh,Giới tính,Ngày vào Đảng,Ngày chính thức,Số thẻ đảng viên,"
    "Mã chi bộ,Số định danh công dân,Số điện thoại\n"
)
ROWS = [
    "Nguyễn Văn An,15/08/1975,Nam,03/02/2000,03/02/2001,01234567,CB1,001075001234,0912345678",
    "Trần Thị Bình,02/03/1980,Nữ,10/10/2005,10/10/2006,01234568,CB1,001180001235,",
    "Lê Văn Cường,01/01/1990,Nam,01/01/2015,,,CB2,001090001236,",
]


def csv_rows(*rows: str) -> list[Row]:
    return read_table("ds.csv", (HEADER + "\n".join(rows)).encode(), COLUMNS)


async def test_import_is_idempotent_and_reports_each_row(
    service: IdentityService, principal: Callable[..., Principal]
) -> None:
    admin = principal(Role.committee_admin, "HN.X")
    bad = "Phạm Văn Dũng,01/01/1990,Nam,01/01/2030,,,CB1,001090001237,"
    dup = "Hoàng Văn Em,15/08/1975,Nam,03/02/2000,03/02/2001,,CB1,001075001234,"
    report = await import_members(service, admin, "HN.X", csv_rows(*ROWS, bad, dup))
    assert (report.created, report.rejected) == (3, 2)
    rejected = {r.row: r for r in report.rows if r.status == "rejected"}
    assert rejected[5].field == "admitted_on"
    assert rejected[6].field == "citizen_id" and "dòng 2" in rejected[6].message
    again = await import_members(service, admin, "HN.X", csv_rows(*ROWS))
    assert (again.created, again.unchanged) == (0, 3)
    roster = await service.roster(admin, "HN.X")
    assert roster["total"] == 3
    assert [m["full_name"] for m in roster["items"]] == [
        "Nguyễn Văn An",
        "Trần Thị Bình",
        "Lê Văn Cường",
    ]
    assert not any(m["account_active"] for m in roster["items"])


async def test_rows_outside_the_unit_are_refused(
    service: IdentityService, principal: Callable[..., Principal]
) -> None:
    row = "Nguyễn Văn An,15/08/1975,Nam,03/02/2000,03/02/2001,,HP.CB1,001075001234,"
    report = await import_members(
        service, principal(Role.system_admin, "TW"), "HN.X", csv_rows(row)
    )
    assert report.rows[0].field == "branch_id"


def test_excel_dates_and_lost_leading_zeros() -> None:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["Họ và tên", "Ngày sinh", "Ngày vào Đảng", "CCCD", "SĐT"])
    sheet.append(
        ["Nguyễn Văn An", datetime(1975, 8, 15), datetime(2000, 2, 3), 1075001234, 912345678]
    )
    buffer = io.BytesIO()
    book.save(buffer)
    rows = read_table("ds.xlsx", buffer.getvalue(), COLUMNS)
    assert rows == [
        {
            "full_name": "Nguyễn Văn An",
            "birth_date": "1975-08-15",
            "admitted_on": "2000-02-03",
            "citizen_id": "001075001234",
            "phone": "0912345678",
        }
    ]


async def test_reconciliation_report(
    service: IdentityService, principal: Callable[..., Principal]
) -> None:
    admin = principal(Role.committee_admin, "HN.X")
    await import_members(service, admin, "HN.X", csv_rows(*ROWS[:2]))
    official = [
        ROWS[0].replace("Nguyễn Văn An", "Nguyễn Văn Ân"),
        ROWS[2],
    ]
    report = await reconcile(service, admin, "HN.X", csv_rows(*official))
    assert [m["full_name"] for m in report["missing_in_platform"]] == ["Lê Văn Cường"]
    assert [m["full_name"] for m in report["not_on_list"]] == ["Trần Thị Bình"]
    (diff,) = report["differences"]
    assert diff["fields"] == [
        {
            "field": "full_name",
            "label": "Họ và tên",
            "list_value": "Nguyễn Văn Ân",
            "platform_value": "Nguyễn Văn An",
        }
    ]
    assert report["accounts_not_activated"] == 2
    assert "001075001234" not in str(report)


async def test_hostile_cells_are_refused_by_row(
    service: IdentityService, principal: Callable[..., Principal]
) -> None:
    admin = principal(Role.committee_admin, "HN.X")
    fullwidth = ROWS[0].replace("001075001234", "００１０７５００１２３４")
    control = ROWS[1].replace("Trần Thị Bình", "Trần Thị \x1bBình")
    odd_branch = ROWS[2].replace(",CB2,", ",CB 2 ; DROP,")
    report = await import_members(
        service, admin, "HN.X", csv_rows(ROWS[0], fullwidth, control, odd_branch)
    )
    rows = {r.row: r for r in report.rows}
    assert rows[2].status == "created"
    assert (rows[3].status, rows[3].field) == ("rejected", "citizen_id")  # its ASCII twin
    assert (rows[4].status, rows[4].field) == ("rejected", "full_name")
    assert (rows[5].status, rows[5].field) == ("rejected", "branch_id")


def test_a_cell_over_the_bound_is_refused_naming_the_file() -> None:
    with pytest.raises(Invalid) as exc:
        csv_rows("Nguyễn Văn An" + "a" * 131_072 + ",15/08/1975,Nam,03/02/2000,,,CB1,001075001234,")
    assert exc.value.field == "file"
