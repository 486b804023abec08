"""Bulk import of a province's catalogue from CSV or Excel, with a report row by row.

Each row goes through the same command as the API, so the same rules hold;
a row already imported is reported unchanged, so a file can be sent again.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from sotay_events.catalogue.org_tree import LEVEL_LABELS, OrgLevel
from sotay_orgtree.domain import RuleBroken
from sotay_orgtree.handlers import OrgTreeService
from sotay_platform import uploads
from sotay_platform.auth import Principal
from sotay_platform.errors import ServiceError
from sotay_platform.inputs import fold
from sotay_platform.uploads import Column, Row

COLUMNS = [
    Column("code", "Mã đơn vị", {"ma", "ma don vi", "ma to chuc"}, required=True),
    Column("name", "Tên đơn vị", {"ten", "ten don vi", "ten to chuc"}, required=True),
    Column("level", "Cấp", {"cap", "loai", "cap to chuc", "loai to chuc"}, required=True),
    Column(
        "parent_code",
        "Mã đơn vị cấp trên",
        {"parent code", "parent", "ma cap tren", "ma don vi cap tren", "don vi cap tren"},
    ),
]
LEVELS = (
    {fold(level.value): level for level in OrgLevel}
    | {fold(label): level for level, label in LEVEL_LABELS.items()}
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


def read_table(filename: str, content: bytes) -> list[Row]:
    """Rows keyed by canonical column names, numbered as the file shows them (header = 1)."""
    return uploads.read_table(filename, content, COLUMNS)


def parse_level(value: str) -> OrgLevel:
    level = LEVELS.get(fold(value))
    if level is None:
        raise RuleBroken(f"Cấp tổ chức không hợp lệ: '{value}'", field="level")
    return level


def dependency_order(rows: list[Row]) -> list[int]:
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
    service: OrgTreeService, principal: Principal, rows: list[Row]
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
            results[i] = RowResult(row.number, code, "created" if created else "unchanged")
        except (RuleBroken, ServiceError) as exc:
            results[i] = RowResult(row.number, code, "rejected", exc.message, exc.field)
    for i in sorted(results):
        result = results[i]
        report.rows.append(result)
        setattr(report, result.status, getattr(report, result.status) + 1)
    return report
