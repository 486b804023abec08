"""Publishes scheduled pieces when their time comes, on one replica at a time.

Every replica runs the loop; the shared MongoDB lease (`sotay_events.lease`,
the one the outbox relay uses) lets one of them work, so due pieces are not
loaded N times over. The lease is an economy, not the guarantee: publishing
is a command on the piece's stream, appended with its expected version, so
two replicas racing (a holder that paused past its lease) publish once, and
a withdrawal that came first wins.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase

from sotay_content.handlers import SCHEDULE
from sotay_events.lease import Lease

log = logging.getLogger(__name__)

LEASE_NAME = "content:scheduler"


class Scheduler:
    def __init__(
        self,
        db: AsyncDatabase[dict[str, Any]],
        publish_due: Callable[[str], Awaitable[bool]],
        clock: Callable[[], datetime],
        *,
        interval_seconds: float = 5.0,
        lease_timeout: float = 15.0,
        batch: int = 100,
    ) -> None:
        self.schedule = db[SCHEDULE]
        self.publish_due = publish_due
        self.clock = clock
        self.lease = Lease(db["leases"], LEASE_NAME, timeout=lease_timeout)
        self.interval = interval_seconds
        self.batch = batch
        self.published = 0

    async def create_indexes(self) -> None:
        await self.schedule.create_index([("publish_at", ASCENDING)])

    async def run_once(self) -> int:
        """Publish what is due now; returns how many this call published."""
        due = await (
            self.schedule.find({"publish_at": {"$lte": self.clock()}}, {"_id": 1})
            .sort("publish_at", ASCENDING)
            .limit(self.batch)
            .to_list()
        )
        count = 0
        for row in due:
            if await self.publish_due(row["_id"]):
                count += 1
        self.published += count
        return count

    async def run(self) -> None:
        try:
            while True:
                try:
                    if await self.lease.hold():
                        await self.run_once()
                except Exception:  # a MongoDB hiccup: the next round tries again
                    log.exception("scheduled publication round failed")
                await asyncio.sleep(self.interval)
        finally:
            try:
                await self.lease.release()
            except Exception:
                log.warning("could not release the scheduler lease", exc_info=True)
