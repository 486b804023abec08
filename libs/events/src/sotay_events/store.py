"""Event stores: append with an expected version, load a stream.

The MongoDB store's `events` collection is also the outbox: each document
carries `published`, which only the relay flips.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any, Generic, Protocol, TypeVar

from opentelemetry import propagate, trace
from pymongo import ASCENDING, AsyncMongoClient, ReplaceOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError

from sotay_events.aggregate import Aggregate
from sotay_events.catalogue import CATALOGUE, DomainEvent
from sotay_events.envelope import SYSTEM_ACTOR, EventEnvelope, new_event_id

tracer = trace.get_tracer("sotay_events.store")


class ConcurrencyConflict(Exception):
    """Another writer appended to the stream since it was loaded."""

    def __init__(self, stream_id: str, expected_version: int) -> None:
        super().__init__(f"stream {stream_id} moved past version {expected_version}")
        self.stream_id = stream_id
        self.expected_version = expected_version


@dataclass(frozen=True)
class CommandContext:
    """Who asked, why, and where in the tree: copied into each envelope."""

    actor: str = SYSTEM_ACTOR
    org_path: tuple[str, ...] = ()
    correlation_id: str = field(default_factory=new_event_id)
    causation_id: str | None = None


def current_trace_context() -> dict[str, str]:
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


def make_envelopes(
    aggregate_type: str,
    aggregate_id: str,
    expected_version: int,
    events: Sequence[DomainEvent],
    context: CommandContext,
) -> list[EventEnvelope]:
    trace_context = current_trace_context()
    return [
        EventEnvelope(
            event_type=event.event_type,
            schema_version=event.schema_version,
            aggregate_type=aggregate_type,
            aggregate_id=aggregate_id,
            aggregate_version=expected_version + offset,
            org_path=context.org_path,
            actor=context.actor,
            correlation_id=context.correlation_id,
            causation_id=context.causation_id,
            trace_context=trace_context,
            payload=event.model_dump(mode="json"),
        )
        for offset, event in enumerate(events, start=1)
    ]


@dataclass(frozen=True)
class PrivateRecord:
    """A document that lands with a command's events but never travels with them.

    Answer keys, reflection texts, a member's citizen ID: facts that must be
    written atomically with the events that refer to them, yet stay in the
    service. Written to `collection` (replacing a document with the same _id)
    in the same transaction as the events; the relay publishes only events.
    """

    collection: str
    doc: dict[str, Any]


class EventStore(Protocol):
    async def append(
        self,
        aggregate_type: str,
        aggregate_id: str,
        expected_version: int,
        events: Sequence[DomainEvent],
        context: CommandContext,
        private: Sequence[PrivateRecord] = (),
    ) -> list[EventEnvelope]: ...

    async def load(self, aggregate_type: str, aggregate_id: str) -> list[EventEnvelope]: ...

    async def private_record(self, collection: str, record_id: str) -> dict[str, Any] | None: ...

    async def private_records(
        self, collection: str, record_ids: Iterable[str]
    ) -> dict[str, dict[str, Any]]: ...


def decode(envelope: EventEnvelope) -> DomainEvent:
    """The envelope's payload as the latest version of its model (upcast if older)."""
    return CATALOGUE.decode(envelope.event_type, envelope.schema_version, envelope.payload)


def to_document(envelope: EventEnvelope) -> dict[str, Any]:
    doc = envelope.model_dump()
    doc["_id"] = doc.pop("event_id")
    doc["org_path"] = list(envelope.org_path)
    doc["stream_id"] = envelope.stream_id
    doc["published"] = False
    return doc


def from_document(doc: dict[str, Any]) -> EventEnvelope:
    doc = dict(doc)
    doc["event_id"] = doc.pop("_id")
    doc.pop("stream_id", None)
    doc.pop("published", None)
    occurred = doc["occurred_at"]
    if occurred.tzinfo is None:  # BSON dates come back naive, in UTC
        doc["occurred_at"] = occurred.replace(tzinfo=UTC)
    return EventEnvelope.model_validate(doc)


class MongoEventStore:
    """One append-only collection; a unique (stream, version) index decides races."""

    def __init__(self, client: AsyncMongoClient[dict[str, Any]], database: str) -> None:
        self.client = client
        self.db: AsyncDatabase[dict[str, Any]] = client[database]
        self.events = self.db["events"]

    async def create_indexes(self) -> None:
        await self.events.create_index(
            [("stream_id", ASCENDING), ("aggregate_version", ASCENDING)],
            unique=True,
            name="stream_version",
        )
        await self.events.create_index(
            [("published", ASCENDING), ("_id", ASCENDING)], name="outbox"
        )

    async def append(
        self,
        aggregate_type: str,
        aggregate_id: str,
        expected_version: int,
        events: Sequence[DomainEvent],
        context: CommandContext,
        private: Sequence[PrivateRecord] = (),
    ) -> list[EventEnvelope]:
        if not events and not private:
            return []
        stream_id = f"{aggregate_type}-{aggregate_id}"
        with tracer.start_as_current_span(
            "eventstore.append",
            attributes={"sotay.stream_id": stream_id, "sotay.event_count": len(events)},
        ):
            envelopes = make_envelopes(
                aggregate_type, aggregate_id, expected_version, events, context
            )
            docs = [to_document(e) for e in envelopes]
            try:
                if len(docs) == 1 and not private:
                    await self.events.insert_one(docs[0])
                else:
                    # Several writes of one command land together or not at all.
                    async with self.client.start_session() as session:
                        async with await session.start_transaction():
                            if docs:
                                await self.events.insert_many(docs, session=session)
                            await self._write_private(private, session)
            except (DuplicateKeyError, BulkWriteError) as exc:
                if isinstance(exc, BulkWriteError) and not _only_duplicates(exc):
                    raise
                raise ConcurrencyConflict(stream_id, expected_version) from exc
            return envelopes

    async def start_streams(self, envelopes: Sequence[EventEnvelope]) -> list[bool]:
        """Write many first events of independent streams in one unordered insert.

        For hot paths where each fact is a stream of its own (a check-in, a vote):
        no transaction is needed, and the unique index answers per item. Returns,
        for each envelope, True if it started its stream, False if the stream
        already existed (a duplicate: the command was already done).
        """
        if not envelopes:
            return []
        failed: dict[int, dict[str, Any]] = {}
        try:
            await self.events.insert_many([to_document(e) for e in envelopes], ordered=False)
        except BulkWriteError as exc:
            failed = {err["index"]: err for err in exc.details.get("writeErrors", [])}
            if any(err.get("code") != 11000 for err in failed.values()):
                raise
        return [index not in failed for index in range(len(envelopes))]

    async def _write_private(
        self, private: Sequence[PrivateRecord], session: AsyncClientSession
    ) -> None:
        by_collection: dict[str, list[ReplaceOne[dict[str, Any]]]] = {}
        for record in private:
            by_collection.setdefault(record.collection, []).append(
                ReplaceOne({"_id": record.doc["_id"]}, record.doc, upsert=True)
            )
        for collection, writes in by_collection.items():
            await self.db[collection].bulk_write(writes, session=session)

    async def private_record(self, collection: str, record_id: str) -> dict[str, Any] | None:
        return await self.db[collection].find_one({"_id": record_id})

    async def private_records(
        self, collection: str, record_ids: Iterable[str]
    ) -> dict[str, dict[str, Any]]:
        ids = list(dict.fromkeys(record_ids))
        if not ids:
            return {}
        return {d["_id"]: d async for d in self.db[collection].find({"_id": {"$in": ids}})}

    async def load(self, aggregate_type: str, aggregate_id: str) -> list[EventEnvelope]:
        cursor = self.events.find({"stream_id": f"{aggregate_type}-{aggregate_id}"}).sort(
            "aggregate_version", ASCENDING
        )
        return [from_document(doc) async for doc in cursor]

    async def unpublished(self, limit: int) -> list[EventEnvelope]:
        cursor = self.events.find({"published": False}).sort("_id", ASCENDING).limit(limit)
        return [from_document(doc) async for doc in cursor]

    async def mark_published(self, event_ids: Sequence[str]) -> None:
        await self.events.update_many(
            {"_id": {"$in": list(event_ids)}}, {"$set": {"published": True}}
        )

    async def count_unpublished(self) -> int:
        return await self.events.count_documents({"published": False})

    async def all_events(self, batch_size: int = 5000) -> list[EventEnvelope]:
        """The whole history in recorded order: what a rebuild replays."""
        cursor = self.events.find({}).sort("_id", ASCENDING).batch_size(batch_size)
        return [from_document(doc) async for doc in cursor]


def _only_duplicates(exc: BulkWriteError) -> bool:
    return all(err.get("code") == 11000 for err in exc.details.get("writeErrors", []))


class InMemoryEventStore:
    """The same contract without I/O, for domain and handler unit tests."""

    def __init__(self) -> None:
        self.streams: dict[str, list[EventEnvelope]] = {}
        self.private: dict[str, dict[str, dict[str, Any]]] = {}
        self._lock = asyncio.Lock()

    async def append(
        self,
        aggregate_type: str,
        aggregate_id: str,
        expected_version: int,
        events: Sequence[DomainEvent],
        context: CommandContext,
        private: Sequence[PrivateRecord] = (),
    ) -> list[EventEnvelope]:
        stream_id = f"{aggregate_type}-{aggregate_id}"
        async with self._lock:
            stream = self.streams.setdefault(stream_id, [])
            if len(stream) != expected_version:
                raise ConcurrencyConflict(stream_id, expected_version)
            envelopes = make_envelopes(
                aggregate_type, aggregate_id, expected_version, events, context
            )
            stream.extend(envelopes)
            for record in private:
                self.private.setdefault(record.collection, {})[record.doc["_id"]] = dict(record.doc)
            return envelopes

    async def private_record(self, collection: str, record_id: str) -> dict[str, Any] | None:
        found = self.private.get(collection, {}).get(record_id)
        return dict(found) if found else None

    async def private_records(
        self, collection: str, record_ids: Iterable[str]
    ) -> dict[str, dict[str, Any]]:
        held = self.private.get(collection, {})
        return {i: dict(held[i]) for i in record_ids if i in held}

    async def load(self, aggregate_type: str, aggregate_id: str) -> list[EventEnvelope]:
        return list(self.streams.get(f"{aggregate_type}-{aggregate_id}", []))

    def all_events(self) -> list[EventEnvelope]:
        return sorted((e for s in self.streams.values() for e in s), key=lambda e: e.event_id)


A = TypeVar("A", bound=Aggregate)


class Repository(Generic[A]):
    """Loads aggregates of one class from a store and saves what they recorded."""

    def __init__(self, store: EventStore, aggregate_class: type[A]) -> None:
        self.store = store
        self.aggregate_class = aggregate_class

    async def get(self, aggregate_id: str) -> A | None:
        envelopes = await self.store.load(self.aggregate_class.aggregate_type, aggregate_id)
        if not envelopes:
            return None
        return self.aggregate_class.rebuild(aggregate_id, [decode(e) for e in envelopes])

    async def save(
        self, aggregate: A, context: CommandContext, private: Sequence[PrivateRecord] = ()
    ) -> list[EventEnvelope]:
        envelopes = await self.store.append(
            self.aggregate_class.aggregate_type,
            aggregate.id,
            aggregate.loaded_version,
            aggregate.pending,
            context,
            private,
        )
        aggregate.mark_saved()
        return envelopes
