"""The dashboard page: server-rendered HTML in Vietnamese, for a wall screen or a laptop."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from sotay_platform.errors import ServiceError, status_of
from sotay_platform.roster import LEGENDS, Purpose
from sotay_reporting.figures import (
    TARGET_PERCENT,
    TARGETS,
    Doc,
    add_months,
    format_day,
    format_moment,
    month_label,
)
from sotay_reporting.labels import EVENT_LABELS
from sotay_reporting.queries import Rollup, Row, Trend, level_label

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


def row_value(row: Row, key: str) -> Any:
    """A cell's value; None where there was nothing to measure (shown "—")."""
    if key == "name":
        return row.name
    if key == "latest_study_rate":
        return row.latest_study_rate
    return row.figures_json().get(key)


def sort_rows(rows: list[Row], key: str, descending: bool) -> list[Row]:
    def order(r: Row) -> tuple[Any, str]:
        value = row_value(r, key)
        return (-1 if value is None else value, r.name)

    return sorted(rows, key=order, reverse=descending)


TREE_RULE = (
    "Số liệu của một ngày, một tháng hay báo cáo ngày chốt chỉ tính những gì đã diễn ra đến "
    "hết ngày đó, theo cây tổ chức đúng như vào ngày đó: báo cáo chốt ngày 25 theo cây tổ "
    "chức ngày 25 dù lập muộn; đơn vị chưa thành lập (hoặc đã hợp nhất, giải thể) vào ngày "
    "đó hiển thị “—”; số liệu của đơn vị đã hợp nhất tính vào đơn vị tiếp nhận."
)


def legend() -> list[dict[str, str]]:
    """Who counts and which tree a figure follows, in Vietnamese, for every dashboard."""
    return [
        {"key": "on_list", "text": LEGENDS[Purpose.on_list]},
        {"key": "in_scope", "text": LEGENDS[Purpose.attend]},
        {"key": "study", "text": LEGENDS[Purpose.study]},
        {"key": "tree", "text": TREE_RULE},
        {
            "key": "empty",
            "text": "“Chưa họp”: chi bộ chưa có cuộc họp kết thúc trên phần mềm trong tháng "
            "(khác với tỷ lệ dự họp 0%). Mục tiêu không có gì để đo (0 đảng viên, 0 chi bộ) "
            "được tính là chưa đạt.",
        },
    ]


def _fmt_number(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.1f}".replace(",", "X").replace(".", ",").replace("X", ".")
    return f"{int(value):,}".replace(",", ".")


def _fmt_percent(value: Any) -> str:
    if value is None:
        return "—"
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


def chart(trends: list[Trend]) -> dict[str, Any]:
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
            if not t.exists or t.rates.get(key) is None:
                continue
            value = min(float(t.rates[key] or 0), 100.0)
            h = (height - bottom - top) * value / 100
            bars.append(
                {
                    "x": round(left + i * step + bar * (j + 0.5), 1),
                    "y": round(height - bottom - h, 1),
                    "w": round(bar * 0.9, 1),
                    "h": round(h, 1),
                    "color": color,
                    "title": f"{month_label(t.month)}: {value:.1f}%",
                }
            )
    labels = [
        {"x": round(left + i * step + step / 2, 1), "text": month_label(t.month)}
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
        chain=[{"_id": c, "name": n} for c, n in rollup.chain if c != unit["_id"]],
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
        status_text={"merged": "đã hợp nhất", "dissolved": "đã giải thể"}.get(rollup.status, ""),
        legend=legend(),
        feedback_days=total.median_days,
    )


def error_page(exc: ServiceError) -> HTMLResponse:
    template = env.get_template("error.html")
    return HTMLResponse(
        template.render(message=exc.message, status=status_of(exc)), status_code=status_of(exc)
    )
