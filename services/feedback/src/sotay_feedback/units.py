"""The tree as feedback sees it: its own copy (`sotay_platform.org_units`), as it stands now.

A submission records unit ids; when a unit moves, every later decision uses
its new path, and when it merges, what it held is held by its successor
(queues and the Q&A include the units merged into them).
"""

from __future__ import annotations

from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from sotay_feedback.domain import Unit
from sotay_platform.org_units import OrgUnits


class UnitDirectory:
    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self.units = OrgUnits(db)

    async def resolve(self, unit_id: str) -> Unit | None:
        """The unit carrying on `unit_id` now (itself, or what it merged into), if it exists."""
        found = await self.units.resolve(unit_id)
        if found is None:
            return None
        return Unit(found.id, tuple(found.path), found.level, tuple(found.absorbed))
