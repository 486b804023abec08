"""Which targets a caller sees, read from the service's own copy of the tree.

A piece targets one unit; its audience is that unit's subtree. So a member
sees what targets their branch or any unit above it, as the tree stands now:
after a move the new ancestors count, after a merge the successor's; and what
targeted a unit since merged into one of those ancestors still reaches the
members who now hang below it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from sotay_platform.org_units import COLLECTION, MERGED

Doc = dict[str, Any]

MAX_MERGE_DEPTH = 10


class Audience:
    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self.units = db[COLLECTION]

    async def current(self, unit_id: str) -> Doc | None:
        """The unit, or the unit it was merged into (followed to the end)."""
        seen: set[str] = set()
        doc = await self.units.find_one({"_id": unit_id})
        while (
            doc
            and doc.get("status") == MERGED
            and doc.get("merged_into")
            and doc["_id"] not in seen
        ):
            seen.add(doc["_id"])
            doc = await self.units.find_one({"_id": doc["merged_into"]})
        return doc

    async def path(self, unit_id: str) -> list[str]:
        """Root .. unit as the tree stands now; just the unit while the tree has not heard of it."""
        doc = await self.current(unit_id)
        return list(doc.get("path") or [doc["_id"]]) if doc else [unit_id]

    async def above(self, unit_ids: Iterable[str]) -> list[str]:
        """Every target whose audience includes one of `unit_ids`: their paths and what merged into them."""
        targets: dict[str, None] = {}
        for unit_id in dict.fromkeys(unit_ids):
            targets.setdefault(unit_id, None)
            for ancestor in await self.path(unit_id):
                targets.setdefault(ancestor, None)
        frontier = list(targets)
        for _ in range(MAX_MERGE_DEPTH):
            merged = [
                d["_id"]
                async for d in self.units.find(
                    {"merged_into": {"$in": frontier}, "status": MERGED}, {"_id": 1}
                )
                if d["_id"] not in targets
            ]
            if not merged:
                break
            for unit_id in merged:
                targets.setdefault(unit_id, None)
            frontier = merged
        return list(targets)
