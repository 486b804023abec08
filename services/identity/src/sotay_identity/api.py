"""HTTP routes: parse, authorize, call a handler, shape the answer.

Every field is declared on the shared input types (`sotay_platform.inputs`,
through `domain.MemberFields`): text is NFC and bounded, digits of any script
become ASCII in identifiers, dates are sane for their meaning, lists and
integers are bounded, so hostile input is a 4xx naming the field. Dates are
accepted as dd/mm/yyyy (or yyyy-mm-dd) and returned as dd/mm/yyyy.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, File, Query, Request, Response, UploadFile
from pydantic import BaseModel, ConfigDict, Field

from sotay_events.catalogue.identity import Gender, MemberStatus
from sotay_identity.domain import (
    MANAGERS,
    STATE_LABELS,
    MemberFields,
    OwnFields,
    PartyRecordFields,
    Reason,
    Records,
    RemovalReason,
    State,
    StatusIn,
)
from sotay_identity.handlers import IdentityService
from sotay_identity.imports import COLUMNS, import_members, reconcile
from sotay_identity.security import Revocations
from sotay_identity.settings import Limits
from sotay_platform.auth import (
    Principal,
    Role,
    current_principal,
    current_principal_allowing_password_change,
)
from sotay_platform.errors import Unauthorized
from sotay_platform.inputs import Code, Limit, Offset, Password, PastDate, Phone, Text
from sotay_platform.ratelimit import limiter_of, rate_limit
from sotay_platform.uploads import read_upload

router = APIRouter()


def service(request: Request) -> IdentityService:
    return request.app.state.service


async def _live(request: Request, principal: Principal) -> Principal:
    """A session ended (logout, removal, reset) ends its access tokens here at once."""
    revocations: Revocations = request.app.state.revocations
    if await revocations.is_revoked(principal):
        raise Unauthorized("Phiên đăng nhập đã kết thúc, vui lòng đăng nhập lại", code="revoked")
    return principal


async def caller(request: Request, principal: Principal = Depends(current_principal)) -> Principal:
    """The verified caller, whose session has not been ended. A token issued for a
    temporary password is refused by `current_principal` itself (403)."""
    return await _live(request, principal)


async def caller_changing_password(
    request: Request,
    principal: Principal = Depends(current_principal_allowing_password_change),
) -> Principal:
    """The one exception: a temporary password allows changing it."""
    return await _live(request, principal)


Caller = Annotated[Principal, Depends(caller)]
Service = Annotated[IdentityService, Depends(service)]


def per_client(scope: str, limit: Callable[[Limits], int]) -> Callable[[Request], Awaitable[None]]:
    """The shared limiter, per client address, with identity's configured limits."""

    async def dependency(request: Request) -> None:
        limits: Limits = request.app.state.limits
        limiter = limiter_of(request)
        await limiter.check(scope, limiter.client(request), limit(limits), limits.window)

    return dependency


async def per_phone(request: Request, scope: str, phone: str | None, limit: int) -> None:
    if phone:
        await rate_limit(request, scope, phone, limit, request.app.state.limits.window)


# --- bodies ---------------------------------------------------------------------


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RegisterIn(OwnFields, PartyRecordFields):
    status: StatusIn | None = Field(None, examples=["official"])
    branch_id: Code
    password: Password


class CreateMemberIn(MemberFields):
    """By a secretary; a password is a temporary one, to be changed at first sign-in."""

    branch_id: Code
    password: Password | None = None


class UpdateMemberIn(OwnFields, PartyRecordFields):
    """Only the fields sent change. Rewards and discipline: secretaries and admins only. The
    party-record fields may be sent unchanged (a form sends them back); a change goes
    through `POST /members/{id}/party-record`."""

    rewards: Records | None = None
    discipline: Records | None = None


class PartyRecordIn(PartyRecordFields):
    """The branch's correction; at least one field, and why."""

    reason: Reason


class RejectIn(_Body):
    reason: Reason


class StatusChangeIn(_Body):
    status: StatusIn = Field(examples=["official"])
    effective_on: PastDate | None = Field(None, examples=["03/02/2026"])
    official_on: PastDate | None = None


class TransferIn(_Body):
    to_branch_id: Code
    effective_on: PastDate | None = None


class RemoveIn(_Body):
    reason: RemovalReason = "left"


class PasswordResetIn(_Body):
    password: Password


class PasswordChangeIn(_Body):
    current_password: Password
    new_password: Password


class LoginIn(_Body):
    phone: Phone
    password: Password


class RefreshIn(_Body):
    refresh_token: Annotated[str, Text(200)]


class LogoutIn(_Body):
    everywhere: bool = False


class RoleIn(_Body):
    role: Role = Field(examples=["branch_secretary"])
    unit_id: Code


# --- answers --------------------------------------------------------------------


class RoleOut(BaseModel):
    role: Role
    unit_id: str
    label: str


class RecordOut(BaseModel):
    content: str
    from_date: str | None
    to_date: str | None


class RecordsOut(BaseModel):
    work_history: list[RecordOut]
    rewards: list[RecordOut]
    discipline: list[RecordOut]


class PersonalOut(BaseModel):
    citizen_id: str
    birth_date: str = Field(description="dd/mm/yyyy")
    phone: str | None
    records: RecordsOut


ConflictField = Literal["citizen_id", "party_card_no", "phone"]


class MemberOut(BaseModel):
    member_id: str
    full_name: str
    gender: Gender
    gender_label: str
    branch_id: str
    branch_name: str | None
    status: MemberStatus
    status_label: str
    admitted_on: str = Field(description="dd/mm/yyyy")
    official_on: str | None
    party_card_no: str | None
    state: State
    state_label: str
    registered_by: Literal["self", "secretary", "import"]
    account_active: bool
    on_list: bool = Field(description="counted on the member list (sotay_platform.roster)")
    roles: list[RoleOut]
    personal: PersonalOut | None = Field(
        None, description="only for the member and managers over them; null once erased"
    )
    conflicts: list[ConflictField] | None = Field(
        None,
        description="pending registrations, for managers: fields whose value another member "
        "holds (approval is refused until it is resolved)",
    )


class RosterOut(BaseModel):
    unit_id: str
    total: int
    offset: int
    items: list[MemberOut]


class OfficerOut(BaseModel):
    member_id: str
    full_name: str
    roles: list[RoleOut] = Field(description="the roles held at this unit")


class OfficeOut(BaseModel):
    unit_id: str
    items: list[OfficerOut]


class OfficersOut(BaseModel):
    items: list[OfficerOut]


class TokensOut(BaseModel):
    access_token: str
    token_type: Literal["Bearer"]
    expires_in: int
    refresh_token: str
    refresh_expires_in: int
    member_id: str
    must_change_password: bool


class RegistrationOut(BaseModel):
    member_id: str
    state: State
    state_label: str
    message: str


class SessionsEnded(BaseModel):
    sessions_ended: int


# --- keys and sessions ----------------------------------------------------------


@router.get("/.well-known/jwks.json", tags=["auth"])
async def jwks(request: Request, response: Response) -> dict[str, Any]:
    """Every key whose tokens may still be alive; services cache it and verify offline."""
    response.headers["Cache-Control"] = "public, max-age=300"
    return request.app.state.issuer.jwks()


@router.post(
    "/auth/login",
    tags=["auth"],
    response_model=TokensOut,
    dependencies=[Depends(per_client("login", lambda limits: limits.login_per_client))],
)
async def login(body: LoginIn, request: Request, svc: Service) -> dict[str, Any]:
    await per_phone(request, "login-phone", body.phone, request.app.state.limits.login_per_phone)
    return (await svc.login(body.phone, body.password)).as_dict()


@router.post(
    "/auth/refresh",
    tags=["auth"],
    response_model=TokensOut,
    dependencies=[Depends(per_client("refresh", lambda limits: limits.refresh_per_client))],
)
async def refresh(body: RefreshIn, svc: Service) -> dict[str, Any]:
    return (await svc.refresh(body.refresh_token)).as_dict()


@router.post("/auth/logout", tags=["auth"], response_model=SessionsEnded)
async def logout(caller: Caller, svc: Service, body: LogoutIn | None = None) -> dict[str, Any]:
    ended = await svc.logout(caller, everywhere=bool(body and body.everywhere))
    return {"sessions_ended": ended}


@router.post("/auth/password", tags=["auth"], status_code=204)
async def change_password(
    body: PasswordChangeIn,
    svc: Service,
    principal: Annotated[Principal, Depends(caller_changing_password)],
) -> None:
    """The only thing a temporary password allows; sign in again afterwards."""
    await svc.change_password(principal, body.current_password, body.new_password)


# --- registrations ------------------------------------------------------------


@router.post(
    "/registrations",
    status_code=201,
    tags=["registrations"],
    response_model=RegistrationOut,
    dependencies=[Depends(per_client("register", lambda limits: limits.register_per_client))],
)
async def register(body: RegisterIn, request: Request, svc: Service) -> dict[str, Any]:
    """A member registers into their branch; the branch secretary approves. The answer is
    the same whether or not a member already holds this citizen ID or phone."""
    limits: Limits = request.app.state.limits
    await per_phone(request, "register-phone", body.phone, limits.register_per_phone)
    member = await svc.register(MemberFields.of(body), body.branch_id, body.password)
    return {
        "member_id": member.id,
        "state": member.state,
        "state_label": STATE_LABELS[member.state],
        "message": "Đã gửi đăng ký; tài khoản dùng được khi bí thư chi bộ phê duyệt",
    }


@router.get("/registrations", tags=["registrations"], response_model=RosterOut)
async def pending_registrations(
    caller: Caller, svc: Service, unit_id: Code, offset: Offset = 0, limit: Limit = 100
) -> dict[str, Any]:
    """Pending registrations in the unit's subtree, each with its `conflicts`."""
    return await svc.roster(
        caller, unit_id, states=("pending",), offset=offset, limit=limit, readers=MANAGERS
    )


@router.post(
    "/registrations/{member_id}/approve",
    tags=["registrations"],
    response_model=MemberOut,
    response_model_exclude_unset=True,
)
async def approve(member_id: Code, caller: Caller, svc: Service) -> dict[str, Any]:
    await svc.approve(caller, member_id)
    return await svc.view(caller, member_id)


@router.post(
    "/registrations/{member_id}/reject",
    tags=["registrations"],
    response_model=MemberOut,
    response_model_exclude_unset=True,
)
async def reject(member_id: Code, body: RejectIn, caller: Caller, svc: Service) -> dict[str, Any]:
    await svc.reject(caller, member_id, body.reason)
    return await svc.view(caller, member_id)


# --- members ------------------------------------------------------------------


def _own(caller: Principal) -> str:
    if not caller.member_id:
        raise Unauthorized("Mã truy cập không gắn với đảng viên nào")
    return caller.member_id


@router.get("/me", tags=["members"], response_model=MemberOut, response_model_exclude_unset=True)
async def me(caller: Caller, svc: Service) -> dict[str, Any]:
    return await svc.view(caller, _own(caller))


@router.patch("/me", tags=["members"], response_model=MemberOut, response_model_exclude_unset=True)
async def update_me(body: UpdateMemberIn, caller: Caller, svc: Service) -> dict[str, Any]:
    """One's own details: name, gender, birth date, phone, work history."""
    member_id = _own(caller)
    await svc.update(caller, member_id, MemberFields.of(body))
    return await svc.view(caller, member_id)


@router.post(
    "/members",
    status_code=201,
    tags=["members"],
    response_model=MemberOut,
    response_model_exclude_unset=True,
)
async def create_member(body: CreateMemberIn, caller: Caller, svc: Service) -> dict[str, Any]:
    member = await svc.create_member(caller, MemberFields.of(body), body.branch_id, body.password)
    return await svc.view(caller, member.id)


@router.get("/members", tags=["members"], response_model=RosterOut)
async def roster(
    caller: Caller,
    svc: Service,
    unit_id: Code,
    state: Annotated[list[State], Query(max_length=4)] = ["approved"],  # noqa: B006
    status: MemberStatus | None = None,
    offset: Offset = 0,
    limit: Limit = 100,
) -> dict[str, Any]:
    """The members of a unit and everything under it, public fields only; by default those
    on the member list (`approved`)."""
    return await svc.roster(
        caller,
        unit_id,
        states=tuple(dict.fromkeys(state)),
        status=status.value if status else None,
        offset=offset,
        limit=limit,
    )


@router.get("/units/{unit_id}/office", tags=["roles"], response_model=OfficeOut)
async def unit_office(unit_id: Code, caller: Caller, svc: Service) -> dict[str, Any]:
    """Who holds a role at the unit itself, with those roles (at most 200): for the unit's
    officers and those above them, to hand a piece of work to a colleague. Public fields
    only."""
    return await svc.office(caller, unit_id)


@router.get("/officers", tags=["roles"], response_model=OfficersOut)
async def officers(
    caller: Caller,
    svc: Service,
    member_id: Annotated[list[Code], Query(min_length=1, max_length=50)],
) -> dict[str, Any]:
    """Names and roles of the asked members that hold a role on a unit the caller works
    over (for an officer: who wrote a piece, who holds a feedback item); the others are
    left out. Public fields only."""
    return await svc.officers(caller, member_id)


@router.get(
    "/members/{member_id}",
    tags=["members"],
    response_model=MemberOut,
    response_model_exclude_unset=True,
)
async def get_member(member_id: Code, caller: Caller, svc: Service) -> dict[str, Any]:
    return await svc.view(caller, member_id)


@router.patch(
    "/members/{member_id}",
    tags=["members"],
    response_model=MemberOut,
    response_model_exclude_unset=True,
)
async def update_member(
    member_id: Code, body: UpdateMemberIn, caller: Caller, svc: Service
) -> dict[str, Any]:
    await svc.update(caller, member_id, MemberFields.of(body))
    return await svc.view(caller, member_id)


@router.post(
    "/members/{member_id}/party-record",
    tags=["members"],
    response_model=MemberOut,
    response_model_exclude_unset=True,
)
async def correct_party_record(
    member_id: Code, body: PartyRecordIn, caller: Caller, svc: Service
) -> dict[str, Any]:
    """The branch secretary corrects the admission date, the date made official, the party
    card number or the citizen ID, saying why (`MemberPartyRecordCorrected`)."""
    await svc.correct_party_record(caller, member_id, MemberFields.of(body), body.reason)
    return await svc.view(caller, member_id)


@router.post(
    "/members/{member_id}/status",
    tags=["members"],
    response_model=MemberOut,
    response_model_exclude_unset=True,
)
async def change_status(
    member_id: Code, body: StatusChangeIn, caller: Caller, svc: Service
) -> dict[str, Any]:
    await svc.change_status(caller, member_id, body.status, body.effective_on, body.official_on)
    return await svc.view(caller, member_id)


@router.post(
    "/members/{member_id}/transfer",
    tags=["members"],
    response_model=MemberOut,
    response_model_exclude_unset=True,
)
async def transfer(
    member_id: Code, body: TransferIn, caller: Caller, svc: Service
) -> dict[str, Any]:
    """Chuyển sinh hoạt đảng to another branch."""
    await svc.transfer(caller, member_id, body.to_branch_id, body.effective_on)
    return await svc.view(caller, member_id)


@router.post(
    "/members/{member_id}/remove",
    tags=["members"],
    response_model=MemberOut,
    response_model_exclude_unset=True,
)
async def remove(member_id: Code, body: RemoveIn, caller: Caller, svc: Service) -> dict[str, Any]:
    await svc.remove(caller, member_id, body.reason)
    return await svc.view(caller, member_id)


@router.post(
    "/members/{member_id}/password",
    tags=["auth"],
    response_model=MemberOut,
    response_model_exclude_unset=True,
)
async def reset_password(
    member_id: Code, body: PasswordResetIn, caller: Caller, svc: Service
) -> dict[str, Any]:
    """The secretary sets a temporary password (and so opens the account)."""
    await svc.reset_password(caller, member_id, body.password)
    return await svc.view(caller, member_id)


@router.post("/members/{member_id}/sessions/revoke", tags=["auth"], response_model=SessionsEnded)
async def revoke_sessions(member_id: Code, caller: Caller, svc: Service) -> dict[str, Any]:
    return {"sessions_ended": await svc.revoke_sessions(caller, member_id)}


@router.post(
    "/members/{member_id}/roles",
    tags=["roles"],
    response_model=MemberOut,
    response_model_exclude_unset=True,
)
async def grant_role(member_id: Code, body: RoleIn, caller: Caller, svc: Service) -> dict[str, Any]:
    await svc.grant(caller, member_id, body.role, body.unit_id)
    return await svc.view(caller, member_id)


@router.delete(
    "/members/{member_id}/roles/{role}/{unit_id}",
    tags=["roles"],
    response_model=MemberOut,
    response_model_exclude_unset=True,
)
async def revoke_role(
    member_id: Code, role: Role, unit_id: Code, caller: Caller, svc: Service
) -> dict[str, Any]:
    await svc.revoke(caller, member_id, role, unit_id)
    return await svc.view(caller, member_id)


# --- lists ----------------------------------------------------------------------


@router.post("/imports/members", tags=["import"])
async def import_list(
    caller: Caller,
    svc: Service,
    unit_id: Code,
    file: Annotated[UploadFile, File(description="CSV (UTF-8) hoặc Excel .xlsx")],
) -> dict[str, Any]:
    """Bulk onboarding of a unit's existing member list."""
    await _may_manage(svc, caller, unit_id)
    rows = await read_upload(file, COLUMNS)
    return (await import_members(svc, caller, unit_id, rows)).as_dict()


@router.post("/reconciliation", tags=["import"])
async def reconciliation(
    caller: Caller,
    svc: Service,
    unit_id: Code,
    file: Annotated[UploadFile, File(description="Danh sách đảng viên thực tế: CSV hoặc .xlsx")],
) -> dict[str, Any]:
    """The official member list against the platform's, for a unit and its subtree."""
    await _may_manage(svc, caller, unit_id)
    rows = await read_upload(file, COLUMNS)
    return await reconcile(svc, caller, unit_id, rows)


async def _may_manage(svc: IdentityService, caller: Principal, unit_id: str) -> None:
    """Scope first: a file is not even read for a unit the caller does not manage."""
    unit = await svc.tree.get(unit_id)
    if unit is not None:
        caller.require(MANAGERS, unit["path"])
