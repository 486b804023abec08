"""Identity's view of the org tree: its own copy, projected from org-tree's events.

Scope checks use a unit's path (root .. unit). A branch that was merged
answers with its successor's path, so the successor's secretary already
covers its members while they are being transferred (see projections.py).
"""

from __future__ import annotations

from typing import Any, Protocol

from sotay_events.catalogue.org_tree import OrgLevel
from sotay_platform.org_units import ACTIVE, MERGED, OrgUnits

Doc = dict[str, Any]
MEMBER_LEVELS = [level.value for level in OrgLevel if level.holds_members]


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
        doc = await self.units.get(unit_id)
        for _ in range(20):
            if doc is None or doc.get("status") != MERGED or not doc.get("merged_into"):
                break
            doc = await self.units.get(doc["merged_into"])
        return list(doc.get("path") or [doc["_id"]]) if doc else []

    async def branches_under(self, unit_id: str) -> list[str]:
        """Every unit holding members in the subtree, closed ones too (members may linger)."""
        found = [
            d["_id"]
            async for d in self.units.units.find(
                {"path": unit_id, "level": {"$in": MEMBER_LEVELS}}, {"_id": 1}
            )
        ]
        merged = (
            [
                d["_id"]
                async for d in self.units.units.find(
                    {"merged_into": {"$in": found}, "level": {"$in": MEMBER_LEVELS}}, {"_id": 1}
                )
            ]
            if found
            else []
        )
        return sorted(set(found) | set(merged))


class MemoryTree:
    """A tree in a dict, for unit tests."""

    def __init__(self) -> None:
        self.docs: dict[str, Doc] = {}

    def add(
        self, unit_id: str, level: OrgLevel, parent_id: str | None = None, name: str = ""
    ) -> None:
        parent_path = self.docs[parent_id]["path"] if parent_id else []
        self.docs[unit_id] = {
            "_id": unit_id,
            "name": name or unit_id,
            "level": level.value,
            "parent_id": parent_id,
            "status": ACTIVE,
            "merged_into": None,
            "path": [*parent_path, unit_id],
        }

    def merge(self, unit_id: str, into: str) -> None:
        self.docs[unit_id].update(status=MERGED, merged_into=into)

    async def get(self, unit_id: str) -> Doc | None:
        return self.docs.get(unit_id)

    async def scope_path(self, unit_id: str) -> list[str]:
        doc = self.docs.get(unit_id)
        while doc and doc["status"] == MERGED and doc["merged_into"]:
            doc = self.docs.get(doc["merged_into"])
        return list(doc["path"]) if doc else []

    async def branches_under(self, unit_id: str) -> list[str]:
        found = {
            d["_id"]
            for d in self.docs.values()
            if unit_id in d["path"] and d["level"] in MEMBER_LEVELS
        }
        found |= {d["_id"] for d in self.docs.values() if d["merged_into"] in found}
        return sorted(found)


def holds_members(doc: Doc) -> bool:
    return OrgLevel(doc["level"]).holds_members


def is_active(doc: Doc) -> bool:
    return doc.get("status") == ACTIVE


__all__ = ["MemoryTree", "MongoTree", "Tree"]
