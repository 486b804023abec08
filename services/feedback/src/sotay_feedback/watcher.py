"""The deadline watcher: reminders before a deadline, escalation when it passes.

Every replica runs one; a MongoDB lease (`sotay_events.lease.Lease`) lets one
of them work at a time. Even two at once would do no harm: each command
loads the submission and decides on its stream (a reminder once per hop, an
escalation only while overdue), and a concurrent commit conflicts and is
retried on fresh state. The time is the service's clock, passed in.

What is due is read from `DUE`, the rows every command rewrites in its own
transaction: the watcher never depends on Kafka to know a deadline.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase

from sotay_events.lease import Lease
from sotay_feedback.handlers import DUE, FeedbackService

log = logging.getLogger(__name__)


class DeadlineWatcher:
    def __init__(
        self,
        service: FeedbackService,
        db: AsyncDatabase[dict[str, Any]],
        *,
        interval: float = 30.0,
        batch: int = 200,
        lease_timeout: float = 60.0,
    ) -> None:
        self.service = service
        self.due = db[DUE]
        self.lease = Lease(db["leases"], "feedback-deadlines", timeout=lease_timeout)
        self.interval = interval
        self.batch = batch
        self.runs = 0
        self.last_run_at: datetime | None = None
        self.last_error: str | None = None
        self.reminded = 0
        self.escalated = 0

    async def create_indexes(self) -> None:
        await self.due.create_index([("stuck", ASCENDING), ("deadline", ASCENDING)])
        await self.due.create_index([("reminded", ASCENDING), ("remind_at", ASCENDING)])

    async def run(self) -> None:
        try:
            while True:
                try:
                    if await self.lease.hold():
                        await self.tick()
                    self.last_error = None
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # the store is away: try again next time
                    self.last_error = repr(exc)
                    log.exception("deadline watcher failed, will retry")
                await asyncio.sleep(self.interval)
        finally:
            try:
                await self.lease.release()
            except Exception:
                log.warning("could not release the deadline watcher's lease")

    async def tick(self) -> tuple[int, int]:
        """Remind and escalate what is due now; returns (reminded, escalated)."""
        now = self.service.clock()
        reminded = escalated = 0
        to_remind = self.due.find(
            {"reminded": False, "remind_at": {"$lte": now}, "deadline": {"$gt": now}}, {"_id": 1}
        ).sort("remind_at", ASCENDING)
        for row in await to_remind.limit(self.batch).to_list():
            reminded += await self._each(self.service.remind, row["_id"])
        overdue = self.due.find({"stuck": False, "deadline": {"$lte": now}}, {"_id": 1}).sort(
            "deadline", ASCENDING
        )
        for row in await overdue.limit(self.batch).to_list():
            escalated += await self._each(self.service.escalate_overdue, row["_id"])
        self.runs += 1
        self.last_run_at = now
        self.reminded += reminded
        self.escalated += escalated
        return reminded, escalated

    async def _each(self, command: Any, feedback_id: str) -> int:
        try:
            return 1 if await command(feedback_id) else 0
        except Exception:  # one bad submission must not stop the others
            log.exception("deadline command failed for submission %s", feedback_id)
            return 0
