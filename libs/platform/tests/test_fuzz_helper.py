"""`fuzz_openapi` passes a sound app and catches a 5xx and an undocumented answer."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import pytest
from fastapi import Depends, FastAPI, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from sotay_platform.auth import Principal, TokenVerifier, current_principal
from sotay_platform.errors import NotFound, install_error_handlers
from sotay_platform.inputs import Code, EventDatetime, Items, Line, Offset
from sotay_platform.settings import AuthSettings
from sotay_platform.testing import fuzz_openapi


class MeetingIn(BaseModel):
    unit_id: Code
    title: Line
    starts_at: EventDatetime
    agenda: Annotated[list[Line], Items(5)] = []


class MeetingOut(BaseModel):
    unit_id: str
    title: str
    starts_at: datetime
    items: int


def sound_app() -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    app.state.token_verifier = TokenVerifier(AuthSettings(jwks='{"keys": []}'))

    @app.post("/meetings", response_model=MeetingOut)
    async def convene(body: MeetingIn) -> MeetingOut:
        return MeetingOut(
            unit_id=body.unit_id,
            title=body.title,
            starts_at=body.starts_at,
            items=len(body.agenda),
        )

    @app.get("/meetings/{meeting_id}", response_model=MeetingOut)
    async def get(meeting_id: Code) -> MeetingOut:
        raise NotFound(f"Không tìm thấy cuộc họp {meeting_id}", field="meeting_id")

    @app.get("/mine")
    async def mine(
        caller: Annotated[Principal, Depends(current_principal)], offset: Offset = 0
    ) -> dict[str, int]:
        return {"offset": offset}

    return app


async def test_a_sound_app_passes() -> None:
    sent = await fuzz_openapi(sound_app(), token="not-a-real-token", max_examples=15)
    assert sent > 50


async def test_a_500_and_an_undocumented_answer_fail_the_run() -> None:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/stats")
    async def stats(year: Annotated[int, Query()] = 2026) -> dict[str, int]:
        # The bug of issue 11: a year beyond the calendar overflows.
        return {"year": datetime(year, 1, 1).year}

    @app.get("/count", response_model=MeetingOut)
    async def count() -> JSONResponse:
        return JSONResponse({"unit_id": 1})  # not what the schema documents

    with pytest.raises(AssertionError) as failed:
        await fuzz_openapi(app, max_examples=15)
    report = str(failed.value)
    assert "GET /stats" in report
    assert "GET /count" in report
