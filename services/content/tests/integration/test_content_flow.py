"""News and party documents through the API, against the real Kafka, MongoDB and Redis.

Tree: TW > QNG (province) > XA1 (commune) > CB1, CB2 ; QNG > XA2 > CB3.
The province's editorial board: an editor and a reviewer at QNG.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import pytest_asyncio

from sotay_content.access import EDITOR, EDITORIAL_REVIEWER
from sotay_content.files import CHUNKS, FILES
from sotay_content.projections import ATTACHMENT_TEXTS
from sotay_events.catalogue.org_tree import OrgLevel, UnitMerged, UnitMoved
from sotay_platform.attachments import build_docx, build_pdf, build_png
from sotay_platform.auth import Role
from sotay_platform.testing import eventually

pytestmark = pytest.mark.asyncio(loop_scope="module")

UNITS = [
    ("TW", OrgLevel.central, None),
    ("QNG", OrgLevel.province, "TW"),
    ("XA1", OrgLevel.commune, "QNG"),
    ("XA2", OrgLevel.commune, "QNG"),
    ("CB1", OrgLevel.branch, "XA1"),
    ("CB2", OrgLevel.branch, "XA1"),
    ("CB3", OrgLevel.branch, "XA2"),
]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def tree(app, feed):  # type: ignore[no-untyped-def]
    for unit_id, level, parent in UNITS:
        await feed.unit(unit_id, level, parent)
    audience = app.state.service.tree

    async def known():  # type: ignore[no-untyped-def]
        return await audience.path("CB3") == ["TW", "QNG", "XA2", "CB3"] and await audience.path(
            "CB1"
        ) == ["TW", "QNG", "XA1", "CB1"]

    await eventually(known)
    return UNITS


@pytest.fixture(scope="module")
def people(bearer):  # type: ignore[no-untyped-def]
    return {
        "editor": bearer("bt-1", (EDITOR, "QNG")),
        "reviewer": bearer("bt-2", (EDITORIAL_REVIEWER, "QNG")),
        "commune_reviewer": bearer("xa-2", (EDITORIAL_REVIEWER, "XA2")),
        "m1": bearer("m1", (Role.member, "CB1"), member=True),
        "m2": bearer("m2", (Role.member, "CB2"), member=True),
        "m3": bearer("m3", (Role.member, "CB3"), member=True),
    }


def resolution(number: str, title: str, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "kind": "resolution",
        "unit_id": "XA1",
        "title": title,
        "summary": "Nghị quyết của Bộ Chính trị",
        "body": "<p>Khoa học, công nghệ, đổi mới sáng tạo và chuyển đổi số là đột phá.</p>"
        "<script>alert('x')</script>",
        "document": {
            "number_symbol": number,
            "issuing_body": "Bộ Chính trị",
            "issued_on": "22/12/2024",
            "classification": "public",
        },
    }
    body.update(changes)
    return body


async def draft(client: httpx.AsyncClient, people: dict, body: dict[str, Any]) -> str:
    r = await client.post("/pieces", json=body, headers=people["editor"])
    assert r.status_code == 201, r.text
    return r.json()["piece_id"]


async def publish(
    client: httpx.AsyncClient, people: dict, body: dict[str, Any], **approve: Any
) -> str:
    piece_id = await draft(client, people, body)
    r = await client.post(f"/pieces/{piece_id}/submit", headers=people["editor"])
    assert r.status_code == 200, r.text
    r = await client.post(f"/pieces/{piece_id}/approve", json=approve, headers=people["reviewer"])
    assert r.status_code == 200, r.text
    return piece_id


async def search_ids(
    client: httpx.AsyncClient, who: dict[str, str], q: str, **params: Any
) -> list[str]:
    r = await client.get("/search", params={"q": q, **params}, headers=who)
    assert r.status_code == 200, r.text
    return [p["piece_id"] for p in r.json()]


async def feed_ids(client: httpx.AsyncClient, who: dict[str, str]) -> list[str]:
    r = await client.get("/feed", headers=who, params={"limit": 100})
    assert r.status_code == 200, r.text
    return [p["piece_id"] for p in r.json()]


async def test_a_resolution_from_draft_to_the_members_who_read_and_save_it(  # type: ignore[no-untyped-def]
    app, client, people, tree
) -> None:
    number = f"{uuid.uuid4().int % 90000 + 57}-NQ/TW"
    title = f"Nghị quyết số {number} về đột phá phát triển khoa học, công nghệ"
    piece_id = await draft(client, people, resolution(number, title))

    # Nobody approves their own piece; a reviewer below the target is not its board.
    await client.post(f"/pieces/{piece_id}/submit", headers=people["editor"])
    r = await client.post(
        f"/pieces/{piece_id}/approve", json={}, headers=people["commune_reviewer"]
    )
    assert r.status_code == 403, r.text
    queue = await eventually(lambda: _queue(client, people["reviewer"], piece_id))
    assert queue[0]["status"] == "submitted" and queue[0]["body"] is None
    r = await client.post(f"/pieces/{piece_id}/approve", json={}, headers=people["reviewer"])
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["status"] == "published" and answer["status_label"] == "đã đăng"
    assert "<script>" not in answer["body"] and "alert" not in answer["body"]
    assert answer["document"]["issued_on_label"] == "22/12/2024"

    # Members of XA1's subtree find it without diacritics; outside it, nobody.
    bare = number.split("-")[0]
    found = await eventually(lambda: _found(client, people["m1"], f"nghi quyet {bare}", piece_id))
    assert found[0] == piece_id
    assert piece_id in await search_ids(client, people["m2"], f"NGHI QUYET {bare} dot pha")
    assert piece_id in await search_ids(client, people["m1"], number)
    assert piece_id not in await search_ids(client, people["m3"], f"nghi quyet {bare}")
    assert piece_id not in await feed_ids(client, people["m3"])
    assert (await client.get(f"/pieces/{piece_id}", headers=people["m3"])).status_code == 404
    assert piece_id in await search_ids(
        client, people["m1"], "khoa hoc", kind="resolution", issuing_body="bo chinh tri",
        date_from="2024-12-01", date_to="2024-12-31", unit_id="XA1",
    )  # fmt: skip
    assert piece_id not in await search_ids(
        client, people["m1"], "khoa hoc", date_from="2025-01-01"
    )
    assert piece_id not in await search_ids(client, people["m1"], "khoa hoc", kind="news")

    # A member saves it and reads it; the reading is recorded once, for reporting.
    r = await client.put(f"/library/{piece_id}", headers=people["m1"])
    assert r.status_code == 200 and r.json()["changed"] is True
    assert (await client.put(f"/library/{piece_id}", headers=people["m1"])).json()[
        "changed"
    ] is False
    r = await client.put(f"/library/{piece_id}", headers=people["m3"])
    assert r.status_code == 404
    library = await eventually(lambda: _library(client, people["m1"], piece_id))
    assert library[0]["piece"]["title"] == title
    for _ in range(2):
        r = await client.post(f"/pieces/{piece_id}/read", headers=people["m1"])
        assert r.status_code == 200, r.text
    reads = [
        e
        for e in await app.state.runtime.store.all_events()
        if e.event_type == "PieceRead" and e.payload["piece_id"] == piece_id
    ]
    assert [e.payload for e in reads] == [
        {
            "piece_id": piece_id,
            "member_id": "m1",
            "unit_id": "XA1",
            "kind": "resolution",
            "branch_id": "CB1",
        }
    ]
    published = [
        e
        for e in await app.state.runtime.store.all_events()
        if e.event_type == "PiecePublished" and e.payload["piece_id"] == piece_id
    ]
    assert published[0].payload["unit_id"] == "XA1" and published[0].org_path == (
        "TW",
        "QNG",
        "XA1",
    )

    async def marked_read():  # type: ignore[no-untyped-def]
        r = await client.get("/feed", headers=people["m1"], params={"limit": 100})
        return next((p["read"] for p in r.json() if p["piece_id"] == piece_id), None)

    assert await eventually(marked_read) is True
    r = await client.delete(f"/library/{piece_id}", headers=people["m1"])
    assert r.json()["changed"] is True
    await eventually(lambda: _library_without(client, people["m1"], piece_id))


async def _queue(
    client: httpx.AsyncClient, who: dict[str, str], piece_id: str
) -> list[dict] | None:
    r = await client.get("/queue", headers=who)
    assert r.status_code == 200, r.text
    rows = [p for p in r.json() if p["piece_id"] == piece_id]
    return rows or None


async def _found(
    client: httpx.AsyncClient, who: dict[str, str], q: str, piece_id: str
) -> list[str] | None:
    ids = await search_ids(client, who, q)
    return ids if piece_id in ids else None


async def _library(
    client: httpx.AsyncClient, who: dict[str, str], piece_id: str
) -> list[dict] | None:
    r = await client.get("/library", headers=who)
    entries = [e for e in r.json() if e["piece"]["piece_id"] == piece_id]
    return entries or None


async def _library_without(client: httpx.AsyncClient, who: dict[str, str], piece_id: str) -> bool:
    r = await client.get("/library", headers=who)
    return all(e["piece"]["piece_id"] != piece_id for e in r.json())


async def test_the_queue_is_oldest_first_and_only_in_scope(client, people, tree) -> None:  # type: ignore[no-untyped-def]
    ids = []
    for n in range(3):
        piece_id = await draft(
            client, people, {"kind": "news", "unit_id": "XA2", "title": f"Tin hàng đợi {n}"}
        )
        await client.post(f"/pieces/{piece_id}/submit", headers=people["editor"])
        ids.append(piece_id)

    async def queued():  # type: ignore[no-untyped-def]
        r = await client.get("/queue", headers=people["commune_reviewer"])
        mine = [p["piece_id"] for p in r.json() if p["piece_id"] in ids]
        return mine if len(mine) == 3 else None

    assert await eventually(queued) == ids
    r = await client.get("/queue", headers=people["m1"])
    assert r.status_code == 403
    assert "không có quyền" in r.json()["message"]


async def test_a_classified_upload_is_refused_with_nothing_written(  # type: ignore[no-untyped-def]
    app, client, people, tree, tmp_path, monkeypatch
) -> None:
    piece_id = await draft(
        client, people, {"kind": "news", "unit_id": "XA1", "title": "Tin có tệp"}
    )
    db = app.state.runtime.db

    async def counts() -> tuple[int, ...]:
        return (
            await db["events"].count_documents({}),
            await db[FILES].count_documents({}),
            await db[CHUNKS].count_documents({}),
            await db[ATTACHMENT_TEXTS].count_documents({}),
        )

    # Any temporary file this process makes (a spooled upload, say) would land here.
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    before = await counts()
    for name, data in [
        ("ke-hoach.docx", build_docx(["Kế hoạch triển khai"], header=["TỐI MẬT"])),
        ("nghi-quyet.pdf", build_pdf(["Độ mật: Tuyệt mật", "Nghị quyết"])),
        ("anh.png", build_png("MẬT")),
    ]:
        r = await client.post(
            f"/pieces/{piece_id}/attachments",
            params={"name": name},
            content=data,
            headers={**people["editor"], "Content-Type": "application/octet-stream"},
        )
        assert r.status_code == 422, r.text
        assert r.json()["error"] == "classified" and r.json()["field"] == "file"
        assert "không được đưa lên Sổ tay" in r.json()["message"]
    r = await client.post(
        f"/pieces/{piece_id}/attachments",
        params={"name": "hinh.png"},
        content=b"GIF89a not what it claims",
        headers={**people["editor"], "Content-Type": "application/octet-stream"},
    )
    assert r.status_code == 422 and r.json()["error"] == "unsupported_type"
    r = await client.post(
        "/pieces",
        json=resolution("12-NQ/TU", "Nghị quyết mật", document={
            "number_symbol": "12-NQ/TU", "issuing_body": "Tỉnh ủy", "issued_on": "2025-01-05",
            "classification": "toi_mat",
        }),
        headers=people["editor"],
    )  # fmt: skip
    assert r.status_code == 422 and r.json()["field"] == "document.classification"
    assert await counts() == before
    assert os.listdir(tmp_path) == []


async def test_an_attachment_is_stored_with_its_piece_and_searched_by_its_text(  # type: ignore[no-untyped-def]
    app, client, people, tree
) -> None:
    word = f"truyenthong{uuid.uuid4().hex[:6]}"
    piece_id = await draft(
        client,
        people,
        {"kind": "professional_guidance", "unit_id": "QNG", "title": "Hướng dẫn nghiệp vụ"},
    )
    data = build_pdf(["HƯỚNG DẪN", f"Công tác tuyên truyền {word} về chuyển đổi số"])
    r = await client.post(
        f"/pieces/{piece_id}/attachments",
        params={"name": "Hướng dẫn số 05.pdf"},
        content=data,
        headers={**people["editor"], "Content-Type": "application/octet-stream"},
    )
    assert r.status_code == 201, r.text
    attachment = r.json()
    assert attachment["media_type"] == "application/pdf" and attachment["size"] == len(data)
    await client.post(f"/pieces/{piece_id}/submit", headers=people["editor"])
    await client.post(f"/pieces/{piece_id}/approve", json={}, headers=people["reviewer"])

    assert await eventually(lambda: _found(client, people["m3"], word, piece_id))
    r = await client.get(attachment["url"], headers=people["m3"])
    assert r.status_code == 200 and r.content == data
    assert r.headers["content-type"] == "application/pdf"
    assert (await client.get(attachment["url"])).status_code == 401


async def test_a_scheduled_piece_appears_at_its_time(app, client, people, tree) -> None:  # type: ignore[no-untyped-def]
    at = datetime.now(UTC) + timedelta(seconds=3)
    piece_id = await publish(
        client, people, {"kind": "bulletin", "unit_id": "QNG", "title": "Bản tin sinh hoạt chi bộ tháng 12"},
        publish_at=at.isoformat(),
    )  # fmt: skip
    piece = await app.state.service.piece(piece_id)
    assert piece.status == "scheduled" or datetime.now(UTC) >= at
    assert piece_id not in await feed_ids(client, people["m1"])

    async def appeared():  # type: ignore[no-untyped-def]
        return piece_id in await feed_ids(client, people["m1"])

    assert await eventually(appeared)
    assert datetime.now(UTC) >= at
    r = await client.get(f"/pieces/{piece_id}", headers=people["m1"])
    assert r.json()["published_at"].startswith(at.strftime("%Y-%m-%dT%H:%M"))


async def test_withdrawal_hides_a_piece(client, people, tree) -> None:  # type: ignore[no-untyped-def]
    word = f"thuhoi{uuid.uuid4().hex[:6]}"
    piece_id = await publish(
        client, people, {"kind": "news", "unit_id": "QNG", "title": f"Tin {word}"}
    )
    assert await eventually(lambda: _found(client, people["m1"], word, piece_id))
    r = await client.post(
        f"/pieces/{piece_id}/withdraw", json={"reason": " "}, headers=people["reviewer"]
    )
    assert r.status_code == 422 and r.json()["field"] == "reason"
    r = await client.post(
        f"/pieces/{piece_id}/withdraw", json={"reason": "Đăng nhầm"}, headers=people["reviewer"]
    )
    assert r.status_code == 200 and r.json()["status"] == "withdrawn"

    async def hidden():  # type: ignore[no-untyped-def]
        return piece_id not in await search_ids(client, people["m1"], word) and piece_id not in (
            await feed_ids(client, people["m1"])
        )

    assert await eventually(hidden)
    assert (await client.get(f"/pieces/{piece_id}", headers=people["m1"])).status_code == 404
    assert (await client.post(f"/pieces/{piece_id}/read", headers=people["m1"])).status_code == 404


async def test_a_correction_is_a_new_revision_and_the_history_is_kept(client, people, tree) -> None:  # type: ignore[no-untyped-def]
    piece_id = await publish(
        client, people, {"kind": "event", "unit_id": "QNG", "title": "Hội nghị quán triệt"}
    )
    r = await client.post(
        f"/pieces/{piece_id}/revise",
        json={"title": "Hội nghị quán triệt (đính chính giờ họp)", "reason": "Sai giờ họp"},
        headers=people["reviewer"],
    )
    assert r.status_code == 200 and r.json()["revision"] == 2
    r = await client.get(f"/pieces/{piece_id}/history", headers=people["reviewer"])
    assert [h["title"] for h in r.json()] == [
        "Hội nghị quán triệt",
        "Hội nghị quán triệt (đính chính giờ họp)",
    ]
    assert (
        await client.get(f"/pieces/{piece_id}/history", headers=people["m1"])
    ).status_code == 403


async def test_a_branch_moved_or_merged_sees_what_targets_its_new_place(  # type: ignore[no-untyped-def]
    app, client, people, feed, bearer, tree
) -> None:
    moved, old_commune = f"CB{uuid.uuid4().hex[:6]}", f"XA{uuid.uuid4().hex[:6]}"
    await feed.unit(moved, OrgLevel.branch, "XA2")
    await feed.unit(old_commune, OrgLevel.commune, "QNG")
    member = bearer("m-moved", (Role.member, moved), member=True)
    audience = app.state.service.tree

    async def known():  # type: ignore[no-untyped-def]
        return await audience.current(moved) and await audience.current(old_commune)

    await eventually(known)
    for_xa1 = await publish(
        client, people, {"kind": "meeting_topic", "unit_id": "XA1", "title": "Chuyên đề xã 1"}
    )
    for_old = await publish(
        client, people, {"kind": "news", "unit_id": old_commune, "title": "Tin xã cũ"}
    )
    assert await eventually(lambda: _in_feed(client, people["m1"], for_xa1))
    assert not await _in_feed(client, member, for_xa1)

    await feed.org_tree(moved, UnitMoved(unit_id=moved, from_parent_id="XA2", to_parent_id="XA1"))
    assert await eventually(lambda: _in_feed(client, member, for_xa1))
    assert not await _in_feed(client, member, for_old)

    # The old commune merges into XA1: what it published reaches XA1's branches.
    await feed.org_tree(old_commune, UnitMerged(unit_id=old_commune, into_unit_id="XA1"))
    assert await eventually(lambda: _in_feed(client, member, for_old))
    assert not await _in_feed(client, people["m3"], for_old)


async def _in_feed(client: httpx.AsyncClient, who: dict[str, str], piece_id: str) -> bool:
    return piece_id in await feed_ids(client, who)


async def test_bad_input_is_a_clear_vietnamese_4xx(client, people, tree) -> None:  # type: ignore[no-untyped-def]
    r = await client.post(
        "/pieces", json={"kind": "news", "unit_id": "QNG", "title": ""}, headers=people["editor"]
    )
    assert r.status_code == 422 and r.json()["field"] == "title"
    r = await client.post(
        "/pieces", json=resolution("NQ-57", "Nghị quyết"), headers=people["editor"]
    )
    assert r.status_code == 422 and r.json()["field"] == "document.number_symbol"
    assert "ví dụ: 57-NQ/TW" in r.json()["message"]
    r = await client.post(
        "/pieces",
        json={"kind": "resolution", "unit_id": "QNG", "title": "NQ"},
        headers=people["editor"],
    )
    assert r.status_code == 422 and r.json()["field"] == "document"
    r = await client.post(
        "/pieces", json={"kind": "news", "unit_id": "QNG", "title": "Tin"}, headers=people["m1"]
    )
    assert r.status_code == 403
    r = await client.get("/pieces/khong-co", headers=people["m1"])
    assert r.status_code == 404 and r.json()["message"].startswith("Không tìm thấy")
    r = await client.get(
        "/search",
        params={"q": "x", "date_from": "31/12/2025", "date_to": "01/01/2025"},
        headers=people["m1"],
    )
    assert r.status_code == 422 and r.json()["field"] == "date_from"
    r = await client.post(
        "/pieces/x/approve", json={"publish_at": "not a date"}, headers=people["reviewer"]
    )
    assert r.status_code == 422 and r.json()["field"] == "publish_at"


async def test_the_rebuilt_projection_equals_the_live_one(app, client, people, tree) -> None:  # type: ignore[no-untyped-def]
    await publish(client, people, {"kind": "news", "unit_id": "XA2", "title": "Tin để dựng lại"})
    runtime = app.state.runtime
    views = app.state.views

    async def settled():  # type: ignore[no-untyped-def]
        history = await runtime.store.all_events()
        applied = sum([d["v"] async for d in runtime.db["tracking.content"].find({})])
        return history if applied == len(history) else None

    history = await eventually(settled)
    live = await views.snapshot()
    assert live["pieces"]
    await app.state.views_runner.rebuild(history)
    assert await views.snapshot() == live
