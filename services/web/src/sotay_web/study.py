"""Study: campaigns, materials, the quiz with its timer, reflections, results, contests."""

from __future__ import annotations

import asyncio
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from starlette.datastructures import FormData

from sotay_web import views
from sotay_web.core import api, checked_form, done, refused_page, render, signed_session
from sotay_web.upstream import Refused

router = APIRouter()
Form = Annotated[FormData, Depends(checked_form)]


def q(value: str) -> str:
    return quote(value, safe="")


@router.get("/hoc-tap")
async def campaigns(request: Request) -> Response:
    mine, contests = await asyncio.gather(
        api(request, "learning", "GET", "/me/campaigns"),
        api(request, "learning", "GET", "/me/contests"),
    )
    return render(request, "study.html", campaigns=mine, contests=contests)


@router.get("/hoc-tap/{campaign_id}")
async def campaign(request: Request, campaign_id: str) -> Response:
    found = await api(request, "learning", "GET", f"/campaigns/{q(campaign_id)}")
    return render(request, "campaign.html", campaign=found, progress=found.get("progress") or {})


@router.get("/hoc-tap/{campaign_id}/tai-lieu/{material_id}")
async def material(request: Request, campaign_id: str, material_id: str) -> Response:
    found, item = await asyncio.gather(
        api(request, "learning", "GET", f"/campaigns/{q(campaign_id)}"),
        api(request, "learning", "GET", f"/campaigns/{q(campaign_id)}/materials/{q(material_id)}"),
    )
    studied = material_id in (found.get("progress") or {}).get("studied_material_ids", [])
    return render(request, "material.html", campaign=found, material=item, studied=studied)


@router.post("/hoc-tap/{campaign_id}/tai-lieu/{material_id}/da-hoc")
async def material_studied(
    request: Request, campaign_id: str, material_id: str, form: Form
) -> Response:
    await api(
        request,
        "learning",
        "POST",
        f"/campaigns/{q(campaign_id)}/materials/{q(material_id)}/studied",
    )
    return await done(
        request, f"/hoc-tap/{campaign_id}", "Đã ghi nhận: đồng chí đã học tài liệu này."
    )


@router.post("/hoc-tap/{campaign_id}/kiem-tra")
async def quiz(request: Request, campaign_id: str, form: Form) -> Response:
    """Draws a paper, or shows the open one again (learning decides): the same POST is safe."""
    paper = await api(request, "learning", "POST", f"/campaigns/{q(campaign_id)}/quiz/attempts")
    found = await api(request, "learning", "GET", f"/campaigns/{q(campaign_id)}")
    return render(
        request,
        "quiz.html",
        campaign=found,
        paper=paper,
        action=f"/hoc-tap/{campaign_id}/kiem-tra/{paper['attempt']}",
    )


@router.post("/hoc-tap/{campaign_id}/kiem-tra/{attempt}")
async def quiz_submit(request: Request, campaign_id: str, attempt: int, form: Form) -> Response:
    # The paper's question ids travel in the form: asking learning for the paper again
    # could draw a new attempt when this one was already handed in.
    answers = views.quiz_answers(form)
    try:
        result = await api(
            request,
            "learning",
            "POST",
            f"/campaigns/{q(campaign_id)}/quiz/attempts/{attempt}/answers",
            json={"answers": answers},
        )
    except Refused as exc:
        return render(
            request,
            "error.html",
            exc.status,
            title="Chưa nộp được bài",
            message=exc.message,
            back=f"/hoc-tap/{campaign_id}",
        )
    found = await api(request, "learning", "GET", f"/campaigns/{q(campaign_id)}")
    return render(request, "quiz_result.html", campaign=found, result=result)


@router.get("/hoc-tap/{campaign_id}/thu-hoach")
async def reflection(request: Request, campaign_id: str) -> Response:
    session = await signed_session(request)
    found = await api(request, "learning", "GET", f"/campaigns/{q(campaign_id)}")
    mine = None
    if (found.get("progress") or {}).get("reflection", {}).get("status"):
        mine = await api(
            request,
            "learning",
            "GET",
            f"/campaigns/{q(campaign_id)}/reflections/{session.member_id}",
        )
    return render(request, "reflection.html", campaign=found, mine=mine)


@router.post("/hoc-tap/{campaign_id}/thu-hoach")
async def reflection_submit(request: Request, campaign_id: str, form: Form) -> Response:
    body = str(form.get("text") or "").strip()
    try:
        await api(
            request,
            "learning",
            "POST",
            f"/campaigns/{q(campaign_id)}/reflection",
            json={"text": body},
        )
    except Refused as exc:
        found = await api(request, "learning", "GET", f"/campaigns/{q(campaign_id)}")
        return refused_page(
            request, "reflection.html", exc, {"text": body}, campaign=found, mine=None
        )
    return await done(
        request, f"/hoc-tap/{campaign_id}", "Đã nộp bài thu hoạch, chờ bí thư chi bộ nhận xét."
    )


# Contests ------------------------------------------------------------------------------


@router.get("/thi/{contest_id}")
async def contest(request: Request, contest_id: str) -> Response:
    found, ranking = await asyncio.gather(
        api(request, "learning", "GET", f"/contests/{q(contest_id)}"),
        api(
            request,
            "learning",
            "GET",
            f"/contests/{q(contest_id)}/rankings/members",
            params={"limit": 20},
        ),
    )
    return render(request, "contest.html", contest=found, ranking=ranking)


@router.post("/thi/{contest_id}/bai-thi")
async def contest_entry(request: Request, contest_id: str, form: Form) -> Response:
    paper = await api(request, "learning", "POST", f"/contests/{q(contest_id)}/entries")
    found = await api(request, "learning", "GET", f"/contests/{q(contest_id)}")
    return render(
        request,
        "quiz.html",
        campaign=None,
        contest=found,
        paper=paper,
        action=f"/thi/{contest_id}/bai-thi/{paper['attempt']}",
    )


@router.post("/thi/{contest_id}/bai-thi/{attempt}")
async def contest_submit(request: Request, contest_id: str, attempt: int, form: Form) -> Response:
    answers = views.quiz_answers(form)
    found = await api(request, "learning", "GET", f"/contests/{q(contest_id)}")
    result = await api(
        request,
        "learning",
        "POST",
        f"/contests/{q(contest_id)}/entries/{attempt}/answers",
        json={"answers": answers},
    )
    return render(request, "quiz_result.html", campaign=None, contest=found, result=result)
