"""The committee console (committee offices, province admins): the org tree, catalogue
import, roles, reconciliation, branch reports, usage figures and the monthly report.

Offered to admin roles only, on units their grants cover; every action is the service's
own command, which checks role and scope again.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from starlette.datastructures import FormData, UploadFile

from sotay_web.core import Denied, api, checked_form, done, render, signed_session, text, web
from sotay_web.upstream import Refused, Unavailable

router = APIRouter()
Form = Annotated[FormData, Depends(checked_form)]
VN = ZoneInfo("Asia/Ho_Chi_Minh")
GRANTABLE = {
    "branch_committee_member": "Chi ủy viên",
    "branch_secretary": "Bí thư chi bộ",
    "committee_admin": "Quản trị cấp ủy",
    "editor": "Biên tập viên",
    "province_admin": "Quản trị tỉnh",
}
LEVELS = {
    "commune": "Đảng bộ xã, phường, đặc khu",
    "grassroots_committee": "Đảng bộ cơ sở",
    "grassroots_branch": "Chi bộ cơ sở",
    "partial_committee": "Đảng bộ bộ phận",
    "branch": "Chi bộ trực thuộc",
}


def q(value: str) -> str:
    return quote(value, safe="")


async def _admin(request: Request) -> list[str]:
    session = await signed_session(request)
    if not session.admin_units:
        raise Denied("Trang này dành cho văn phòng cấp ủy và quản trị tỉnh.")
    return session.admin_units


@router.get("/quan-tri")
async def console(request: Request) -> Response:
    units = await _admin(request)
    if len(units) == 1:
        return RedirectResponse(f"/quan-tri/don-vi/{q(units[0])}", status_code=303)
    return render(request, "console_pick.html", units=units)


def _this_month() -> str:
    return datetime.now(VN).strftime("%Y-%m")


@router.get("/quan-tri/don-vi/{code}")
async def unit(request: Request, code: str) -> Response:
    await _admin(request)
    found, children, chain = await asyncio.gather(
        api(request, "orgtree", "GET", f"/units/{q(code)}"),
        api(request, "orgtree", "GET", f"/units/{q(code)}/children"),
        api(request, "orgtree", "GET", f"/units/{q(code)}/path"),
    )
    figures, reports = await asyncio.gather(
        _optional(api(request, "reporting", "GET", f"/units/{q(code)}/figures")),
        _optional(
            api(
                request,
                "meetings",
                "GET",
                f"/units/{q(code)}/reports",
                params={"status": "submitted"},
            )
        ),
    )
    return render(
        request,
        "console_unit.html",
        unit=found,
        children=children,
        chain=chain,
        figures=figures,
        reports=(reports or {}).get("reports", []) if reports else [],
        levels=LEVELS,
        grantable=GRANTABLE,
        month=_this_month(),
    )


async def _optional(call: Any) -> Any:
    try:
        return await call
    except (Refused, Unavailable):
        return None


@router.post("/quan-tri/don-vi/{code}")
async def unit_action(request: Request, code: str, form: Form) -> Response:
    await _admin(request)
    action = text(form, "action")
    back = f"/quan-tri/don-vi/{q(code)}"
    try:
        if action == "create":
            child = {
                "code": text(form, "code"),
                "name": text(form, "name"),
                "level": text(form, "level"),
                "parent_code": code,
            }
            await api(request, "orgtree", "POST", "/units", json=child)
            message = f"Đã tạo đơn vị {child['name']}."
        elif action == "rename":
            await api(
                request,
                "orgtree",
                "POST",
                f"/units/{q(code)}/rename",
                json={"name": text(form, "name")},
            )
            message = "Đã đổi tên đơn vị."
        elif action == "grant":
            await api(
                request,
                "identity",
                "POST",
                f"/members/{q(text(form, 'member_id'))}/roles",
                json={"role": text(form, "role"), "unit_id": text(form, "unit_id") or code},
            )
            message = "Đã giao nhiệm vụ."
        elif action == "acknowledge":
            await api(
                request,
                "meetings",
                "POST",
                f"/meetings/{q(text(form, 'meeting_id'))}/report/acknowledge",
            )
            message = "Đã tiếp nhận báo cáo của chi bộ."
        elif action == "issue_report":
            await api(request, "reporting", "POST", f"/reports/{q(code)}/{q(text(form, 'month'))}")
            message = "Đã lập báo cáo tháng."
        else:
            raise Denied("Thao tác không hợp lệ.")
    except Refused as exc:
        return render(
            request,
            "error.html",
            exc.status,
            title="Không thực hiện được",
            message=exc.message,
            back=back,
        )
    return await done(request, back, message)


@router.post("/quan-tri/don-vi/{code}/nhap")
async def import_catalogue(request: Request, code: str, form: Form) -> Response:
    """A catalogue from CSV or Excel, the service's report shown row by row."""
    await _admin(request)
    upload = form.get("file")
    if not isinstance(upload, UploadFile) or not upload.filename:
        return render(
            request,
            "error.html",
            422,
            title="Chưa chọn tệp",
            message="Vui lòng chọn tệp CSV hoặc Excel.",
            back=f"/quan-tri/don-vi/{q(code)}",
        )
    kind = text(form, "kind")
    content = await upload.read()
    files = {"file": (upload.filename, content, upload.content_type or "application/octet-stream")}
    if kind == "reconcile":
        report = await api(
            request, "identity", "POST", "/reconciliation", params={"unit_id": code}, files=files
        )
        return render(request, "console_reconcile.html", code=code, report=report)
    if kind == "members":
        report = await api(
            request, "identity", "POST", "/imports/members", params={"unit_id": code}, files=files
        )
    else:
        report = await api(request, "orgtree", "POST", "/units/import", files=files)
    return render(request, "console_import.html", code=code, report=report, kind=kind)


@router.get("/quan-tri/don-vi/{code}/bao-cao/{month}.{fmt}")
async def report_file(request: Request, code: str, month: str, fmt: str) -> Response:
    """The monthly report's Excel or CSV, fetched server side with the person's token."""
    await _admin(request)
    if fmt not in ("xlsx", "csv"):
        raise Denied("Định dạng không hỗ trợ.")
    session = await signed_session(request)
    answer = await web(request).upstreams.send(
        "reporting", "GET", f"/reports/{q(code)}/{q(month)}/{fmt}", token=session.access_token
    )
    return Response(
        answer.content,
        media_type=answer.headers.get("content-type", "application/octet-stream"),
        headers={
            "Content-Disposition": answer.headers.get(
                "content-disposition", f'attachment; filename="bao-cao-{code}-{month}.{fmt}"'
            )
        },
    )
