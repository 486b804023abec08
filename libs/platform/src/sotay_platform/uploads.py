"""One reader for CSV and Excel (.xlsx) uploads, bounded, with a clear Vietnamese 4xx.

    from sotay_platform.uploads import Column, read_upload

    COLUMNS = [
        Column("code", "Mã đơn vị", {"mã", "mã đơn vị", "code"}, required=True),
        Column("citizen_id", "Số định danh", {"cccd", "số định danh"}, zero_pad=12),
    ]

    @router.post("/import")
    async def import_units(file: Annotated[UploadFile, File()], ...):
        rows = await read_upload(file, COLUMNS)       # list[Row]
        for row in rows:
            row.number, row["code"]                   # the row as the user's spreadsheet shows it

A `Row` is a dict from column name to the cell's text (NFC, trimmed, "" when empty) with
its `number` (the header is row 1 unless blank rows precede it; blank rows are skipped but
counted). Headers match their aliases after `fold` (case, diacritics, spaces and `_` do
not matter); unknown columns are ignored, a required one missing or one given twice is
refused. Without `columns` the keys are the folded headers.

CSV must be UTF-8 (with or without a BOM); `,`, `;` or tab separated, chosen from the
header line. Anything else is refused with how to save it from Excel, never guessed. A
file whose content is not what its name says (a `.xlsx` that is not a workbook, a `.csv`
that is binary or a renamed workbook) is refused too. `UploadLimits` bounds the file's
size (413), its rows, columns and each cell's length (422, the cell's row and column
named), and a workbook's unzipped size.
"""

from __future__ import annotations

import contextlib
import csv
import io
import unicodedata
import zipfile
from collections.abc import Collection, Generator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Protocol

from openpyxl import load_workbook

from sotay_platform.errors import Invalid, PayloadTooLarge
from sotay_platform.inputs import fold

EXCEL_CELL_LIMIT = 32_767  # Excel's own bound on a cell: a CSV and a workbook behave alike


@dataclass(frozen=True)
class UploadLimits:
    max_bytes: int = 20 << 20
    max_rows: int = 50_000
    max_columns: int = 100
    max_cell_chars: int = EXCEL_CELL_LIMIT
    max_unzipped_bytes: int = 200 << 20


@dataclass(frozen=True)
class Column:
    """`name` keys the rows, `label` names it in messages, `aliases` are the headers that
    mean it. A numeric Excel cell in a `zero_pad` column gets its leading zeros back."""

    name: str
    label: str
    aliases: Collection[str] = ()
    required: bool = False
    zero_pad: int | None = None
    folded: frozenset[str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "folded", frozenset(fold(a) for a in (self.name, self.label, *self.aliases))
        )


class Row(dict[str, str]):
    """A row's cells by column name, and its `number` as the spreadsheet shows it."""

    def __init__(self, number: int, cells: dict[str, str]) -> None:
        super().__init__(cells)
        self.number = number


class _Upload(Protocol):
    filename: str | None

    async def read(self, size: int = -1) -> bytes: ...


async def read_upload(
    file: _Upload, columns: Sequence[Column] | None = None, limits: UploadLimits | None = None
) -> list[Row]:
    """`read_table` on a FastAPI `UploadFile`, reading no more than the size limit."""
    limits = limits or UploadLimits()
    content = await file.read(limits.max_bytes + 1)
    return read_table(file.filename or "", content, columns, limits)


def read_table(
    filename: str,
    content: bytes,
    columns: Sequence[Column] | None = None,
    limits: UploadLimits | None = None,
) -> list[Row]:
    limits = limits or UploadLimits()
    if len(content) > limits.max_bytes:
        raise PayloadTooLarge(
            f"Tệp lớn quá {limits.max_bytes / (1 << 20):g} MB", field="file", code="file_too_large"
        )
    lower = filename.lower()
    if lower.endswith((".xlsx", ".xlsm")):
        raw = _workbook_rows(content, limits)
    elif lower.endswith(".csv"):
        raw = _csv_rows(content, limits)
    elif lower.endswith(".xls"):
        raise Invalid("Tệp Excel 97-2003 (.xls) chưa được hỗ trợ: hãy lưu thành .xlsx", "file")
    else:
        raise Invalid("Chỉ nhận tệp .csv hoặc .xlsx", field="file")
    with contextlib.closing(raw):  # a workbook stays open until its rows are read
        return _rows(raw, columns, limits)


_Raw = Generator[tuple[int, list[Any]], None, None]
_NOT_A_WORKBOOK = "Tệp có đuôi .xlsx nhưng không phải bảng tính Excel"


def _workbook_rows(content: bytes, limits: UploadLimits) -> _Raw:
    if content[:4] == b"\xd0\xcf\x11\xe0":
        raise Invalid("Tệp là Excel 97-2003 (.xls) đổi đuôi: hãy lưu thành .xlsx", "file")
    try:
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            unzipped = sum(info.file_size for info in archive.infolist())
    except zipfile.BadZipFile:
        raise Invalid(_NOT_A_WORKBOOK, field="file") from None
    if unzipped > limits.max_unzipped_bytes:
        raise Invalid("Tệp Excel khi giải nén quá lớn", field="file")
    try:
        book = load_workbook(io.BytesIO(content), read_only=True, data_only=True)
    except Exception:  # openpyxl raises whatever its parsers meet; none of it is a server fault
        raise Invalid(_NOT_A_WORKBOOK, field="file") from None
    try:
        if not book.worksheets:
            raise Invalid("Tệp Excel không có trang tính nào", field="file")
        rows = book.worksheets[0].iter_rows(values_only=True, max_col=limits.max_columns + 1)
        number = 0
        while True:
            try:
                values = next(rows)
            except StopIteration:
                return
            except Exception:
                raise Invalid("Không đọc được nội dung tệp Excel", field="file") from None
            number += 1
            yield number, list(values)
    finally:
        book.close()


def _decode(content: bytes) -> str:
    head = content[:8192]
    if head.startswith(b"PK\x03\x04"):
        raise Invalid("Tệp có đuôi .csv nhưng là bảng tính Excel: hãy đổi đuôi thành .xlsx", "file")
    if head.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" in head:
        raise Invalid(
            "Tệp có đuôi .csv nhưng không phải văn bản CSV UTF-8 (tệp nhị phân hoặc UTF-16)",
            field="file",
        )
    try:
        return content.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise Invalid(
            "Tệp CSV phải mã hóa UTF-8: trong Excel chọn Lưu thành → CSV UTF-8 (Comma delimited)",
            field="file",
        ) from None


def _csv_rows(content: bytes, limits: UploadLimits) -> _Raw:
    text = _decode(content)
    first = text.split("\n", 1)[0]
    delimiter = max((",", ";", "\t"), key=first.count)
    previous = csv.field_size_limit()
    # One more than the bound, so that a cell over it is ours to report, not csv's to raise.
    csv.field_size_limit(limits.max_cell_chars + 1)
    try:
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
        number = 0
        while True:
            try:
                values = next(reader)
            except StopIteration:
                return
            except csv.Error:
                raise Invalid(
                    f"Dòng {number + 1}: ô dài quá {limits.max_cell_chars} ký tự hoặc "
                    "dấu ngoặc kép không đóng",
                    field="file",
                ) from None
            number += 1
            yield number, values
    finally:
        csv.field_size_limit(previous)


def _text(value: Any, zero_pad: int | None) -> str:
    """Excel turns dates into datetimes and numbers lose their leading zeros: undo both."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return (
            value.date().isoformat() if value.time() == datetime.min.time() else value.isoformat()
        )
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        text = str(value)
        return text.zfill(zero_pad) if zero_pad and value >= 0 else text
    return str(value).strip()


def _rows(raw: _Raw, columns: Sequence[Column] | None, limits: UploadLimits) -> list[Row]:
    header: list[Column | None] | None = None
    out: list[Row] = []
    for number, values in raw:
        if not any(v not in (None, "") and str(v).strip() for v in values):
            continue
        if header is None:
            header = _header(values, columns, limits)
            continue
        if len(out) >= limits.max_rows:
            raise Invalid(f"Tệp có hơn {limits.max_rows} dòng dữ liệu", field="file")
        cells = {c.name: "" for c in header if c is not None}
        for column, value in zip(header, values, strict=False):
            if column is None:
                continue
            text = _text(value, column.zero_pad)
            if len(text) > limits.max_cell_chars:
                raise Invalid(
                    f"Dòng {number}, cột {column.label}: ô dài quá {limits.max_cell_chars} ký tự",
                    field="file",
                )
            cells[column.name] = unicodedata.normalize("NFC", text) if not text.isascii() else text
        out.append(Row(number, cells))
    if header is None:
        raise Invalid("Tệp không có dữ liệu", field="file")
    return out


def _header(
    values: list[Any], columns: Sequence[Column] | None, limits: UploadLimits
) -> list[Column | None]:
    while values and values[-1] in (None, ""):
        values = values[:-1]
    if len(values) > limits.max_columns:
        raise Invalid(f"Tệp có hơn {limits.max_columns} cột", field="file")
    header: list[Column | None] = []
    seen: set[str] = set()
    for value in values:
        text = str(value or "")[:200]
        folded = fold(text)
        column = (
            next((c for c in columns if folded in c.folded), None)
            if columns is not None
            else Column(folded, text.strip())
            if folded
            else None
        )
        if column is not None:
            if column.name in seen:
                raise Invalid(f"Cột {column.label} xuất hiện hai lần", field="file")
            seen.add(column.name)
        header.append(column)
    missing = [c.label for c in columns or () if c.required and c.name not in seen]
    if missing:
        raise Invalid(f"Thiếu cột bắt buộc: {', '.join(missing)}", field="file")
    return header


__all__ = ["Column", "Row", "UploadLimits", "read_table", "read_upload"]
