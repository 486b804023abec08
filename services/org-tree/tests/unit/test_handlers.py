"""Commands through the service layer on an in-memory store: authorization, idempotence, import."""

import asyncio
import io

import pytest
from openpyxl import Workbook

from sotay_events import InMemoryEventStore
from sotay_events.catalogue.org_tree import OrgLevel
from sotay_orgtree.domain import RuleBroken
from sotay_orgtree.handlers import OrgTreeService
from sotay_orgtree.imports import import_catalogue, read_table
from sotay_platform.auth import Grant, Principal, Role
from sotay_platform.errors import Conflict, Forbidden, Invalid, NotFound

ROOT = Principal("root", (Grant(Role.system_admin, "TW"),))


@pytest.fixture
async def service() -> OrgTreeService:
    svc = OrgTreeService(InMemoryEventStore())
    await svc.create_unit(ROOT, "TW", "Trung ương", OrgLevel.central, None)
    await svc.create_unit(ROOT, "HN", "Thành ủy Hà Nội", OrgLevel.province, "TW")
    await svc.create_unit(ROOT, "HP", "Thành ủy Hải Phòng", OrgLevel.province, "TW")
    return svc


async def test_creating_twice_is_idempotent_but_a_different_unit_is_a_conflict(
    service: OrgTreeService,
) -> None:
    unit, created = await service.create_unit(
        ROOT, "HN", "Thành ủy Hà Nội", OrgLevel.province, "TW"
    )
    assert (unit.id, created) == ("HN", False)
    with pytest.raises(Conflict) as caught:
        await service.create_unit(ROOT, "HN", "Tỉnh khác", OrgLevel.province, "TW")
    assert caught.value.field == "code"


async def test_a_province_admin_acts_only_inside_the_province(service: OrgTreeService) -> None:
    hn_admin = Principal("a", (Grant(Role.province_admin, "HN"),))
    await service.create_unit(hn_admin, "HN.X1", "Đảng bộ xã A", OrgLevel.commune, "HN")
    with pytest.raises(Forbidden):
        await service.create_unit(hn_admin, "HP.X1", "Đảng bộ xã B", OrgLevel.commune, "HP")
    with pytest.raises(Forbidden):
        await service.move_unit(hn_admin, "HN.X1", "HP")
    member = Principal("m", (Grant(Role.member, "HN.X1"),))
    with pytest.raises(Forbidden):
        await service.rename_unit(member, "HN.X1", "Tên mới")


async def test_unknown_parent_names_the_field(service: OrgTreeService) -> None:
    with pytest.raises(NotFound) as caught:
        await service.create_unit(ROOT, "X", "X", OrgLevel.commune, "NOPE")
    assert caught.value.field == "parent_code"


async def test_paths_follow_merges(service: OrgTreeService) -> None:
    await service.create_unit(ROOT, "X1", "Xã 1", OrgLevel.commune, "HN")
    await service.create_unit(ROOT, "X2", "Xã 2", OrgLevel.commune, "HN")
    await service.create_unit(ROOT, "CB1", "Chi bộ 1", OrgLevel.branch, "X1")
    await service.merge_unit(ROOT, "X1", "X2")
    cb1 = await service.load(service.store.unit_of_work(), "CB1")
    assert await service.path_of(cb1) == ["TW", "HN", "X2", "CB1"]
    hn_x2_admin = Principal("x2", (Grant(Role.committee_admin, "X2"),))
    await service.rename_unit(hn_x2_admin, "CB1", "Chi bộ thôn 1")  # X2's office now covers CB1


def _xlsx(rows: list[list[str]]) -> bytes:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    for row in rows:
        sheet.append(row)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


async def test_import_orders_parents_first_and_reports_each_row(service: OrgTreeService) -> None:
    content = _xlsx(
        [
            ["Mã đơn vị", "Tên đơn vị", "Cấp", "Mã đơn vị cấp trên"],
            ["HN.X1.CB1", "Chi bộ thôn 1", "Chi bộ trực thuộc", "HN.X1"],
            ["HN.X1", "Đảng bộ xã Ba Vì", "commune", "HN"],
            ["HN.X1.CB1.T", "Chi bộ con", "branch", "HN.X1.CB1"],
            ["HN.X9", "Xã lạ", "không rõ", "HN"],
            ["HN.X1", "Trùng mã", "commune", "HN"],
        ]
    )
    report = await import_catalogue(service, ROOT, read_table("danh-muc.xlsx", content))
    by_row = {r.row: r for r in report.rows}
    assert by_row[2].status == "created" and by_row[3].status == "created"
    assert by_row[4].status == "rejected" and by_row[4].field == "parent_code"
    assert by_row[5].status == "rejected" and by_row[5].field == "level"
    assert by_row[6].status == "rejected" and by_row[6].field == "code"
    assert (report.created, report.rejected) == (2, 3)

    again = await import_catalogue(service, ROOT, read_table("danh-muc.xlsx", content))
    assert again.created == 0 and again.unchanged == 2


async def test_csv_import_and_bad_files() -> None:
    rows = read_table("a.csv", "code,name,level,parent_code\nX,Xã,commune,HN\n".encode())
    assert rows == [{"code": "X", "name": "Xã", "level": "commune", "parent_code": "HN"}]
    with pytest.raises(Invalid) as missing:
        read_table("a.csv", b"code,name\nX,Y\n")
    assert missing.value.field == "file"
    with pytest.raises(Invalid):
        read_table("a.pdf", b"%PDF")


async def test_a_dissolve_and_a_create_under_the_unit_never_both_win(
    service: OrgTreeService,
) -> None:
    await service.create_unit(ROOT, "X9", "Xã 9", OrgLevel.commune, "HN")
    results = await asyncio.gather(
        service.dissolve_unit(ROOT, "X9", "Giải thể"),
        service.create_unit(ROOT, "CB9", "Chi bộ 9", OrgLevel.branch, "X9"),
        return_exceptions=True,
    )
    failures = [r for r in results if isinstance(r, Exception)]
    assert len(failures) == 1 and isinstance(failures[0], RuleBroken), results
    x9 = await service.load(service.store.unit_of_work(), "X9")
    created = await service.store.load("OrgUnit", "CB9")
    assert (x9.status == "dissolved") != bool(created)
