"""Campaigns and question banks (learning), for a committee's administrators: the unit's
campaigns and banks, a bank's questions (one added at a time), and launching a campaign
with its reading material and its quiz drawn from a bank. Learning checks role and scope."""

from __future__ import annotations

import asyncio
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from starlette.datastructures import FormData

from sotay_web.console import q, scoped_unit
from sotay_web.core import api, checked_form, done, render, text
from sotay_web.upstream import Refused

router = APIRouter()
Form = Annotated[FormData, Depends(checked_form)]
OPTIONS = 4


def _number(form: FormData, name: str) -> int | str:
    """A number as typed: learning answers a bad one with its own message at the field."""
    value = text(form, name)
    return int(value) if value.isdigit() else value


def launch_body(form: FormData, unit_id: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "campaign_id": text(form, "campaign_id") or None,
        "unit_id": unit_id,
        "resolution_code": text(form, "resolution_code"),
        "resolution_title": text(form, "resolution_title"),
        "title": text(form, "campaign_title") or None,
        # A deadline day ends at midnight, Vietnamese time (learning reads a zoneless time so).
        "deadline": f"{text(form, 'deadline')}T23:59:59" if text(form, "deadline") else "",
        "materials": [
            {
                "kind": "text",
                "title": text(form, "material_title"),
                "body": text(form, "material_body"),
            }
        ],
    }
    if text(form, "bank_id"):
        body["quiz"] = {
            "bank_id": text(form, "bank_id"),
            **{
                k: _number(form, k)
                for k in ("question_count", "time_limit_minutes", "max_attempts", "pass_mark")
            },
        }
    return body


def learning_errors(exc: Refused) -> dict[str, str]:
    """Nested names (`materials.0.title`, `quiz.pass_mark`) onto the form's own fields."""
    errors: dict[str, str] = {}
    for name, message in exc.field_errors().items():
        parts = name.split(".")
        if parts[0] == "materials":
            errors.setdefault(f"material_{parts[-1]}", message)
        else:
            errors.setdefault(parts[-1], message)
    return errors


async def _page(request: Request, code: str, status_code: int = 200, **context: Any) -> Response:
    found, _ = await scoped_unit(request, code)
    campaigns, banks = await asyncio.gather(
        api(request, "learning", "GET", "/campaigns", params={"unit_id": code}),
        api(request, "learning", "GET", "/question-banks", params={"unit_id": code}),
    )
    values = {
        "campaign_id": uuid.uuid4().hex,
        "bank_id_new": uuid.uuid4().hex,
        "question_count": "10",
        "time_limit_minutes": "15",
        "max_attempts": "2",
        "pass_mark": "50",
    } | context.pop("values", {})
    return render(
        request,
        "console_campaigns.html",
        status_code,
        unit=found,
        campaigns=campaigns,
        banks=banks,
        values=values,
        **context,
    )


@router.get("/quan-tri/don-vi/{code}/hoc-tap")
async def campaigns(request: Request, code: str) -> Response:
    return await _page(request, code)


@router.post("/quan-tri/don-vi/{code}/hoc-tap")
async def campaign_action(request: Request, code: str, form: Form) -> Response:
    await scoped_unit(request, code)
    action = text(form, "action")
    try:
        if action == "bank":
            bank = {
                "bank_id": text(form, "bank_id_new"),
                "unit_id": code,
                "title": text(form, "bank_title"),
            }
            made = await api(request, "learning", "POST", "/question-banks", json=bank)
            location = f"/quan-tri/don-vi/{q(code)}/ngan-hang/{q(made['bank_id'])}"
            message = f"Đã tạo ngân hàng câu hỏi {made['title']}. Thêm câu hỏi bên dưới."
        else:
            launched = await api(
                request, "learning", "POST", "/campaigns", json=launch_body(form, code)
            )
            location = f"/quan-tri/don-vi/{q(code)}/hoc-tap"
            message = f"Đã phát động đợt học tập {launched.get('title', '')}."
    except Refused as exc:
        errors = learning_errors(exc)
        if "title" in errors:  # each form's own title field
            errors[f"{'bank' if action == 'bank' else 'campaign'}_title"] = errors.pop("title")
        return await _page(
            request,
            code,
            exc.status,
            failed=action,
            errors=errors,
            form_error=None if errors else exc.message,
            values={k: v for k, v in form.items() if isinstance(v, str) and k != "csrf"},
        )
    return await done(request, location, message)


async def _bank_page(
    request: Request, code: str, bank_id: str, status_code: int = 200, **context: Any
) -> Response:
    found, _ = await scoped_unit(request, code)
    bank = await api(request, "learning", "GET", f"/question-banks/{q(bank_id)}/questions")
    return render(
        request,
        "console_bank.html",
        status_code,
        unit=found,
        bank=bank,
        options=range(OPTIONS),
        **context,
    )


@router.get("/quan-tri/don-vi/{code}/ngan-hang/{bank_id}")
async def bank(request: Request, code: str, bank_id: str) -> Response:
    return await _bank_page(request, code, bank_id)


@router.post("/quan-tri/don-vi/{code}/ngan-hang/{bank_id}")
async def add_question(request: Request, code: str, bank_id: str, form: Form) -> Response:
    await scoped_unit(request, code)
    correct = text(form, "correct")
    options = [
        {"text": text(form, f"option_{i}"), "correct": correct == str(i)}
        for i in range(OPTIONS)
        if text(form, f"option_{i}")
    ]
    question = {"kind": "single", "text": text(form, "text"), "options": options}
    path = f"/question-banks/{q(bank_id)}/questions"
    try:
        await api(request, "learning", "POST", path, json={"questions": [question]})
    except Refused as exc:
        errors = {k.rsplit(".", 1)[-1]: v for k, v in exc.field_errors().items()}
        return await _bank_page(
            request,
            code,
            bank_id,
            exc.status,
            errors=errors,
            form_error=exc.message,
            values={k: v for k, v in form.items() if isinstance(v, str) and k != "csrf"},
        )
    return await done(
        request, f"/quan-tri/don-vi/{q(code)}/ngan-hang/{q(bank_id)}", "Đã thêm câu hỏi."
    )
