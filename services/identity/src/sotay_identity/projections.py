"""Read models fed by events.

- `OrgUnitsProjection` (shared, `sotay_platform.org_units`): identity's own copy
  of the org tree.
- `MergeFollower`: the members of a merged branch transferred to the unit that
  carries it on, each through the unit of work (a command of its own, actor
  `system:org-tree-merge`, caused by the merge event). It keeps no state: a
  redelivery or a replay finds the members moved already and changes nothing.
- The `members` read model is identity's own and is written with the events
  in each command's commit (storage.py); `MongoStorage.rebuild_members`
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

MergeHandler = Callable[[EventEnvelope, UnitMerged], Awaitable[int]]


class MergeFollower:
    name = "merge_transfers"
    collections: tuple[str, ...] = ()
    event_types = frozenset({UnitMerged.event_type})

    def __init__(self, on_merge: MergeHandler) -> None:
        self.on_merge = on_merge

    async def create_indexes(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        return None

    async def apply_batch(
        self, db: AsyncDatabase[dict[str, Any]], items: list[Applied], session: AsyncClientSession
    ) -> None:
        # The transfers commit through their own unit of work, not the runner's session:
        # they are commands with events of their own, safe to run again.
        for envelope, event in items:
            if isinstance(event, UnitMerged):
                await self.on_merge(envelope, event)
