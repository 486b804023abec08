"""A service's own copy of the org tree, projected from org-tree's events.

Org-tree keeps its read model with it, and every service that needs the tree
(identity, meetings, learning, reporting) runs the same projection on its own
database: no service asks org-tree anything.

Each document holds the unit's `path`, the ids from the root down to itself,
so a subtree is one indexed query. Events of different units may arrive in
any order (they are keyed by unit), so paths are recomputed for everything
hanging below a unit whenever it changes: the result does not depend on the
order, and a rebuild equals the live model.
"""

from __future__ import annotations

from typing import Any

from pymongo import ASCENDING, UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from sotay_events.catalogue.org_tree import (
    UnitCreated,
    UnitDissolved,
    UnitMerged,
    UnitMoved,
    UnitRenamed,
)
from sotay_events.consumer import Applied

COLLECTION = "org_units"
ACTIVE, MERGED, DISSOLVED = "active", "merged", "dissolved"

Doc = dict[str, Any]


class OrgUnitsProjection:
    name = "org_units"
    collections = (COLLECTION,)

    async def create_indexes(self, db: AsyncDatabase[Doc]) -> None:
        await create_indexes(db)

    async def apply_batch(
        self, db: AsyncDatabase[Doc], items: list[Applied], session: AsyncClientSession
    ) -> None:
        units = db[COLLECTION]
        for envelope, event in items:
            stamp = {"version": envelope.aggregate_version}
            match event:
                case UnitCreated():
                    await units.update_one(
                        {"_id": event.unit_id},
                        {
                            "$set": {
                                "name": event.name,
                                "level": event.level.value,
                                "parent_id": event.parent_id,
                                "status": ACTIVE,
                                "merged_into": None,
                                **stamp,
                            }
                        },
                        upsert=True,
                        session=session,
                    )
                    await repath(units, event.unit_id, session)
                case UnitRenamed():
                    await units.update_one(
                        {"_id": event.unit_id},
                        {"$set": {"name": event.name, **stamp}},
                        session=session,
                    )
                case UnitMoved():
                    await units.update_one(
                        {"_id": event.unit_id},
                        {"$set": {"parent_id": event.to_parent_id, **stamp}},
                        session=session,
                    )
                    await repath(units, event.unit_id, session)
                case UnitMerged():
                    await units.update_one(
                        {"_id": event.unit_id},
                        {"$set": {"status": MERGED, "merged_into": event.into_unit_id, **stamp}},
                        session=session,
                    )
                    await repath(units, event.unit_id, session)
                case UnitDissolved():
                    await units.update_one(
                        {"_id": event.unit_id},
                        {"$set": {"status": DISSOLVED, **stamp}},
                        session=session,
                    )


async def create_indexes(db: AsyncDatabase[Doc]) -> None:
    units = db[COLLECTION]
    await units.create_index([("path", ASCENDING)])
    await units.create_index([("parent_id", ASCENDING)])
    await units.create_index([("merged_into", ASCENDING)])


async def _anchor_path(
    units: AsyncCollection[Doc], doc: Doc, session: AsyncClientSession | None
) -> list[str]:
    """The path a child of `doc` hangs from: a merged unit's children hang from its successor."""
    seen: set[str] = set()
    while doc.get("status") == MERGED and doc.get("merged_into") and doc["_id"] not in seen:
        seen.add(doc["_id"])
        successor = await units.find_one({"_id": doc["merged_into"]}, session=session)
        if successor is None:
            return []
        doc = successor
    return list(doc.get("path") or [doc["_id"]])


async def repath(units: AsyncCollection[Doc], unit_id: str, session: AsyncClientSession) -> None:
    """Recompute the path of `unit_id` and of everything that hangs below it."""
    root = await units.find_one({"_id": unit_id}, session=session)
    if root is None:
        return
    parent = (
        await units.find_one({"_id": root["parent_id"]}, session=session)
        if root.get("parent_id")
        else None
    )
    root_path = ([*await _anchor_path(units, parent, session)] if parent else []) + [unit_id]
    await units.update_one({"_id": unit_id}, {"$set": {"path": root_path}}, session=session)
    root["path"] = root_path
    frontier = [root]
    visited = {unit_id}
    while frontier:
        anchors = {doc["_id"]: await _anchor_path(units, doc, session) for doc in frontier}
        # Two indexed queries: an $or of the two is a full scan on some servers.
        ids = list(anchors)
        hanging = [
            *await units.find({"parent_id": {"$in": ids}}, session=session).to_list(),
            *await units.find({"merged_into": {"$in": ids}}, session=session).to_list(),
        ]
        writes: list[UpdateOne] = []
        next_frontier: list[Doc] = []
        for doc in hanging:
            if doc["_id"] in visited:
                continue
            visited.add(doc["_id"])
            if doc.get("parent_id") in anchors:
                doc["path"] = [*anchors[doc["parent_id"]], doc["_id"]]
                writes.append(UpdateOne({"_id": doc["_id"]}, {"$set": {"path": doc["path"]}}))
            next_frontier.append(doc)
        if writes:
            await units.bulk_write(writes, session=session)
        frontier = next_frontier


class OrgUnits:
    """Queries on a service's copy of the tree."""

    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self.units = db[COLLECTION]

    async def get(self, unit_id: str) -> Doc | None:
        return await self.units.find_one({"_id": unit_id})

    async def path(self, unit_id: str) -> list[str]:
        doc = await self.get(unit_id)
        return list(doc["path"]) if doc else []

    async def children(self, unit_id: str, include_closed: bool = False) -> list[Doc]:
        query: Doc = {"parent_id": unit_id}
        if not include_closed:
            query["status"] = ACTIVE
        merged_from = [
            d["_id"] async for d in self.units.find({"merged_into": unit_id}, {"_id": 1})
        ]
        if merged_from:
            query["parent_id"] = {"$in": [unit_id, *merged_from]}
        return await self.units.find(query).sort("_id", ASCENDING).to_list()

    async def subtree(
        self, unit_id: str, level: str | None = None, include_closed: bool = False, limit: int = 0
    ) -> list[Doc]:
        query: Doc = {"path": unit_id}
        if level:
            query["level"] = level
        if not include_closed:
            query["status"] = ACTIVE
        # MongoDB orders arrays by their smallest element, so the tree order is made here.
        found = await self.units.find(query).sort("_id", ASCENDING).limit(limit).to_list()
        return sorted(found, key=lambda doc: doc.get("path", []))

    async def count_active_children(self, unit_id: str) -> int:
        return len(await self.children(unit_id))

    async def snapshot(self) -> list[Doc]:
        """Every unit, in id order: what a rebuild is compared with."""
        return await self.units.find({}).sort("_id", ASCENDING).to_list()
