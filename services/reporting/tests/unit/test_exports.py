"""The report's Excel and CSV, and the page's number formats, without I/O."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime

from openpyxl import load_workbook

from sotay_events.catalogue.reporting import MonthlyReportIssued, ReportRow, UsageFigures
from sotay_reporting.dashboard import _fmt_duration, _fmt_number, _fmt_percent
from sotay_reporting.reports import HEADERS, to_csv, to_xlsx


def report() -> MonthlyReportIssued:
    ok = UsageFigures(
        members_on_list=40,
        members_in_scope=40,
        registered=40,
        registered_rate=100.0,
        active_30d=40,
        active_30d_rate=100.0,
        branches=2,
        branches_met=2,
        branches_met_rate=100.0,
        meets_targets=True,
    )
    behind = UsageFigures(
        members_on_list=10, members_in_scope=10, registered=6, registered_rate=60.0
    )
    return MonthlyReportIssued(
        report_id="QN:2026-10",
        unit_id="QN",
        unit_name="Đảng bộ tỉnh Quảng Ngãi",
        level="province",
        month="2026-10",
        as_of=datetime(2026, 10, 25, 16, 59, 59, tzinfo=UTC),
        report_day=date(2026, 10, 25),
        issued_at=datetime(2026, 10, 26, 1, 0, tzinfo=UTC),
        issued_by="qn-admin",
        figures=UsageFigures(members_on_list=50, registered=46, registered_rate=92.0),
        rows=[
            ReportRow(unit_id="X1", unit_name="Đảng bộ xã Tịnh Ấn", level="commune", figures=ok),
            ReportRow(
                unit_id="X2", unit_name="Đảng bộ phường Nghĩa Lộ", level="commune", figures=behind
            ),
        ],
    )


def test_excel_has_the_title_summary_and_per_unit_table_with_shortfalls_shaded() -> None:
    book = load_workbook(io.BytesIO(to_xlsx(report())))
    sheet = book["Báo cáo"]
    assert sheet["A1"].value.startswith("BÁO CÁO KẾT QUẢ TRIỂN KHAI, SỬ DỤNG PHẦN MỀM")
    assert sheet["A3"].value == "Tháng 10/2026 — số liệu tính đến hết ngày 25/10/2026"
    assert sheet["A4"].value == "Lập lúc: 08:00 26/10/2026"  # Hà Nội time
    rows = list(sheet.iter_rows(values_only=True))
    header = next(i for i, r in enumerate(rows) if r[0] == "Mã đơn vị")
    assert list(rows[header][: len(HEADERS)]) == HEADERS
    x2 = rows[header + 2]
    assert x2[:3] == ("X2", "Đảng bộ phường Nghĩa Lộ", "Đảng bộ xã, phường, đặc khu")
    assert x2[-1] == "Chưa đạt" and rows[header + 1][-1] == "Đạt"
    assert rows[header + 3][1] == "Tổng cộng Đảng bộ tỉnh Quảng Ngãi"
    rate_column = HEADERS.index("Tỷ lệ đăng ký (%)") + 1
    assert sheet.cell(header + 3, rate_column).fill.fgColor.rgb.endswith("FDE2E1")  # X2 below 100%
    assert sheet.cell(header + 2, rate_column).fill.fgColor.rgb in (None, "00000000")


def test_csv_is_utf8_with_bom_for_excel() -> None:
    raw = to_csv(report())
    assert raw.startswith("\ufeff".encode())
    lines = raw.decode("utf-8-sig").splitlines()
    assert lines[0].split(",")[:4] == [
        "Mã đơn vị",
        "Tên đơn vị",
        "Cấp",
        "Đảng viên trong danh sách",
    ]
    assert lines[2].startswith("X2,Đảng bộ phường Nghĩa Lộ,")
    assert lines[-1].startswith(",Tổng cộng Đảng bộ tỉnh Quảng Ngãi,")


def test_vietnamese_number_formats() -> None:
    assert _fmt_number(1234567) == "1.234.567"
    assert _fmt_number(82.45) == "82,5" or _fmt_number(82.45) == "82,4"
    assert _fmt_percent(100.0) == "100%"
    assert _fmt_duration(3.25) == "3,2 giây" or _fmt_duration(3.25) == "3,3 giây"
    assert _fmt_duration(600) == "10 phút"
    assert _fmt_duration(3 * 86400) == "3 ngày"
