"""org-tree through HTTP against the real servers."""

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
from fastapi import FastAPI

from sotay_events.consumer import ProjectionRunner
from sotay_platform.auth import Role
from sotay_platform.org_units import OrgUnits, OrgUnitsProjection
from sotay_platform.testing import eventually

Headers = Callable[..., dict[str, str]]


async def post(
    client: httpx.AsyncClient, url: str, body: dict[str, Any], headers: dict[str, str]
) -> httpx.Response:
    return await client.post(url, json=body, headers=headers)


async def create(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    code: str,
    name: str,
    level: str,
    parent: str | None,
) -> None:
    r = await post(
        client, "/units", {"code": code, "name": name, "level": level, "parent_code": parent}, admin
    )
    assert r.status_code == 201, r.text


async def codes(client: httpx.AsyncClient, url: str, headers: dict[str, str]) -> list[str]:
    r = await client.get(url, headers=headers)
    assert r.status_code == 200, r.text
    return [u["code"] for u in r.json()]


async def test_the_tree_through_its_whole_life(
    app: FastAPI, client: httpx.AsyncClient, bearer: Headers
) -> None:
    root = bearer()
    await create(client, root, "TW", "Trung ương", "central", None)
    await create(client, root, "HN", "Đảng bộ Thành phố Hà Nội", "province", "TW")
    await create(client, root, "HP", "Đảng bộ Thành phố Hải Phòng", "province", "TW")
    hn = bearer(Role.province_admin, "HN")
    for code, name in [("HN.BV", "Đảng bộ xã Ba Vì"), ("HN.TT", "Đảng bộ xã Tản Lĩnh")]:
        await create(client, hn, code, name, "commune", "HN")
    await create(client, hn, "HN.BV.CB1", "Chi bộ thôn Mít", "branch", "HN.BV")
    await create(client, hn, "HN.BV.CB2", "Chi bộ thôn Chằm", "branch", "HN.BV")
    await create(client, hn, "HN.TT.CB1", "Chi bộ thôn Hát", "branch", "HN.TT")

    async def subtree_complete() -> bool:
        r = await client.get("/units/HN/subtree", headers=hn)
        return r.status_code == 200 and len(r.json()) == 6

    await eventually(subtree_complete)
    assert await codes(client, "/units/HN.BV/children", hn) == ["HN.BV.CB1", "HN.BV.CB2"]
    assert await codes(client, "/units/HN.BV.CB1/path", hn) == ["TW", "HN", "HN.BV", "HN.BV.CB1"]
    assert await codes(client, "/units/HN/subtree?level=branch", hn) == [
        "HN.BV.CB1",
        "HN.BV.CB2",
        "HN.TT.CB1",
    ]

    # Refusals, each naming what is wrong.
    cases = [
        ({"code": "HN.BV", "name": "Khác", "level": "commune", "parent_code": "HN"}, 409, "code"),
        (
            {"code": "X", "name": "Chi bộ", "level": "branch", "parent_code": "HN.BV.CB1"},
            422,
            "parent_code",
        ),
        ({"code": "X", "name": "Chi bộ", "level": "chi bo", "parent_code": "HN.BV"}, 422, "level"),
        ({"code": "X", "name": "", "level": "branch", "parent_code": "HN.BV"}, 422, "name"),
        (
            {"code": "X", "name": "Chi bộ", "level": "branch", "parent_code": "KHONG.CO"},
            404,
            "parent_code",
        ),
    ]
    for body, status, field in cases:
        r = await post(client, "/units", body, hn)
        assert (r.status_code, r.json().get("field")) == (status, field), (body, r.text)
        assert r.json()["message"]
    r = await post(client, "/units/HN/move", {"parent_code": "HN.BV"}, root)
    assert r.status_code == 422 and r.json()["error"] == "cycle"
    assert (
        await post(
            client,
            "/units",
            {"code": "HP.X", "name": "Xã", "level": "commune", "parent_code": "HP"},
            hn,
        )
    ).status_code == 403
    assert (await client.post("/units", json={"code": "Y"})).status_code == 401
    assert (await client.get("/units/HP/subtree", headers=hn)).status_code == 403

    # Rename, move, and the 2025-style merge of one commune into another.
    r = await post(client, "/units/HN.BV.CB2/rename", {"name": "Chi bộ thôn Chằm Mới"}, hn)
    assert r.status_code == 200 and r.json()["name"] == "Chi bộ thôn Chằm Mới"
    r = await post(client, "/units/HN.BV.CB2/move", {"parent_code": "HN.TT"}, hn)
    assert r.json()["path"] == ["TW", "HN", "HN.TT", "HN.BV.CB2"]
    r = await post(client, "/units/HN.BV/merge", {"into_code": "HN.TT"}, hn)
    assert r.status_code == 200 and r.json()["status"] == "merged"

    async def merged_children() -> bool:
        return await codes(client, "/units/HN.TT/children", hn) == [
            "HN.BV.CB1",
            "HN.BV.CB2",
            "HN.TT.CB1",
        ]

    await eventually(merged_children)
    assert await codes(client, "/units/HN.BV.CB1/path", hn) == ["TW", "HN", "HN.TT", "HN.BV.CB1"]
    r = await post(client, "/units/HN.BV.CB1/move", {"parent_code": "HN.BV"}, hn)
    assert r.status_code == 422 and r.json()["error"] == "closed_unit"

    r = await post(client, "/units/HN.TT/dissolve", {"reason": "thử"}, hn)
    assert r.status_code == 422 and r.json()["error"] == "has_children"
    r = await post(client, "/units/HN.TT.CB1/dissolve", {"reason": "Giải thể theo quyết định"}, hn)
    assert r.status_code == 200 and r.json()["status"] == "dissolved"

    async def dissolved_gone() -> bool:
        return "HN.TT.CB1" not in await codes(client, "/units/HN.TT/children", hn)

    await eventually(dissolved_gone)

    # A rebuild from the event history equals the live read model.
    # (The live model also holds units other tests published on the shared broker, and
    # every test creates its own "TW" there: the live model keeps whichever came first.)
    runtime = app.state.runtime
    history = await runtime.store.all_events()
    ours = {e.aggregate_id for e in history} - {"TW"}
    live = [u for u in await OrgUnits(runtime.db).snapshot() if u["_id"] in ours]
    rebuilt = ProjectionRunner(
        runtime.mongo, runtime.settings.database + "_rebuild", OrgUnitsProjection()
    )
    await rebuilt.rebuild(history)
    rebuilt_units = [u for u in await OrgUnits(rebuilt.db).snapshot() if u["_id"] in ours]
    assert rebuilt_units == live


async def test_catalogue_import_over_http(client: httpx.AsyncClient, bearer: Headers) -> None:
    root = bearer()
    await create(client, root, "TW", "Trung ương", "central", None)
    await create(client, root, "QN", "Đảng bộ tỉnh Quảng Ngãi", "province", "TW")
    csv = (
        "Mã đơn vị,Tên đơn vị,Cấp,Mã đơn vị cấp trên\n"
        "QN.X1.CB1,Chi bộ thôn An Hải,Chi bộ trực thuộc,QN.X1\n"
        'QN.X1,Đảng bộ xã Bình Sơn,"Đảng bộ xã, phường, đặc khu",QN\n'
        "QN.X1.CB1.B,Chi bộ lồng,Chi bộ trực thuộc,QN.X1.CB1\n"
    )
    r = await client.post(
        "/units/import", files={"file": ("danh-muc.csv", csv.encode(), "text/csv")}, headers=root
    )
    assert r.status_code == 200, r.text
    report = r.json()
    assert (report["created"], report["rejected"]) == (2, 1)
    assert report["rows"][2] == {
        "row": 4,
        "code": "QN.X1.CB1.B",
        "status": "rejected",
        "message": "Chi bộ trực thuộc không thể trực thuộc Chi bộ trực thuộc",
        "field": "parent_code",
    }
    r = await client.post(
        "/units/import", files={"file": ("x.txt", b"abc", "text/plain")}, headers=root
    )
    assert r.status_code == 422 and r.json()["field"] == "file"


async def test_one_trace_from_the_request_to_the_projection(
    client: httpx.AsyncClient, bearer: Headers, span_exporter: Any
) -> None:
    root = bearer()
    await create(client, root, "TW", "Trung ương", "central", None)
    r = await post(
        client,
        "/units",
        {"code": "DN", "name": "Đảng bộ TP Đà Nẵng", "level": "province", "parent_code": "TW"},
        root,
    )
    assert r.status_code == 201

    def spans_of_request() -> list[Any]:
        finished = span_exporter.get_finished_spans()
        server = [
            s for s in finished if s.name.startswith("POST /units") and s.kind.name == "SERVER"
        ]
        trace_id = server[-1].context.trace_id
        return [s for s in finished if s.context.trace_id == trace_id]

    async def whole_trace() -> bool:
        return any(s.name == "projection.org_units" for s in spans_of_request())

    await eventually(whole_trace)
    names = {s.name for s in spans_of_request()}
    assert {"eventstore.commit", "sotay.org-tree.events publish", "projection.org_units"} <= names


async def test_a_dissolve_racing_a_create_under_the_unit_never_both_win(
    client: httpx.AsyncClient, bearer: Headers
) -> None:
    root = bearer()
    await create(client, root, "TW", "Trung ương", "central", None)
    await create(client, root, "RC", "Đảng bộ tỉnh Thử", "province", "TW")
    for round_ in range(3):
        commune = f"RC.X{round_}"
        await create(client, root, commune, f"Đảng bộ xã {round_}", "commune", "RC")
        dissolve, child = await asyncio.gather(
            post(client, f"/units/{commune}/dissolve", {"reason": "thử"}, root),
            post(
                client,
                "/units",
                {
                    "code": f"{commune}.CB",
                    "name": "Chi bộ",
                    "level": "branch",
                    "parent_code": commune,
                },
                root,
            ),
        )
        # Exactly one wins: a dissolved unit with a child under it never exists.
        assert sorted([dissolve.status_code, child.status_code]) in ([200, 422], [201, 422]), (
            dissolve.text,
            child.text,
        )
