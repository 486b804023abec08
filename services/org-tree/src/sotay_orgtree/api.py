"""HTTP routes: parse, authorize, call a handler, shape the answer."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Header, Query, Request, UploadFile
from pydantic import BaseModel, Field

from sotay_events.catalogue.org_tree import OrgLevel
from sotay_orgtree.domain import OrgUnit
from sotay_orgtree.handlers import OrgTreeService
from sotay_orgtree.imports import COLUMNS, import_catalogue
from sotay_platform.auth import Principal, current_principal
from sotay_platform.errors import Forbidden, NotFound
from sotay_platform.inputs import Code, Name, Text
from sotay_platform.org_units import OrgUnits
from sotay_platform.uploads import read_upload

router = APIRouter(prefix="/units", tags=["units"])

Caller = Annotated[Principal, Depends(current_principal)]


def service(request: Request) -> OrgTreeService:
    return request.app.state.service


def tree(request: Request) -> OrgUnits:
    return request.app.state.tree


Service = Annotated[OrgTreeService, Depends(service)]
Tree = Annotated[OrgUnits, Depends(tree)]


class CreateUnit(BaseModel):
    code: Code = Field(examples=["HN.BD.CB01"])
    name: Name = Field(examples=["Chi bộ Khu phố 1"])
    level: OrgLevel
    parent_code: Code | None = None


class RenameUnit(BaseModel):
    name: Name


class MoveUnit(BaseModel):
    parent_code: Code


class MergeUnit(BaseModel):
    into_code: Code


class DissolveUnit(BaseModel):
    reason: Annotated[str, Text(500, min_length=0)] = ""


class UnitView(BaseModel):
    code: str
    name: str
    level: OrgLevel
    level_label: str
    parent_code: str | None
    status: str
    merged_into: str | None = None
    path: list[str] = []

    @classmethod
    def of_aggregate(cls, unit: OrgUnit, path: list[str]) -> UnitView:
        return cls(
            code=unit.id,
            name=unit.name,
            level=unit.level,
            level_label=unit.level.label,
            parent_code=unit.parent_id,
            status=unit.status,
            merged_into=unit.merged_into,
            path=path,
        )

    @classmethod
    def of_doc(cls, doc: dict[str, Any]) -> UnitView:
        level = OrgLevel(doc["level"])
        return cls(
            code=doc["_id"],
            name=doc["name"],
            level=level,
            level_label=level.label,
            parent_code=doc.get("parent_id"),
            status=doc["status"],
            merged_into=doc.get("merged_into"),
            path=doc.get("path", []),
        )


async def _answer(svc: OrgTreeService, unit: OrgUnit) -> UnitView:
    return UnitView.of_aggregate(unit, await svc.path_of(unit))


@router.post("", status_code=201, response_model=UnitView)
async def create_unit(
    body: CreateUnit,
    caller: Caller,
    svc: Service,
    x_correlation_id: Annotated[str | None, Header()] = None,
) -> UnitView:
    unit, _ = await svc.create_unit(
        caller, body.code, body.name, body.level, body.parent_code, x_correlation_id
    )
    return await _answer(svc, unit)


@router.post("/{code}/rename", response_model=UnitView)
async def rename_unit(code: Code, body: RenameUnit, caller: Caller, svc: Service) -> UnitView:
    return await _answer(svc, await svc.rename_unit(caller, code, body.name))


@router.post("/{code}/move", response_model=UnitView)
async def move_unit(code: Code, body: MoveUnit, caller: Caller, svc: Service) -> UnitView:
    return await _answer(svc, await svc.move_unit(caller, code, body.parent_code))


@router.post("/{code}/merge", response_model=UnitView)
async def merge_unit(code: Code, body: MergeUnit, caller: Caller, svc: Service) -> UnitView:
    return await _answer(svc, await svc.merge_unit(caller, code, body.into_code))


@router.post("/{code}/dissolve", response_model=UnitView)
async def dissolve_unit(code: Code, body: DissolveUnit, caller: Caller, svc: Service) -> UnitView:
    unit = await svc.dissolve_unit(caller, code, body.reason)
    return await _answer(svc, unit)


@router.post("/import", tags=["import"])
async def import_units(
    caller: Caller,
    svc: Service,
    file: Annotated[UploadFile, File(description="CSV (UTF-8) hoặc Excel .xlsx")],
) -> dict[str, Any]:
    """Columns: mã đơn vị, tên đơn vị, cấp, mã đơn vị cấp trên (English names work too)."""
    rows = await read_upload(file, COLUMNS)
    report = await import_catalogue(svc, caller, rows)
    return report.as_dict()


async def _visible(units: OrgUnits, caller: Principal, code: str) -> dict[str, Any]:
    """Anyone may see the units their grants cover and the chain above their own units."""
    doc = await units.get(code)
    if doc is None:
        raise NotFound(f"Không tìm thấy đơn vị có mã {code}", field="code")
    if any(g.unit_id in doc["path"] for g in caller.grants) or caller.covers(
        [g.role for g in caller.grants], doc["path"]
    ):
        return doc
    for grant in caller.grants:
        if code in await units.path(grant.unit_id):
            return doc
    raise Forbidden(f"Tài khoản không có quyền xem đơn vị {code}")


@router.get("/{code}", response_model=UnitView)
async def get_unit(code: Code, caller: Caller, units: Tree) -> UnitView:
    return UnitView.of_doc(await _visible(units, caller, code))


@router.get("/{code}/children", response_model=list[UnitView])
async def get_children(
    code: Code, caller: Caller, units: Tree, include_closed: bool = False
) -> list[UnitView]:
    await _visible(units, caller, code)
    return [UnitView.of_doc(d) for d in await units.children(code, include_closed)]


@router.get("/{code}/subtree", response_model=list[UnitView])
async def get_subtree(
    code: Code,
    caller: Caller,
    units: Tree,
    level: OrgLevel | None = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> list[UnitView]:
    doc = await _visible(units, caller, code)
    if not any(g.unit_id in doc["path"] for g in caller.grants):
        raise Forbidden(f"Tài khoản không có quyền xem các đơn vị dưới {code}")
    found = await units.subtree(code, level.value if level else None, limit=limit)
    return [UnitView.of_doc(d) for d in found]


@router.get("/{code}/path", response_model=list[UnitView])
async def get_path(code: Code, caller: Caller, units: Tree) -> list[UnitView]:
    doc = await _visible(units, caller, code)
    chain = [await units.get(c) for c in doc["path"]]
    return [UnitView.of_doc(d) for d in chain if d]
