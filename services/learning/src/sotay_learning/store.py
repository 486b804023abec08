"""The event store plus learning's private records, written in one transaction.

Some of what a command decides must never travel in an event: question texts
and answer keys, the papers members drew, their answers, reflection texts and
the text of text materials. Those go to private collections ("vault.*") in the
same MongoDB transaction as the events that refer to them, so a fact and its
private part land together or not at all, and only the events reach Kafka.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from pymongo import ReplaceOne
from pymongo.errors import BulkWriteError, DuplicateKeyError

from sotay_events import CommandContext, DomainEvent, EventEnvelope, InMemoryEventStore
from sotay_events.store import (
    ConcurrencyConflict,
    MongoEventStore,
    _to_document,  # the store's own document shape, so the relay reads ours like its own
    make_envelopes,
)

QUESTIONS = "vault.questions"  # text, options, answer key
MATERIALS = "vault.materials"  # bodies of text materials
PAPERS = "vault.papers"  # what each attempt drew, in its order
ANSWERS = "vault.answers"  # what each attempt answered, and how it scored
REFLECTIONS = "vault.reflections"  # reflection texts and their reviews

VAULT = (QUESTIONS, MATERIALS, PAPERS, ANSWERS, REFLECTIONS)

Doc = dict[str, Any]


@dataclass(frozen=True)
class Record:
    """A private document written with the events of a command (replaced if it exists)."""

    collection: str
    doc: Doc


class LearningStore(Protocol):
    async def append(
        self,
        aggregate_type: str,
        aggregate_id: str,
        expected_version: int,
        events: Sequence[DomainEvent],
        context: CommandContext,
    ) -> list[EventEnvelope]: ...

    async def load(self, aggregate_type: str, aggregate_id: str) -> list[EventEnvelope]: ...

    async def append_with(
        self,
        aggregate_type: str,
        aggregate_id: str,
        expected_version: int,
        events: Sequence[DomainEvent],
        context: CommandContext,
        records: Sequence[Record],
    ) -> list[EventEnvelope]: ...

    async def get_record(self, collection: str, record_id: str) -> Doc | None: ...

    async def get_records(self, collection: str, record_ids: Iterable[str]) -> dict[str, Doc]: ...


class MongoLearningStore(MongoEventStore):
    async def append_with(
        self,
        aggregate_type: str,
        aggregate_id: str,
        expected_version: int,
        events: Sequence[DomainEvent],
        context: CommandContext,
        records: Sequence[Record],
    ) -> list[EventEnvelope]:
        if not records:
            return await self.append(
                aggregate_type, aggregate_id, expected_version, events, context
            )
        envelopes = make_envelopes(aggregate_type, aggregate_id, expected_version, events, context)
        docs = [_to_document(e) for e in envelopes]
        by_collection: dict[str, list[ReplaceOne[Doc]]] = {}
        for record in records:
            by_collection.setdefault(record.collection, []).append(
                ReplaceOne({"_id": record.doc["_id"]}, record.doc, upsert=True)
            )
        try:
            async with self.client.start_session() as session:
                async with await session.start_transaction():
                    if docs:
                        await self.events.insert_many(docs, session=session)
                    for collection, writes in by_collection.items():
                        await self.db[collection].bulk_write(writes, session=session)
        except (DuplicateKeyError, BulkWriteError) as exc:
            if isinstance(exc, BulkWriteError) and not all(
                e.get("code") == 11000 for e in exc.details.get("writeErrors", [])
            ):
                raise
            raise ConcurrencyConflict(f"{aggregate_type}-{aggregate_id}", expected_version) from exc
        return envelopes

    async def get_record(self, collection: str, record_id: str) -> Doc | None:
        return await self.db[collection].find_one({"_id": record_id})

    async def get_records(self, collection: str, record_ids: Iterable[str]) -> dict[str, Doc]:
        ids = list(dict.fromkeys(record_ids))
        if not ids:
            return {}
        return {d["_id"]: d async for d in self.db[collection].find({"_id": {"$in": ids}})}


class InMemoryLearningStore(InMemoryEventStore):
    """The same contract without I/O, for unit tests."""

    def __init__(self) -> None:
        super().__init__()
        self.records: dict[str, dict[str, Doc]] = {}

    async def append_with(
        self,
        aggregate_type: str,
        aggregate_id: str,
        expected_version: int,
        events: Sequence[DomainEvent],
        context: CommandContext,
        records: Sequence[Record],
    ) -> list[EventEnvelope]:
        envelopes = await self.append(
            aggregate_type, aggregate_id, expected_version, events, context
        )  # raises on a conflict, before any record is written
        for record in records:
            self.records.setdefault(record.collection, {})[record.doc["_id"]] = dict(record.doc)
        return envelopes

    async def get_record(self, collection: str, record_id: str) -> Doc | None:
        found = self.records.get(collection, {}).get(record_id)
        return dict(found) if found else None

    async def get_records(self, collection: str, record_ids: Iterable[str]) -> dict[str, Doc]:
        held = self.records.get(collection, {})
        return {i: dict(held[i]) for i in record_ids if i in held}
