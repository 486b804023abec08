"""A lease in MongoDB that no pod's clock decides: one holder at a time, fenced by an epoch.

The holder proves it is alive by bumping `beat` (every batch, every idle
turn). A standby takes over only after it has watched the same
(epoch, beat) for `timeout` seconds of its own monotonic clock: durations,
never wall-clock times, so pods whose clocks disagree still agree on who
holds it. Taking over is a compare-and-set on (epoch, beat) that increments
the epoch; every write the holder makes under the lease names its epoch, so
a holder that paused past its lease (a long GC, a frozen VM) finds it
lost at its next step and stands down instead of writing.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from pymongo import ReturnDocument
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from sotay_events.transaction import run_in_transaction


class LeaseLost(Exception):
    """Another holder took the lease over: this one writes nothing more under it."""


class Lease:
    def __init__(
        self,
        collection: AsyncCollection[dict[str, Any]],
        name: str,
        *,
        holder: str | None = None,
        timeout: float = 5.0,
    ) -> None:
        self.collection = collection
        self.name = name
        self.holder = holder or uuid.uuid4().hex
        self.timeout = timeout
        self.epoch: int | None = None  # set while held
        self._seen: tuple[int, int] | None = None
        self._seen_since = 0.0

    @property
    def held(self) -> bool:
        return self.epoch is not None

    async def hold(self) -> bool:
        """Renew the lease if held, else take it if free or abandoned. True while held."""
        if self.epoch is not None:
            if await self._bump({}) is not None:
                return True
            self.epoch = None
        doc = await self.collection.find_one({"_id": self.name})
        if doc is None:
            try:
                await self.collection.insert_one(
                    {"_id": self.name, "holder": self.holder, "epoch": 1, "beat": 0, "seq": 0}
                )
            except DuplicateKeyError:
                return False
            self.epoch = 1
            return True
        observed = (doc["epoch"], doc["beat"])
        now = time.monotonic()
        if observed != self._seen:
            self._seen, self._seen_since = observed, now
        abandoned = doc.get("holder") is None or now - self._seen_since >= self.timeout
        if not abandoned:
            return False
        taken = await self.collection.find_one_and_update(
            {"_id": self.name, "epoch": doc["epoch"], "beat": doc["beat"]},
            {"$set": {"holder": self.holder, "beat": 0}, "$inc": {"epoch": 1}},
            return_document=ReturnDocument.AFTER,
        )
        if taken is None:
            return False
        self.epoch = taken["epoch"]
        return True

    async def next_sequence(self) -> int | None:
        """The next number in the lease's sequence, taken under the lease; None if it was lost."""
        doc = await self._bump({"seq": 1})
        if doc is None:
            self.epoch = None
            return None
        return int(doc["seq"])

    async def state(self) -> dict[str, Any]:
        return await self.collection.find_one({"_id": self.name}) or {}

    async def set_fields(self, fields: dict[str, Any]) -> bool:
        """Write beside the lease, only while still holding it."""
        if self.epoch is None:
            return False
        result = await self.collection.update_one(
            {"_id": self.name, "holder": self.holder, "epoch": self.epoch}, {"$set": fields}
        )
        return result.matched_count == 1

    async def fenced(self, write: Callable[[AsyncClientSession], Awaitable[None]]) -> None:
        """Run `write(session)` in one transaction with the proof that the lease is still held.

        The beat is bumped inside the transaction, so a holder that lost the
        lease meanwhile writes nothing at all and raises `LeaseLost`.
        """

        async def under_lease(session: AsyncClientSession) -> None:
            held = await self.collection.update_one(
                {"_id": self.name, "holder": self.holder, "epoch": self.epoch},
                {"$inc": {"beat": 1}},
                session=session,
            )
            if self.epoch is None or held.matched_count != 1:
                raise LeaseLost
            await write(session)

        try:
            await run_in_transaction(self.collection.database.client, under_lease)
        except LeaseLost:
            self.epoch = None
            raise

    async def release(self) -> None:
        if self.epoch is not None:
            await self.collection.update_one(
                {"_id": self.name, "holder": self.holder, "epoch": self.epoch},
                {"$set": {"holder": None}},
            )
            self.epoch = None

    async def _bump(self, inc: dict[str, int]) -> dict[str, Any] | None:
        return await self.collection.find_one_and_update(
            {"_id": self.name, "holder": self.holder, "epoch": self.epoch},
            {"$inc": {"beat": 1, **inc}},
            return_document=ReturnDocument.AFTER,
        )
