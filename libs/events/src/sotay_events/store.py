"""Event stores: append with an expected version, load a stream.

The MongoDB store's `events` collection is also the outbox: each document
carries `published`, which only the relay flips.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any, Protocol

from opentelemetry import propagate, trace
from pymongo import ASCENDING, AsyncMongoClient, DeleteOne, ReplaceOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError

from sotay_events.catalogue import CATALOGUE, DomainEvent
from sotay_events.envelope import SYSTEM_ACTOR, EventEnvelope, new_event_id
from sotay_events.transaction import run_in_transaction
from sotay_events.uow import (
    MAX_EVENT_BYTES,
    Changes,
    Claim,
    ClaimTaken,
    ConcurrencyConflict,
    EventTooLarge,
    RowWrite,
    UnitOfWork,
)

tracer = trace.get_tracer("sotay_events.store")


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


class EventStore(Protocol):
    """What a service's handlers need of a store: units of work, streams, private records."""

    def unit_of_work(self) -> UnitOfWork: ...

    async def load(self, aggregate_type: str, aggregate_id: str) -> list[EventEnvelope]: ...

    async def commit(self, changes: Changes, context: CommandContext) -> list[EventEnvelope]: ...

    async def private_record(self, collection: str, record_id: str) -> dict[str, Any] | None: ...

    async def read_row(self, collection: str, row_id: Any) -> dict[str, Any] | None: ...

    async def private_records(
        self, collection: str, record_ids: Iterable[str]
    ) -> dict[str, dict[str, Any]]: ...


def envelopes_of(changes: Changes, context: CommandContext) -> list[EventEnvelope]:
    """The envelopes a commit writes, each checked against the broker's message size."""
    envelopes: list[EventEnvelope] = []
    for write in changes.streams:
        if write.events:
            envelopes += make_envelopes(
                write.aggregate_type,
                write.aggregate_id,
                write.expected_version,
                write.events,
                write.context or context,
            )
    for envelope in envelopes:
        size = len(envelope.to_bytes())
        if size > MAX_EVENT_BYTES:
            raise EventTooLarge(envelope.event_type, size)
    return envelopes


CommitListener = Callable[[list[EventEnvelope]], None]


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
    doc.pop("batch", None)
    occurred = doc["occurred_at"]
    if occurred.tzinfo is None:  # BSON dates come back naive, in UTC
        doc["occurred_at"] = occurred.replace(tzinfo=UTC)
    return EventEnvelope.model_validate(doc)


class MongoEventStore:
    """One append-only collection; a unique (stream, version) index decides races.

    The collection is also the outbox: `published` is flipped by the relay,
    which also stamps `batch`, its own increasing batch number, so that the
    published history has one order (batch, stream, version) that follows
    publication, whatever the clocks of the pods that wrote it.
    """

    def __init__(self, client: AsyncMongoClient[dict[str, Any]], database: str) -> None:
        self.client = client
        self.db: AsyncDatabase[dict[str, Any]] = client[database]
        self.events = self.db["events"]
        self.listeners: list[CommitListener] = []

    async def create_indexes(self) -> None:
        await self.events.create_index(
            [("stream_id", ASCENDING), ("aggregate_version", ASCENDING)],
            unique=True,
            name="stream_version",
        )
        await self.events.create_index(
            [("published", ASCENDING), ("_id", ASCENDING)], name="outbox"
        )
        await self.events.create_index(
            [("batch", ASCENDING), ("stream_id", ASCENDING), ("aggregate_version", ASCENDING)],
            name="history",
        )

    def unit_of_work(self) -> UnitOfWork:
        return UnitOfWork(self)

    async def commit(self, changes: Changes, context: CommandContext) -> list[EventEnvelope]:
        envelopes = envelopes_of(changes, context)
        with tracer.start_as_current_span(
            "eventstore.commit",
            attributes={
                "sotay.streams": len(changes.streams),
                "sotay.event_count": len(envelopes),
            },
        ):
            docs = [to_document(e) for e in envelopes]
            try:
                if len(docs) == 1 and changes.only_events:
                    await self.events.insert_one(docs[0])  # one document: atomic by itself
                else:

                    async def write(session: AsyncClientSession) -> None:
                        await self._write(changes, docs, session)

                    await run_in_transaction(self.client, write)
            except (DuplicateKeyError, BulkWriteError) as exc:
                raise _conflict_of(exc, changes) from exc
        self._notify(envelopes)
        return envelopes

    async def _write(
        self, changes: Changes, docs: list[dict[str, Any]], session: AsyncClientSession
    ) -> None:
        await self._claim(changes.claims, session)
        for release in changes.releases:
            await self.db[release.collection].delete_one(
                {"_id": release.key, "owner": release.owner}, session=session
            )
        if docs:
            await self.events.insert_many(docs, session=session)
        writes: dict[str, list[Any]] = {}
        for record in changes.private:
            writes.setdefault(record.collection, []).append(
                ReplaceOne({"_id": record.doc["_id"]}, record.doc, upsert=True)
            )
        for row in changes.rows:
            if row.expected_version is not None:
                await self._versioned_row(row, session)
                continue
            writes.setdefault(row.collection, []).append(
                DeleteOne({"_id": row.row_id})
                if row.doc is None
                else ReplaceOne({"_id": row.row_id}, row.doc, upsert=True)
            )
        for collection, ops in writes.items():
            await self.db[collection].bulk_write(ops, session=session)

    async def _versioned_row(self, row: RowWrite, session: AsyncClientSession) -> None:
        assert row.doc is not None and row.expected_version is not None
        table = self.db[row.collection]
        if row.expected_version == 0:
            try:
                await table.insert_one(row.doc, session=session)
            except DuplicateKeyError:
                raise ConcurrencyConflict(f"{row.collection}/{row.row_id}", 0) from None
            return
        result = await table.replace_one(
            {"_id": row.row_id, "_v": row.expected_version}, row.doc, session=session
        )
        if result.matched_count != 1:
            raise ConcurrencyConflict(f"{row.collection}/{row.row_id}", row.expected_version)

    async def _claim(self, claims: Sequence[Claim], session: AsyncClientSession) -> None:
        by_collection: dict[str, list[Claim]] = {}
        for claim in claims:
            by_collection.setdefault(claim.collection, []).append(claim)
        for collection, wanted in by_collection.items():
            held = {
                d["_id"]: d.get("owner")
                async for d in self.db[collection].find(
                    {"_id": {"$in": [c.key for c in wanted]}}, session=session
                )
            }
            for claim in wanted:
                if held.get(claim.key, claim.owner) != claim.owner:
                    raise ClaimTaken(collection, claim.key, held[claim.key])
            fresh = [{"_id": c.key, "owner": c.owner} for c in wanted if c.key not in held]
            if fresh:
                try:
                    await self.db[collection].insert_many(fresh, session=session)
                except (DuplicateKeyError, BulkWriteError) as exc:
                    # A concurrent transaction took it first.
                    raise ClaimTaken(collection, fresh[0]["_id"], None) from exc

    def _notify(self, envelopes: list[EventEnvelope]) -> None:
        if envelopes:
            for listener in self.listeners:
                listener(envelopes)

    async def start_streams(self, envelopes: Sequence[EventEnvelope]) -> list[bool]:
        """Write many first events of independent streams in one unordered insert.

        The unique index answers per item: True if it started its stream,
        False if the stream already existed. `GroupCommit` is its only caller.
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
        started = [index not in failed for index in range(len(envelopes))]
        self._notify([e for e, ok in zip(envelopes, started, strict=True) if ok])
        return started

    async def private_record(self, collection: str, record_id: str) -> dict[str, Any] | None:
        return await self.db[collection].find_one({"_id": record_id})

    async def read_row(self, collection: str, row_id: Any) -> dict[str, Any] | None:
        """A row the service's own commands write (`UnitOfWork.row`), as committed."""
        return await self.db[collection].find_one({"_id": row_id})

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

    # The relay's side.

    async def unpublished(
        self, limit: int, published_heads: Mapping[str, int] | None = None
    ) -> list[EventEnvelope]:
        """The next batch to publish: for each stream, its unpublished events in version order.

        The oldest unpublished events by id make the batch. A stream whose first
        event in it is not the one right after what is known published (a
        version written by a pod whose clock runs behind, so with a smaller id,
        may still be waiting) is completed from its lowest unpublished version,
        so a version never leaves before the one committed before it.
        `published_heads` (stream -> last version published, the relay's
        memory) spares that look-up for streams it has just published.
        """
        heads = published_heads or {}
        docs = [
            doc
            async for doc in self.events.find({"published": False})
            .sort("_id", ASCENDING)
            .limit(limit)
        ]
        by_stream: dict[str, list[dict[str, Any]]] = {}
        for doc in docs:
            by_stream.setdefault(doc["stream_id"], []).append(doc)
        unsure = [
            stream
            for stream, found in by_stream.items()
            if (first := min(d["aggregate_version"] for d in found)) != 1
            and heads.get(stream) != first - 1
        ]
        if unsure:
            cursor = self.events.find({"stream_id": {"$in": unsure}, "published": False})
            complete: dict[str, list[dict[str, Any]]] = {}
            async for doc in cursor:
                complete.setdefault(doc["stream_id"], []).append(doc)
            by_stream.update(complete)
        ordered = [
            doc
            for stream in by_stream
            for doc in sorted(by_stream[stream], key=lambda d: d["aggregate_version"])
        ]
        return [from_document(doc) for doc in ordered]

    async def mark_published(self, event_ids: Sequence[str], batch: int = 0) -> None:
        await self.events.update_many(
            {"_id": {"$in": list(event_ids)}}, {"$set": {"published": True, "batch": batch}}
        )

    async def count_unpublished(self, limit: int | None = None) -> int:
        if limit is None:
            return await self.events.count_documents({"published": False})
        return await self.events.count_documents({"published": False}, limit=limit)

    async def republish_all(self) -> int:
        """Everything goes out again: the broker came back without its log."""
        result = await self.events.update_many({"published": True}, {"$set": {"published": False}})
        return result.modified_count

    async def history(
        self, *, after: Sequence[Any] | None = None, batch_size: int = 2000
    ) -> AsyncIterator[tuple[list[EventEnvelope], list[Any]]]:
        """The whole history in publication order, in batches, each with its checkpoint.

        Published events come in (batch, stream, version) order; what is not
        published yet sorts first (no batch), which the runner holds until the
        versions before it arrive. `after` is a checkpoint
        yielded before: a resumed rebuild goes on from there. Memory holds
        one batch at a time.
        """
        query: dict[str, Any] = {}
        if after is not None:
            b, stream, version = after
            query = {
                "$or": [
                    {"batch": {"$gt": b}},
                    {"batch": b, "stream_id": {"$gt": stream}},
                    {"batch": b, "stream_id": stream, "aggregate_version": {"$gt": version}},
                ]
            }
            if b is None:  # unpublished events (no batch yet) sort first
                query = {
                    "$or": [
                        {"batch": None, "stream_id": {"$gt": stream}},
                        {"batch": None, "stream_id": stream, "aggregate_version": {"$gt": version}},
                        {"batch": {"$ne": None}},
                    ]
                }
        order = [("batch", ASCENDING), ("stream_id", ASCENDING), ("aggregate_version", ASCENDING)]
        cursor = self.events.find(query).sort(order).batch_size(batch_size)
        chunk: list[EventEnvelope] = []
        position: list[Any] = []
        async for doc in cursor:
            position = [doc.get("batch"), doc["stream_id"], doc["aggregate_version"]]
            chunk.append(from_document(doc))
            if len(chunk) >= batch_size:
                yield chunk, position
                chunk = []
        if chunk:
            yield chunk, position

    async def all_events(self) -> list[EventEnvelope]:
        """The whole history in memory: for tests of small histories only."""
        return [e async for chunk, _ in self.history() for e in chunk]


def _conflict_of(exc: DuplicateKeyError | BulkWriteError, changes: Changes) -> Exception:
    if isinstance(exc, BulkWriteError) and not all(
        err.get("code") == 11000 for err in exc.details.get("writeErrors", [])
    ):
        return exc
    first = next((s for s in changes.streams if s.events), None)
    if first is None:
        return exc
    return ConcurrencyConflict(first.stream_id, first.expected_version)


class InMemoryEventStore:
    """The same contract without I/O, for domain and handler unit tests."""

    def __init__(self) -> None:
        self.streams: dict[str, list[EventEnvelope]] = {}
        self.private: dict[str, dict[str, dict[str, Any]]] = {}
        self.rows: dict[str, dict[Any, dict[str, Any]]] = {}
        self.claims: dict[str, dict[str, str]] = {}
        self.listeners: list[CommitListener] = []
        self._lock = asyncio.Lock()

    def unit_of_work(self) -> UnitOfWork:
        return UnitOfWork(self)

    async def commit(self, changes: Changes, context: CommandContext) -> list[EventEnvelope]:
        async with self._lock:
            for write in changes.streams:
                if write.events and len(self.streams.get(write.stream_id, [])) != (
                    write.expected_version
                ):
                    raise ConcurrencyConflict(write.stream_id, write.expected_version)
            for claim in changes.claims:
                holder = self.claims.get(claim.collection, {}).get(claim.key, claim.owner)
                if holder != claim.owner:
                    raise ClaimTaken(claim.collection, claim.key, holder)
            for row in changes.rows:
                if row.expected_version is not None:
                    held = self.rows.get(row.collection, {}).get(row.row_id)
                    if (held or {}).get("_v", 0) != row.expected_version:
                        raise ConcurrencyConflict(
                            f"{row.collection}/{row.row_id}", row.expected_version
                        )
            envelopes = envelopes_of(changes, context)
            for envelope in envelopes:
                self.streams.setdefault(envelope.stream_id, []).append(envelope)
            for claim in changes.claims:
                self.claims.setdefault(claim.collection, {})[claim.key] = claim.owner
            for claim in changes.releases:
                held = self.claims.get(claim.collection, {})
                if held.get(claim.key) == claim.owner:
                    del held[claim.key]
            for record in changes.private:
                self.private.setdefault(record.collection, {})[record.doc["_id"]] = dict(record.doc)
            for row in changes.rows:
                table = self.rows.setdefault(row.collection, {})
                if row.doc is None:
                    table.pop(row.row_id, None)
                    self.private.get(row.collection, {}).pop(row.row_id, None)
                else:
                    table[row.row_id] = dict(row.doc)
        for listener in self.listeners:
            listener(envelopes)
        return envelopes

    async def start_streams(self, envelopes: Sequence[EventEnvelope]) -> list[bool]:
        started = []
        async with self._lock:
            for envelope in envelopes:
                fresh = envelope.stream_id not in self.streams
                if fresh:
                    self.streams[envelope.stream_id] = [envelope]
                started.append(fresh)
        return started

    async def private_record(self, collection: str, record_id: str) -> dict[str, Any] | None:
        found = self.private.get(collection, {}).get(record_id)
        return dict(found) if found else None

    async def read_row(self, collection: str, row_id: Any) -> dict[str, Any] | None:
        found = self.rows.get(collection, {}).get(row_id)
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
