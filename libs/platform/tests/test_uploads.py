"""The one upload reader: rows by column name with their numbers, or a clear 4xx."""

from __future__ import annotations

import io
import zipfile
from datetime import datetime

import pytest
from openpyxl import Workbook
from starlette.datastructures import UploadFile

from sotay_platform.errors import Invalid, PayloadTooLarge, ServiceError, status_of
from sotay_platform.uploads import Column, Row, UploadLimits, read_table, read_upload

COLUMNS = [
    Column("code", "Mã đơn vị", {"mã", "mã đơn vị", "code"}, required=True),
    Column("name", "Tên đơn vị", {"tên", "tên đơn vị"}, required=True),
    Column("citizen_id", "Số định danh", {"cccd", "số định danh"}, zero_pad=12),
    Column("born", "Ngày sinh", {"ngày sinh"}),
]


def xlsx(rows: list[list[object]]) -> bytes:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    for row in rows:
        sheet.append(row)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def refusal(filename: str, content: bytes, limits: UploadLimits | None = None) -> ServiceError:
    with pytest.raises(ServiceError) as exc:
        read_table(filename, content, COLUMNS, limits)
    assert exc.value.field == "file"
    assert 400 <= status_of(exc.value) < 500
    return exc.value


def test_csv_rows_by_column_with_the_numbers_a_user_sees() -> None:
    text = "\ufeffMã đơn vị,TÊN_ĐƠN_VỊ,Ghi chú\nHN,Hà Nội,x\n,,\nHN.BD, Ba Đình ,y\n"
    rows = read_table("a.csv", text.encode(), COLUMNS)
    assert rows == [
        {"code": "HN", "name": "Hà Nội"},
        {"code": "HN.BD", "name": "Ba Đình"},
    ]
    assert [r.number for r in rows] == [2, 4]
    assert isinstance(rows[0], Row)


def test_without_columns_the_keys_are_folded_headers() -> None:
    rows = read_table("a.csv", "Mã đơn vị;Tên\nHN;Hà Nội\n".encode())
    assert rows == [{"ma don vi": "HN", "ten": "Hà Nội"}]


def test_semicolon_csv_from_a_vietnamese_excel() -> None:
    rows = read_table("a.csv", "mã;tên;cccd\nHN;Hà Nội;038075001234\n".encode(), COLUMNS)
    assert rows[0]["citizen_id"] == "038075001234"


def test_workbook_rows_undo_excel_conversions() -> None:
    content = xlsx(
        [
            [None],
            ["Mã", "Tên", "CCCD", "Ngày sinh"],
            ["HN", "Hà Nội", 38075001234, datetime(1975, 8, 15)],
        ]
    )
    rows = read_table("danh-muc.xlsx", content, COLUMNS)
    assert rows == [
        {"code": "HN", "name": "Hà Nội", "citizen_id": "038075001234", "born": "1975-08-15"}
    ]
    assert rows[0].number == 3


def test_an_oversize_csv_cell_is_a_4xx_not_a_500() -> None:
    huge = "x" * (128 * 1024 + 10)
    err = refusal("a.csv", f'mã,tên\nHN,"{huge}"\n'.encode())
    assert "dài quá" in err.message
    err = refusal("a.csv", f"mã,tên\nHN,{'y' * 40_000}\n".encode())
    assert "Dòng 2" in err.message


def test_an_oversize_workbook_cell_is_refused() -> None:
    content = xlsx([["Mã", "Tên"], ["HN", "x" * 2000]])
    err = refusal("a.xlsx", content, UploadLimits(max_cell_chars=1000))
    assert "Dòng 2, cột Tên đơn vị" in err.message


def test_a_file_that_is_not_what_its_name_says() -> None:
    assert "không phải bảng tính" in refusal("a.xlsx", b"code,name\nHN,Ha Noi\n").message
    assert "không phải bảng tính" in refusal("a.xlsx", b"PK\x03\x04garbage").message
    assert ".xls" in refusal("a.xlsx", b"\xd0\xcf\x11\xe0" + b"\0" * 100).message
    not_a_book = io.BytesIO()
    with zipfile.ZipFile(not_a_book, "w") as archive:
        archive.writestr("hello.txt", "not a workbook")
    assert "không phải bảng tính" in refusal("a.xlsx", not_a_book.getvalue()).message
    assert "đổi đuôi" in refusal("a.csv", xlsx([["Mã", "Tên"]])).message
    assert "nhị phân" in refusal("a.csv", b"\x00\x01\x02binary").message
    assert "Chỉ nhận" in refusal("a.pdf", b"%PDF").message


def test_encodings_other_than_utf8_are_refused_not_guessed() -> None:
    cp1258 = "code,name\nHN,Hà\n".encode("cp1258")
    assert "UTF-8" in refusal("a.csv", cp1258).message
    assert "UTF-16" in refusal("a.csv", "mã,tên".encode("utf-16")).message
    assert "UTF-8" in refusal("a.csv", "mã,tên\nHN,Hà Nội".encode("latin-1", "replace")).message


def test_headers_are_checked() -> None:
    assert "Tên đơn vị" in refusal("a.csv", b"code\nHN\n").message
    assert "hai lần" in refusal("a.csv", "mã,code,tên\nA,B,C\n".encode()).message
    assert "không có dữ liệu" in refusal("a.csv", b"\n\n").message
    wide = ",".join(f"c{i}" for i in range(200))
    assert "cột" in refusal("a.csv", f"mã,tên,{wide}\n".encode()).message


def test_rows_and_size_are_bounded() -> None:
    many = "mã,tên\n" + "HN,x\n" * 11
    assert "10 dòng" in refusal("a.csv", many.encode(), UploadLimits(max_rows=10)).message
    err = refusal("a.csv", b"x" * 2000, UploadLimits(max_bytes=1000))
    assert isinstance(err, PayloadTooLarge) and status_of(err) == 413


def test_a_cell_limit_never_leaks_into_the_csv_module() -> None:
    import csv

    before = csv.field_size_limit()
    with pytest.raises(Invalid):
        read_table("a.csv", f"mã,tên\nHN,{'y' * 40_000}\n".encode(), COLUMNS)
    assert csv.field_size_limit() == before


async def test_read_upload_reads_an_upload_file() -> None:
    upload = UploadFile(io.BytesIO("mã,tên\nHN,Hà Nội\n".encode()), filename="a.csv")
    assert await read_upload(upload, COLUMNS) == [{"code": "HN", "name": "Hà Nội"}]
    big = UploadFile(io.BytesIO(b"x" * 5000), filename="a.csv")
    with pytest.raises(PayloadTooLarge):
        await read_upload(big, COLUMNS, UploadLimits(max_bytes=1000))
