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

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, InsertOne, UpdateOne
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
    """Folds a batch in memory and writes it at once: one read of the batch's units, one
    of what hangs under those that moved and one of their ancestors, one `bulk_write`."""

    name = "org_units"
    collections = (COLLECTION,)
    event_types = frozenset(e.event_type for e in TREE_EVENTS)

    async def create_indexes(self, db: AsyncDatabase[Doc]) -> None:
        await create_indexes(db)

    async def apply_batch(
        self, db: AsyncDatabase[Doc], items: list[Applied], session: AsyncClientSession
    ) -> None:
        tree_items = [(e, ev) for e, ev in items if isinstance(ev, TREE_EVENTS)]
        if not tree_items:
            return
        units = db[COLLECTION]
        ids = sorted({ev.unit_id for _, ev in tree_items})
        stored = await _by_id(units, ids, session)
        histories = {i: UnitHistory.from_doc(d) for i, d in stored.items()}
        changed: set[str] = set()
        moved: set[str] = set()  # gained a parent or a successor: lineages and paths change
        for envelope, event in tree_items:
            history = histories.get(event.unit_id)
            if history is None:
                if not isinstance(event, UnitCreated):
                    continue  # one unit's events come in order: nothing to attach this to
                history = histories[event.unit_id] = UnitHistory(event.unit_id)
            if not history.apply(event, envelope.occurred_at, envelope.aggregate_version):
                continue
            changed.add(event.unit_id)
            if isinstance(event, UnitCreated | UnitMoved | UnitMerged):
                moved.add(event.unit_id)
        if not changed:
            return
        # the units as they will stand: stored fields, the batch's history on top
        docs: dict[str, Doc] = {}
        for unit_id in sorted(changed):
            base = stored.get(unit_id) or {
                "_id": unit_id,
                "path": [unit_id],
                "under": None,
                "lineage": [unit_id],
            }
            docs[unit_id] = {**base, **histories[unit_id].to_doc()}
        updates = {u: histories[u].to_doc() for u in changed if u in stored}
        if moved:
            for unit_id, fields in (await _relink(units, docs, sorted(moved), session)).items():
                if unit_id not in docs or unit_id in stored:
                    updates.setdefault(unit_id, {}).update(fields)
        # new units in one insert: several times faster than upserts on the embedded server
        writes: list[Any] = [InsertOne(docs[u]) for u in sorted(changed) if u not in stored]
        writes += [UpdateOne({"_id": u}, {"$set": f}) for u, f in sorted(updates.items())]
        await units.bulk_write(writes, ordered=False, session=session)


async def create_indexes(db: AsyncDatabase[Doc]) -> None:
    units = db[COLLECTION]
    await units.create_index([("path", ASCENDING)])
    await units.create_index([("parent_id", ASCENDING)])
    await units.create_index([("merged_into", ASCENDING)])
    await units.create_index([("under", ASCENDING)])
    await units.create_index([("lineage", ASCENDING)])


# SecantusDB checks each document it finds against every value of an `$in`: long lists
# go in slices, which keeps a batch of thousands of units linear.
IN_SLICE = 200


async def _find_in(
    units: AsyncCollection[Doc],
    field: str,
    values: Iterable[str],
    session: AsyncClientSession | None,
) -> dict[str, Doc]:
    wanted = sorted(set(values))
    found: dict[str, Doc] = {}
    for i in range(0, len(wanted), IN_SLICE):
        query = {field: {"$in": wanted[i : i + IN_SLICE]}}
        found.update({d["_id"]: d async for d in units.find(query, session=session)})
    return found


async def _by_id(
    units: AsyncCollection[Doc], ids: Iterable[str], session: AsyncClientSession | None
) -> dict[str, Doc]:
    return await _find_in(units, "_id", ids, session)


async def _relink(
    units: AsyncCollection[Doc],
    docs: dict[str, Doc],
    moved: list[str],
    session: AsyncClientSession | None,
) -> dict[str, Doc]:
    """After units gained a parent or a successor: grow the lineage of everything under
    them (the closure of `hangs_from`: lineages only grow), then recompute today's path of
    each of those units. `docs` holds the batch's units as they now stand (updated in
    place); returns the fields to write per unit, new units' included."""
    below = await _find_in(units, "lineage", moved, session)
    below.update(docs)
    hangs = {u: UnitHistory.from_doc(d).hangs_from() for u, d in below.items()}
    outside = await _by_id(units, {h for u in moved for h in hangs[u]} - set(below), session)
    lineage = {u: {u, *(d.get("lineage") or ())} for u, d in below.items()}
    for unit_id in moved:
        lineage[unit_id] |= hangs[unit_id]
        for h in hangs[unit_id] & set(outside):
            lineage[unit_id] |= set(outside[h].get("lineage") or [h])
    grown = True
    while grown:  # closure within what moved and what hangs under it
        grown = False
        for unit_id, found in lineage.items():
            for other in [o for o in found if o != unit_id and o in lineage]:
                if not lineage[other] <= found:
                    found |= lineage[other]
                    grown = True
    above_ids = set().union(*lineage.values()) - below.keys() - outside.keys()
    above = {**outside, **await _by_id(units, above_ids, session)}
    tree = OrgTree.from_docs([*above.values(), *below.values()])
    out: dict[str, Doc] = {}
    for unit_id, doc in below.items():
        fields: Doc = {}
        new_lineage = sorted(lineage[unit_id])
        if new_lineage != doc.get("lineage"):
            fields["lineage"] = new_lineage
        path = tree.path(unit_id)
        if path != doc.get("path"):
            fields["path"] = path
            fields["under"] = path[-2] if len(path) > 1 else None
        doc.update(fields)
        if fields:
            out[unit_id] = fields
    return out


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
