"""Liveness and readiness: what an SRE on call curls first."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

Check = Callable[[], Awaitable[dict[str, Any]]]


def health_router(checks: dict[str, Check]) -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get("/health/live")
    async def live() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/health/ready")
    async def ready(request: Request) -> JSONResponse:
        report: dict[str, Any] = {}
        healthy = True
        for name, check in checks.items():
            try:
                report[name] = await check()
                if report[name].get("ok") is False:
                    healthy = False
            except Exception as exc:
                report[name] = {"ok": False, "error": type(exc).__name__}
                healthy = False
        return JSONResponse(
            {"status": "ok" if healthy else "degraded", "checks": report},
            status_code=200 if healthy else 503,
        )

    return router
