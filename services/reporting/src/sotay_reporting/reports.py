"""The monthly report: figures as of the report day, frozen when issued, as Excel and CSV.

Issuing is reporting's one command. The report is an aggregate of its own
(`MonthlyReport`, id `<unit>:<YYYY-MM>`) whose only event carries every figure
and the per-unit table, so later events can never change an issued report; it
reaches Kafka through the outbox like any other fact.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from openpyxl import Workbook
from openpyxl.styles import Alignment, Border, Font, PatternFill, Side
from openpyxl.utils import get_column_letter

from sotay_events import Aggregate, CommandContext, DomainEvent, EventStore
from sotay_events.catalogue.reporting import MonthlyReportIssued, ReportRow, UsageFigures
from sotay_events.uow import retry_on_conflict
from sotay_platform.auth import ADMIN_ROLES, READ_ROLES, Principal, Role
from sotay_platform.errors import Invalid
from sotay_reporting.figures import (
    TARGET_PERCENT,
    end_of_day_utc,
    format_day,
    format_moment,
    month_label,
    report_date,
)
from sotay_reporting.queries import UsageQueries, level_label
from sotay_reporting.usage_stream import stage_report

MONTH = re.compile(r"^(20[0-9]{2}|2100)-(0[1-9]|1[0-2])$")
ISSUE_ROLES = ADMIN_ROLES | {Role.branch_secretary}


class MonthlyReport(Aggregate):
    aggregate_type = "MonthlyReport"

    def __init__(self, aggregate_id: str) -> None:
        super().__init__(aggregate_id)
        self.issued: MonthlyReportIssued | None = None

    def apply(self, event: DomainEvent) -> None:
        if isinstance(event, MonthlyReportIssued):
            self.issued = event

    def issue(self, report: MonthlyReportIssued) -> None:
        if self.issued is None:
            self.record(report)


def report_id(unit_id: str, month: str) -> str:
    return f"{unit_id}:{month}"


def check_month(month: str) -> str:
    if not MONTH.match(month):
        raise Invalid(
            "Tháng báo cáo cần dạng YYYY-MM, từ 2000-01 đến 2100-12, ví dụ 2026-11", field="month"
        )
    return month


def acting_as(principal: Principal, path: list[str]) -> str | None:
    """ "system_admin" when the central office's system admin acts for the unit's committee
    (no grant of its own on the unit's path): recorded in the event."""
    own = [g for g in principal.grants if g.role is not Role.system_admin]
    if Principal(subject=principal.subject, grants=tuple(own)).covers(ISSUE_ROLES, path):
        return None
    return Role.system_admin.value


@dataclass
class Issued:
    report: MonthlyReportIssued
    created: bool


class ReportService:
    def __init__(
        self,
        store: EventStore,
        queries: UsageQueries,
        report_day: int,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        self.queries = queries
        self.report_day = report_day
        self.clock = clock

    async def get(
        self, principal: Principal, unit_id: str, month: str
    ) -> MonthlyReportIssued | None:
        check_month(month)
        unit = await self.queries.unit(unit_id)
        principal.require(READ_ROLES, unit.get("path") or [unit_id])
        found = await self.store.unit_of_work().get(MonthlyReport, report_id(unit_id, month))
        return found.issued if found else None

    @retry_on_conflict(attempts=3)
    async def issue(self, principal: Principal, unit_id: str, month: str) -> Issued:
        """Freeze the month's figures as of its report day, on the tree of that day.

        Load, decide, commit: the report and its figures on the usage stream in one
        unit of work; a concurrent issue of the same report loses and returns the first.
        """
        check_month(month)
        unit = await self.queries.unit(unit_id)
        path = list(unit.get("path") or [unit_id])
        principal.require(ISSUE_ROLES, path)
        due = report_date(month, self.report_day)
        as_of = end_of_day_utc(due)
        if self.clock() < as_of:
            raise Invalid(
                f"Chưa hết ngày chốt số liệu: báo cáo tháng {month_label(month)} "
                f"được lập sau ngày {format_day(due)}",
                field="month",
            )
        rid = report_id(unit_id, month)
        uow = self.store.unit_of_work()
        existing = await uow.get(MonthlyReport, rid)
        if existing is not None and existing.issued is not None:
            return Issued(existing.issued, False)
        rollup = await self.queries.rollup(unit_id, self.queries.view("report", month))
        if not rollup.total.exists:
            raise Invalid(
                f"Đơn vị {unit_id} không hoạt động vào ngày {format_day(due)}: "
                "không có báo cáo tháng này",
                field="month",
            )
        event = MonthlyReportIssued(
            report_id=rid,
            unit_id=unit_id,
            unit_name=rollup.total.name,
            level=rollup.total.level or str(unit.get("level") or ""),
            month=month,
            as_of=as_of,
            report_day=due,
            issued_at=self.clock(),
            issued_by=principal.subject,
            issued_as=acting_as(principal, path),
            figures=UsageFigures(**rollup.total.figures()),
            rows=[
                ReportRow(
                    unit_id=row.unit_id,
                    unit_name=row.name,
                    level=row.level,
                    figures=UsageFigures(**row.figures()),
                )
                for row in rollup.children
            ],
        )
        report = existing or MonthlyReport(rid)
        uow.add(report)
        report.issue(event)
        report_path = [u for u, _ in rollup.chain] or path
        await stage_report(uow, self.store, event, report_path)
        await uow.commit(CommandContext(actor=principal.subject, org_path=tuple(path)))
        return Issued(event, True)


# ---------------------------------------------------------------- the table, as committees send it

Column = tuple[str, str, bool]  # (figure, Vietnamese header, is a target percentage)

COLUMNS: list[Column] = [
    ("members_on_list", "Đảng viên trong danh sách", False),
    ("members_in_scope", "Đảng viên đang sinh hoạt", False),
    ("registered", "Đã đăng ký sử dụng", False),
    ("registered_rate", "Tỷ lệ đăng ký (%)", True),
    ("approved", "Đã được duyệt", False),
    ("pending_approval", "Chờ duyệt", False),
    ("active_7d", "Sử dụng trong 7 ngày", False),
    ("active_30d", "Sử dụng trong kỳ (30 ngày)", False),
    ("active_30d_rate", "Tỷ lệ sử dụng (%)", True),
    ("branches", "Số chi bộ", False),
    ("branches_met", "Chi bộ sinh hoạt trên phần mềm", False),
    ("branches_met_rate", "Tỷ lệ chi bộ sinh hoạt trên phần mềm (%)", True),
    ("meetings_held", "Cuộc họp trên phần mềm", False),
    ("attendance_rate", "Tỷ lệ dự họp (%)", False),
    ("excused_rate", "Vắng có phép (%)", False),
    ("unexcused_rate", "Vắng không phép (%)", False),
    ("study_completed", "Lượt hoàn thành học tập nghị quyết", False),
    ("quiz_passed", "Lượt đạt bài kiểm tra", False),
]


def _row_values(figures: UsageFigures) -> list[Any]:
    data = figures.model_dump()
    return [data[key] for key, _, _ in COLUMNS] + ["Đạt" if figures.meets_targets else "Chưa đạt"]


HEADERS = ["Mã đơn vị", "Tên đơn vị", "Cấp", *[h for _, h, _ in COLUMNS], "Mục tiêu 100%"]


def table(report: MonthlyReportIssued) -> list[list[Any]]:
    rows = [
        [r.unit_id, r.unit_name, level_label(r.level), *_row_values(r.figures)] for r in report.rows
    ]
    rows.append(
        [
            "",
            "Tổng cộng " + report.unit_name,
            level_label(report.level),
            *_row_values(report.figures),
        ]
    )
    return rows


def title_lines(report: MonthlyReportIssued) -> list[str]:
    return [
        "BÁO CÁO KẾT QUẢ TRIỂN KHAI, SỬ DỤNG PHẦN MỀM “SỔ TAY ĐẢNG VIÊN ĐIỆN TỬ”",
        f"Đơn vị: {report.unit_name} ({report.unit_id})",
        f"Tháng {month_label(report.month)} — số liệu tính đến hết ngày {format_day(report.report_day)}",
        f"Lập lúc: {format_moment(report.issued_at)}",
    ]


def to_csv(report: MonthlyReportIssued) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(HEADERS)
    for row in table(report):
        writer.writerow(row)
    return ("\ufeff" + out.getvalue()).encode("utf-8")  # the BOM lets Excel read UTF-8


def summary_lines(figures: UsageFigures) -> list[tuple[str, Any, str, str]]:
    """(indicator, value, target, verdict) for the summary block."""

    def verdict(rate: float) -> str:
        return "Đạt" if rate >= TARGET_PERCENT else "Chưa đạt"

    f = figures
    return [
        ("Đảng viên trong danh sách", f.members_on_list, "", ""),
        ("Đảng viên đang sinh hoạt", f.members_in_scope, "", ""),
        ("Đã đăng ký sử dụng", f.registered, "", ""),
        ("Tỷ lệ đăng ký sử dụng (%)", f.registered_rate, "100%", verdict(f.registered_rate)),
        ("Sử dụng trong kỳ báo cáo", f.active_30d, "", ""),
        ("Tỷ lệ sử dụng (%)", f.active_30d_rate, "100%", verdict(f.active_30d_rate)),
        ("Số chi bộ", f.branches, "", ""),
        ("Chi bộ sinh hoạt trên phần mềm", f.branches_met, "", ""),
        (
            "Tỷ lệ chi bộ sinh hoạt trên phần mềm (%)",
            f.branches_met_rate,
            "100%",
            verdict(f.branches_met_rate),
        ),
        ("Cuộc họp trên phần mềm", f.meetings_held, "", ""),
        ("Tỷ lệ dự họp (%)", f.attendance_rate, "", ""),
        ("Tỷ lệ vắng có phép (%)", f.excused_rate, "", ""),
        ("Tỷ lệ vắng không phép (%)", f.unexcused_rate, "", ""),
        ("Lượt hoàn thành học tập nghị quyết", f.study_completed, "", ""),
        ("Lượt đạt bài kiểm tra", f.quiz_passed, "", ""),
    ]


def to_xlsx(report: MonthlyReportIssued) -> bytes:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "Báo cáo"
    bold = Font(bold=True)
    behind = PatternFill("solid", fgColor="FDE2E1")
    header_fill = PatternFill("solid", fgColor="B71C1C")
    thin = Side(style="thin", color="999999")
    border = Border(left=thin, right=thin, top=thin, bottom=thin)

    for i, line in enumerate(title_lines(report), start=1):
        sheet.cell(row=i, column=1, value=line).font = Font(bold=i == 1, size=14 if i == 1 else 11)
    row = len(title_lines(report)) + 2
    sheet.cell(row=row, column=1, value="I. SỐ LIỆU TỔNG HỢP").font = bold
    row += 1
    for col, head in enumerate(["Chỉ tiêu", "Số liệu", "Mục tiêu", "Đánh giá"], start=1):
        cell = sheet.cell(row=row, column=col, value=head)
        cell.font = Font(bold=True, color="FFFFFF")
        cell.fill = header_fill
    for indicator, value, target, verdict in summary_lines(report.figures):
        row += 1
        cells = [indicator, value, target, verdict]
        for col, value_ in enumerate(cells, start=1):
            cell = sheet.cell(row=row, column=col, value=value_)
            cell.border = border
            if verdict == "Chưa đạt":
                cell.fill = behind
    row += 2
    sheet.cell(row=row, column=1, value="II. SỐ LIỆU THEO ĐƠN VỊ TRỰC THUỘC").font = bold
    row += 1
    for col, head in enumerate(HEADERS, start=1):
        cell = sheet.cell(row=row, column=col, value=head)
        cell.font = Font(bold=True, color="FFFFFF")
        cell.fill = header_fill
        cell.alignment = Alignment(wrap_text=True, vertical="center")
    sheet.row_dimensions[row].height = 48
    target_columns = {i + 4 for i, c in enumerate(COLUMNS) if c[2]}
    body = table(report)
    for values in body:
        row += 1
        for col, value in enumerate(values, start=1):
            cell = sheet.cell(row=row, column=col, value=value)
            cell.border = border
            if col in target_columns and isinstance(value, int | float) and value < TARGET_PERCENT:
                cell.fill = behind
        if values is body[-1]:
            for col in range(1, len(values) + 1):
                sheet.cell(row=row, column=col).font = bold
    sheet.column_dimensions["A"].width = 40
    sheet.column_dimensions["B"].width = 34
    for col in range(3, len(HEADERS) + 1):
        sheet.column_dimensions[get_column_letter(col)].width = 16
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
