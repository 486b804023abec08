"""The usage stream: aggregate figures per unit and period for the central office.

Only counts and rates travel on it (`UsageFiguresPublished`): no member id,
name, feedback text or anything else that points at a person. Every
publication is an event of the unit's own stream (`UsageFigures-<unit>`,
so Kafka keys it by unit id and keeps one unit's figures in order), committed
through the unit of work and delivered by the outbox relay like every other
fact: a broker outage delays it, never loses it. Figures are published on a
schedule for the units of the configured levels, on request, and with each
monthly report (in the report's own commit).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase
from redis.asyncio import Redis

from sotay_events import Aggregate, CommandContext, DomainEvent, EventStore
from sotay_events.catalogue.reporting import (
    MonthlyReportIssued,
    UsageFigures,
    UsageFiguresPublished,
)
from sotay_events.uow import UnitOfWork, retry_on_conflict
from sotay_platform.org_units import COLLECTION as ORG_UNITS
from sotay_reporting.figures import Doc
from sotay_reporting.queries import Rollup, UsageQueries

log = logging.getLogger(__name__)
ACTOR = "reporting"
LOCK = "sotay:reporting:usage-stream"
HEADS = "usage_stream_heads"  # unit -> the version its stream is at: no stream is reloaded
CHUNK = 100


class UsageStream(Aggregate):
    """One unit's publications; nothing to decide, so it is never rebuilt from its events."""

    aggregate_type = UsageFiguresPublished.aggregate_type

    def apply(self, event: DomainEvent) -> None:
        pass


async def stage(uow: UnitOfWork, store: EventStore, events: list[UsageFiguresPublished]) -> None:
    """Add publications to a unit of work, each at the head of its unit's stream."""
    heads = await store.private_records(HEADS, [e.unit_id for e in events])
    streams: dict[str, UsageStream] = {}
    for event in events:
        stream = streams.get(event.unit_id)
        if stream is None:
            stream = UsageStream(event.unit_id)
            stream.version = int((heads.get(event.unit_id) or {}).get("v", 0))
            streams[event.unit_id] = stream
            uow.add(stream, CommandContext(actor=ACTOR, org_path=tuple(event.path)))
        stream.record(event)
    for unit_id, stream in streams.items():
        uow.private(HEADS, {"_id": unit_id, "v": stream.version})


async def stage_report(
    uow: UnitOfWork, store: EventStore, report: MonthlyReportIssued, path: list[str]
) -> None:
    """An issued report's unit and its per-unit table, as frozen, in the report's commit."""
    events = [
        UsageFiguresPublished(
            unit_id=report.unit_id,
            unit_name=report.unit_name,
            level=report.level,
            path=path,
            period=report.month,
            period_kind="monthly_report",
            as_of=report.as_of,
            figures=report.figures,
        )
    ]
    events += [
        UsageFiguresPublished(
            unit_id=row.unit_id,
            unit_name=row.unit_name,
            level=row.level,
            path=[*path, row.unit_id],
            period=report.month,
            period_kind="monthly_report",
            as_of=report.as_of,
            figures=row.figures,
        )
        for row in report.rows
    ]
    await stage(uow, store, events)


def from_rollup(rollup: Rollup) -> UsageFiguresPublished:
    row = rollup.total
    return UsageFiguresPublished(
        unit_id=row.unit_id,
        unit_name=row.name,
        level=row.level,
        path=[u for u, _ in rollup.chain] or [row.unit_id],
        period=rollup.view.month,
        period_kind="month_to_date",
        as_of=rollup.computed_at,
        figures=UsageFigures(**row.figures()),
    )


class UsagePublisher:
    def __init__(
        self,
        store: EventStore,
        db: AsyncDatabase[Doc],
        queries: UsageQueries,
        levels: list[str],
    ) -> None:
        self.store = store
        self.db = db
        self.queries = queries
        self.levels = levels
        self.published_total = 0
        self.last_published_at: datetime | None = None
        self.last_error: str | None = None

    async def health(self) -> dict[str, Any]:
        """Readiness never depends on it: a failed round is retried at the next one."""
        return {
            "ok": True,
            "published": self.published_total,
            "last_published_at": self.last_published_at.isoformat()
            if self.last_published_at
            else None,
            "last_error": self.last_error,
        }

    async def units(self, under: str | None = None) -> list[Doc]:
        query: dict[str, Any] = {"status": "active", "level": {"$in": self.levels}}
        if under:
            query["path"] = under
        return await self.db[ORG_UNITS].find(query, {"_id": 1}).sort("_id", 1).to_list()

    @retry_on_conflict(attempts=3)
    async def _commit(self, events: list[UsageFiguresPublished]) -> None:
        uow = self.store.unit_of_work()
        await stage(uow, self.store, events)
        await uow.commit(CommandContext(actor=ACTOR))

    async def publish_current(self, under: str | None = None) -> int:
        """Month-to-date figures of every unit of the configured levels (under `under`)."""
        view = self.queries.view()
        units = [u["_id"] for u in await self.units(under)]
        if under and under not in units:
            units.insert(0, under)
        for start in range(0, len(units), CHUNK):
            events = [
                from_rollup(await self.queries.rollup(u, view))
                for u in units[start : start + CHUNK]
            ]
            await self._commit(events)
        self.published_total += len(units)
        self.last_published_at = datetime.now(UTC)
        return len(units)

    async def run(self, interval: float, redis: Redis | None = None) -> None:
        """Publish every `interval` seconds; with several replicas, one of them (a Redis lock:
        losing it only means a round published twice or skipped, never a fact lost)."""
        while True:
            await asyncio.sleep(interval)
            try:
                if redis is not None and not await redis.set(
                    LOCK, "1", nx=True, ex=max(1, int(interval * 0.9))
                ):
                    continue
                await self.publish_current()
                self.last_error = None
            except Exception as exc:
                self.last_error = type(exc).__name__
                log.exception("usage stream publication failed; next try in %ss", interval)
