"""The roll-up worker: per-branch counters folded up the current tree, in batches.

`LearningProjection` keeps counters per (campaign, branch) and marks the
campaign dirty; the roster marks branches whose headcount changed; a change
in the tree (a move, a merge) makes every running campaign and contest dirty.
Every `interval` seconds the worker recomputes the dirty ones: it loads the
campaign's subtree as the shared dated tree (`sotay_platform.tree`), its
branch counters and headcounts (a few documents per branch, never per
member), adds each branch into every unit of its roll-up path (a merged
branch counts in the unit it merged into) up to the campaign's unit, and
writes one row per unit (`results_units`) where something changed. Requests
read those rows. The figures follow today's tree: they are the live view.

Several replicas run the worker; one works at a time, under a lease in
MongoDB (`sotay_events.lease`, the relay's kind): no pod's clock decides who
holds it, and every write the worker makes is fenced, in one transaction with
a check that it still holds the lease, so a holder that paused past its lease
writes nothing stale. Nothing the worker keeps is the only copy of a fact:
results are recomputed from the counters, the counters from the events.

Cost: one recompute is linear in the branches of the campaign's subtree (about
10⁴ for a province), and each campaign is recomputed at most once per interval
however many members study meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from opentelemetry import trace
from pymongo import DeleteMany, ReplaceOne, UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from sotay_events.catalogue.org_tree import OrgLevel
from sotay_events.lease import Lease, LeaseLost
from sotay_learning.projections import (
    CAMPAIGN_COUNTERS,
    CAMPAIGN_COUNTS,
    CAMPAIGNS,
    CONTEST_COUNTERS,
    CONTEST_COUNTS,
    CONTESTS,
    DIRTY,
    DIRTY_BRANCHES,
    HEADCOUNT,
    RESULTS,
    TREE_CHANGES,
)
from sotay_platform.org_units import COLLECTION as ORG_UNITS
from sotay_platform.org_units import MERGED, OrgUnits

log = logging.getLogger(__name__)
tracer = trace.get_tracer("sotay_learning.rollup")
Doc = dict[str, Any]
MEMBER_LEVELS = {lvl.value for lvl in OrgLevel if lvl.holds_members}
LEASES = "leases"


class Rollup:
    def __init__(
        self, db: AsyncDatabase[Doc], interval: float = 5.0, lease_seconds: float = 30.0
    ) -> None:
        self.db = db
        self.interval = interval
        self.lease = Lease(db[LEASES], "rollup:learning", timeout=lease_seconds)
        self.tree = OrgUnits(db)
        self.skipped = 0
        self._tree_seq: int | None = None
        self.runs = 0
        self.last_run_at: datetime | None = None
        self.last_error: str | None = None

    async def run(self) -> None:
        try:
            while True:
                try:
                    await self.tick()
                    self.last_error = None
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # the store is away, the lease moved: next tick
                    self.last_error = repr(exc)
                    log.exception("roll-up failed, will retry")
                await asyncio.sleep(self.interval)
        finally:
            # A replica that stops hands over at once instead of after the lease's timeout.
            await asyncio.shield(self._release())

    async def _release(self) -> None:
        try:
            await self.lease.release()
        except Exception:
            log.warning("roll-up lease not released; it expires by itself", exc_info=True)

    async def tick(self) -> int:
        """Recompute what is dirty, unless another replica holds the lease; returns how many."""
        if not await self.lease.hold():
            self.skipped += 1
            return 0
        try:
            return await self._tick()
        except LeaseLost:
            self.skipped += 1
            return 0

    async def _tick(self) -> int:
        await self._mark_after_tree_change()
        await self._mark_after_headcount_change()
        done = 0
        async for mark in self.db[DIRTY].find({}).limit(500):
            collection = CAMPAIGNS if mark["kind"] == "campaign" else CONTESTS
            # A mark bumped while we worked stays, to be recomputed next time.
            await self.recompute(collection, mark["target_id"], mark)
            done += 1
        self.runs += 1
        self.last_run_at = datetime.now(UTC)
        return done

    async def _mark_many(self, marks: list[tuple[str, str]]) -> None:
        if not marks:
            return
        writes = [
            UpdateOne(
                {"_id": f"{kind}:{target}"},
                {"$set": {"kind": kind, "target_id": target}, "$inc": {"seq": 1}},
                upsert=True,
            )
            for kind, target in marks
        ]

        async def write(session: AsyncClientSession) -> None:
            await self.db[DIRTY].bulk_write(writes, session=session)

        await self.lease.fenced(write)

    async def _running(self, query: Doc) -> list[tuple[str, str]]:
        found: list[tuple[str, str]] = []
        for collection, kind in ((CAMPAIGNS, "campaign"), (CONTESTS, "contest")):
            async for doc in self.db[collection].find({"status": "open", **query}, {"_id": 1}):
                found.append((kind, doc["_id"]))
        return found

    async def _mark_after_tree_change(self) -> None:
        doc = await self.db[TREE_CHANGES].find_one({"_id": "tree"})
        seq = int(doc["seq"]) if doc else 0
        if seq != self._tree_seq:
            await self._mark_many(await self._running({}))
            self._tree_seq = seq

    async def _mark_after_headcount_change(self) -> None:
        marks = await self.db[DIRTY_BRANCHES].find({}).limit(5000).to_list()
        if not marks:
            return
        # Campaigns above each branch, and above what it merged into (rare: one by one).
        on_paths: set[str] = set()
        ids = [m["_id"] for m in marks]
        async for unit in self.db[ORG_UNITS].find({"_id": {"$in": ids}}, {"path": 1, "status": 1}):
            on_paths.update(unit.get("path") or [])
            if unit.get("status") == MERGED:
                carrier = await self.tree.resolve(unit["_id"])
                on_paths.update(carrier.path if carrier else [])
        running = await self._running({"unit_id": {"$in": sorted(on_paths)}})
        done = [DeleteMany({"_id": m["_id"], "seq": m["seq"]}) for m in marks]

        async def write(session: AsyncClientSession) -> None:
            if running:
                await self.db[DIRTY].bulk_write(
                    [
                        UpdateOne(
                            {"_id": f"{kind}:{target}"},
                            {"$set": {"kind": kind, "target_id": target}, "$inc": {"seq": 1}},
                            upsert=True,
                        )
                        for kind, target in running
                    ],
                    session=session,
                )
            await self.db[DIRTY_BRANCHES].bulk_write(done, session=session)

        await self.lease.fenced(write)

    async def recompute(self, collection: str, target_id: str, mark: Doc | None = None) -> int:
        with tracer.start_as_current_span(
            "rollup.recompute", attributes={"sotay.target_id": target_id, "sotay.kind": collection}
        ) as span:
            written = await self._recompute(collection, target_id, mark)
            span.set_attribute("sotay.rows_written", written)
            return written

    async def _recompute(self, collection: str, target_id: str, mark: Doc | None) -> int:
        target = await self.db[collection].find_one({"_id": target_id})
        rows: dict[str, Doc] = {}
        if target is not None:
            rows = await self._rows(collection, target_id, target["unit_id"])
        existing = {d["_id"]: d async for d in self.db[RESULTS].find({"target_id": target_id})}
        now = datetime.now(UTC)
        writes: list[Any] = []
        for row_id, row in rows.items():
            old = existing.get(row_id)
            if old is not None:
                old = {k: v for k, v in old.items() if k != "updated_at"}
            if old != row:
                writes.append(ReplaceOne({"_id": row_id}, row | {"updated_at": now}, upsert=True))
        gone = [i for i in existing if i not in rows]
        if gone:
            writes.append(DeleteMany({"_id": {"$in": gone}}))

        async def write(session: AsyncClientSession) -> None:
            if writes:
                await self.db[RESULTS].bulk_write(writes, session=session)
            if mark is not None:
                await self.db[DIRTY].delete_one(
                    {"_id": mark["_id"], "seq": mark["seq"]}, session=session
                )

        if writes or mark is not None:
            await self.lease.fenced(write)
        return len(writes)

    async def _rows(self, collection: str, target_id: str, unit_id: str) -> dict[str, Doc]:
        """One row per unit of the target's subtree, as the tree stands now."""
        campaign = collection == CAMPAIGNS
        counters = CAMPAIGN_COUNTERS if campaign else CONTEST_COUNTERS
        key = "campaign_id" if campaign else "contest_id"
        carrier = await self.tree.resolve(unit_id)  # a merged committee's successor carries on
        if carrier is None:
            return {}
        root = carrier.id
        tree = await self.tree.tree(root)
        units = tree.subtree(root)  # existing units, each followed by those merged into it
        below: dict[str, list[str]] = {}
        for unit in units:
            path = tree.rollup_path(unit)
            if root in path:
                below[unit] = path[path.index(root) :]
        totals: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))

        def add(unit_id: str, numbers: Doc) -> None:
            for unit in below.get(unit_id, ()):
                for name, value in numbers.items():
                    totals[unit][name] += value

        branch_ids = [u for u in below if (h := tree.get(u)) and h.level in MEMBER_LEVELS]
        async for head in self.db[HEADCOUNT].find({"_id": {"$in": branch_ids}}):
            add(head["_id"], {"required": head.get("eligible", 0)})
        count_collection = CAMPAIGN_COUNTS if campaign else CONTEST_COUNTS
        async for row in self.db[count_collection].find({key: target_id}):
            add(row["branch_id"], {c: row.get(c, 0) for c in counters})

        rows: dict[str, Doc] = {}
        kind = "campaign" if campaign else "contest"
        for unit, path in below.items():
            history = tree.get(unit)
            if history is None or not tree.exists(unit) or path[-1] != unit:
                continue  # merged: its numbers are in its successor's row
            rows[f"{target_id}:{unit}"] = _row(
                target_id,
                kind,
                unit,
                history.name_at(),
                history.level,
                path,
                totals.get(unit, {}),
                counters,
            )
        return rows


def _row(
    target_id: str,
    kind: str,
    unit_id: str,
    name: str,
    level: str,
    path: list[str],
    numbers: dict[str, float],
    counters: tuple[str, ...],
) -> Doc:
    values: dict[str, Any] = {"required": int(numbers.get("required", 0))}
    for name in counters:
        value = numbers.get(name, 0)
        values[name] = round(value, 4) if name == "score_sum" else int(value)
    scored = values.get("scored", 0)
    values["average_score"] = round(values["score_sum"] / scored, 2) if scored else None
    required = values["required"]
    base = "studied" if kind == "campaign" else "participants"
    values["rate"] = round(100 * values[base] / required, 2) if required else None
    return {
        "_id": f"{target_id}:{unit_id}",
        "kind": kind,
        "target_id": target_id,
        "unit_id": unit_id,
        "name": name,
        "level": level,
        "status": "active",
        "path": path,
        "parent_id": path[-2] if len(path) > 1 else None,
        "depth": len(path) - 1,
        **values,
    }
