"""Consumers that track versions: a projection's effect and its progress in one write.

A `Projection` turns events into a read model. The `ProjectionRunner` keeps,
per aggregate, the last version it applied (`tracking.<projection>`: one
document per aggregate, not per event) and writes it in the same transaction
as the projection's effect. So a redelivery, the relay's repeat or a replay
changes nothing (its version is not above the last), and a gap is seen: an
event whose version is beyond the next one is held (`held.<projection>`),
never applied out of order, until the missing one arrives; then both go in
order. Events of types the projection does not read advance the version
without being decoded (the relay puts the routing fields in Kafka headers).

An apply that fails is retried a bounded number of times with backoff, then
the batch is applied one event at a time; an event that still fails is
parked on the topic's dead-letter topic with the projection's name, the
error, the attempt count and its original headers (`sotay_events.dlq` lists
and replays them). Its aggregate's later events wait, held; every other
aggregate, and so the partition, moves on.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import AsyncIterable, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from faststream import AckPolicy
from faststream.kafka import KafkaBroker, KafkaMessage
from opentelemetry import metrics, propagate, trace
from opentelemetry.trace import Link
from pydantic import ValidationError
from pymongo import AsyncMongoClient, DeleteMany, ReplaceOne, UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from sotay_events import topics
from sotay_events.catalogue import CATALOGUE, DomainEvent, UnknownEvent
from sotay_events.envelope import EventEnvelope
from sotay_events.transaction import run_in_transaction

log = logging.getLogger(__name__)
tracer = trace.get_tracer("sotay_events.consumer")
meter = metrics.get_meter("sotay_events.consumer")
lag_histogram = meter.create_histogram(
    "sotay.projection.lag",
    unit="s",
    description="time from an event's occurrence to its projection",
)
parked_counter = meter.create_counter("sotay.consumer.parked", unit="{message}")

Applied = tuple[EventEnvelope, DomainEvent]
POISON = (ValidationError, UnknownEvent, ValueError, KeyError, TypeError)
MAX_TRACES_PER_BATCH = 16


class Projection(Protocol):
    """A read model fed by events. Every write goes through `session`.

    A projection may also declare `event_types: frozenset[str]`, the only types
    it reads (the others are neither decoded nor given to it), and
    `async create_indexes(db)`, which the runner calls again after a reset.
    `apply_batch` must be a function of the events alone: which events it
    sees, once each and in version order per aggregate, is the runner's job.
    """

    name: str
    collections: Sequence[str]

    async def apply_batch(
        self, db: AsyncDatabase[dict[str, Any]], items: list[Applied], session: AsyncClientSession
    ) -> None: ...


@dataclass
class Incoming:
    """One message as it arrived: routing fields from its headers, the body parsed on demand."""

    stream_id: str
    version: int
    event_type: str
    event_id: str
    raw: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    topic: str | None = None
    _envelope: EventEnvelope | None = None

    @classmethod
    def of(cls, envelope: EventEnvelope, topic: str | None = None) -> Incoming:
        return cls(
            envelope.stream_id,
            envelope.aggregate_version,
            envelope.event_type,
            envelope.event_id,
            topic=topic,
            _envelope=envelope,
        )

    @classmethod
    def from_kafka(cls, raw: bytes, headers: Mapping[str, str], topic: str) -> Incoming:
        """From the headers when the relay wrote them; else (older messages) from the body."""
        try:
            return cls(
                f"{headers['aggregate_type']}-{headers['aggregate_id']}",
                int(headers["aggregate_version"]),
                headers["event_type"],
                headers["event_id"],
                raw=raw,
                headers=dict(headers),
                topic=topic,
            )
        except (KeyError, ValueError):
            envelope = EventEnvelope.from_bytes(raw)
            incoming = cls.of(envelope, topic)
            incoming.raw, incoming.headers = raw, dict(headers)
            return incoming

    @property
    def envelope(self) -> EventEnvelope:
        if self._envelope is None:
            assert self.raw is not None
            self._envelope = EventEnvelope.from_bytes(self.raw)
        return self._envelope

    def body(self) -> bytes:
        return self.raw if self.raw is not None else self.envelope.to_bytes()


def decode(envelope: EventEnvelope) -> DomainEvent:
    return CATALOGUE.decode(envelope.event_type, envelope.schema_version, envelope.payload)


Parker = Callable[[Incoming, str, int], Awaitable[None]]


class ProjectionRunner:
    def __init__(
        self,
        client: AsyncMongoClient[dict[str, Any]],
        database: str,
        projection: Projection,
        *,
        max_attempts: int = 3,
        backoff: float = 0.2,
        park: Parker | None = None,
    ) -> None:
        self.client = client
        self.db: AsyncDatabase[dict[str, Any]] = client[database]
        self.projection = projection
        self.wanted: frozenset[str] | None = getattr(projection, "event_types", None)
        self.tracking = self.db[f"tracking.{projection.name}"]
        self.held = self.db[f"held.{projection.name}"]
        self.rebuilds = self.db["rebuilds"]
        self.max_attempts = max_attempts
        self.backoff = backoff
        self.park = park
        self.last_applied_at: datetime | None = None
        self.last_lag_seconds: float = 0.0
        self.applied_total = 0
        self.parked_total = 0
        self.held_total = 0
        self.offset_lag: dict[str, int] = {}  # "topic:partition" -> messages not yet consumed

    async def create_indexes(self) -> None:
        """The runner's own indexes and the projection's (at start and after a reset)."""
        await self.held.create_index("stream_id")
        create_indexes = getattr(self.projection, "create_indexes", None)
        if create_indexes is not None:
            await create_indexes(self.db)

    async def handle(self, messages: Sequence[Incoming | EventEnvelope]) -> int:
        """Apply what is new in `messages`, in version order per aggregate; returns how many.

        Retried with backoff when the apply fails; after the last attempt the
        messages go one by one and what still fails is parked.
        """
        batch = [m if isinstance(m, Incoming) else Incoming.of(m) for m in messages]
        if not batch:
            return 0
        for attempt in range(1, self.max_attempts + 1):
            try:
                return await self._traced(batch)
            except POISON:
                break  # an event that cannot be decoded will not decode later either
            except Exception:
                if attempt == self.max_attempts:
                    break
                log.warning(
                    "projection %s failed (attempt %d), retrying: %s",
                    self.projection.name,
                    attempt,
                    repr(sys.exc_info()[1])[:300],
                )
                await asyncio.sleep(self.backoff * 2 ** (attempt - 1))
        if len(batch) == 1 or self.park is None:
            if self.park is None:
                raise RuntimeError(f"projection {self.projection.name} cannot apply its batch")
            await self._park(batch[0])
            return 0
        applied = 0
        for message in batch:
            applied += await self.handle([message])
        return applied

    async def _park(self, message: Incoming) -> None:
        assert self.park is not None
        try:
            await self._traced([message])
        except Exception as exc:
            await self.park(message, f"{type(exc).__name__}: {exc}"[:500], self.max_attempts)
            self.parked_total += 1
            parked_counter.add(1, {"projection": self.projection.name})

    async def _traced(self, batch: list[Incoming]) -> int:
        # A span for each request whose events are in the batch (up to a few), so each
        # request's trace shows its projection; beyond that, links. Not one per event.
        contexts: dict[int, Any] = {}
        links: list[Link] = []
        for message in batch:
            context = propagate.extract(message.headers or message.envelope.trace_context)
            span_context = trace.get_current_span(context).get_span_context()
            if span_context.trace_id in contexts:
                continue
            if len(contexts) < MAX_TRACES_PER_BATCH:
                contexts[span_context.trace_id] = context
            elif span_context.is_valid and len(links) < 32:
                links.append(Link(span_context))
        name = f"projection.{self.projection.name}"
        attributes = {"sotay.batch_size": len(batch)}
        first, *others = list(contexts.values()) or [None]
        siblings = [tracer.start_span(name, context=c, attributes=attributes) for c in others]
        try:
            with tracer.start_as_current_span(
                name, context=first, links=links, attributes=attributes
            ):

                async def write(session: AsyncClientSession) -> list[EventEnvelope]:
                    return await self._apply(batch, session)

                applied = await run_in_transaction(self.client, write)
        finally:
            for span in siblings:
                span.end()
        self._observe(applied)
        return len(applied)

    async def _apply(
        self, batch: list[Incoming], session: AsyncClientSession
    ) -> list[EventEnvelope]:
        by_stream: dict[str, dict[int, Incoming]] = {}
        for message in batch:
            by_stream.setdefault(message.stream_id, {}).setdefault(message.version, message)
        streams = list(by_stream)
        last = {
            d["_id"]: d["v"]
            async for d in self.tracking.find({"_id": {"$in": streams}}, session=session)
        }
        held_ids: list[str] = []
        async for doc in self.held.find({"stream_id": {"$in": streams}}, session=session):
            held_ids.append(doc["_id"])
            by_stream[doc["stream_id"]].setdefault(
                doc["version"],
                Incoming.from_kafka(doc["raw"], doc["headers"], doc.get("topic") or ""),
            )
        to_apply: list[Incoming] = []
        to_hold: list[Incoming] = []
        advanced: dict[str, int] = {}
        for stream, versions in by_stream.items():
            next_version = last.get(stream, 0) + 1
            for version in sorted(versions):
                if version < next_version:
                    continue  # applied before: a redelivery or a repeat
                if version == next_version:
                    message = versions[version]
                    if self.wanted is None or message.event_type in self.wanted:
                        to_apply.append(message)
                    next_version += 1
                else:
                    to_hold.append(versions[version])
            if next_version - 1 != last.get(stream, 0):
                advanced[stream] = next_version - 1
        items = [(m.envelope, decode(m.envelope)) for m in to_apply]
        if items:
            await self.projection.apply_batch(self.db, items, session)
        # Streams seen for the first time are inserted (cheap in bulk); a racer that
        # inserted one first fails this transaction, which runs again and finds it.
        fresh = [{"_id": s, "v": v} for s, v in advanced.items() if s not in last]
        known = [
            UpdateOne({"_id": s}, {"$set": {"v": v}}) for s, v in advanced.items() if s in last
        ]
        if fresh:
            await self.tracking.insert_many(fresh, session=session)
        if known:
            await self.tracking.bulk_write(known, ordered=False, session=session)
        still_held = {m.event_id for m in to_hold}
        settled = [i for i in held_ids if i not in still_held]
        writes: list[Any] = [DeleteMany({"_id": {"$in": settled}})] if settled else []
        writes += [
            ReplaceOne(
                {"_id": m.event_id},
                {
                    "_id": m.event_id,
                    "stream_id": m.stream_id,
                    "version": m.version,
                    "raw": m.body(),
                    "headers": m.headers or _headers_of(m.envelope),
                    "topic": m.topic,
                },
                upsert=True,
            )
            for m in to_hold
        ]
        if writes:
            await self.held.bulk_write(writes, session=session)
        self.held_total = len(to_hold)
        return [envelope for envelope, _ in items]

    def _observe(self, applied: list[EventEnvelope]) -> None:
        if not applied:
            return
        now = datetime.now(UTC)
        attributes = {"projection": self.projection.name}
        for envelope in applied:
            lag_histogram.record((now - envelope.occurred_at).total_seconds(), attributes)
        self.last_applied_at = now
        self.last_lag_seconds = (now - applied[-1].occurred_at).total_seconds()
        self.applied_total += len(applied)

    async def reset(self) -> None:
        """Forget everything: the start of a rebuild."""
        for name in self.projection.collections:
            await self.db.drop_collection(name)
        await self.tracking.drop()
        await self.held.drop()
        await self.create_indexes()  # dropping took the indexes too

    async def rebuild(
        self,
        history: Iterable[EventEnvelope] | AsyncIterable[Sequence[Incoming | EventEnvelope]],
        batch_size: int = 1000,
    ) -> int:
        """Replay a history from scratch; the result must equal the live model.

        `history` is a sequence of envelopes (small histories, tests) or an
        async iterable of batches (`MongoEventStore.history()`,
        `sotay_events.rebuild.topic_history`), which keeps memory to a batch.
        """
        await self.reset()
        return await self.replay(history, batch_size)

    async def replay(
        self,
        history: Iterable[EventEnvelope] | AsyncIterable[Sequence[Incoming | EventEnvelope]],
        batch_size: int = 1000,
    ) -> int:
        """Apply a history on top of what is there: versions make it safe to resume anywhere."""
        applied = 0
        if isinstance(history, AsyncIterable):
            async for chunk in history:
                applied += await self.handle(chunk)
            return applied
        pending: list[Incoming | EventEnvelope] = []
        for envelope in history:
            pending.append(envelope)
            if len(pending) >= batch_size:
                applied += await self.handle(pending)
                pending = []
        if pending:
            applied += await self.handle(pending)
        return applied


def _headers_of(envelope: EventEnvelope) -> dict[str, str]:
    from sotay_events.outbox import headers_of

    return headers_of(envelope)


def _observe_offset_lag(runner: ProjectionRunner, records: Sequence[Any], consumer: Any) -> None:
    """Consumer lag in messages: the partition's high watermark minus what this batch reached."""
    from aiokafka import TopicPartition

    for record in records:
        try:
            high = consumer.highwater(TopicPartition(record.topic, record.partition))
        except Exception:
            return
        if high is not None:
            runner.offset_lag[f"{record.topic}:{record.partition}"] = max(
                0, high - record.offset - 1
            )


async def _raw_body(message: Any) -> Any:
    """Messages are parsed by the runner, once, and only those it reads."""
    return message.body


def dead_letter_headers(
    message: Incoming, projection: str, error: str, attempts: int
) -> dict[str, str]:
    return {
        **message.headers,
        "dlq_projection": projection,
        "dlq_error": error,
        "dlq_attempts": str(attempts),
        "dlq_source_topic": message.topic or "",
        "dlq_parked_at": datetime.now(UTC).isoformat(),
    }


def subscribe_projection(
    broker: KafkaBroker,
    runner: ProjectionRunner,
    source_topics: Sequence[str],
    *,
    group_id: str,
    batch: bool = True,
    max_records: int = 500,
) -> None:
    """Feed `runner` from `source_topics`, committing offsets only after each write."""

    async def park(message: Incoming, reason: str, attempts: int) -> None:
        topic = message.topic or source_topics[0]
        log.error(
            "projection %s parks %s v%d on %s: %s",
            runner.projection.name,
            message.stream_id,
            message.version,
            topics.dead_letter(topic),
            reason,
        )
        await broker.publish(
            message.body(),
            topics.dead_letter(topic),
            key=message.stream_id.encode(),
            headers=dead_letter_headers(message, runner.projection.name, reason, attempts),
        )

    runner.park = park

    async def apply(records: Sequence[Any], consumer: Any) -> None:
        batch_in: list[Incoming] = []
        for record in records:
            headers = {k: v.decode(errors="replace") for k, v in record.headers or ()}
            try:
                batch_in.append(Incoming.from_kafka(record.value, headers, record.topic))
            except POISON as exc:  # not even an envelope: nothing can ever apply it
                unreadable = Incoming("", 0, "", "", raw=record.value, headers=headers)
                unreadable.topic = record.topic
                await park(unreadable, f"{type(exc).__name__}: {exc}"[:500], 1)
        _observe_offset_lag(runner, records, consumer)
        if batch_in:
            await runner.handle(batch_in)

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
