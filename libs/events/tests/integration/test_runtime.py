"""The runtime against real servers: store, outbox relay, idempotent consumer, tracing."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from opentelemetry import trace
from pymongo import AsyncMongoClient
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from sotay_events import CommandContext, ConcurrencyConflict, EventEnvelope, MongoEventStore, topics
from sotay_events.catalogue import DomainEvent
from sotay_events.catalogue.org_tree import OrgLevel, UnitCreated, UnitRenamed
from sotay_events.consumer import Applied, ProjectionRunner, subscribe_projection
from sotay_events.kafka import ensure_topics, make_broker
from sotay_events.outbox import OutboxRelay
from sotay_events.uow import Changes, StreamWrite
from sotay_platform.cluster import in_order
from sotay_platform.settings import InfraSettings
from sotay_platform.stack import EmbeddedStack
from sotay_platform.testing import eventually


class UnitNames:
    """A tiny projection: each unit's current name and how many events it saw."""

    name = "unit_names"
    collections = ("unit_names",)

    async def apply_batch(
        self, db: AsyncDatabase[dict[str, Any]], items: list[Applied], session: AsyncClientSession
    ) -> None:
        for envelope, event in items:
            if isinstance(event, UnitCreated | UnitRenamed):
                await db.unit_names.update_one(
                    {"_id": envelope.aggregate_id},
                    {"$set": {"name": event.name}, "$inc": {"events": 1}},
                    upsert=True,
                    session=session,
                )


async def append(
    store: MongoEventStore,
    aggregate_type: str,
    aggregate_id: str,
    expected_version: int,
    events: list[DomainEvent],
    context: CommandContext,
) -> list[EventEnvelope]:
    """One stream's events committed at an expected version: the store's own commit."""
    write = StreamWrite(aggregate_type, aggregate_id, expected_version, events)
    return await store.commit(Changes(streams=[write]), context)


def created(unit_id: str) -> UnitCreated:
    return UnitCreated(
        unit_id=unit_id, name=f"Chi bộ {unit_id}", level=OrgLevel.branch, parent_id="P"
    )


def renamed(unit_id: str, name: str, previous: str) -> UnitRenamed:
    return UnitRenamed(unit_id=unit_id, name=name, previous_name=previous)


@pytest.fixture
async def mongo(infra: InfraSettings) -> AsyncIterator[AsyncMongoClient[dict[str, Any]]]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(infra.mongo_url, tz_aware=True)
    yield client
    await client.close()


@pytest.fixture
async def store(mongo: AsyncMongoClient[dict[str, Any]]) -> MongoEventStore:
    store = MongoEventStore(mongo, f"runtime_{uuid.uuid4().hex[:8]}")
    await store.create_indexes()
    return store


async def test_of_two_concurrent_appends_exactly_one_wins(store: MongoEventStore) -> None:
    unit = uuid.uuid4().hex
    results = await asyncio.gather(
        append(store, "OrgUnit", unit, 0, [created(unit)], CommandContext()),
        append(store, "OrgUnit", unit, 0, [created(unit)], CommandContext()),
        return_exceptions=True,
    )
    assert sorted(type(r).__name__ for r in results) == ["ConcurrencyConflict", "list"]
    assert len(await store.load("OrgUnit", unit)) == 1


async def test_many_racers_one_stream_versions_stay_dense(store: MongoEventStore) -> None:
    unit = uuid.uuid4().hex
    await append(store, "OrgUnit", unit, 0, [created(unit)], CommandContext())

    async def rename_until_it_lands(i: int) -> None:
        while True:
            version = len(await store.load("OrgUnit", unit))
            try:
                await append(
                    store, "OrgUnit", unit, version, [renamed(unit, f"n{i}", "x")], CommandContext()
                )
                return
            except ConcurrencyConflict:
                await asyncio.sleep(0.01)

    await asyncio.gather(*(rename_until_it_lands(i) for i in range(8)))
    versions = [e.aggregate_version for e in await store.load("OrgUnit", unit)]
    assert versions == list(range(1, 10))


async def test_a_command_with_a_conflict_writes_none_of_its_events(store: MongoEventStore) -> None:
    unit = uuid.uuid4().hex
    await append(store, "OrgUnit", unit, 0, [created(unit)], CommandContext())
    with pytest.raises(ConcurrencyConflict):
        await append(
            store,
            "OrgUnit",
            unit,
            0,
            [created(unit), renamed(unit, "a", "b"), renamed(unit, "c", "a")],
            CommandContext(),
        )
    assert [e.aggregate_version for e in await store.load("OrgUnit", unit)] == [1]


async def read_topic(
    bootstrap: str, topic: str, want: Callable[[list[EventEnvelope]], bool], timeout: float = 30
) -> list[EventEnvelope]:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=uuid.uuid4().hex,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    seen: list[EventEnvelope] = []
    try:
        async with asyncio.timeout(timeout):
            while not want(seen):
                batch = await consumer.getmany(timeout_ms=500)
                seen += [EventEnvelope.from_bytes(m.value) for ms in batch.values() for m in ms]
    finally:
        await consumer.stop()
    return seen


async def test_outbox_delivers_everything_across_a_broker_restart(
    store: MongoEventStore, own_kafka: EmbeddedStack
) -> None:
    bootstrap = own_kafka.env["SOTAY_KAFKA_BOOTSTRAP"]
    await ensure_topics(bootstrap, [topics.ORG_TREE], partitions=3)
    broker = make_broker(
        bootstrap, client_id="relay-test", idempotent_producer=False, request_timeout_ms=3000
    )
    await broker.start()
    relay = OutboxRelay(
        store,
        broker,
        batch_size=50,
        idle_interval=0.05,
        retry_interval=0.2,
        prepare=lambda: ensure_topics(bootstrap, [topics.ORG_TREE], 3),
    )
    task = asyncio.create_task(relay.run())
    units = [uuid.uuid4().hex for _ in range(5)]
    try:
        for unit in units:
            await append(store, "OrgUnit", unit, 0, [created(unit)], CommandContext())
        await eventually(lambda: _zero(store))

        own_kafka.stop_one("kafka")
        for unit in units:  # recorded while the broker is away
            await append(
                store,
                "OrgUnit",
                unit,
                1,
                [renamed(unit, "sau", "trước"), renamed(unit, "cuối", "sau")],
                CommandContext(),
            )
        await asyncio.sleep(1.0)
        assert await store.count_unpublished() == 10

        own_kafka.start_kafka()  # the memory engine comes back empty
        await eventually(lambda: _zero(store), timeout=60)
    finally:
        task.cancel()
        await broker.stop()

    def complete(seen: list[EventEnvelope]) -> bool:
        return len({e.event_id for e in seen if e.aggregate_id in set(units)}) >= 15

    seen = await read_topic(bootstrap, topics.ORG_TREE, complete)
    # The broker came back without its log: the relay noticed and published the whole
    # history again, so every version is there, in order, after any batch in flight.
    for unit in units:
        versions = [e.aggregate_version for e in seen if e.aggregate_id == unit]
        assert in_order(versions), f"{unit}: {versions}"
        assert set(versions) == {1, 2, 3}, f"{unit}: {versions}"


async def _zero(store: MongoEventStore) -> bool:
    return await store.count_unpublished() == 0


async def test_consumer_applies_each_event_once_and_parks_poison(
    store: MongoEventStore,
    mongo: AsyncMongoClient[dict[str, Any]],
    infra: InfraSettings,
    span_exporter: Any,
) -> None:
    await ensure_topics(
        infra.kafka_bootstrap, [topics.ORG_TREE, topics.dead_letter(topics.ORG_TREE)], 3
    )
    broker = make_broker(
        infra.kafka_bootstrap, client_id="consumer-test", idempotent_producer=False
    )
    runner = ProjectionRunner(mongo, store.db.name, UnitNames())
    subscribe_projection(
        broker, runner, [topics.ORG_TREE], group_id=uuid.uuid4().hex, max_records=50
    )
    relay = OutboxRelay(store, broker, idle_interval=0.05)
    await broker.start()
    task = asyncio.create_task(relay.run())
    unit = uuid.uuid4().hex
    tracer = trace.get_tracer("test")
    try:
        with tracer.start_as_current_span("request") as request_span:
            await append(store, "OrgUnit", unit, 0, [created(unit)], CommandContext())
        trace_id = request_span.get_span_context().trace_id
        await eventually(lambda: store.db.unit_names.find_one({"_id": unit}))

        # Garbage and an unknown version are parked; the partition keeps moving.
        await broker.publish(b"not json", topics.ORG_TREE, key=unit.encode())
        history = await store.load("OrgUnit", unit)
        # The next version in a schema this consumer does not know yet: parked, not applied.
        future = history[0].model_copy(
            update={"event_id": uuid.uuid4().hex, "schema_version": 99, "aggregate_version": 2}
        )
        await broker.publish(future.to_bytes(), topics.ORG_TREE, key=unit.encode())
        # A redelivery of an applied event changes nothing.
        await broker.publish(history[0].to_bytes(), topics.ORG_TREE, key=unit.encode())
        await append(
            store, "OrgUnit", unit, 1, [renamed(unit, "Chi bộ mới", "cũ")], CommandContext()
        )

        async def renamed_once() -> bool:
            doc = await store.db.unit_names.find_one({"_id": unit})
            return bool(doc and doc["name"] == "Chi bộ mới")

        await eventually(renamed_once)
        doc = await store.db.unit_names.find_one({"_id": unit})
        assert doc and doc["events"] == 2

        dlq = AIOKafkaConsumer(
            topics.dead_letter(topics.ORG_TREE),
            bootstrap_servers=infra.kafka_bootstrap,
            group_id=uuid.uuid4().hex,
            auto_offset_reset="earliest",
        )
        await dlq.start()
        try:
            reasons: list[str] = []
            async with asyncio.timeout(20):
                while not any("99" in r for r in reasons):
                    batch = await dlq.getmany(timeout_ms=500)
                    reasons += [
                        dict(m.headers)["dlq_error"].decode() for ms in batch.values() for m in ms
                    ]
        finally:
            await dlq.stop()
        assert any("JSON" in r or "json" in r for r in reasons)

        # One trace: request -> append -> publish -> consume -> projection.
        spans = [s for s in span_exporter.get_finished_spans() if s.context.trace_id == trace_id]
        names = {s.name for s in spans}
        assert "eventstore.commit" in names
        assert any("publish" in n for n in names), names
        assert "projection.unit_names" in names

        # A rebuild from the store's history equals the live projection.
        live = await store.db.unit_names.find({"_id": unit}).to_list()
        rebuilt_db = f"{store.db.name}_rebuild"
        rebuild = ProjectionRunner(mongo, rebuilt_db, UnitNames())
        await rebuild.rebuild(await store.all_events())
        assert await mongo[rebuilt_db].unit_names.find({"_id": unit}).to_list() == live
    finally:
        task.cancel()
        await broker.stop()
