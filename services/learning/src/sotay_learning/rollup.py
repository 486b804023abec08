"""The roll-up worker: per-branch counters folded up the current tree, in batches.

`LearningProjection` keeps counters per (campaign, branch) and marks the
campaign dirty; the roster marks branches whose headcount changed; a change
in the tree (a move, a merge) makes every running campaign and contest dirty.
Every `interval` seconds the worker recomputes the dirty ones: it reads the
campaign's subtree from learning's copy of the tree, its branch counters and
headcounts (a few documents per branch, never per member), adds each branch
into every unit on its path up to the campaign's unit, and writes one row per
unit (`results_units`) where something changed. Requests read those rows.

Cost: one recompute is linear in the branches of the campaign's subtree (about
10⁴ for a province), and each campaign is recomputed at most once per interval
however many members study meanwhile. A merged branch's members count in the
unit it merged into; a unit moved elsewhere takes its numbers with it.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from opentelemetry import trace
from pymongo import DeleteMany, ReplaceOne
from pymongo.asynchronous.database import AsyncDatabase
from redis.asyncio import Redis

from sotay_events.catalogue.org_tree import OrgLevel
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
)
from sotay_platform.org_units import COLLECTION as ORG_UNITS
from sotay_platform.org_units import DISSOLVED, MERGED

log = logging.getLogger(__name__)
tracer = trace.get_tracer("sotay_learning.rollup")
Doc = dict[str, Any]
MEMBER_LEVELS = {lvl.value for lvl in OrgLevel if lvl.holds_members}


# Deletes the lock only if it is still ours (it may have expired and been taken since).
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


class Rollup:
    def __init__(
        self, db: AsyncDatabase[Doc], interval: float = 5.0, redis: Redis | None = None
    ) -> None:
        self.db = db
        self.interval = interval
        # Every replica runs a worker; a lock in Redis lets one of them work at a time.
        self.redis = redis
        self.lock_key = f"sotay:learning:rollup:{db.name}"
        self.skipped = 0
        self._tree_events: int | None = None
        self.runs = 0
        self.last_run_at: datetime | None = None
        self.last_error: str | None = None

    async def run(self) -> None:
        while True:
            try:
                await self.tick()
                self.last_error = None
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the store is away: try again at the next tick
                self.last_error = repr(exc)
                log.exception("roll-up failed, will retry")
            await asyncio.sleep(self.interval)

    async def tick(self) -> int:
        """Recompute what is dirty, unless another replica is at it; returns how many."""
        if self.redis is None:
            return await self._tick()
        token = uuid.uuid4().hex
        ttl_ms = int(max(self.interval * 10, 60) * 1000)
        if not await self.redis.set(self.lock_key, token, nx=True, px=ttl_ms):
            self.skipped += 1
            return 0
        try:
            return await self._tick()
        finally:
            await self.redis.eval(_RELEASE, 1, self.lock_key, token)

    async def _tick(self) -> int:
        await self._mark_after_tree_change()
        await self._mark_after_headcount_change()
        done = 0
        async for mark in self.db[DIRTY].find({}).limit(500):
            if mark["kind"] == "campaign":
                await self.recompute(CAMPAIGNS, mark["target_id"])
            else:
                await self.recompute(CONTESTS, mark["target_id"])
            # A mark bumped while we worked stays, to be recomputed next time.
            await self.db[DIRTY].delete_one({"_id": mark["_id"], "seq": mark["seq"]})
            done += 1
        self.runs += 1
        self.last_run_at = datetime.now(UTC)
        return done

    async def _mark_all_running(self) -> None:
        for collection, kind in ((CAMPAIGNS, "campaign"), (CONTESTS, "contest")):
            async for doc in self.db[collection].find({"status": "open"}, {"_id": 1}):
                await self._mark(kind, doc["_id"])

    async def _mark(self, kind: str, target: str) -> None:
        await self.db[DIRTY].update_one(
            {"_id": f"{kind}:{target}"},
            {"$set": {"kind": kind, "target_id": target}, "$inc": {"seq": 1}},
            upsert=True,
        )

    async def _mark_after_tree_change(self) -> None:
        applied = await self.db[f"tracking.{ORG_UNITS}"].count_documents({})
        if applied != self._tree_events:
            self._tree_events = applied
            await self._mark_all_running()

    async def _mark_after_headcount_change(self) -> None:
        marks = await self.db[DIRTY_BRANCHES].find({}).limit(5000).to_list()
        if not marks:
            return
        ids = [m["_id"] for m in marks]
        on_paths: set[str] = set()
        async for unit in self.db[ORG_UNITS].find({"_id": {"$in": ids}}, {"path": 1}):
            on_paths.update(unit.get("path") or [])
        for collection, kind in ((CAMPAIGNS, "campaign"), (CONTESTS, "contest")):
            async for doc in self.db[collection].find(
                {"status": "open", "unit_id": {"$in": sorted(on_paths)}}, {"_id": 1}
            ):
                await self._mark(kind, doc["_id"])
        for mark in marks:
            await self.db[DIRTY_BRANCHES].delete_one({"_id": mark["_id"], "seq": mark["seq"]})

    async def _subtree(self, root_id: str) -> tuple[str | None, dict[str, Doc], dict[str, str]]:
        """The carrying-on root, the units below it, and where each unit's numbers go."""
        units = self.db[ORG_UNITS]
        root = await units.find_one({"_id": root_id})
        seen: set[str] = set()
        while root and root.get("status") == MERGED and root.get("merged_into"):
            if root["_id"] in seen:
                return None, {}, {}
            seen.add(root["_id"])
            root = await units.find_one({"_id": root["merged_into"]})
        if root is None:
            return None, {}, {}
        docs = {d["_id"]: d async for d in units.find({"path": root["_id"]})}
        frontier = list(docs)
        while frontier:  # units merged in from outside the subtree
            found = [
                d
                async for d in units.find(
                    {"merged_into": {"$in": frontier}, "_id": {"$nin": list(docs)}}
                )
            ]
            docs.update({d["_id"]: d for d in found})
            frontier = [d["_id"] for d in found]
        carried: dict[str, str] = {}
        for unit_id in docs:
            current, hops = unit_id, 0
            while docs.get(current, {}).get("status") == MERGED and hops < 50:
                nxt = docs[current].get("merged_into")
                if not nxt or nxt not in docs:
                    break
                current, hops = nxt, hops + 1
            carried[unit_id] = current
        return root["_id"], docs, carried

    async def recompute(self, collection: str, target_id: str) -> int:
        with tracer.start_as_current_span(
            "rollup.recompute", attributes={"sotay.target_id": target_id, "sotay.kind": collection}
        ) as span:
            written = await self._recompute(collection, target_id)
            span.set_attribute("sotay.rows_written", written)
            return written

    async def _recompute(self, collection: str, target_id: str) -> int:
        target = await self.db[collection].find_one({"_id": target_id})
        if target is None:
            return 0
        campaign = collection == CAMPAIGNS
        counters = CAMPAIGN_COUNTERS if campaign else CONTEST_COUNTERS
        key = "campaign_id" if campaign else "contest_id"
        root, docs, carried = await self._subtree(target["unit_id"])
        totals: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))

        def add(unit_id: str, numbers: Doc) -> None:
            final = carried.get(unit_id)
            if final is None or docs[final].get("status") == MERGED:
                return
            path = docs[final].get("path") or []
            if root not in path:
                return
            for unit in path[path.index(root) :]:
                for name, value in numbers.items():
                    totals[unit][name] += value

        if root is not None:
            branch_ids = [u for u, d in docs.items() if d.get("level") in MEMBER_LEVELS]
            async for head in self.db[HEADCOUNT].find({"_id": {"$in": branch_ids}}):
                add(head["_id"], {"required": head.get("eligible", 0)})
            count_collection = CAMPAIGN_COUNTS if campaign else CONTEST_COUNTS
            async for row in self.db[count_collection].find({key: target_id}):
                add(row["branch_id"], {c: row.get(c, 0) for c in counters})

        rows: dict[str, Doc] = {}
        for unit_id, doc in docs.items():
            if doc.get("status") == MERGED or root is None:
                continue
            numbers = totals.get(unit_id, {})
            if doc.get("status") == DISSOLVED and not any(numbers.values()):
                continue
            path = doc.get("path") or []
            if root not in path:
                continue
            below = path[path.index(root) :]
            rows[f"{target_id}:{unit_id}"] = _row(
                target_id, "campaign" if campaign else "contest", doc, below, numbers, counters
            )
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
        if writes:
            await self.db[RESULTS].bulk_write(writes)
        return len(writes)


def _row(
    target_id: str,
    kind: str,
    unit: Doc,
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
        "_id": f"{target_id}:{unit['_id']}",
        "kind": kind,
        "target_id": target_id,
        "unit_id": unit["_id"],
        "name": unit.get("name", ""),
        "level": unit.get("level"),
        "status": unit.get("status"),
        "path": path,
        "parent_id": path[-2] if len(path) > 1 else None,
        "depth": len(path) - 1,
        **values,
    }
