"""The feedback answering queue: what awaits my body (a committee's office or departments,
a branch), by deadline with the overdue first; assign, forward, answer, close.

Offered to the roles feedback lets act for a body on the unit's path; feedback checks
role, scope and state again, and its refusal is what is shown.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from starlette.datastructures import FormData

from sotay_web.core import (
    Denied,
    api,
    checked_form,
    done,
    officer_names,
    render,
    signed_session,
    text,
    unit_names,
)
from sotay_web.sessions import Session
from sotay_web.upstream import Refused

router = APIRouter()
Form = Annotated[FormData, Depends(checked_form)]

BODIES = {
    "office": "Văn phòng",
    "organisation_department": "Ban Tổ chức",
    "propaganda_department": "Ban Tuyên giáo",
    "inspection_committee": "Ủy ban Kiểm tra",
    "branch": "Chi bộ",
}
COMMITTEE_BODIES = (
    "office",
    "organisation_department",
    "propaganda_department",
    "inspection_committee",
)
# feedback's body_roles: the committee's office acts for all its bodies, a department for its own.
COMMITTEE_ROLES = frozenset({"committee_admin", "province_admin"})
DEPARTMENT_ROLES = {b: b for b in COMMITTEE_BODIES if b != "office"}
BRANCH_ROLES = frozenset({"branch_secretary", "branch_committee_member"})
STATES = {
    "open": "Đang chờ xử lý",
    "received": "Đã tiếp nhận",
    "assigned": "Đã phân công",
    "answered": "Đã trả lời",
    "closed": "Đã kết thúc",
    "withdrawn": "Đã rút lại",
}
OPEN = ("received", "assigned")
SUBJECTS = {
    "organisation": "Tổ chức, đảng viên",
    "propaganda": "Tư tưởng, tuyên truyền",
    "inspection": "Kiểm tra, kỷ luật",
    "branch_work": "Công tác của chi bộ",
    "app": "Sử dụng ứng dụng",
    "other": "Nội dung khác",
}


def q(value: str) -> str:
    return quote(value, safe="")


def my_queues(session: Session) -> list[tuple[str, str]]:
    """(unit, body) for every body the person's grants let them act for, at the grant's unit."""
    found: list[tuple[str, str]] = []
    for grant in session.grants:
        role, unit = grant["role"], grant["unit"]
        if role in COMMITTEE_ROLES:
            found += [(unit, b) for b in COMMITTEE_BODIES]
        elif role in DEPARTMENT_ROLES:
            found.append((unit, DEPARTMENT_ROLES[role]))
        elif role in BRANCH_ROLES:
            found.append((unit, "branch"))
    return list(dict.fromkeys(found))


def forward_choices(holder_body: str) -> dict[str, str]:
    """Where a holder may send a submission: another body of the committee, down to the
    member's branch, or up to the superior committee (feedback's forward_target)."""
    choices = {b: BODIES[b] for b in COMMITTEE_BODIES if b != holder_body}
    if holder_body != "branch":
        choices["branch"] = "Chi bộ của đảng viên"
    choices["up"] = "Cấp ủy cấp trên (bộ phận phụ trách lĩnh vực)"
    return choices


async def _answerer(request: Request) -> Session:
    session = await signed_session(request)
    if not my_queues(session):
        raise Denied("Trang này dành cho các bộ phận trả lời góp ý của cấp ủy và chi bộ.")
    return session


@router.get("/tra-loi")
async def queues(request: Request) -> Response:
    session = await _answerer(request)
    pairs = my_queues(session)

    async def one(unit: str, body: str) -> dict[str, Any]:
        try:
            found = await api(request, "feedback", "GET", f"/queues/{q(unit)}/{body}")
        except Refused as exc:
            return {"unit_id": unit, "body": body, "refused": exc.message}
        return found | {"items": found.get("items", [])[:3]}

    found, units = await asyncio.gather(
        asyncio.gather(*(one(u, b) for u, b in pairs)), unit_names(request, (u for u, _ in pairs))
    )
    return render(request, "answer_queues.html", queues=found, bodies=BODIES, units=units)


@router.get("/tra-loi/hang-doi/{unit_id}/{body}")
async def queue(request: Request, unit_id: str, body: str, trang_thai: str = "open") -> Response:
    await _answerer(request)
    if body not in BODIES or trang_thai not in STATES:
        raise Denied("Không có hàng đợi này.")
    found = await api(
        request, "feedback", "GET", f"/queues/{q(unit_id)}/{body}", params={"state": trang_thai}
    )
    counts = found.get("counts") or {}
    counts = {"open": sum(int(counts.get(s, 0)) for s in OPEN), **counts}
    items = found.get("items") or []
    names, units = await asyncio.gather(
        officer_names(request, (i.get("assignee") for i in items)),
        unit_names(request, [unit_id, *(i.get("branch_id") for i in items)]),
    )
    return render(
        request,
        "answer_queue.html",
        queue=found,
        names=names,
        units=units,
        counts=counts,
        state=trang_thai,
        states=STATES,
        subjects=SUBJECTS,
    )


async def _colleagues(request: Request, unit_id: str, me: str) -> list[dict[str, str]]:
    """Who else holds a role at the unit holding the item, to hand it to by name; empty
    when identity does not show them to this officer (the code is typed then)."""
    if not unit_id:
        return []
    try:
        office = await api(request, "identity", "GET", f"/units/{q(unit_id)}/office")
    except Refused as exc:
        if exc.status in (403, 404):
            return []
        raise
    return [
        {
            "member_id": o["member_id"],
            "label": f"{o['full_name']} ({', '.join(r['label'] for r in o['roles'])})",
        }
        for o in office.get("items") or []
        if o["member_id"] != me
    ]


async def _item_page(
    request: Request, feedback_id: str, status_code: int = 200, **context: Any
) -> Response:
    session = await _answerer(request)
    item = await api(request, "feedback", "GET", f"/feedback/{q(feedback_id)}")
    holder = item.get("holder") or {}
    names, colleagues, units = await asyncio.gather(
        officer_names(request, [item.get("assignee")]),
        _colleagues(request, str(holder.get("unit_id") or ""), session.member_id or ""),
        unit_names(request, [holder.get("unit_id"), item.get("branch_id")]),
    )
    return render(
        request,
        "answer_item.html",
        status_code,
        item=item,
        names=names,
        colleagues=colleagues,
        units=units,
        open=item.get("state") in OPEN,
        forwards=forward_choices(holder.get("body", "")),
        me=session.member_id or "",
        **context,
    )


@router.get("/tra-loi/gop-y/{feedback_id}")
async def item(request: Request, feedback_id: str) -> Response:
    return await _item_page(request, feedback_id)


@router.post("/tra-loi/gop-y/{feedback_id}")
async def item_action(request: Request, feedback_id: str, form: Form) -> Response:
    await _answerer(request)
    action = text(form, "action")
    path = f"/feedback/{q(feedback_id)}"
    back = f"/tra-loi/gop-y/{q(feedback_id)}"
    try:
        if action == "assign":
            await api(
                request,
                "feedback",
                "POST",
                f"{path}/assign",
                json={"assignee": text(form, "assignee")},
            )
            message = "Đã phân công xử lý."
        elif action == "forward":
            target = text(form, "to_body")
            up = target == "up"
            body = {"to_body": None if up else (target or None), "up": up}
            answer = await api(
                request,
                "feedback",
                "POST",
                f"{path}/forward",
                json=body | {"reason": text(form, "reason")},
            )
            holder = answer.get("holder") or {}
            message = f"Đã chuyển đến {holder.get('body_label', '')} ({holder.get('unit_id', '')})."
            # Once forwarded it is another body's: back to my queue, not to its page.
            back = "/tra-loi"
        elif action == "answer":
            visibility = "public" if text(form, "visibility") == "public" else "private"
            body = {"text": text(form, "text"), "visibility": visibility}
            if visibility == "public" and text(form, "question"):
                body["question"] = text(form, "question")
            await api(request, "feedback", "POST", f"{path}/answer", json=body)
            message = "Đã gửi câu trả lời." + (
                " Câu hỏi và câu trả lời được đăng công khai trong mục hỏi đáp."
                if visibility == "public"
                else ""
            )
        elif action == "close":
            await api(request, "feedback", "POST", f"{path}/close")
            message = "Đã kết thúc xử lý góp ý."
        else:
            raise Denied("Thao tác không hợp lệ.")
    except Refused as exc:
        errors = exc.field_errors()
        return await _item_page(
            request,
            feedback_id,
            exc.status,
            failed=action,
            errors=errors,
            form_error=None if errors else exc.message,
            values={k: v for k, v in form.items() if isinstance(v, str) and k != "csrf"},
        )
    return await done(request, back, message)
