"""HTTP routes: parse, authorize, call a handler, shape the answer.

Request fields are strings so that the domain can answer every mistake in
Vietnamese, naming the field; dates are accepted as dd/mm/yyyy (or
yyyy-mm-dd) and returned as dd/mm/yyyy.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Query, Request, Response, UploadFile
from pydantic import BaseModel, ConfigDict, Field

from sotay_identity.domain import MANAGERS, STATE_LABELS, MemberInput
from sotay_identity.handlers import IdentityService
from sotay_identity.imports import import_members, read_table, reconcile
from sotay_identity.security import Revocations
from sotay_platform.auth import Principal, current_principal
from sotay_platform.errors import Unauthorized

router = APIRouter()


def service(request: Request) -> IdentityService:
    return request.app.state.service


async def caller(request: Request, principal: Principal = Depends(current_principal)) -> Principal:
    """The verified caller, whose session has not been ended (logout, removal, reset)."""
    revocations: Revocations = request.app.state.revocations
    if await revocations.is_revoked(principal):
        raise Unauthorized("Phiên đăng nhập đã kết thúc, vui lòng đăng nhập lại", code="revoked")
    return principal


Caller = Annotated[Principal, Depends(caller)]
Service = Annotated[IdentityService, Depends(service)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RecordIn(_Body):
    content: str | None = None
    from_date: str | None = Field(None, examples=["01/01/2010"])
    to_date: str | None = None


class ProfileIn(_Body):
    full_name: str | None = Field(None, examples=["Nguyễn Văn An"])
    birth_date: str | None = Field(None, examples=["15/08/1975"])
    gender: str | None = Field(None, examples=["Nam"])
    admitted_on: str | None = Field(None, examples=["03/02/2000"])
    official_on: str | None = Field(None, examples=["03/02/2001"])
    party_card_no: str | None = Field(None, examples=["01234567"])
    citizen_id: str | None = Field(None, examples=["038075001234"])
    phone: str | None = Field(None, examples=["0912345678"])
    work_history: list[RecordIn] | None = None

    def member_input(self) -> MemberInput:
        records: dict[str, list[dict[str, Any]]] = {}
        for kind in ("work_history", "rewards", "discipline"):
            entries = getattr(self, kind, None)
            if entries is not None:
                records[kind] = [e.model_dump() for e in entries]
        return MemberInput(
            full_name=self.full_name,
            birth_date=self.birth_date,
            gender=self.gender,
            admitted_on=self.admitted_on,
            official_on=self.official_on,
            party_card_no=self.party_card_no,
            citizen_id=self.citizen_id,
            phone=self.phone,
            status=getattr(self, "status", None),
            records=records,
        )


class RegisterIn(ProfileIn):
    status: str | None = Field(None, examples=["official"])
    branch_id: str | None = Field(None, examples=["HN.BD.CB01"])
    password: str | None = None


class CreateMemberIn(RegisterIn):
    """By a secretary; a password is a temporary one, to be changed at first sign-in."""

    rewards: list[RecordIn] | None = None
    discipline: list[RecordIn] | None = None


class UpdateMemberIn(ProfileIn):
    """Only the fields sent change. Rewards and discipline: secretaries and admins only."""

    rewards: list[RecordIn] | None = None
    discipline: list[RecordIn] | None = None


class RejectIn(_Body):
    reason: str = ""


class StatusIn(_Body):
    status: str | None = Field(None, examples=["official"])
    effective_on: str | None = Field(None, examples=["03/02/2026"])
    official_on: str | None = None


class TransferIn(_Body):
    to_branch_id: str | None = None
    effective_on: str | None = None


class RemoveIn(_Body):
    reason: str = Field("left", examples=["deceased"])


class PasswordResetIn(_Body):
    password: str | None = None


class PasswordChangeIn(_Body):
    current_password: str | None = None
    new_password: str | None = None


class LoginIn(_Body):
    phone: str | None = Field(None, examples=["0912345678"])
    password: str | None = None


class RefreshIn(_Body):
    refresh_token: str | None = None


class LogoutIn(_Body):
    everywhere: bool = False


class RoleIn(_Body):
    role: str = Field(examples=["branch_secretary"])
    unit_id: str | None = Field(None, examples=["HN.BD.CB01"])


def _split(
    body: UpdateMemberIn | ProfileIn,
) -> tuple[dict[str, Any], dict[str, list[dict[str, Any]]]]:
    sent = body.model_dump(exclude_unset=True)
    records: dict[str, list[dict[str, Any]]] = {
        k: [dict(e) for e in sent.pop(k) or []]
        for k in ("work_history", "rewards", "discipline")
        if k in sent
    }
    return sent, records


# --- keys and sessions ----------------------------------------------------------


@router.get("/.well-known/jwks.json", tags=["auth"])
async def jwks(request: Request, response: Response) -> dict[str, Any]:
    """Every key whose tokens may still be alive; services cache it and verify offline."""
    response.headers["Cache-Control"] = "public, max-age=300"
    return request.app.state.issuer.jwks()


@router.post("/auth/login", tags=["auth"])
async def login(body: LoginIn, svc: Service) -> dict[str, Any]:
    return (await svc.login(body.phone, body.password)).as_dict()


@router.post("/auth/refresh", tags=["auth"])
async def refresh(body: RefreshIn, svc: Service) -> dict[str, Any]:
    return (await svc.refresh(body.refresh_token)).as_dict()


@router.post("/auth/logout", tags=["auth"])
async def logout(caller: Caller, svc: Service, body: LogoutIn | None = None) -> dict[str, Any]:
    ended = await svc.logout(caller, everywhere=bool(body and body.everywhere))
    return {"sessions_ended": ended}


@router.post("/auth/password", tags=["auth"], status_code=204)
async def change_password(body: PasswordChangeIn, caller: Caller, svc: Service) -> None:
    await svc.change_password(caller, body.current_password, body.new_password)


# --- registrations ------------------------------------------------------------


@router.post("/registrations", status_code=201, tags=["registrations"])
async def register(body: RegisterIn, svc: Service) -> dict[str, Any]:
    """A member registers into their branch; the branch secretary approves."""
    member = await svc.register(body.member_input(), body.branch_id, body.password)
    return {
        "member_id": member.id,
        "state": member.state,
        "state_label": STATE_LABELS[member.state],
        "message": "Đã gửi đăng ký; tài khoản dùng được khi bí thư chi bộ phê duyệt",
    }


@router.get("/registrations", tags=["registrations"])
async def pending_registrations(
    caller: Caller,
    svc: Service,
    unit_id: str,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> dict[str, Any]:
    return await svc.roster(
        caller, unit_id, states=("pending",), offset=offset, limit=limit, readers=MANAGERS
    )


@router.post("/registrations/{member_id}/approve", tags=["registrations"])
async def approve(member_id: str, caller: Caller, svc: Service) -> dict[str, Any]:
    await svc.approve(caller, member_id)
    return await svc.view(caller, member_id)


@router.post("/registrations/{member_id}/reject", tags=["registrations"])
async def reject(member_id: str, body: RejectIn, caller: Caller, svc: Service) -> dict[str, Any]:
    await svc.reject(caller, member_id, body.reason)
    return await svc.view(caller, member_id)


# --- members ------------------------------------------------------------------


@router.get("/me", tags=["members"])
async def me(caller: Caller, svc: Service) -> dict[str, Any]:
    if not caller.member_id:
        raise Unauthorized("Mã truy cập không gắn với đảng viên nào")
    return await svc.view(caller, caller.member_id)


@router.patch("/me", tags=["members"])
async def update_me(body: UpdateMemberIn, caller: Caller, svc: Service) -> dict[str, Any]:
    if not caller.member_id:
        raise Unauthorized("Mã truy cập không gắn với đảng viên nào")
    fields, records = _split(body)
    await svc.update(caller, caller.member_id, fields, records)
    return await svc.view(caller, caller.member_id)


@router.post("/members", status_code=201, tags=["members"])
async def create_member(body: CreateMemberIn, caller: Caller, svc: Service) -> dict[str, Any]:
    member = await svc.create_member(caller, body.member_input(), body.branch_id, body.password)
    return await svc.view(caller, member.id)


@router.get("/members", tags=["members"])
async def roster(
    caller: Caller,
    svc: Service,
    unit_id: str,
    state: str = "approved",
    status: str | None = None,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> dict[str, Any]:
    """The members of a unit and everything under it, public fields only."""
    states = tuple(s for s in state.split(",") if s in STATE_LABELS) or ("approved",)
    return await svc.roster(
        caller, unit_id, states=states, status=status, offset=offset, limit=limit
    )


@router.get("/members/{member_id}", tags=["members"])
async def get_member(member_id: str, caller: Caller, svc: Service) -> dict[str, Any]:
    return await svc.view(caller, member_id)


@router.patch("/members/{member_id}", tags=["members"])
async def update_member(
    member_id: str, body: UpdateMemberIn, caller: Caller, svc: Service
) -> dict[str, Any]:
    fields, records = _split(body)
    await svc.update(caller, member_id, fields, records)
    return await svc.view(caller, member_id)


@router.post("/members/{member_id}/status", tags=["members"])
async def change_status(
    member_id: str, body: StatusIn, caller: Caller, svc: Service
) -> dict[str, Any]:
    await svc.change_status(caller, member_id, body.status, body.effective_on, body.official_on)
    return await svc.view(caller, member_id)


@router.post("/members/{member_id}/transfer", tags=["members"])
async def transfer(
    member_id: str, body: TransferIn, caller: Caller, svc: Service
) -> dict[str, Any]:
    """Chuyển sinh hoạt đảng to another branch."""
    await svc.transfer(caller, member_id, body.to_branch_id, body.effective_on)
    return await svc.view(caller, member_id)


@router.post("/members/{member_id}/remove", tags=["members"])
async def remove(member_id: str, body: RemoveIn, caller: Caller, svc: Service) -> dict[str, Any]:
    await svc.remove(caller, member_id, body.reason)
    return await svc.view(caller, member_id)


@router.post("/members/{member_id}/password", tags=["auth"])
async def reset_password(
    member_id: str, body: PasswordResetIn, caller: Caller, svc: Service
) -> dict[str, Any]:
    """The secretary sets a temporary password (and so opens the account)."""
    await svc.reset_password(caller, member_id, body.password)
    return await svc.view(caller, member_id)


@router.post("/members/{member_id}/sessions/revoke", tags=["auth"])
async def revoke_sessions(member_id: str, caller: Caller, svc: Service) -> dict[str, Any]:
    return {"sessions_ended": await svc.revoke_sessions(caller, member_id)}


@router.post("/members/{member_id}/roles", tags=["roles"])
async def grant_role(member_id: str, body: RoleIn, caller: Caller, svc: Service) -> dict[str, Any]:
    await svc.grant(caller, member_id, body.role, body.unit_id)
    return await svc.view(caller, member_id)


@router.delete("/members/{member_id}/roles/{role}/{unit_id}", tags=["roles"])
async def revoke_role(
    member_id: str, role: str, unit_id: str, caller: Caller, svc: Service
) -> dict[str, Any]:
    await svc.revoke(caller, member_id, role, unit_id)
    return await svc.view(caller, member_id)


# --- lists ----------------------------------------------------------------------


@router.post("/imports/members", tags=["import"])
async def import_list(
    caller: Caller,
    svc: Service,
    unit_id: str,
    file: Annotated[UploadFile, File(description="CSV (UTF-8) hoặc Excel .xlsx")],
) -> dict[str, Any]:
    """Bulk onboarding of a unit's existing member list."""
    await _may_manage(svc, caller, unit_id)
    rows = read_table(file.filename or "", await file.read())
    return (await import_members(svc, caller, unit_id, rows)).as_dict()


@router.post("/reconciliation", tags=["import"])
async def reconciliation(
    caller: Caller,
    svc: Service,
    unit_id: str,
    file: Annotated[UploadFile, File(description="Danh sách đảng viên thực tế: CSV hoặc .xlsx")],
) -> dict[str, Any]:
    """The official member list against the platform's, for a unit and its subtree."""
    await _may_manage(svc, caller, unit_id)
    rows = read_table(file.filename or "", await file.read())
    return await reconcile(svc, caller, unit_id, rows)


async def _may_manage(svc: IdentityService, caller: Principal, unit_id: str) -> None:
    """Scope first: a file is not even read for a unit the caller does not manage."""
    unit = await svc.tree.get(unit_id)
    if unit is not None:
        caller.require(MANAGERS, unit["path"])
