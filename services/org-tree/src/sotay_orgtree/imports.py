"""Bulk import of a province's catalogue from CSV or Excel, with a report row by row.

Each row goes through the same command as the API, so the same rules hold;
a row already imported is reported unchanged, so a file can be sent again.
"""

from __future__ import annotations

import csv
import io
import unicodedata
from dataclasses import asdict, dataclass, field
from typing import Any

from openpyxl import load_workbook

from sotay_events.catalogue.org_tree import LEVEL_LABELS, OrgLevel
from sotay_orgtree.domain import RuleBroken
from sotay_orgtree.handlers import OrgTreeService
from sotay_platform.auth import Principal
from sotay_platform.errors import Invalid, ServiceError

MAX_ROWS = 50_000


def _fold(text: str) -> str:
    """Lower case, no diacritics, single spaces: how headers and labels are matched."""
    text = unicodedata.normalize("NFD", text.replace("đ", "d").replace("Đ", "D"))
    text = "".join(c for c in text if unicodedata.category(c) != "Mn")
    return " ".join(text.lower().replace("_", " ").split())


HEADERS = {
    "code": {"code", "ma", "ma don vi", "ma to chuc"},
    "name": {"name", "ten", "ten don vi", "ten to chuc"},
    "level": {"level", "cap", "loai", "cap to chuc", "loai to chuc"},
    "parent_code": {
        "parent code",
        "parent",
        "ma cap tren",
        "ma don vi cap tren",
        "don vi cap tren",
    },
}
LEVELS = (
    {_fold(level.value): level for level in OrgLevel}
    | {_fold(label): level for level, label in LEVEL_LABELS.items()}
    | {
        "chi bo": OrgLevel.branch,
        "dang bo xa": OrgLevel.commune,
        "dang bo phuong": OrgLevel.commune,
    }
)


@dataclass
class RowResult:
    row: int
    code: str
    status: str  # created | unchanged | rejected
    message: str = ""
    field: str | None = None


@dataclass
class ImportReport:
    created: int = 0
    unchanged: int = 0
    rejected: int = 0
    rows: list[RowResult] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def read_table(filename: str, content: bytes) -> list[dict[str, str]]:
    """Rows as dicts keyed by canonical column names; row numbers follow the file (header = 1)."""
    lower = filename.lower()
    if lower.endswith((".xlsx", ".xlsm")):
        workbook = load_workbook(io.BytesIO(content), read_only=True, data_only=True)
        sheet = workbook.worksheets[0]
        raw = [
            ["" if v is None else str(v).strip() for v in row]
            for row in sheet.iter_rows(values_only=True)
        ]
    elif lower.endswith(".csv"):
        try:
            text = content.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise Invalid("Tệp CSV phải mã hóa UTF-8", field="file") from None
        raw = [[c.strip() for c in row] for row in csv.reader(io.StringIO(text))]
    else:
        raise Invalid("Chỉ nhận tệp .csv hoặc .xlsx", field="file")
    if not raw:
        raise Invalid("Tệp không có dữ liệu", field="file")
    columns: list[str | None] = []
    for header in raw[0]:
        folded = _fold(header)
        columns.append(next((name for name, aliases in HEADERS.items() if folded in aliases), None))
    missing = [name for name in ("code", "name", "level") if name not in columns]
    if missing:
        raise Invalid(f"Thiếu cột bắt buộc: {', '.join(missing)}", field="file")
    if len(raw) - 1 > MAX_ROWS:
        raise Invalid(f"Tệp có hơn {MAX_ROWS} dòng", field="file")
    return [
        {col: value for col, value in zip(columns, row, strict=False) if col} for row in raw[1:]
    ]


def parse_level(value: str) -> OrgLevel:
    level = LEVELS.get(_fold(value))
    if level is None:
        raise RuleBroken(f"Cấp tổ chức không hợp lệ: '{value}'", field="level")
    return level


def dependency_order(rows: list[dict[str, str]]) -> list[int]:
    """Row indexes so that a parent created in the same file comes before its children."""
    index_of: dict[str, int] = {}
    for i, row in enumerate(rows):
        if row.get("code"):
            index_of.setdefault(row["code"], i)  # a code repeated later is the duplicate
    order: list[int] = []
    state: dict[int, int] = {}  # 1 visiting, 2 done

    for start in range(len(rows)):
        stack = [start]
        while stack:
            i = stack[-1]
            if state.get(i) == 2:
                stack.pop()
                continue
            state[i] = 1
            parent = index_of.get(rows[i].get("parent_code", ""))
            if parent is not None and parent != i and state.get(parent) is None:
                stack.append(parent)
                continue
            state[i] = 2
            order.append(i)
            stack.pop()
    return order


async def import_catalogue(
    service: OrgTreeService, principal: Principal, rows: list[dict[str, str]]
) -> ImportReport:
    report = ImportReport()
    results: dict[int, RowResult] = {}
    for i in dependency_order(rows):
        row = rows[i]
        code = row.get("code", "")
        try:
            if not code:
                raise RuleBroken("Thiếu mã đơn vị", field="code")
            _, created = await service.create_unit(
                principal,
                code,
                row.get("name", ""),
                parse_level(row.get("level", "")),
                row.get("parent_code") or None,
            )
            results[i] = RowResult(i + 2, code, "created" if created else "unchanged")
        except (RuleBroken, ServiceError) as exc:
            results[i] = RowResult(i + 2, code, "rejected", exc.message, exc.field)
    for i in sorted(results):
        result = results[i]
        report.rows.append(result)
        setattr(report, result.status, getattr(report, result.status) + 1)
    return report
