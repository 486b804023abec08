"""Idempotent consumers: a projection's effect and its tracking record in one write.

A `Projection` turns events into a read model. The `ProjectionRunner` applies
batches of envelopes to it inside one MongoDB transaction together with the
tracking records of the events applied, so a redelivered or replayed event
changes nothing. `subscribe_projection` wires a runner to Kafka: the offset is
committed only after that transaction, and a message that can never be applied
is parked on the topic's dead-letter topic with its reason.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from faststream import AckPolicy
from faststream.kafka import KafkaBroker, KafkaMessage
from opentelemetry import metrics, propagate, trace
from pydantic import ValidationError
from pymongo import AsyncMongoClient
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from sotay_events import topics
from sotay_events.catalogue import DomainEvent, UnknownEvent
from sotay_events.envelope import EventEnvelope
from sotay_events.store import decode

log = logging.getLogger(__name__)
tracer = trace.get_tracer("sotay_events.consumer")
meter = metrics.get_meter("sotay_events.consumer")
lag_histogram = meter.create_histogram(
    "sotay.projection.lag",
    unit="s",
    description="time from an event's occurrence to its projection",
)

Applied = tuple[EventEnvelope, DomainEvent]


class Projection(Protocol):
    """A read model fed by events. Every write goes through `session`.

    A projection may also declare `event_types: frozenset[str]`, the only types
    it reads (the runner then neither decodes nor tracks the others), and
    `async create_indexes(db)`, which the runner calls again after a reset.
    """

    name: str
    collections: Sequence[str]

    async def apply_batch(
        self, db: AsyncDatabase[dict[str, Any]], items: list[Applied], session: AsyncClientSession
    ) -> None: ...


class ProjectionRunner:
    def __init__(
        self, client: AsyncMongoClient[dict[str, Any]], database: str, projection: Projection
    ) -> None:
        self.client = client
        self.db: AsyncDatabase[dict[str, Any]] = client[database]
        self.projection = projection
        self.tracking = self.db[f"tracking.{projection.name}"]
        self.last_applied_at: datetime | None = None
        self.last_lag_seconds: float = 0.0
        self.applied_total = 0
        self.offset_lag: dict[str, int] = {}  # "topic:partition" -> messages not yet consumed

    async def handle(
        self,
        envelopes: Sequence[EventEnvelope],
        carriers: Mapping[str, Mapping[str, str]] | None = None,
    ) -> int:
        """Apply what is new in `envelopes`; returns how many were applied.

        `carriers` holds each message's Kafka headers by event id: every event's
        span continues the trace its headers carry, so a batch joins many traces.
        """
        wanted = getattr(self.projection, "event_types", None)
        unique: dict[str, EventEnvelope] = {}
        for envelope in envelopes:
            # Events the projection never reads are skipped untracked: they change nothing.
            if wanted is None or envelope.event_type in wanted:
                unique.setdefault(envelope.event_id, envelope)
        if not unique:
            return 0
        spans = [
            tracer.start_span(
                f"projection.{self.projection.name}",
                context=propagate.extract(
                    dict((carriers or {}).get(event_id) or envelope.trace_context)
                ),
                attributes={"sotay.event_type": envelope.event_type, "sotay.event_id": event_id},
            )
            for event_id, envelope in unique.items()
        ]
        try:
            return await self._apply_new(unique)
        finally:
            for span in spans:
                span.end()

    async def _apply_new(self, unique: dict[str, EventEnvelope]) -> int:
        async with self.client.start_session() as session:
            async with await session.start_transaction():
                seen = {
                    doc["_id"]
                    async for doc in self.tracking.find(
                        {"_id": {"$in": list(unique)}}, {"_id": 1}, session=session
                    )
                }
                fresh = [e for i, e in unique.items() if i not in seen]
                if not fresh:
                    return 0
                items = [(e, decode(e)) for e in fresh]
                await self.projection.apply_batch(self.db, items, session)
                now = datetime.now(UTC)
                await self.tracking.insert_many(
                    [{"_id": e.event_id, "applied_at": now} for e in fresh], session=session
                )
        self._observe(fresh)
        return len(fresh)

    def _observe(self, fresh: list[EventEnvelope]) -> None:
        now = datetime.now(UTC)
        for envelope in fresh:
            lag_histogram.record(
                (now - envelope.occurred_at).total_seconds(),
                {"projection": self.projection.name},
            )
        self.last_applied_at = now
        self.last_lag_seconds = (now - fresh[-1].occurred_at).total_seconds()
        self.applied_total += len(fresh)

    async def reset(self) -> None:
        """Forget everything: the start of a rebuild."""
        for name in self.projection.collections:
            await self.db.drop_collection(name)
        await self.tracking.drop()
        # Dropping took the indexes too; a projection that declares them gets them back.
        create_indexes = getattr(self.projection, "create_indexes", None)
        if create_indexes is not None:
            await create_indexes(self.db)

    async def rebuild(self, history: Sequence[EventEnvelope], batch_size: int = 1000) -> int:
        """Replay a whole history from scratch; the result must equal the live model."""
        await self.reset()
        applied = 0
        for start in range(0, len(history), batch_size):
            applied += await self.handle(history[start : start + batch_size])
        return applied


def _observe_offset_lag(runner: ProjectionRunner, records: Sequence[Any], consumer: Any) -> None:
    """Consumer lag in messages: the partition's high watermark minus what this batch reached."""
    for record in records:
        try:
            from aiokafka import TopicPartition

            high = consumer.highwater(TopicPartition(record.topic, record.partition))
        except Exception:
            return
        if high is not None:
            runner.offset_lag[f"{record.topic}:{record.partition}"] = max(
                0, high - record.offset - 1
            )


def parse(raw: bytes) -> EventEnvelope:
    """Raises for anything that can never be applied: bad JSON, bad envelope, unknown version."""
    envelope = EventEnvelope.from_bytes(raw)
    decode(envelope)
    return envelope


POISON = (ValidationError, UnknownEvent, ValueError)


async def _raw_body(message: Any) -> Any:
    """Envelopes are parsed by `parse`, once, with their own model."""
    return message.body


def subscribe_projection(
    broker: KafkaBroker,
    runner: ProjectionRunner,
    source_topics: Sequence[str],
    *,
    group_id: str,
    batch: bool = True,
    max_records: int = 500,
    retry_delay: float = 1.0,
) -> None:
    """Feed `runner` from `source_topics`, committing offsets only after each write."""

    async def park(raw: bytes, topic: str, reason: str) -> None:
        log.error("parking message from %s on its dead-letter topic: %s", topic, reason)
        await broker.publish(raw, topics.dead_letter(topic), headers={"reason": reason[:500]})

    async def apply(records: Sequence[Any], consumer: Any) -> None:
        good: list[EventEnvelope] = []
        carriers: dict[str, dict[str, str]] = {}
        for record in records:
            try:
                envelope = parse(record.value)
            except POISON as exc:
                await park(record.value, record.topic, f"{type(exc).__name__}: {exc}")
                continue
            good.append(envelope)
            carriers[envelope.event_id] = {k: v.decode() for k, v in record.headers or ()}
        _observe_offset_lag(runner, records, consumer)
        try:
            await runner.handle(good, carriers)
        except Exception:
            # Not the message's fault (the store is away, a transaction clashed):
            # wait, then let the message be delivered again.
            log.exception(
                "projection %s failed; the batch will be redelivered", runner.projection.name
            )
            await asyncio.sleep(retry_delay)
            raise

    subscriber_args: dict[str, Any] = {
        "group_id": group_id,
        "auto_offset_reset": "earliest",
        "ack_policy": AckPolicy.NACK_ON_ERROR,
        "title": f"{runner.projection.name}:{'+'.join(source_topics)}",
        "decoder": _raw_body,
    }
    if batch:

        @broker.subscriber(*source_topics, batch=True, max_records=max_records, **subscriber_args)
        async def handle_batch(body: Any, message: KafkaMessage) -> None:
            records = message.raw_message
            await apply(records if isinstance(records, tuple) else [records], message.consumer)

    else:

        @broker.subscriber(*source_topics, **subscriber_args)
        async def handle_one(body: Any, message: KafkaMessage) -> None:
            await apply([message.raw_message], message.consumer)
