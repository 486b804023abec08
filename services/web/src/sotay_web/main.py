"""The bootstrap: the one place that wires the web front together."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from redis.asyncio import Redis

from sotay_platform.health import health_router
from sotay_platform.telemetry import instrument_app, setup_logging, setup_tracing
from sotay_web import (
    answering,
    auth,
    campaigns,
    console,
    editorial,
    member,
    reading,
    secretary,
    study,
)
from sotay_web.core import (
    HERE,
    CsrfRejected,
    Denied,
    Redirect,
    Web,
    render,
    template_engine,
    wants_json,
)
from sotay_web.sessions import SessionStore, new_session, ttl_seconds
from sotay_web.settings import WebSettings
from sotay_web.upstream import Refused, Unavailable, Upstreams

log = logging.getLogger(__name__)

COOKIE = "sotay_sid"
# Pages need no inline script or style; the QR image of the meeting screen is a data: URI.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; manifest-src 'self'; worker-src 'self'; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Permissions-Policy": "camera=(self), microphone=(), geolocation=()",
    "Cross-Origin-Opener-Policy": "same-origin",
}
NO_SESSION = ("/static/", "/health/", "/metrics", "/sw.js", "/manifest.webmanifest", "/favicon")


def secure_request(request: Request, settings: WebSettings) -> bool:
    if settings.cookie_secure is not None:
        return settings.cookie_secure
    forwarded = request.headers.get("x-forwarded-proto", "")
    return request.url.scheme == "https" or forwarded.split(",")[0].strip() == "https"


def create_app(
    settings: WebSettings | None = None, transports: dict[str, Any] | None = None
) -> FastAPI:
    settings = settings or WebSettings()
    setup_logging(settings.log_level)
    setup_tracing(settings.service_name)
    redis = Redis.from_url(settings.redis_url)
    upstreams = Upstreams(settings, transports)
    store = SessionStore(redis, settings.anonymous_session_seconds, settings.refresh_margin_seconds)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await upstreams.aclose()
            await redis.aclose()

    app = FastAPI(
        title="Sổ tay — web", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None
    )
    app.state.web = Web(settings, upstreams, store, template_engine())

    async def redis_ok() -> dict[str, Any]:
        return {"ok": bool(await redis.ping())}

    app.include_router(health_router({"redis": redis_ok}))
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")

    @app.get("/sw.js", include_in_schema=False)
    async def service_worker() -> Response:
        # Served from the root so that its scope is the whole site.
        return FileResponse(
            HERE / "static" / "sw.js",
            media_type="text/javascript",
            headers={"Cache-Control": "no-cache"},
        )

    @app.get("/manifest.webmanifest", include_in_schema=False)
    async def manifest() -> Response:
        return FileResponse(
            HERE / "static" / "manifest.webmanifest", media_type="application/manifest+json"
        )

    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon() -> Response:
        return FileResponse(HERE / "static" / "icon-48.png", media_type="image/png")

    for module in (
        auth,
        member,
        study,
        reading,
        secretary,
        console,
        campaigns,
        editorial,
        answering,
    ):
        app.include_router(module.router)

    @app.middleware("http")
    async def sessions_and_headers(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        path = request.url.path
        if path.startswith(NO_SESSION):
            response = await call_next(request)
            if path.startswith("/static/"):
                response.headers.setdefault("Cache-Control", "public, max-age=86400")
            for name, value in SECURITY_HEADERS.items():
                response.headers.setdefault(name, value)
            return response
        session = await store.load(request.cookies.get(COOKIE))
        created = session is None
        if session is None:
            session = new_session(now_())
        request.state.session = session
        request.state.session_ended = False
        if request.method == "GET" and not wants_json(request) and not created:
            request.state.flash = await store.pop_flash(session)
        response = await call_next(request)
        current = request.state.session
        secure = secure_request(request, settings)
        if request.state.session_ended:
            response.delete_cookie(COOKIE, path="/", secure=secure, httponly=True, samesite="lax")
        elif created or current.sid != session.sid:
            if created and current.sid == session.sid:
                await store.save(current)
            response.set_cookie(
                COOKIE,
                current.sid,
                max_age=ttl_seconds(current, now_(), settings.anonymous_session_seconds)
                if current.signed_in
                else None,
                path="/",
                secure=secure,
                httponly=True,
                samesite="lax",
            )
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        # Pages carry personal data: never kept by a shared cache or the browser's.
        response.headers.setdefault("Cache-Control", "no-store")
        return response

    @app.exception_handler(Redirect)
    async def _redirect(request: Request, exc: Redirect) -> Response:
        if wants_json(request):
            return JSONResponse(
                {"ok": False, "error": "signed_out", "message": "Cần đăng nhập lại"},
                status_code=401,
            )
        return RedirectResponse(exc.location, status_code=303)

    @app.exception_handler(CsrfRejected)
    async def _csrf(request: Request, _: CsrfRejected) -> Response:
        message = "Biểu mẫu đã hết hạn. Vui lòng tải lại trang rồi gửi lại."
        if wants_json(request):
            return JSONResponse({"error": "csrf", "message": message, "ok": False}, status_code=403)
        return render(request, "error.html", 403, title="Biểu mẫu đã hết hạn", message=message)

    @app.exception_handler(Denied)
    async def _denied(request: Request, exc: Denied) -> Response:
        return render(request, "error.html", 403, title="Không có quyền", message=exc.message)

    @app.exception_handler(Refused)
    async def _refused(request: Request, exc: Refused) -> Response:
        if wants_json(request):
            return JSONResponse(exc.body | {"ok": False}, status_code=exc.status)
        titles = {403: "Không có quyền", 404: "Không tìm thấy", 409: "Không thực hiện được"}
        return render(
            request,
            "error.html",
            exc.status,
            title=titles.get(exc.status, "Yêu cầu không thực hiện được"),
            message=exc.message,
        )

    @app.exception_handler(Unavailable)
    async def _unavailable(request: Request, exc: Unavailable) -> Response:
        log.warning("upstream unavailable: %s", exc)
        message = (
            f"Phần «{exc.label}» tạm thời chưa trả lời. Vui lòng thử lại sau ít phút; "
            "những gì đã gửi trước đó vẫn được giữ nguyên."
        )
        if wants_json(request):
            return JSONResponse(
                {"error": "unavailable", "message": message, "ok": False},
                status_code=503,
                headers={"Retry-After": "30"},
            )
        response = render(request, "error.html", 503, title="Tạm thời gián đoạn", message=message)
        response.headers["Retry-After"] = "30"
        return response

    @app.exception_handler(404)
    async def _not_found(request: Request, _: Exception) -> Response:
        if not hasattr(request.state, "session"):
            return JSONResponse({"error": "not_found", "message": "Không tìm thấy trang"}, 404)
        return render(
            request, "error.html", 404, title="Không tìm thấy trang", message="Trang này không có."
        )

    instrument_app(app)
    return app


def now_() -> float:
    import time

    return time.time()
