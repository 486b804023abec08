"""The shared org-units projection against a real MongoDB: order, redelivery, rebuild, queries."""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from sotay_events import EventEnvelope
from sotay_events.catalogue.org_tree import (
    OrgLevel,
    UnitCreated,
    UnitDissolved,
    UnitMerged,
    UnitMoved,
    UnitRenamed,
)
from sotay_events.consumer import Applied
from sotay_platform.org_units import OrgUnits, OrgUnitsProjection, create_indexes
from sotay_platform.settings import InfraSettings
from sotay_platform.tree import OrgTree

T0 = datetime(2026, 10, 1, tzinfo=UTC)  # whole seconds: MongoDB keeps milliseconds


def day(n: int) -> datetime:
    return T0 + timedelta(days=n)


def history() -> list[Applied]:
    """Two provinces. In QNG: C1 merges into C2, C2 moves to X2, committee K1 (with its
    branch B1) merges into K2, a branch is dissolved and a new one created late."""
    versions: dict[str, int] = {}
    items: list[Applied] = []

    def fact(when: int, event: Any) -> None:
        version = versions[event.unit_id] = versions.get(event.unit_id, 0) + 1
        envelope = EventEnvelope(
            event_type=event.event_type,
            schema_version=event.schema_version,
            aggregate_type="OrgUnit",
            aggregate_id=event.unit_id,
            aggregate_version=version,
            occurred_at=day(when),
            payload=event.model_dump(mode="json"),
        )
        items.append((envelope, event))

    def unit(when: int, unit_id: str, level: OrgLevel, parent: str | None) -> None:
        fact(
            when,
            UnitCreated(unit_id=unit_id, name=f"Đơn vị {unit_id}", level=level, parent_id=parent),
        )

    unit(0, "TW", OrgLevel.central, None)
    for province in ("QNG", "BDH"):
        unit(0, province, OrgLevel.province, "TW")
    unit(0, "X1", OrgLevel.commune, "QNG")
    unit(0, "X2", OrgLevel.commune, "QNG")
    unit(0, "Y1", OrgLevel.commune, "BDH")
    unit(0, "YB", OrgLevel.branch, "Y1")
    for branch, commune in (("C1", "X1"), ("C2", "X1"), ("C3", "X2"), ("C5", "X2")):
        unit(1, branch, OrgLevel.branch, commune)
    unit(1, "K1", OrgLevel.grassroots_committee, "QNG")
    unit(1, "K2", OrgLevel.grassroots_committee, "QNG")
    unit(2, "B1", OrgLevel.branch, "K1")
    fact(10, UnitMerged(unit_id="C1", into_unit_id="C2"))
    fact(12, UnitMerged(unit_id="K1", into_unit_id="K2"))
    fact(15, UnitDissolved(unit_id="C5", reason="Không còn đảng viên"))
    fact(20, UnitMoved(unit_id="C2", from_parent_id="X1", to_parent_id="X2"))
    fact(22, UnitRenamed(unit_id="X2", name="Phường Hai", previous_name="Đơn vị X2"))
    fact(40, UnitCreated(unit_id="C4", name="Chi bộ mới", level=OrgLevel.branch, parent_id="X1"))
    return items


def shuffled(items: list[Applied], seed: int) -> list[Applied]:
    rng = random.Random(seed)
    queues: dict[str, list[Applied]] = {}
    for item in items:
        queues.setdefault(item[0].aggregate_id, []).append(item)
    out: list[Applied] = []
    while queues:
        unit = rng.choice(sorted(queues))
        out.append(queues[unit].pop(0))
        if not queues[unit]:
            del queues[unit]
    return out


@pytest.fixture
async def mongo(infra: InfraSettings) -> AsyncIterator[AsyncMongoClient[dict[str, Any]]]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(infra.mongo_url, tz_aware=True)
    yield client
    await client.close()


async def project(
    mongo: AsyncMongoClient[dict[str, Any]], batches: list[list[Applied]]
) -> OrgUnits:
    db = mongo[f"org_units_{uuid.uuid4().hex[:8]}"]
    await create_indexes(db)
    projection = OrgUnitsProjection()
    for batch in batches:
        async with mongo.start_session() as session:
            await projection.apply_batch(db, batch, session)
    return OrgUnits(db)


@pytest.fixture
async def units(mongo: AsyncMongoClient[dict[str, Any]]) -> OrgUnits:
    return await project(mongo, [history()])


async def test_any_order_and_redelivery_give_the_rebuild(
    mongo: AsyncMongoClient[dict[str, Any]], units: OrgUnits
) -> None:
    rebuilt = await units.snapshot()
    for seed in (1, 2):
        items = shuffled(history(), seed)
        rng = random.Random(seed)
        redelivered = items + rng.sample(items, 8)  # duplicates after the fact
        batches: list[list[Applied]] = []
        while redelivered:
            size = rng.randint(1, 5)
            batches.append(redelivered[:size])
            redelivered = redelivered[size:]
        live = await project(mongo, batches)
        assert await live.snapshot() == rebuilt


async def test_todays_queries_follow_merges(units: OrgUnits) -> None:
    assert await units.path("C2") == ["TW", "QNG", "X2", "C2"]
    assert await units.path("B1") == ["TW", "QNG", "K2", "B1"]
    assert await units.path("C1") == ["TW", "QNG", "X1", "C1"]  # where it last stood
    assert [d["_id"] for d in await units.children("K2")] == ["B1"]
    assert [d["_id"] for d in await units.children("X2")] == ["C2", "C3"]
    assert [d["_id"] for d in await units.children("X2", include_closed=True)] == [
        "C2",
        "C3",
        "C5",
    ]
    assert await units.count_active_children("X1") == 1  # C4
    assert [d["_id"] for d in await units.subtree("QNG", level="branch")] == [
        "B1",
        "C4",
        "C2",
        "C3",
    ]
    doc = await units.get("X2")
    assert doc is not None and doc["name"] == "Phường Hai" and doc["status"] == "active"
    merged = await units.get("K1")
    assert merged is not None and (merged["status"], merged["merged_into"]) == ("merged", "K2")


async def test_a_province_loads_into_the_dated_model(units: OrgUnits) -> None:
    tree = await units.tree("QNG")
    assert set(tree.units) == {
        "TW",
        "QNG",
        "X1",
        "X2",
        "C1",
        "C2",
        "C3",
        "C4",
        "C5",
        "K1",
        "K2",
        "B1",
    }
    folded = OrgTree()
    for envelope, event in history():
        folded.apply(event, envelope.occurred_at, envelope.aggregate_version)
    for at in (None, day(1), day(11), day(13), day(16), day(21), day(41)):
        assert tree.subtree("QNG", at) == folded.subtree("QNG", at)
        for unit in ("C1", "C2", "B1", "C4"):
            assert tree.path(unit, at) == folded.path(unit, at)
    assert tree.subtree("X1", day(11)) == ["X1", "C2", "C1"]
    assert tree.subtree("X2", day(21)) == ["X2", "C2", "C1", "C3"]
    indexes = await units.units.index_information()
    assert any(list(i["key"]) == [("lineage", 1)] for i in indexes.values())


async def test_resolve_and_with_merged_as_of_a_date(units: OrgUnits) -> None:
    now = await units.resolve("C1")
    assert now is not None
    assert (now.id, now.path, now.absorbed) == ("C2", ["TW", "QNG", "X2", "C2"], ["C2", "C1"])
    before = await units.resolve("C1", day(5))
    assert before is not None and (before.id, before.absorbed) == ("C1", ["C1"])
    assert await units.resolve("C4", day(39)) is None
    assert await units.resolve("C5") is None
    assert await units.with_merged(["K2", "C3"]) == ["K2", "C3", "K1"]
    assert await units.with_merged(["K2"], day(11)) == ["K2"]
