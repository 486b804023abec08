"""Identity's view of the org tree: its own copy, projected from org-tree's events.

Merges are followed by the shared tree module (`sotay_platform.tree`,
`sotay_platform.org_units`), never here: a unit's scope path is its
successor's (through every merge), so the successor's secretary already
covers a merged branch's members while they are being transferred (see
projections.py), and a unit's branches include every branch merged into one
of them, however deep.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from typing import Any, Protocol

from sotay_events.catalogue.org_tree import OrgLevel, UnitCreated, UnitMerged
from sotay_platform.org_units import ACTIVE, OrgUnits
from sotay_platform.tree import OrgTree

Doc = dict[str, Any]
MEMBER_LEVELS = frozenset(level.value for level in OrgLevel if level.holds_members)


class Tree(Protocol):
    async def get(self, unit_id: str) -> Doc | None: ...
    async def scope_path(self, unit_id: str) -> list[str]: ...
    async def branches_under(self, unit_id: str) -> list[str]: ...


class MongoTree:
    def __init__(self, units: OrgUnits) -> None:
        self.units = units

    async def get(self, unit_id: str) -> Doc | None:
        return await self.units.get(unit_id)

    async def scope_path(self, unit_id: str) -> list[str]:
        """Root .. the unit that carries `unit_id` on today; a dissolved unit keeps its own."""
        resolved = await self.units.resolve(unit_id)
        if resolved is not None:
            return resolved.path
        return await self.units.path(unit_id)

    async def branches_under(self, unit_id: str) -> list[str]:
        """Every unit holding members in the subtree, closed ones too (members may linger)."""
        docs = await self.units.subtree(unit_id, include_closed=True)
        found = [d["_id"] for d in docs if d.get("level") in MEMBER_LEVELS]
        return sorted(await self.units.with_merged(found)) if found else []


class MemoryTree:
    """The same answers from the shared pure model, for unit tests."""

    def __init__(self) -> None:
        self.tree = OrgTree()
        self._versions: dict[str, int] = defaultdict(int)

    def _apply(self, event: UnitCreated | UnitMerged) -> None:
        self._versions[event.unit_id] += 1
        self.tree.apply(event, datetime.now(UTC), self._versions[event.unit_id])

    def add(
        self, unit_id: str, level: OrgLevel, parent_id: str | None = None, name: str = ""
    ) -> None:
        self._apply(
            UnitCreated(unit_id=unit_id, name=name or unit_id, level=level, parent_id=parent_id)
        )

    def merge(self, unit_id: str, into: str) -> None:
        self._apply(UnitMerged(unit_id=unit_id, into_unit_id=into))

    async def get(self, unit_id: str) -> Doc | None:
        unit = self.tree.get(unit_id)
        if unit is None:
            return None
        return {
            "_id": unit_id,
            "name": unit.name_at(),
            "level": unit.level,
            "status": unit.status(),
            "merged_into": unit.merged_into,
            "path": self.tree.path(unit_id),
        }

    async def scope_path(self, unit_id: str) -> list[str]:
        carrier = self.tree.successor(unit_id)
        return self.tree.path(carrier if self.tree.exists(carrier) else unit_id)

    async def branches_under(self, unit_id: str) -> list[str]:
        found = [
            u.id
            for u in self.tree.units.values()
            if u.level in MEMBER_LEVELS and unit_id in self.tree.path(u.id)
        ]
        merged = {m for b in found for m in self.tree.merged_into_it(b)}
        return sorted(set(found) | merged)


def holds_members(doc: Doc) -> bool:
    return OrgLevel(doc["level"]).holds_members


def is_active(doc: Doc) -> bool:
    return doc.get("status") == ACTIVE


__all__ = ["MemoryTree", "MongoTree", "Tree"]
