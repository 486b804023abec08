"""The committee console (committee offices, province admins): the org tree (browse,
create, rename, move, merge, dissolve), catalogue import, accounts and roles,
reconciliation, branch reports, usage figures and the monthly report.

Offered to admin roles only, on units their grants cover; every action is the service's
own command, which checks role and scope again. The rules mirrored here (which parent a
level may have, which role may grant which) only choose what to offer: the service decides.
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

from sotay_web.core import (
    Denied,
    api,
    checked_form,
    done,
    month_label,
    render,
    signed_session,
    text,
    web,
)
from sotay_web.sessions import Session
from sotay_web.upstream import Refused, Unavailable

router = APIRouter()
Form = Annotated[FormData, Depends(checked_form)]
VN = ZoneInfo("Asia/Ho_Chi_Minh")

ADMIN = ("committee_admin", "province_admin", "system_admin")
# identity's GRANTORS and ROLE_LEVELS: who may grant a role, and at which level it sits.
_BRANCHES = frozenset({"branch", "grassroots_branch"})
_COMMITTEES = frozenset(
    {"commune", "grassroots_committee", "grassroots_branch", "partial_committee"}
)
_ALL_LEVELS = frozenset(
    {"central", "province", "commune", "grassroots_committee", "grassroots_branch"}
    | {"partial_committee", "branch"}
)
GRANTS: dict[str, tuple[str, frozenset[str], frozenset[str]]] = {
    # role: (label, granted by, unit levels)
    "branch_committee_member": (
        "Chi ủy viên",
        frozenset({"branch_secretary", *ADMIN}),
        _BRANCHES,
    ),
    "branch_secretary": ("Bí thư, phó bí thư chi bộ", frozenset(ADMIN), _BRANCHES),
    "committee_admin": ("Quản trị cấp ủy cơ sở", frozenset(ADMIN), _COMMITTEES),
    "editor": ("Ban Biên tập", frozenset(ADMIN), _ALL_LEVELS),
    "editorial_reviewer": ("Ban Biên tập (duyệt bài)", frozenset(ADMIN), _ALL_LEVELS),
    "province_admin": (
        "Quản trị cấp tỉnh",
        frozenset({"province_admin", "system_admin"}),
        frozenset({"province"}),
    ),
}
# org-tree's ALLOWED_PARENTS: under which levels a unit of each level may stand.
ALLOWED_PARENTS: dict[str, frozenset[str]] = {
    "central": frozenset(),
    "province": frozenset({"central"}),
    "commune": frozenset({"province"}),
    "grassroots_committee": frozenset({"province", "commune"}),
    "grassroots_branch": frozenset({"province", "commune"}),
    "partial_committee": frozenset({"grassroots_committee"}),
    "branch": frozenset({"commune", "grassroots_committee", "partial_committee"}),
}
LEVELS = {
    "commune": "Đảng bộ xã, phường, đặc khu",
    "grassroots_committee": "Đảng bộ cơ sở",
    "grassroots_branch": "Chi bộ cơ sở",
    "partial_committee": "Đảng bộ bộ phận",
    "branch": "Chi bộ trực thuộc",
}
TARGETS = {
    "registered_rate": "100% đảng viên đăng ký sử dụng",
    "active_30d_rate": "100% đảng viên sử dụng thường xuyên",
    "branches_met_rate": "100% chi bộ sinh hoạt trên phần mềm",
}
STATUS = {"active": "đang hoạt động", "dissolved": "đã giải thể", "merged": "đã hợp nhất"}
# Which form each command's refusal is shown on, and the confirmation it needs first.
CONFIRM = {"move", "merge", "dissolve"}
PAGE_SIZE = 50
SUGGESTIONS = 500


def q(value: str) -> str:
    return quote(value, safe="")


async def _admin(request: Request) -> list[str]:
    session = await signed_session(request)
    if not session.admin_units:
        raise Denied("Trang này dành cho văn phòng cấp ủy và quản trị tỉnh.")
    return session.admin_units


def in_scope(path: list[str], units: list[str]) -> bool:
    return bool(set(path) & set(units))


async def scoped_unit(request: Request, code: str) -> tuple[dict[str, Any], list[str]]:
    """The unit, if one of the viewer's admin grants covers it; never a unit above them."""
    units = await _admin(request)
    found: dict[str, Any] = await api(request, "orgtree", "GET", f"/units/{q(code)}")
    if not in_scope(found.get("path") or [code], units):
        raise Denied("Đơn vị này nằm ngoài phạm vi quản trị của tài khoản.")
    return found, units


def scope_root(path: list[str], units: list[str]) -> str:
    """The highest unit on the path that the viewer administers."""
    return next(c for c in path if c in units)


def grantable_roles(session: Session, unit_path: list[str], level: str) -> dict[str, str]:
    """The roles this viewer may grant on a unit: a grant of theirs covers it with a
    role that may grant the role, and the role sits at the unit's level."""
    held = {(g["role"], g["unit"]) for g in session.grants}
    return {
        role: label
        for role, (label, grantors, levels) in GRANTS.items()
        if level in levels and any(r in grantors and u in unit_path for r, u in held)
    }


def move_targets(unit: dict[str, Any], candidates: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Active units the unit may stand under: not itself or below it, of an allowed level."""
    allowed = ALLOWED_PARENTS.get(unit["level"], frozenset())
    return [
        c
        for c in candidates
        if c["status"] == "active"
        and c["level"] in allowed
        and unit["code"] not in (c.get("path") or [])
        and c["code"] != unit.get("parent_code")
    ]


def merge_targets(unit: dict[str, Any], candidates: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Active units of the same level, neither itself nor below it."""
    return [
        c
        for c in candidates
        if c["status"] == "active"
        and c["level"] == unit["level"]
        and unit["code"] not in (c.get("path") or [])
    ]


@router.get("/quan-tri")
async def console(request: Request) -> Response:
    units = await _admin(request)
    if len(units) == 1:
        return RedirectResponse(f"/quan-tri/don-vi/{q(units[0])}", status_code=303)
    return render(request, "console_pick.html", units=units)


def _this_month() -> str:
    return datetime.now(VN).strftime("%Y-%m")


async def _nothing() -> list[Any]:
    return []


async def _optional(call: Any) -> Any:
    try:
        return await call
    except (Refused, Unavailable):
        return None


async def _unit_page(
    request: Request,
    code: str,
    status_code: int = 200,
    *,
    failed: str | None = None,
    errors: dict[str, str] | None = None,
    error: str | None = None,
    values: dict[str, str] | None = None,
) -> Response:
    found, units = await scoped_unit(request, code)
    path = found.get("path") or [code]
    root = scope_root(path, units)
    # Suggestions only (typing any code works): the committees in scope a unit may move
    # under, and the units beside it for a merge, so that a page stays small in a province
    # of thousands of branches.
    parents = sorted(ALLOWED_PARENTS.get(found["level"], frozenset()))
    children, chain, siblings, *committees = await asyncio.gather(
        api(request, "orgtree", "GET", f"/units/{q(code)}/children"),
        api(request, "orgtree", "GET", f"/units/{q(code)}/path"),
        api(request, "orgtree", "GET", f"/units/{q(found.get('parent_code') or code)}/children")
        if code != root
        else _nothing(),
        *(
            api(
                request,
                "orgtree",
                "GET",
                f"/units/{q(root)}/subtree",
                params={"level": level, "limit": SUGGESTIONS},
            )
            for level in parents
        ),
    )
    month = request.query_params.get("thang") or _this_month()
    figures, reports, issued = await asyncio.gather(
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
        _optional(api(request, "reporting", "GET", f"/reports/{q(code)}/{q(month)}")),
    )
    active_children = [c for c in children if c["status"] == "active"]
    return render(
        request,
        "console_unit.html",
        status_code,
        unit=found,
        children=children,
        # Only the part of the chain the viewer administers: nothing above their grant.
        chain=[p for p in chain if p["code"] in path[path.index(root) :]],
        figures=figures,
        reports=(reports or {}).get("reports", []) if reports else [],
        levels={k: v for k, v in LEVELS.items() if found["level"] in ALLOWED_PARENTS[k]},
        moves=move_targets(found, [u for batch in committees for u in batch]),
        merges=[m for m in merge_targets(found, siblings) if m["code"] != code],
        may_dissolve=not active_children,
        is_root=code == root,
        status_labels=STATUS,
        targets=TARGETS,
        month=month,
        issued=issued,
        failed=failed,
        errors=errors or {},
        # A refusal naming no field is shown on the form that was sent.
        form_error=None if errors else error,
        values=values or {},
    )


@router.get("/quan-tri/don-vi/{code}")
async def unit(request: Request, code: str) -> Response:
    return await _unit_page(request, code)


async def _command(request: Request, code: str, action: str, form: FormData) -> tuple[str, str]:
    """Runs one command; answers the page to go back to and the notice to show there."""
    back = f"/quan-tri/don-vi/{q(code)}"
    if action == "create":
        child = {
            "code": text(form, "code"),
            "name": text(form, "name"),
            "level": text(form, "level"),
            "parent_code": code,
        }
        await api(request, "orgtree", "POST", "/units", json=child)
        return back, f"Đã tạo đơn vị {child['name']}."
    if action == "rename":
        body = {"name": text(form, "name")}
        await api(request, "orgtree", "POST", f"/units/{q(code)}/rename", json=body)
        return back, "Đã đổi tên đơn vị."
    if action == "move":
        body = {"parent_code": text(form, "parent_code")}
        await api(request, "orgtree", "POST", f"/units/{q(code)}/move", json=body)
        return back, f"Đã chuyển đơn vị về trực thuộc {body['parent_code']}."
    if action == "merge":
        body = {"into_code": text(form, "into_code")}
        await api(request, "orgtree", "POST", f"/units/{q(code)}/merge", json=body)
        target = body["into_code"]
        return f"/quan-tri/don-vi/{q(target)}", f"Đã hợp nhất {code} vào {target}."
    if action == "dissolve":
        body = {"reason": text(form, "reason")}
        found = await api(request, "orgtree", "POST", f"/units/{q(code)}/dissolve", json=body)
        parent = found.get("parent_code") or code
        return f"/quan-tri/don-vi/{q(parent)}", f"Đã giải thể đơn vị {code}."
    if action == "acknowledge":
        meeting = text(form, "meeting_id")
        await api(request, "meetings", "POST", f"/meetings/{q(meeting)}/report/acknowledge")
        return back, "Đã tiếp nhận báo cáo của chi bộ."
    if action == "issue_report":
        month = text(form, "month")
        await api(request, "reporting", "POST", f"/reports/{q(code)}/{q(month)}")
        return f"{back}?thang={q(month)}#bao-cao", f"Đã lập báo cáo tháng {month_label(month)}."
    raise Denied("Thao tác không hợp lệ.")


async def _target_name(request: Request, target: str) -> str:
    found = await _optional(api(request, "orgtree", "GET", f"/units/{q(target)}"))
    return f"{found['name']} ({target})" if found else target


@router.post("/quan-tri/don-vi/{code}")
async def unit_action(request: Request, code: str, form: Form) -> Response:
    found, _ = await scoped_unit(request, code)
    action = text(form, "action")
    values = {k: v for k, v in form.items() if isinstance(v, str) and k != "csrf"}
    if action in CONFIRM and text(form, "confirmed") != "1":
        target = text(form, "parent_code") or text(form, "into_code")
        return render(
            request,
            "console_confirm.html",
            unit=found,
            action=action,
            values=values,
            target=await _target_name(request, target) if target else "",
        )
    try:
        location, message = await _command(request, code, action, form)
    except Refused as exc:
        return await _unit_page(
            request,
            code,
            exc.status,
            failed=action,
            errors=exc.field_errors(),
            error=exc.message,
            values=values,
        )
    return await done(request, location, message)


@router.post("/quan-tri/don-vi/{code}/nhap")
async def import_catalogue(request: Request, code: str, form: Form) -> Response:
    """A catalogue from CSV or Excel, the service's report shown row by row."""
    await scoped_unit(request, code)
    upload = form.get("file")
    if not isinstance(upload, UploadFile) or not upload.filename:
        return await _unit_page(
            request,
            code,
            422,
            failed="import",
            errors={"file": "Vui lòng chọn tệp CSV hoặc Excel."},
        )
    kind = text(form, "kind")
    content = await upload.read()
    files = {"file": (upload.filename, content, upload.content_type or "application/octet-stream")}
    try:
        if kind == "reconcile":
            report = await api(
                request,
                "identity",
                "POST",
                "/reconciliation",
                params={"unit_id": code},
                files=files,
            )
            return render(request, "console_reconcile.html", code=code, report=report)
        if kind == "members":
            report = await api(
                request,
                "identity",
                "POST",
                "/imports/members",
                params={"unit_id": code},
                files=files,
            )
        else:
            report = await api(request, "orgtree", "POST", "/units/import", files=files)
    except Refused as exc:
        errors = exc.field_errors()
        return await _unit_page(
            request,
            code,
            exc.status,
            failed="import",
            errors={"file": errors.pop("file", exc.message), **errors},
            values={"kind": kind},
        )
    return render(request, "console_import.html", code=code, report=report, kind=kind)


# --- accounts and roles ---------------------------------------------------------


@router.get("/quan-tri/don-vi/{code}/tai-khoan")
async def accounts(request: Request, code: str, trang: int = 1) -> Response:
    """The members of the unit's subtree with their roles, a page at a time."""
    found, _ = await scoped_unit(request, code)
    page = max(1, trang)
    roster = await api(
        request,
        "identity",
        "GET",
        "/members",
        params={"unit_id": code, "offset": (page - 1) * PAGE_SIZE, "limit": PAGE_SIZE},
    )
    pages = max(1, -(-int(roster.get("total", 0)) // PAGE_SIZE))
    return render(
        request, "console_accounts.html", unit=found, roster=roster, page=page, pages=pages
    )


async def _member_page(
    request: Request,
    code: str,
    member_id: str,
    status_code: int = 200,
    **context: Any,
) -> Response:
    found, units = await scoped_unit(request, code)
    person = await api(request, "identity", "GET", f"/members/{q(member_id)}")
    session = await signed_session(request)
    # Offered: each role this viewer may grant on each unit of the member's own chain that
    # they administer, one button each, so no pair is offered that identity would refuse.
    chain = await api(request, "orgtree", "GET", f"/units/{q(person['branch_id'])}/path")
    places = [u for u in chain if in_scope(u.get("path") or [u["code"]], units)]
    held = {(r["role"], r["unit_id"]) for r in person.get("roles", [])}
    offers = [
        {"role": role, "label": label, "unit": u}
        for u in places
        if u["status"] == "active"
        for role, label in grantable_roles(
            session, u.get("path") or [u["code"]], u["level"]
        ).items()
        if (role, u["code"]) not in held
    ]
    mine = {(g["role"], g["unit"]) for g in session.grants}
    for role in person.get("roles", []):
        grantors = GRANTS.get(role["role"], ("", frozenset(), frozenset()))[1]
        unit_doc = await _optional(api(request, "orgtree", "GET", f"/units/{q(role['unit_id'])}"))
        on = (unit_doc or {}).get("path") or []
        role["revocable"] = any(r in grantors and u in on for r, u in mine)
    return render(
        request,
        "console_member.html",
        status_code,
        unit=found,
        person=person,
        offers=offers,
        **context,
    )


@router.get("/quan-tri/don-vi/{code}/tai-khoan/{member_id}")
async def account(request: Request, code: str, member_id: str) -> Response:
    return await _member_page(request, code, member_id)


@router.post("/quan-tri/don-vi/{code}/tai-khoan/{member_id}")
async def account_action(request: Request, code: str, member_id: str, form: Form) -> Response:
    await scoped_unit(request, code)
    role, unit_id = text(form, "role"), text(form, "unit_id")
    back = f"/quan-tri/don-vi/{q(code)}/tai-khoan/{q(member_id)}"
    try:
        if text(form, "action") == "revoke":
            path = f"/members/{q(member_id)}/roles/{q(role)}/{q(unit_id)}"
            await api(request, "identity", "DELETE", path)
            message = f"Đã thu hồi nhiệm vụ {GRANTS.get(role, (role,))[0]} tại {unit_id}."
        else:
            body = {"role": role, "unit_id": unit_id}
            await api(request, "identity", "POST", f"/members/{q(member_id)}/roles", json=body)
            message = f"Đã giao nhiệm vụ {GRANTS.get(role, (role,))[0]} tại {unit_id}."
    except Refused as exc:
        return await _member_page(
            request,
            code,
            member_id,
            exc.status,
            errors=exc.field_errors(),
            form_error=None if exc.field_errors() else exc.message,
            values={"role": role, "unit_id": unit_id},
        )
    return await done(request, back, message)


# --- figures and the monthly report ---------------------------------------------


@router.get("/quan-tri/don-vi/{code}/so-lieu")
async def dashboard(request: Request, code: str, thang: str = "") -> Response:
    """The usage dashboard of a unit and the units under it (reporting's figures)."""
    found, _ = await scoped_unit(request, code)
    params = {"month": thang} if thang else None
    figures = await api(request, "reporting", "GET", f"/units/{q(code)}/figures", params=params)
    return render(
        request,
        "console_figures.html",
        unit=found,
        figures=figures,
        month=thang or _this_month(),
        targets=TARGETS,
    )


@router.get("/quan-tri/don-vi/{code}/bao-cao/{month}.{fmt}")
async def report_file(request: Request, code: str, month: str, fmt: str) -> Response:
    """The monthly report's Excel or CSV, fetched server side with the person's token."""
    await scoped_unit(request, code)
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
