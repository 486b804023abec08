from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.security import HTTPBearer

from sotay_events.catalogue.reporting import MonthlyReportIssued
from sotay_platform.auth import ADMIN_ROLES, READ_ROLES, Principal, Role, current_principal
from sotay_platform.errors import Forbidden, NotFound, ServiceError
from sotay_platform.inputs import Code, Month
from sotay_reporting import dashboard
from sotay_reporting.figures import Doc, month_key, today_local
from sotay_reporting.queries import Campaign, Document, Rollup, Row, UsageQueries
from sotay_reporting.reports import ReportService, to_csv, to_xlsx
from sotay_reporting.usage_stream import UsagePublisher

router = APIRouter()
_bearer = HTTPBearer(auto_error=False)

Viewer = Annotated[Principal, Depends(current_principal)]


async def viewer(request: Request) -> Principal:
    """The caller of the HTML page: the bearer header only (the web front sends it)."""
    return await current_principal(request, await _bearer(request))


def queries(request: Request) -> UsageQueries:
    return request.app.state.queries


def reports(request: Request) -> ReportService:
    return request.app.state.reports


def publisher(request: Request) -> UsagePublisher:
    return request.app.state.publisher


Queries = Annotated[UsageQueries, Depends(queries)]
Reports = Annotated[ReportService, Depends(reports)]
Publisher = Annotated[UsagePublisher, Depends(publisher)]
MonthQuery = Annotated[Month | None, Query(description="YYYY-MM; the current month if omitted")]


async def _readable(q: UsageQueries, caller: Principal, code: str) -> Doc:
    unit = await q.unit(code)
    caller.require(READ_ROLES, unit.get("path") or [code])
    return unit


# ---------------------------------------------------------------- JSON


def _row_json(row: Row) -> dict[str, Any]:
    return {
        "code": row.unit_id,
        "name": row.name,
        "level": row.level,
        "level_label": row.level_label,
        "exists": row.exists,
        "figures": row.figures_json() if row.exists else None,
        "attendance_label": row.attendance_label if row.exists else None,
        "behind_targets": row.behind if row.exists else [],
        "latest_campaign_completion_rate": row.latest_study_rate,
    }


def _campaign_json(c: Campaign) -> dict[str, Any]:
    return {
        "campaign_id": c.campaign_id,
        "resolution_code": c.code,
        "title": c.title,
        "unit": c.unit,
        "closed": c.closed,
        "started": int(c.started),
        "completed": int(c.completed),
        "expected": int(c.expected),
        "quiz_takers": int(c.takers),
        "quiz_passed": int(c.passed),
        "completion_rate": c.completion_rate,
        "pass_rate": c.pass_rate,
    }


def _document_json(d: Document) -> dict[str, Any]:
    return {
        "piece_id": d.piece_id,
        "kind": d.kind,
        "title": d.title,
        "number_symbol": d.number,
        "unit": d.unit,
        "readers": int(d.readers),
        "members_on_list": int(d.members),
        "read_rate": d.read_rate,
    }


def rollup_json(r: Rollup, lag: dict[str, Any]) -> dict[str, Any]:
    return {
        "unit": _row_json(r.total),
        "status": r.status,
        "view": {
            "kind": r.view.kind,
            "month": r.view.month,
            "as_of": r.view.as_of.isoformat(),
            "as_of_text": dashboard.format_day(r.view.as_of),
        },
        "computed_at": r.computed_at.isoformat(),
        "path": [{"code": code, "name": name} for code, name in r.chain],
        "children": [_row_json(c) for c in r.children],
        "trends": [
            {
                "month": t.month,
                "exists": t.exists,
                "figures": {k: int(v) for k, v in t.counters.items()} if t.exists else None,
                "rates": t.rates if t.exists else None,
            }
            for t in r.trends
        ],
        "campaigns": [_campaign_json(c) for c in r.campaigns],
        "documents": [_document_json(d) for d in r.documents],
        "activity": r.activity,
        "legend": dashboard.legend(),
        "lag": lag,
    }


def lag_of(request: Request, last_event_at: datetime | None) -> dict[str, Any]:
    """How far the figures are behind: per projection, and since the newest event applied."""
    runtime = request.app.state.runtime
    now = datetime.now(UTC)
    return {
        "projections": {
            r.projection.name: {
                "applied": r.applied_total,
                "lag_seconds": round(r.last_lag_seconds, 3),
                "last_applied_at": r.last_applied_at.isoformat() if r.last_applied_at else None,
            }
            for r in runtime.runners
        },
        "newest_event_at": last_event_at.isoformat() if last_event_at else None,
        "seconds_since_newest_event": round((now - last_event_at).total_seconds(), 3)
        if last_event_at
        else None,
        "cache_seconds": request.app.state.queries.cache_seconds,
    }


@router.get("/units/{code}/figures", tags=["figures"])
async def unit_figures(
    code: Code, caller: Viewer, q: Queries, request: Request, month: MonthQuery = None
) -> dict[str, Any]:
    """A unit's figures as of the month's end (the current month: now), on the tree of that
    date, with its child units then, twelve monthly trend rows and the legend of who counts.
    Rates are null where nothing was there to measure; `exists` false (figures null) for a
    unit that did not exist on that date ("—")."""
    await _readable(q, caller, code)
    rollup = await q.rollup(code, q.view("live", month))
    return rollup_json(rollup, lag_of(request, rollup.last_event_at))


@router.get("/lag", tags=["figures"])
async def projection_lag(request: Request, caller: Viewer, q: Queries) -> dict[str, Any]:
    if not caller.grants:
        raise Forbidden("Tài khoản không có quyền xem")
    return lag_of(request, await q.last_event_at())


# ---------------------------------------------------------------- monthly reports


def _report_json(report: MonthlyReportIssued) -> dict[str, Any]:
    return report.model_dump(mode="json")


@router.post("/reports/{code}/{month}", tags=["reports"], status_code=201)
async def issue_report(
    code: Code, month: Month, caller: Viewer, svc: Reports, response: Response
) -> dict[str, Any]:
    """Issue (freeze) the monthly report as of the report day, on the tree of that day,
    however late; issuing twice returns the first (200). The central office's system admin
    may issue it for any committee (recorded as `issued_as`)."""
    issued = await svc.issue(caller, code, month)
    response.status_code = 201 if issued.created else 200
    return _report_json(issued.report)


async def _issued(
    svc: ReportService, caller: Principal, code: str, month: str
) -> MonthlyReportIssued:
    report = await svc.get(caller, code, month)
    if report is None:
        raise NotFound(f"Báo cáo tháng {month} của đơn vị {code} chưa được lập", field="month")
    return report


@router.get("/reports/{code}/{month}", tags=["reports"])
async def get_report(code: Code, month: Month, caller: Viewer, svc: Reports) -> dict[str, Any]:
    return _report_json(await _issued(svc, caller, code, month))


def _download(content: bytes, media_type: str, filename: str) -> Response:
    return Response(
        content,
        media_type=media_type,
        headers={"Content-Disposition": f"attachment; filename*=UTF-8''{quote(filename)}"},
    )


XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@router.get(
    "/reports/{code}/{month}/xlsx",
    tags=["reports"],
    response_class=Response,
    responses={200: {"content": {XLSX: {}}, "description": "Báo cáo (Excel)"}},
)
async def report_xlsx(code: Code, month: Month, caller: Viewer, svc: Reports) -> Response:
    report = await _issued(svc, caller, code, month)
    return _download(to_xlsx(report), XLSX, f"bao-cao-so-tay-{code}-{month}.xlsx")


@router.get(
    "/reports/{code}/{month}/csv",
    tags=["reports"],
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}, "description": "Báo cáo (CSV, UTF-8)"}},
)
async def report_csv(code: Code, month: Month, caller: Viewer, svc: Reports) -> Response:
    report = await _issued(svc, caller, code, month)
    return _download(
        to_csv(report), "text/csv; charset=utf-8", f"bao-cao-so-tay-{code}-{month}.csv"
    )


# ---------------------------------------------------------------- usage stream


@router.post("/usage/publish", tags=["usage stream"])
async def publish_usage(
    caller: Viewer, pub: Publisher, q: Queries, unit: Annotated[Code, Query()]
) -> dict[str, int]:
    """Publish (through the outbox) the month-to-date figures of `unit` and of the units
    of the configured levels under it."""
    doc = await q.unit(unit)
    caller.require(ADMIN_ROLES | {Role.central_office}, doc.get("path") or [unit])
    return {"published": await pub.publish_current(unit)}


# ---------------------------------------------------------------- the dashboard page

SortKey = Literal[
    "name",
    "members_on_list",
    "registered_rate",
    "active_30d_rate",
    "active_in_month",
    "branches_met_rate",
    "attendance_rate",
    "excused_rate",
    "unexcused_rate",
    "latest_study_rate",
]
HTML_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"content": {"text/html": {}}, "description": text}
    for status, text in ((401, "Chưa đăng nhập"), (403, "Không có quyền"), (404, "Không tìm thấy"))
}


@router.get("/", include_in_schema=False, response_model=None)
async def home(request: Request) -> Response:
    try:
        caller = await viewer(request)
    except ServiceError as exc:
        return dashboard.error_page(exc)
    if not caller.grants:
        return dashboard.error_page(Forbidden("Tài khoản không có quyền xem bảng theo dõi"))
    return RedirectResponse(f"/dashboard/{caller.grants[0].unit_id}", status_code=303)


@router.get(
    "/dashboard/{code}",
    response_class=HTMLResponse,
    tags=["dashboard"],
    response_model=None,
    responses=HTML_ERRORS,
)
async def dashboard_page(
    code: Code,
    request: Request,
    q: Queries,
    month: MonthQuery = None,
    sort: SortKey = "name",
    dir: Literal["asc", "desc"] = "asc",
) -> Response:
    """Bảng theo dõi của một đơn vị và các đơn vị trực thuộc (HTML, tiếng Việt). The token
    travels in the `Authorization: Bearer` header only (the web front proxies the page)."""
    try:
        caller = await viewer(request)
        unit = await _readable(q, caller, code)
        rollup = await q.rollup(code, q.view("live", month))
    except ServiceError as exc:
        return dashboard.error_page(exc)
    codes = [c for c, _ in rollup.chain]
    visible = [c for i, c in enumerate(codes) if caller.covers(READ_ROLES, codes[: i + 1])]
    html = dashboard.render(
        rollup,
        unit=unit,
        lag=lag_of(request, rollup.last_event_at),
        sort=sort,
        descending=dir == "desc",
        visible_chain=visible,
        current_month=month_key(today_local()),
        report_day=q.report_day,
    )
    return HTMLResponse(html)
