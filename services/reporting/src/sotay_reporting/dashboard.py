"""The dashboard page: server-rendered HTML in Vietnamese, for a wall screen or a laptop."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from sotay_platform.errors import ServiceError
from sotay_reporting.figures import (
    TARGET_PERCENT,
    TARGETS,
    Doc,
    add_months,
    format_day,
    format_moment,
    month_label,
)
from sotay_reporting.queries import Rollup, Row, level_label

TEMPLATES = Path(__file__).parent / "templates"
env = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)

# (figure key, column header) of the child-unit table; every one is sortable
TABLE_COLUMNS: list[tuple[str, str]] = [
    ("members_on_list", "Đảng viên"),
    ("registered_rate", "Đăng ký (%)"),
    ("active_30d_rate", "Sử dụng 30 ngày (%)"),
    ("active_in_month", "Sử dụng trong tháng"),
    ("branches_met_rate", "Chi bộ sinh hoạt (%)"),
    ("attendance_rate", "Dự họp (%)"),
    ("excused_rate", "Vắng có phép (%)"),
    ("unexcused_rate", "Vắng không phép (%)"),
    ("latest_study_rate", "Học tập NQ (%)"),
]
TARGET_COLUMNS = set(TARGETS)

EVENT_LABELS = {
    "MemberRegistered": "Đăng ký đảng viên",
    "MemberRegistrationApproved": "Duyệt đăng ký",
    "MemberRegistrationRejected": "Từ chối đăng ký",
    "AccountActivated": "Kích hoạt tài khoản",
    "MemberSignedIn": "Lượt đăng nhập",
    "MemberProfileUpdated": "Cập nhật hồ sơ",
    "MemberStatusChanged": "Thay đổi tình trạng đảng viên",
    "MemberTransferred": "Chuyển sinh hoạt đảng",
    "MemberRemoved": "Xóa khỏi danh sách",
    "RoleGranted": "Phân quyền",
    "RoleRevoked": "Thu hồi quyền",
    "MeetingConvened": "Thông báo mời họp",
    "MeetingRescheduled": "Dời lịch họp",
    "MeetingCancelled": "Hủy cuộc họp",
    "AbsenceRequested": "Xin phép vắng họp",
    "AbsenceApproved": "Đồng ý cho vắng",
    "AbsenceDeclined": "Không đồng ý cho vắng",
    "AttendanceRecorded": "Điểm danh",
    "PollOpened": "Lấy ý kiến, biểu quyết",
    "PollClosed": "Kết thúc biểu quyết",
    "MinutesRecorded": "Biên bản cuộc họp",
    "MeetingClosed": "Cuộc họp kết thúc",
    "MeetingGraded": "Đánh giá cuộc họp",
    "BranchReportSubmitted": "Báo cáo lên cấp trên",
    "BranchReportAcknowledged": "Cấp trên xác nhận báo cáo",
    "StudyCampaignLaunched": "Phát động học tập nghị quyết",
    "StudyCampaignClosed": "Kết thúc đợt học tập",
    "StudyStarted": "Bắt đầu học tập",
    "MaterialStudied": "Học tài liệu",
    "QuizAttemptSubmitted": "Làm bài kiểm tra",
    "ResolutionStudied": "Hoàn thành học tập nghị quyết",
    "ReflectionSubmitted": "Nộp bài thu hoạch",
    "ReflectionReviewed": "Chấm bài thu hoạch",
    "AccountPasswordReset": "Đặt lại mật khẩu",
    "VoteRecorded": "Lượt biểu quyết",
    "QuizAttemptStarted": "Bắt đầu làm bài kiểm tra",
    "StudyCampaignDeadlineExtended": "Gia hạn đợt học tập",
    "QuestionBankCreated": "Tạo ngân hàng câu hỏi",
    "QuestionAdded": "Thêm câu hỏi",
    "QuestionRetired": "Loại bỏ câu hỏi",
    "ContestOpened": "Mở cuộc thi tìm hiểu",
    "ContestClosed": "Kết thúc cuộc thi",
    "ContestEntryStarted": "Bắt đầu lượt dự thi",
    "ContestEntrySubmitted": "Nộp bài dự thi",
}


def row_value(row: Row, key: str) -> Any:
    if key == "name":
        return row.name
    if key == "latest_study_rate":
        return row.latest_study_rate if row.latest_study_rate is not None else -1
    return row.figures().get(key, 0)


def sort_rows(rows: list[Row], key: str, descending: bool) -> list[Row]:
    return sorted(rows, key=lambda r: (row_value(r, key), r.name), reverse=descending)


def _fmt_number(value: Any) -> str:
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.1f}".replace(",", "X").replace(".", ",").replace("X", ".")
    return f"{int(value):,}".replace(",", ".")


def _fmt_percent(value: Any) -> str:
    return _fmt_number(round(float(value), 1)) + "%"


def _fmt_duration(seconds: Any) -> str:
    """A lag a person reads at a glance: seconds, minutes, hours or days."""
    value = float(seconds or 0)
    if value < 120:
        return f"{_fmt_number(round(value, 1))} giây"
    if value < 7200:
        return f"{round(value / 60)} phút"
    if value < 172_800:
        return f"{round(value / 3600)} giờ"
    return f"{round(value / 86400)} ngày"


env.filters["num"] = _fmt_number
env.filters["duration"] = _fmt_duration
env.filters["pct"] = _fmt_percent


def chart(trends: list[dict[str, Any]]) -> dict[str, Any]:
    """Coordinates for the SVG trend chart: four percentages per month."""
    series = [
        ("registered_rate", "Đăng ký", "#c62828"),
        ("active_month_rate", "Sử dụng trong tháng", "#f9a825"),
        ("branches_met_rate", "Chi bộ sinh hoạt", "#2e7d32"),
        ("attendance_rate", "Dự họp", "#1565c0"),
    ]
    width, height, left, bottom, top = 1500, 280, 48, 34, 14
    n = max(len(trends), 1)
    step = (width - left - 10) / n
    bar = step / (len(series) + 1)
    bars = []
    for i, t in enumerate(trends):
        for j, (key, _, color) in enumerate(series):
            value = t["active_month_rate"] if key == "active_month_rate" else t["rates"][key]
            value = min(float(value), 100.0)
            h = (height - bottom - top) * value / 100
            bars.append(
                {
                    "x": round(left + i * step + bar * (j + 0.5), 1),
                    "y": round(height - bottom - h, 1),
                    "w": round(bar * 0.9, 1),
                    "h": round(h, 1),
                    "color": color,
                    "title": f"{month_label(t['month'])}: {value:.1f}%",
                }
            )
    labels = [
        {"x": round(left + i * step + step / 2, 1), "text": month_label(t["month"])}
        for i, t in enumerate(trends)
    ]
    grid = [
        {"y": round(height - bottom - (height - bottom - top) * p / 100, 1), "label": f"{p}%"}
        for p in (0, 25, 50, 75, 100)
    ]
    return {
        "width": width,
        "height": height,
        "bars": bars,
        "labels": labels,
        "grid": grid,
        "legend": [(label, color) for _, label, color in series],
        "left": left,
        "label_y": height - 12,
    }


def render(
    rollup: Rollup,
    *,
    unit: Doc,
    lag: dict[str, Any],
    sort: str,
    descending: bool,
    visible_chain: list[str],
    current_month: str,
    report_day: int,
) -> str:
    total = rollup.total
    figures = total.figures()
    rows = sort_rows(rollup.children, sort, descending)
    month = rollup.view.month
    report_month = month if rollup.view.kind != "live" else add_months(current_month, -1)
    template = env.get_template("dashboard.html")
    return template.render(
        r=rollup,
        unit=unit,
        total=total,
        f=figures,
        level=level_label(unit.get("level")),
        rows=rows,
        own=rollup.own,
        columns=TABLE_COLUMNS,
        target_columns=TARGET_COLUMNS,
        target=TARGET_PERCENT,
        targets=TARGETS,
        sort=sort,
        descending=descending,
        month=month,
        month_text=month_label(month),
        live=rollup.view.kind == "live",
        as_of_text=format_day(rollup.view.as_of),
        computed_text=format_moment(rollup.computed_at),
        newest_text=format_moment(rollup.last_event_at) if rollup.last_event_at else "chưa có",
        lag=lag,
        chain=[d for d in rollup.chain if d["_id"] != unit["_id"]],
        visible_chain=set(visible_chain),
        chart=chart(rollup.trends),
        trends=rollup.trends,
        month_label=month_label,
        prev_month=add_months(month, -1),
        next_month=add_months(month, 1) if month < current_month else None,
        report_month=report_month,
        report_day=report_day,
        event_labels=EVENT_LABELS,
        row_value=row_value,
        status_text={"merged": "đã hợp nhất", "dissolved": "đã giải thể"}.get(
            str(unit.get("status")), ""
        ),
    )


def error_page(exc: ServiceError) -> HTMLResponse:
    template = env.get_template("error.html")
    return HTMLResponse(
        template.render(message=exc.message, status=exc.status_code), status_code=exc.status_code
    )
