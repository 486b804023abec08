"""The usage stream: aggregate figures per unit and period for the central office.

Only counts and rates travel on it (`UsageFiguresPublished`), keyed by unit id:
no member id, name or anything else that points at a person. Figures are
published on a schedule for the units of the configured levels, on request,
and for a report's units when a monthly report is issued.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any

from faststream.kafka import KafkaBroker
from pymongo.asynchronous.database import AsyncDatabase
from redis.asyncio import Redis

from sotay_events import EventEnvelope, topics
from sotay_events.catalogue.reporting import (
    MonthlyReportIssued,
    UsageFigures,
    UsageFiguresPublished,
)
from sotay_platform.org_units import COLLECTION as ORG_UNITS
from sotay_reporting.figures import Doc
from sotay_reporting.queries import Rollup, UsageQueries

log = logging.getLogger(__name__)
ACTOR = "reporting"
LOCK = "sotay:reporting:usage-stream"


def envelope_of(event: UsageFiguresPublished) -> EventEnvelope:
    return EventEnvelope(
        event_type=event.event_type,
        schema_version=event.schema_version,
        aggregate_type=event.aggregate_type,
        aggregate_id=f"{event.unit_id}:{event.period}",
        # one message per publication; the version orders them within a unit and period
        aggregate_version=max(1, int(event.as_of.timestamp() * 1000)),
        occurred_at=event.as_of,
        org_path=tuple(event.path),
        actor=ACTOR,
        payload=event.model_dump(mode="json"),
    )


def from_rollup(rollup: Rollup, unit: Doc) -> UsageFiguresPublished:
    return UsageFiguresPublished(
        unit_id=unit["_id"],
        unit_name=str(unit.get("name") or unit["_id"]),
        level=str(unit.get("level") or ""),
        path=list(unit.get("path") or [unit["_id"]]),
        period=rollup.view.month,
        period_kind="month_to_date",
        as_of=rollup.computed_at,
        figures=UsageFigures(**rollup.total.figures()),
    )


class UsagePublisher:
    def __init__(
        self,
        broker: KafkaBroker,
        db: AsyncDatabase[Doc],
        queries: UsageQueries,
        levels: list[str],
    ) -> None:
        self.broker = broker
        self.db = db
        self.queries = queries
        self.levels = levels
        self.published_total = 0
        self.last_published_at: datetime | None = None
        self.last_error: str | None = None

    async def health(self) -> dict[str, Any]:
        """For /health/ready: a failing publication degrades readiness until one succeeds."""
        return {
            "ok": self.last_error is None,
            "published": self.published_total,
            "last_published_at": self.last_published_at.isoformat()
            if self.last_published_at
            else None,
            "last_error": self.last_error,
        }

    async def send(self, events: list[UsageFiguresPublished]) -> int:
        for event in events:
            envelope = envelope_of(event)
            await self.broker.publish(
                envelope.to_bytes(),
                topics.USAGE_STREAM,
                key=event.unit_id.encode(),
                headers={"event_type": envelope.event_type, "schema_version": "1"},
            )
        self.published_total += len(events)
        self.last_published_at = datetime.now(UTC)
        return len(events)

    async def units(self, under: str | None = None) -> list[Doc]:
        query: dict[str, Any] = {"status": "active", "level": {"$in": self.levels}}
        if under:
            query["path"] = under
        return await self.db[ORG_UNITS].find(query).sort("path", 1).to_list()

    async def publish_current(self, under: str | None = None) -> int:
        """Month-to-date figures of every unit of the configured levels (under `under`)."""
        events = []
        view = self.queries.view()
        for unit in await self.units(under):
            rollup = await self.queries.rollup(unit["_id"], view)
            events.append(from_rollup(rollup, unit))
        return await self.send(events)

    async def publish_report(self, report: MonthlyReportIssued, path: list[str]) -> int:
        """An issued report's unit and its per-unit table, as frozen."""
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
        for row in report.rows:
            events.append(
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
            )
        return await self.send(events)

    async def run(self, interval: float, redis: Redis | None = None) -> None:
        """Publish every `interval` seconds; with several replicas, one of them (a Redis lock)."""
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
