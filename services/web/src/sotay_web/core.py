"""What every page handler uses: the session, calls upstream, forms with CSRF, rendering."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from markupsafe import Markup, escape
from starlette.datastructures import FormData

from sotay_web import views
from sotay_web.sessions import Session, SessionEnded, SessionStore, csrf_ok
from sotay_web.settings import WebSettings
from sotay_web.upstream import Refused, Upstreams

HERE = Path(__file__).parent
PASSWORD_PAGE = "/doi-mat-khau"
SIGN_IN_PAGE = "/dang-nhap"


class Redirect(Exception):
    def __init__(self, location: str) -> None:
        self.location = location


class CsrfRejected(Exception):
    pass


class Denied(Exception):
    """The web front itself refuses: the screen is not for this person's roles."""

    def __init__(self, message: str) -> None:
        self.message = message


@dataclass
class Web:
    settings: WebSettings
    upstreams: Upstreams
    store: SessionStore
    templates: Jinja2Templates


def web(request: Request) -> Web:
    return request.app.state.web


def session_of(request: Request) -> Session:
    session: Session = request.state.session
    return session


def safe_next(value: str | None) -> str:
    """Only a path of this site: a sign-in never sends anyone elsewhere."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    return value


def wants_json(request: Request) -> bool:
    return request.headers.get("x-sotay-fetch") == "1"


async def signed_session(request: Request, *, allow_temporary: bool = False) -> Session:
    """The signed-in session with a usable access token, or a redirect to sign in."""
    session = session_of(request)
    if not session.signed_in:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise Redirect(f"{SIGN_IN_PAGE}?next={quote(target)}")
    if session.must_change_password and not allow_temporary:
        raise Redirect(PASSWORD_PAGE)
    w = web(request)

    async def refresh(token: str) -> dict[str, Any]:
        try:
            tokens: dict[str, Any] = await w.upstreams.call(
                "identity", "POST", "/auth/refresh", json={"refresh_token": token}
            )
        except Refused as exc:
            raise SessionEnded from exc
        return tokens

    try:
        fresh = await w.store.fresh_access(session, refresh)
    except SessionEnded:
        request.state.session_ended = True
        raise Redirect(SIGN_IN_PAGE) from None
    request.state.session = fresh
    return fresh


async def api(
    request: Request,
    service: str,
    method: str,
    path: str,
    *,
    allow_temporary: bool = False,
    **kw: Any,
) -> Any:
    """Call a service as the signed-in person. A 401 means identity ended the session."""
    session = await signed_session(request, allow_temporary=allow_temporary)
    try:
        return await web(request).upstreams.call(
            service, method, path, token=session.access_token, **kw
        )
    except Refused as exc:
        if exc.status == 401:
            await web(request).store.delete(session)
            request.state.session_ended = True
            raise Redirect(SIGN_IN_PAGE) from None
        raise


async def officer_names(request: Request, member_ids: Iterable[str | None]) -> dict[str, str]:
    """The full names of the officers a page shows (who wrote a piece, who holds an item),
    as identity lets this viewer see them; anyone else keeps their code."""
    wanted = sorted({m for m in member_ids if m})[:50]  # identity answers up to 50 at once
    if not wanted:
        return {}
    try:
        found = await api(request, "identity", "GET", "/officers", params={"member_id": wanted})
    except Refused as exc:
        if exc.status in (403, 422):  # not an officer; an assignee typed as no valid code
            return {}
        raise
    return {o["member_id"]: o["full_name"] for o in found.get("items") or []}


async def unit_names(request: Request, codes: Iterable[str | None]) -> dict[str, str]:
    """The names of the units a page shows; a unit org-tree does not show keeps its code."""
    wanted = sorted({c for c in codes if c})

    async def one(code: str) -> tuple[str, str]:
        try:
            found = await api(request, "orgtree", "GET", f"/units/{quote(code, safe='')}")
        except Refused as exc:
            if exc.status in (403, 404, 422):
                return code, code
            raise
        return code, str(found.get("name") or code)

    return dict(await asyncio.gather(*map(one, wanted)))


async def checked_form(request: Request) -> FormData:
    """Every POST: the form, once its CSRF token matches the session's."""
    form = await request.form()
    presented = form.get("csrf")
    if not isinstance(presented, str) or not csrf_ok(session_of(request), presented):
        raise CsrfRejected
    return form


def text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def csrf_field(request: Request) -> Markup:
    token = escape(session_of(request).csrf)
    return Markup(f'<input type="hidden" name="csrf" value="{token}">')


def render(
    request: Request,
    template: str,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    prefs = request.cookies.get("sotay_prefs", "")
    response = web(request).templates.TemplateResponse(
        request,
        template,
        {
            "session": session_of(request),
            "large_text": "large" in prefs.split("."),
            "high_contrast": "contrast" in prefs.split("."),
            "has": web(request).upstreams.has,
            "path": request.url.path,
            "flash": getattr(request.state, "flash", None),
            "errors": {},
            "values": {},
            **context,
        },
        status_code=status_code,
    )
    return response


def refused_page(
    request: Request,
    template: str,
    exc: Refused,
    values: dict[str, Any] | None = None,
    **context: Any,
) -> Response:
    """The form again, each of the service's messages next to the field it names."""
    if wants_json(request):
        return JSONResponse(exc.body | {"ok": False}, status_code=exc.status)
    errors = exc.field_errors()
    return render(
        request,
        template,
        status_code=exc.status,
        errors=errors,
        error=exc.message,
        values=values or {},
        **context,
    )


OWN_WRITES_SECONDS = 120


async def remember_own_writes(request: Request, topic: str, facts: dict[str, Any]) -> None:
    """Read your own write: the services' lists are projections and lag by seconds, so what
    this session just did (and the service accepted) is kept for two minutes, merged into
    what was noted under `topic` before, and laid over what the lists answer meanwhile."""
    key = f"web:own:{session_of(request).sid}:{topic}"
    redis = web(request).store.redis
    raw = await redis.get(key)
    merged = (json.loads(raw) if raw else {}) | facts
    await redis.set(key, json.dumps(merged, default=str), ex=OWN_WRITES_SECONDS)


async def own_writes(request: Request, topic: str) -> dict[str, Any]:
    raw = await web(request).store.redis.get(f"web:own:{session_of(request).sid}:{topic}")
    found: dict[str, Any] = json.loads(raw) if raw else {}
    return found


async def done(request: Request, location: str, message: str) -> Response:
    """After a command: back to a page, with a notice (or JSON for the offline queue)."""
    if wants_json(request):
        return JSONResponse({"ok": True, "message": message})
    await web(request).store.set_flash(session_of(request), message)
    return RedirectResponse(location, status_code=303)


def now() -> float:
    return time.time()


def month_label(value: str) -> str:
    """`2026-12` as people write it: `12/2026`."""
    year, _, month = str(value).partition("-")
    return f"{month}/{year}" if month else str(value)


def template_engine() -> Jinja2Templates:
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    templates.env.globals["csrf_field"] = csrf_field
    templates.env.filters["month_label"] = month_label
    templates.env.filters.update(views.FILTERS)
    templates.env.globals.update(views.GLOBALS)
    return templates
