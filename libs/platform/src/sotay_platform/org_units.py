"""A service's own copy of the org tree, projected from org-tree's events.

Org-tree keeps its read model with it, and every service that needs the tree
(identity, meetings, learning, reporting) runs the same projection on its own
database: no service asks org-tree anything.

Each document holds the unit's dated history (`sotay_platform.tree.UnitHistory`:
parents with the moment of each move, names, creation, merge or dissolution)
and, for readers of today's tree, how it stands now: `path` (root .. unit),
`under` (its parent through merges), `status`, `merged_into`. `lineage` lists
the unit and every unit it ever hung from or merged into, transitively, so
everything that ever sat under a unit is one indexed query (`OrgUnits.tree`),
from which the pure model answers for any moment.

Events of different units may arrive in any order (they are keyed by unit).
Lineages only grow (facts are never taken back), so a change at a unit adds
its lineage to everything whose lineage holds it; then the paths of those
units are recomputed by the model. The result does not depend on the order,
an event applied twice changes nothing, and a rebuild equals the live model.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from sotay_events.catalogue.org_tree import UnitCreated, UnitMerged, UnitMoved
from sotay_events.consumer import Applied
from sotay_platform.tree import ACTIVE, DISSOLVED, MERGED, TREE_EVENTS, OrgTree, UnitHistory

COLLECTION = "org_units"

Doc = dict[str, Any]

__all__ = [
    "ACTIVE",
    "COLLECTION",
    "DISSOLVED",
    "MERGED",
    "OrgUnits",
    "OrgUnitsProjection",
    "Resolved",
    "create_indexes",
]


class OrgUnitsProjection:
    name = "org_units"
    collections = (COLLECTION,)
    event_types = frozenset(e.event_type for e in TREE_EVENTS)

    async def create_indexes(self, db: AsyncDatabase[Doc]) -> None:
        await create_indexes(db)

    async def apply_batch(
        self, db: AsyncDatabase[Doc], items: list[Applied], session: AsyncClientSession
    ) -> None:
        units = db[COLLECTION]
        for envelope, event in items:
            if not isinstance(event, TREE_EVENTS):
                continue
            doc = await units.find_one({"_id": event.unit_id}, session=session)
            if doc is None and not isinstance(event, UnitCreated):
                continue  # one unit's events come in order: nothing to attach this to
            history = UnitHistory.from_doc(doc) if doc else UnitHistory(event.unit_id)
            if not history.apply(event, envelope.occurred_at, envelope.aggregate_version):
                continue
            await units.update_one(
                {"_id": event.unit_id},
                {
                    "$set": history.to_doc(),
                    "$setOnInsert": {
                        "path": [event.unit_id],
                        "under": None,
                        "lineage": [event.unit_id],
                    },
                },
                upsert=True,
                session=session,
            )
            if isinstance(event, UnitCreated | UnitMoved | UnitMerged):
                await relink(units, history, session)


async def create_indexes(db: AsyncDatabase[Doc]) -> None:
    units = db[COLLECTION]
    await units.create_index([("path", ASCENDING)])
    await units.create_index([("parent_id", ASCENDING)])
    await units.create_index([("merged_into", ASCENDING)])
    await units.create_index([("under", ASCENDING)])
    await units.create_index([("lineage", ASCENDING)])


async def relink(
    units: AsyncCollection[Doc], changed: UnitHistory, session: AsyncClientSession | None
) -> None:
    """After `changed` gained a parent or a successor: grow the lineages that hold it,
    then recompute today's path of every unit whose path runs through it."""
    unit_id = changed.id
    hangs = sorted(changed.hangs_from())
    reach = {unit_id, *hangs}
    async for doc in units.find({"_id": {"$in": hangs}}, {"lineage": 1}, session=session):
        reach.update(doc.get("lineage") or [doc["_id"]])
    above = [d async for d in units.find({"_id": {"$in": sorted(reach)}}, session=session)]
    below = [d async for d in units.find({"lineage": unit_id}, session=session)]

    writes: list[UpdateOne] = []
    for doc in below:
        lineage = sorted(set(doc.get("lineage") or []) | reach)
        if lineage != doc.get("lineage"):
            doc["lineage"] = lineage
            writes.append(UpdateOne({"_id": doc["_id"]}, {"$set": {"lineage": lineage}}))

    tree = OrgTree.from_docs({d["_id"]: d for d in [*above, *below]}.values())
    for doc in below:
        path = tree.path(doc["_id"])
        old = doc.get("path") or []
        if path != old and (unit_id in path or unit_id in old):
            under = path[-2] if len(path) > 1 else None
            writes.append(UpdateOne({"_id": doc["_id"]}, {"$set": {"path": path, "under": under}}))
    if writes:
        await units.bulk_write(writes, session=session)


@dataclass(frozen=True)
class Resolved:
    """A unit as it stood at a moment: a merged unit resolves to its successor."""

    id: str
    name: str
    level: str
    path: list[str]  # root .. unit
    absorbed: list[str]  # the unit and every unit merged into it by then, however deep

    @property
    def parent_id(self) -> str | None:
        return self.path[-2] if len(self.path) > 1 else None


class OrgUnits:
    """Queries on a service's copy of the tree: today's (the stored `path`), or any
    moment's through the dated model (`tree`, `resolve`, `with_merged`)."""

    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self.units = db[COLLECTION]

    async def get(self, unit_id: str) -> Doc | None:
        return await self.units.find_one({"_id": unit_id})

    async def path(self, unit_id: str) -> list[str]:
        doc = await self.get(unit_id)
        return list(doc["path"]) if doc else []

    async def children(self, unit_id: str, include_closed: bool = False) -> list[Doc]:
        """Today's children, those of units merged into it included (`under` is kept so)."""
        query: Doc = {"under": unit_id}
        if not include_closed:
            query["status"] = ACTIVE
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

    # the dated tree ----------------------------------------------------------------------

    async def tree(self, unit_id: str | None = None) -> OrgTree:
        """The dated model of everything that ever hung under `unit_id` (merged units
        included) and of the units above it: one indexed query and one by id.
        None loads the whole tree."""
        if unit_id is None:
            return OrgTree.from_docs([d async for d in self.units.find({})])
        below = [d async for d in self.units.find({"lineage": unit_id})]
        own = next((d for d in below if d["_id"] == unit_id), None)
        above_ids = sorted(set(own.get("lineage") or []) - {unit_id}) if own else []
        above = [d async for d in self.units.find({"_id": {"$in": above_ids}})]
        return OrgTree.from_docs([*above, *below])

    async def _around(self, unit_ids: list[str]) -> OrgTree:
        """The units, what they ever hung from or merged into, and what merged into them."""
        docs = {d["_id"]: d async for d in self.units.find({"_id": {"$in": unit_ids}})}
        lineage = {u for d in docs.values() for u in d.get("lineage") or []}
        docs.update(
            {
                d["_id"]: d
                async for d in self.units.find({"_id": {"$in": sorted(lineage - set(docs))}})
            }
        )
        frontier = sorted(docs)
        while frontier:  # the units merged in, through the index on `merged_into`
            found = [
                d
                async for d in self.units.find({"merged_into": {"$in": frontier}})
                if d["_id"] not in docs
            ]
            docs.update({d["_id"]: d for d in found})
            frontier = [d["_id"] for d in found]
        return OrgTree.from_docs(docs.values())

    async def resolve(self, unit_id: str, at: datetime | None = None) -> Resolved | None:
        """The unit carrying `unit_id` on at `at` (itself or its successor), with its path
        then and every unit merged into it by then; None if that unit did not exist."""
        tree = await self._around([unit_id])
        carrier = tree.successor(unit_id, at)
        if carrier != unit_id:
            tree = await self._around([carrier])
        history = tree.get(carrier)
        if history is None or not history.exists(at):
            return None
        return Resolved(
            id=carrier,
            name=history.name_at(at),
            level=history.level,
            path=tree.path(carrier, at),
            absorbed=[carrier, *tree.merged_into_it(carrier, at)],
        )

    async def with_merged(self, unit_ids: list[str], at: datetime | None = None) -> list[str]:
        """The units, and every unit merged into one of them by `at` (at any depth)."""
        tree = await self._around(list(dict.fromkeys(unit_ids)))
        out = list(dict.fromkeys(unit_ids))
        for unit_id in list(out):
            out.extend(u for u in tree.merged_into_it(unit_id, at) if u not in out)
        return out
