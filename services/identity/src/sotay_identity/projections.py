"""Read models fed by events.

- `OrgTreeFollower`: identity's own copy of the org tree (the shared
  `OrgUnitsProjection`), and, in the same transaction, the members of a
  merged branch transferred to the unit it merged into. Replays are harmless:
  a member already moved is not in the merged branch any more.
- The `members` read model is identity's own and is written with the events
  in the command's transaction (storage.py); `MongoStorage.rebuild_members`
  replays it from the event store.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from sotay_events import EventEnvelope
from sotay_events.catalogue.org_tree import UnitMerged
from sotay_events.consumer import Applied
from sotay_platform.org_units import COLLECTION, OrgUnitsProjection

MergeHandler = Callable[[EventEnvelope, UnitMerged, AsyncClientSession], Awaitable[int]]


class OrgTreeFollower:
    name = "org_units"
    collections = (COLLECTION,)

    def __init__(self, on_merge: MergeHandler) -> None:
        self.units = OrgUnitsProjection()
        self.on_merge = on_merge

    async def apply_batch(
        self, db: AsyncDatabase[dict[str, Any]], items: list[Applied], session: AsyncClientSession
    ) -> None:
        await self.units.apply_batch(db, items, session)
        for envelope, event in items:
            if isinstance(event, UnitMerged):
                await self.on_merge(envelope, event, session)
