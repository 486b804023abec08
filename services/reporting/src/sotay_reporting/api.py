"""HTTP routes: figures as JSON, the dashboard page, monthly reports, the usage stream."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from sotay_events.catalogue.reporting import MonthlyReportIssued
from sotay_platform.auth import ADMIN_ROLES, READ_ROLES, Principal, Role, TokenVerifier
from sotay_platform.errors import Forbidden, NotFound, ServiceError, Unauthorized
from sotay_reporting import dashboard
from sotay_reporting.figures import Doc, month_key, today_local
from sotay_reporting.queries import Campaign, Rollup, Row, UsageQueries
from sotay_reporting.reports import ReportService, check_month, to_csv, to_xlsx
from sotay_reporting.usage_stream import UsagePublisher

router = APIRouter()
COOKIE = "sotay_token"


def _verifier(request: Request) -> TokenVerifier:
    return request.app.state.token_verifier


def _token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return request.query_params.get("token") or request.cookies.get(COOKIE)


async def viewer(request: Request) -> Principal:
    """The caller: a bearer header, or for the browser page `?token=` or the cookie it sets."""
    token = _token(request)
    if not token:
        raise Unauthorized("Cần đăng nhập: thiếu mã truy cập (Authorization: Bearer …)")
    return _verifier(request).verify(token)


Viewer = Annotated[Principal, Depends(viewer)]


def queries(request: Request) -> UsageQueries:
    return request.app.state.queries


def reports(request: Request) -> ReportService:
    return request.app.state.reports


def publisher(request: Request) -> UsagePublisher:
    return request.app.state.publisher


Queries = Annotated[UsageQueries, Depends(queries)]
Reports = Annotated[ReportService, Depends(reports)]
Publisher = Annotated[UsagePublisher, Depends(publisher)]
Month = Annotated[str | None, Query(pattern=r"^\d{4}-(0[1-9]|1[0-2])$", examples=["2026-11"])]


async def _readable(q: UsageQueries, caller: Principal, code: str) -> Doc:
    unit = await q.unit(code)
    caller.require(READ_ROLES, unit.get("path") or [code])
    return unit


# ---------------------------------------------------------------- JSON


def _row_json(row: Row) -> dict[str, Any]:
    return {
        "code": row.unit_id,
        "name": row.name,
        "level": row.unit.get("level"),
        "level_label": row.level_label,
        "figures": row.figures(),
        "behind_targets": row.behind,
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


def rollup_json(r: Rollup, lag: dict[str, Any]) -> dict[str, Any]:
    return {
        "unit": _row_json(r.total),
        "view": {"kind": r.view.kind, "month": r.view.month, "as_of": r.view.as_of.isoformat()},
        "computed_at": r.computed_at.isoformat(),
        "path": [{"code": d["_id"], "name": d.get("name")} for d in r.chain],
        "children": [_row_json(c) for c in r.children],
        "own": _row_json(r.own) if r.own else None,
        "trends": [
            {
                "month": t["month"],
                "figures": {k: int(v) for k, v in t["counters"].items()},
                "rates": t["rates"],
                "active_month_rate": t["active_month_rate"],
            }
            for t in r.trends
        ],
        "campaigns": [_campaign_json(c) for c in r.campaigns],
        "activity": r.activity,
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
    code: str, caller: Viewer, q: Queries, request: Request, month: Month = None
) -> dict[str, Any]:
    """A unit's figures and its subtree's, with its child units and monthly trends."""
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


@router.post("/reports/{code}/{month}", tags=["reports"])
async def issue_report(
    code: str, month: str, caller: Viewer, svc: Reports, pub: Publisher, response: Response
) -> dict[str, Any]:
    """Issue (freeze) the monthly report as of the report day; issuing twice returns the first."""
    issued = await svc.issue(caller, code, month)
    response.status_code = 201 if issued.created else 200
    if issued.created:
        unit = await svc.queries.unit(code)
        await pub.publish_report(issued.report, list(unit.get("path") or [code]))
    return _report_json(issued.report)


async def _issued(
    svc: ReportService, caller: Principal, code: str, month: str
) -> MonthlyReportIssued:
    report = await svc.get(caller, code, month)
    if report is None:
        raise NotFound(f"Báo cáo tháng {month} của đơn vị {code} chưa được lập", field="month")
    return report


@router.get("/reports/{code}/{month}", tags=["reports"])
async def get_report(code: str, month: str, caller: Viewer, svc: Reports) -> dict[str, Any]:
    return _report_json(await _issued(svc, caller, code, month))


def _download(content: bytes, media_type: str, filename: str) -> Response:
    return Response(
        content,
        media_type=media_type,
        headers={"Content-Disposition": f"attachment; filename*=UTF-8''{quote(filename)}"},
    )


@router.get("/reports/{code}/{month}/xlsx", tags=["reports"])
async def report_xlsx(code: str, month: str, caller: Viewer, svc: Reports) -> Response:
    report = await _issued(svc, caller, code, month)
    return _download(
        to_xlsx(report),
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        f"bao-cao-so-tay-{code}-{month}.xlsx",
    )


@router.get("/reports/{code}/{month}/csv", tags=["reports"])
async def report_csv(code: str, month: str, caller: Viewer, svc: Reports) -> Response:
    report = await _issued(svc, caller, code, month)
    return _download(
        to_csv(report), "text/csv; charset=utf-8", f"bao-cao-so-tay-{code}-{month}.csv"
    )


# ---------------------------------------------------------------- usage stream


@router.post("/usage/publish", tags=["usage stream"])
async def publish_usage(
    caller: Viewer, pub: Publisher, q: Queries, unit: Annotated[str, Query(min_length=1)]
) -> dict[str, Any]:
    """Publish the month-to-date figures of `unit` and the units of the configured levels under it."""
    doc = await q.unit(unit)
    caller.require(ADMIN_ROLES | {Role.central_office}, doc.get("path") or [unit])
    return {"published": await pub.publish_current(unit)}


# ---------------------------------------------------------------- the dashboard page

SORTABLE = {key for key, _ in dashboard.TABLE_COLUMNS} | {"name"}


@router.get("/", include_in_schema=False, response_model=None)
async def home(request: Request) -> Response:
    try:
        caller = await viewer(request)
    except ServiceError as exc:
        return dashboard.error_page(exc)
    if not caller.grants:
        return dashboard.error_page(Forbidden("Tài khoản không có quyền xem bảng theo dõi"))
    return _redirect(request, f"/dashboard/{caller.grants[0].unit_id}")


def _redirect(request: Request, path: str, params: dict[str, str] | None = None) -> Response:
    query = urlencode(params or {})
    response = RedirectResponse(path + (f"?{query}" if query else ""), status_code=303)
    token = request.query_params.get("token")
    if token:
        response.set_cookie(COOKIE, token, httponly=True, samesite="strict", max_age=8 * 3600)
    return response


@router.get(
    "/dashboard/{code}", response_class=HTMLResponse, tags=["dashboard"], response_model=None
)
async def dashboard_page(
    code: str,
    request: Request,
    q: Queries,
    month: Month = None,
    sort: str = "name",
    dir: Annotated[str, Query(pattern="^(asc|desc)$")] = "asc",
) -> Response:
    """Bảng theo dõi của một đơn vị và các đơn vị trực thuộc (HTML, tiếng Việt)."""
    try:
        caller = await viewer(request)
        if request.query_params.get("token"):
            # the token moves into an HttpOnly cookie and out of the address bar
            params = {k: v for k, v in request.query_params.items() if k != "token"}
            return _redirect(request, f"/dashboard/{code}", params)
        unit = await _readable(q, caller, code)
        if month:
            check_month(month)
        rollup = await q.rollup(code, q.view("live", month))
    except ServiceError as exc:
        return dashboard.error_page(exc)
    sort = sort if sort in SORTABLE else "name"
    visible = [
        d["_id"] for d in rollup.chain if caller.covers(READ_ROLES, list(d.get("path") or []))
    ]
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
