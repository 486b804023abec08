"""Sign in, sign out, the first-sign-in password change, self-registration, preferences."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from starlette.datastructures import FormData

from sotay_web.core import (
    PASSWORD_PAGE,
    api,
    checked_form,
    done,
    now,
    refused_page,
    render,
    safe_next,
    session_of,
    signed_session,
    text,
    web,
)
from sotay_web.sessions import Session, signed_in
from sotay_web.upstream import Refused

router = APIRouter()
Form = Annotated[FormData, Depends(checked_form)]

PREFS_COOKIE = "sotay_prefs"
PREFS = ("large", "contrast")


@router.get("/dang-nhap")
async def sign_in_page(request: Request, next: str = "/") -> Response:
    if session_of(request).signed_in:
        return RedirectResponse(safe_next(next), status_code=303)
    return render(request, "sign_in.html", next=safe_next(next))


@router.post("/dang-nhap")
async def sign_in(request: Request, form: Form) -> Response:
    target = safe_next(text(form, "next"))
    values = {"phone": text(form, "phone")}
    w = web(request)
    try:
        tokens = await w.upstreams.call(
            "identity",
            "POST",
            "/auth/login",
            json={"phone": text(form, "phone"), "password": form.get("password") or ""},
        )
    except Refused as exc:
        # Wrong credentials name no field: the message goes above the form.
        return refused_page(request, "sign_in.html", exc, values, next=target)
    old = session_of(request)
    session = signed_in(old, tokens, now())
    await w.store.save(session)
    if not session.must_change_password:
        await _profile(request, session)
    await w.store.delete(old)
    request.state.session = session
    if session.must_change_password:
        return RedirectResponse(PASSWORD_PAGE, status_code=303)
    return RedirectResponse(target, status_code=303)


async def _profile(request: Request, session: Session) -> None:
    """The name and branch shown in the header, kept with the session."""
    w = web(request)
    try:
        me = await w.upstreams.call("identity", "GET", "/me", token=session.access_token)
    except Refused:
        return  # an operator account without a member profile
    session.full_name = me.get("full_name") or ""
    session.branch_id = me.get("branch_id")
    session.branch_name = me.get("branch_name")
    await w.store.save(session)


@router.post("/dang-xuat")
async def sign_out(request: Request, form: Form) -> Response:
    session = session_of(request)
    w = web(request)
    if session.signed_in:
        try:
            await w.upstreams.call(
                "identity",
                "POST",
                "/auth/logout",
                token=session.access_token,
                json={"everywhere": text(form, "everywhere") == "1"},
            )
        except Exception:
            pass
        await w.store.delete(session)
    request.state.session_ended = True
    response = RedirectResponse("/dang-nhap", status_code=303)
    # Saved documents and the offline queue belong to this person only.
    response.headers["Clear-Site-Data"] = '"cache", "storage"'
    return response


@router.get(PASSWORD_PAGE)
async def password_page(request: Request) -> Response:
    session = session_of(request)
    if not session.signed_in:
        return RedirectResponse("/dang-nhap", status_code=303)
    return render(request, "password.html", temporary=session.must_change_password)


@router.post(PASSWORD_PAGE)
async def change_password(request: Request, form: Form) -> Response:
    session = session_of(request)
    new, repeat = str(form.get("new_password") or ""), str(form.get("repeat_password") or "")
    if new != repeat:
        return render(
            request,
            "password.html",
            422,
            temporary=session.must_change_password,
            errors={"repeat_password": "Hai lần nhập mật khẩu mới không giống nhau"},
        )
    try:
        await api(
            request,
            "identity",
            "POST",
            "/auth/password",
            allow_temporary=True,
            json={"current_password": str(form.get("current_password") or ""), "new_password": new},
        )
    except Refused as exc:
        return refused_page(request, "password.html", exc, temporary=session.must_change_password)
    session = session_of(request)
    session.must_change_password = False
    # The access token was issued for a temporary password (services may refuse it): get a
    # fresh one at once, then the profile that the temporary one could not read.
    session.access_expires_at = 0
    await web(request).store.save(session)
    session = await signed_session(request)
    await _profile(request, session)
    return await done(request, "/", "Đã đổi mật khẩu. Từ nay đăng nhập bằng mật khẩu mới.")


REGISTRATION_FIELDS = (
    "full_name",
    "birth_date",
    "gender",
    "status",
    "admitted_on",
    "official_on",
    "party_card_no",
    "citizen_id",
    "phone",
    "branch_id",
)


@router.get("/dang-ky")
async def registration_page(request: Request) -> Response:
    return render(request, "register.html", values={"status": "official"})


@router.post("/dang-ky")
async def register(request: Request, form: Form) -> Response:
    values = {name: text(form, name) for name in REGISTRATION_FIELDS}
    body: dict[str, Any] = {k: v for k, v in values.items() if v}
    body["password"] = str(form.get("password") or "")
    try:
        answer = await web(request).upstreams.call("identity", "POST", "/registrations", json=body)
    except Refused as exc:
        return refused_page(request, "register.html", exc, values)
    return render(request, "registered.html", message=answer.get("message"))


@router.post("/tuy-chon")
async def preferences(request: Request, form: Form) -> Response:
    """Large text and high contrast stay on for this browser (a year), signed in or not."""
    current = set(request.cookies.get(PREFS_COOKIE, "").split("."))
    toggle = text(form, "toggle")
    if toggle in PREFS:
        current ^= {toggle}
    response = RedirectResponse(safe_next(text(form, "next")), status_code=303)
    value = ".".join(sorted(p for p in current if p in PREFS))
    response.set_cookie(
        PREFS_COOKIE, value, max_age=365 * 24 * 3600, path="/", httponly=True, samesite="lax"
    )
    return response
