"""Runtime v2 against the real servers: the unit of work, the leased relay in commit order,
consumers that track versions, parking and replay, resumable rebuilds."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from pymongo import AsyncMongoClient
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from uuid6 import UUID

from sotay_events import (
    ClaimTaken,
    CommandContext,
    ConcurrencyConflict,
    EventEnvelope,
    GroupCommit,
    MongoEventStore,
    topics,
)
from sotay_events import envelope as envelope_module
from sotay_events.aggregate import Aggregate
from sotay_events.catalogue import DomainEvent
from sotay_events.catalogue.org_tree import OrgLevel, UnitCreated, UnitRenamed
from sotay_events.consumer import Applied, ProjectionRunner, subscribe_projection
from sotay_events.dlq import list_parked, replay
from sotay_events.kafka import ensure_topics, make_broker
from sotay_events.lease import Lease, LeaseLost
from sotay_events.outbox import OutboxRelay, headers_of
from sotay_events.rebuild import resumable_rebuild, store_history, topic_history
from sotay_platform.settings import InfraSettings
from sotay_platform.testing import eventually


class Unit(Aggregate):
    aggregate_type = "OrgUnit"

    def __init__(self, aggregate_id: str) -> None:
        super().__init__(aggregate_id)
        self.name = ""

    def apply(self, event: DomainEvent) -> None:
        if isinstance(event, UnitCreated | UnitRenamed):
            self.name = event.name

    def create(self) -> None:
        self.record(
            UnitCreated(
                unit_id=self.id, name=f"Chi bộ {self.id}", level=OrgLevel.branch, parent_id="P"
            )
        )

    def rename(self, name: str) -> None:
        self.record(UnitRenamed(unit_id=self.id, name=name, previous_name=self.name))


class Names:
    """Each unit's name and the renames it saw, in order: an out-of-order apply shows."""

    name = "names"
    collections = ("names",)
    event_types = frozenset({"UnitCreated", "UnitRenamed"})
    fail_on: ClassVar[set[str]] = set()

    async def apply_batch(
        self, db: AsyncDatabase[dict[str, Any]], items: list[Applied], session: AsyncClientSession
    ) -> None:
        for envelope, event in items:
            assert isinstance(event, UnitCreated | UnitRenamed)
            if event.name in self.fail_on:
                raise RuntimeError(f"cannot apply {event.name}")
            await db.names.update_one(
                {"_id": envelope.aggregate_id},
                {"$set": {"name": event.name}, "$push": {"seen": envelope.aggregate_version}},
                upsert=True,
                session=session,
            )


@pytest.fixture
async def mongo(infra: InfraSettings) -> AsyncIterator[AsyncMongoClient[dict[str, Any]]]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(infra.mongo_url, tz_aware=True)
    yield client
    await client.close()


@pytest.fixture
async def store(mongo: AsyncMongoClient[dict[str, Any]]) -> MongoEventStore:
    store = MongoEventStore(mongo, f"v2_{uuid.uuid4().hex[:8]}")
    await store.create_indexes()
    return store


def ctx() -> CommandContext:
    return CommandContext(actor="test", org_path=("TW", "QNG"))


async def create_unit(store: MongoEventStore, unit_id: str, renames: int = 0) -> None:
    uow = store.unit_of_work()
    unit = Unit(unit_id)
    unit.create()
    for n in range(renames):
        unit.rename(f"tên {n + 1}")
    uow.add(unit)
    await uow.commit(ctx())


async def test_a_unit_of_work_commits_streams_rows_private_and_claims_together(
    store: MongoEventStore,
) -> None:
    a, b = uuid.uuid4().hex, uuid.uuid4().hex
    uow = store.unit_of_work()
    for unit_id in (a, b):
        unit = Unit(unit_id)
        unit.create()
        uow.add(unit)
    uow.row("unit_rows", {"_id": a, "name": "A"})
    uow.private("vault", {"_id": a, "secret": "x"})
    uow.claim("unit_codes", "CODE-A", a)
    envelopes = await uow.commit(ctx())
    assert [e.aggregate_version for e in envelopes] == [1, 1]

    # The second command conflicts on one stream: none of its writes happen.
    stale = store.unit_of_work()
    unit_a = await stale.get(Unit, a)
    assert unit_a is not None
    unit_a.rename("mới")
    racer = store.unit_of_work()
    unit_again = await racer.get(Unit, a)
    assert unit_again is not None
    unit_again.rename("khác")
    await racer.commit(ctx())
    stale.row("unit_rows", {"_id": a, "name": "mới"})
    stale.claim("unit_codes", "CODE-B", a)
    with pytest.raises(ConcurrencyConflict):
        await stale.commit(ctx())
    assert (await store.db.unit_rows.find_one({"_id": a})) == {"_id": a, "name": "A"}
    assert await store.db.unit_codes.find_one({"_id": "CODE-B"}) is None

    other = store.unit_of_work()
    other.claim("unit_codes", "CODE-A", b)
    other.row("unit_rows", {"_id": b, "name": "B"})
    with pytest.raises(ClaimTaken):
        await other.commit(ctx())
    assert await store.db.unit_rows.find_one({"_id": b}) is None


async def test_group_commit_writes_concurrent_stream_starts_together(
    store: MongoEventStore,
) -> None:
    group = GroupCommit(store, max_batch=50)
    ids = [uuid.uuid4().hex for _ in range(40)]

    async def start(unit_id: str) -> str:
        uow = group.unit_of_work()
        unit = Unit(unit_id)
        unit.create()
        uow.add(unit)
        try:
            await uow.commit(ctx())
            return "started"
        except ConcurrencyConflict:
            return "existed"

    results = await asyncio.gather(*(start(i) for i in ids + ids[:10]))
    assert results.count("started") == 40 and results.count("existed") == 10
    assert await store.events.count_documents({}) == 40


async def read_all(bootstrap: str, topic: str, units: list[str], count: int) -> list[EventEnvelope]:
    """The messages of `units` on `topic`, once `count` distinct events of theirs arrived."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=uuid.uuid4().hex, auto_offset_reset="earliest"
    )
    await consumer.start()
    wanted = set(units)
    seen: list[EventEnvelope] = []
    try:
        async with asyncio.timeout(30):
            while len({e.event_id for e in seen}) < count:
                batch = await consumer.getmany(timeout_ms=300)
                for m in (m for ms in batch.values() for m in ms):
                    if dict(m.headers or ()).get("aggregate_id", b"").decode() in wanted:
                        seen.append(EventEnvelope.from_bytes(m.value))
    finally:
        await consumer.stop()
    return seen


async def unpublished_is_zero(store: MongoEventStore) -> bool:
    return await store.count_unpublished() == 0


async def test_publication_follows_commit_order_when_a_writers_clock_is_minutes_behind(
    store: MongoEventStore, infra: InfraSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    units = [uuid.uuid4().hex for _ in range(20)]
    for unit_id in units:
        await create_unit(store, unit_id)

    # The second writer's clock runs ten minutes behind: its event ids (UUIDv7,
    # from its clock) sort before the versions committed before them.
    behind = datetime.now(UTC) - timedelta(minutes=10)

    def skewed_id() -> str:
        millis = int(behind.timestamp() * 1000)
        return str(UUID(int=(millis << 80) | (0x7 << 76) | uuid.uuid4().int & ((1 << 76) - 1)))

    monkeypatch.setattr(envelope_module, "uuid7", lambda: UUID(skewed_id()))
    for unit_id in units:
        uow = store.unit_of_work()
        unit = await uow.get(Unit, unit_id)
        assert unit is not None
        unit.rename("sau")
        await uow.commit(ctx())
    monkeypatch.undo()
    first = await store.load("OrgUnit", units[0])
    assert first[1].event_id < first[0].event_id  # the skew is real

    await ensure_topics(infra.kafka_bootstrap, [topics.ORG_TREE], 3)
    broker = make_broker(infra.kafka_bootstrap, client_id="skew", idempotent_producer=False)
    await broker.start()
    relay = OutboxRelay(store, broker, name=store.db.name, batch_size=7, idle_interval=0.05)
    task = asyncio.create_task(relay.run())
    try:
        await eventually(lambda: unpublished_is_zero(store))
    finally:
        task.cancel()
        await broker.stop()
    seen = await read_all(infra.kafka_bootstrap, topics.ORG_TREE, units, 40)
    for unit_id in units:
        versions = [e.aggregate_version for e in seen if e.aggregate_id == unit_id]
        assert list(dict.fromkeys(versions)) == [1, 2], versions


async def test_one_relay_publishes_and_a_standby_takes_over_when_it_dies(
    store: MongoEventStore, infra: InfraSettings
) -> None:
    await ensure_topics(infra.kafka_bootstrap, [topics.ORG_TREE], 3)
    brokers = [
        make_broker(infra.kafka_bootstrap, client_id=f"r{i}", idempotent_producer=False)
        for i in range(3)
    ]
    for broker in brokers:
        await broker.start()
    relays = [
        OutboxRelay(
            store, broker, name=store.db.name, batch_size=20, idle_interval=0.05, lease_timeout=1.0
        )
        for broker in brokers
    ]
    tasks = [asyncio.create_task(r.run()) for r in relays]
    try:
        await eventually(lambda: _one_active(relays))
        units = [uuid.uuid4().hex for _ in range(30)]
        for unit_id in units[:15]:
            await create_unit(store, unit_id, renames=2)
        await eventually(lambda: unpublished_is_zero(store))
        assert sum(r.active for r in relays) == 1

        # The active one dies without a word (no release): a standby takes over.
        dead = next(i for i, r in enumerate(relays) if r.active)
        tasks[dead].cancel()
        for unit_id in units[15:]:
            await create_unit(store, unit_id, renames=2)
        await eventually(lambda: unpublished_is_zero(store), timeout=15)
        survivors = [r for i, r in enumerate(relays) if i != dead]
        assert sum(r.active for r in survivors) == 1
    finally:
        for task in tasks:
            task.cancel()
        for broker in brokers:
            await broker.stop()
    seen = await read_all(infra.kafka_bootstrap, topics.ORG_TREE, units, 90)
    for unit_id in units:
        versions = [e.aggregate_version for e in seen if e.aggregate_id == unit_id]
        assert list(dict.fromkeys(versions)) == [1, 2, 3], versions


async def _one_active(relays: list[OutboxRelay]) -> bool:
    return sum(r.active for r in relays) == 1


async def test_a_write_fenced_by_a_lost_lease_writes_nothing(store: MongoEventStore) -> None:
    leases = store.db["leases"]
    old = Lease(leases, "fenced-test", timeout=0.1)
    assert await old.hold()

    async def write(session: AsyncClientSession) -> None:
        await store.db["fenced"].insert_one({"by": "old"}, session=session)

    await old.fenced(write)
    # The old holder pauses past its lease; a standby takes it over.
    new = Lease(leases, "fenced-test", timeout=0.1)
    assert not await new.hold()
    await asyncio.sleep(0.15)
    assert await new.hold()
    with pytest.raises(LeaseLost):
        await old.fenced(write)
    assert not old.held
    assert await store.db["fenced"].count_documents({}) == 1


async def test_a_consumer_tracks_versions_holds_gaps_and_skips_repeats(
    store: MongoEventStore, mongo: AsyncMongoClient[dict[str, Any]]
) -> None:
    unit_id = uuid.uuid4().hex
    await create_unit(store, unit_id, renames=3)
    v1, v2, v3, v4 = await store.load("OrgUnit", unit_id)
    runner = ProjectionRunner(mongo, store.db.name, Names())
    await runner.create_indexes()

    assert await runner.handle([v1, v3]) == 1  # v3 waits for v2
    assert await runner.handle([v1, v4]) == 0  # v1 again changes nothing, v4 waits
    assert await runner.handle([v2]) == 3  # v2, then v3 and v4 in order
    assert await runner.handle([v1, v2, v3, v4]) == 0
    doc = await store.db.names.find_one({"_id": unit_id})
    assert doc is not None and doc["seen"] == [1, 2, 3, 4]
    assert await runner.tracking.count_documents({}) == 1  # one record per aggregate
    assert await runner.held.count_documents({}) == 0


async def test_a_failing_event_is_parked_with_its_projection_and_replayed_after_the_fix(
    store: MongoEventStore, mongo: AsyncMongoClient[dict[str, Any]], infra: InfraSettings
) -> None:
    source = f"sotay.test-{uuid.uuid4().hex[:6]}.events"
    await ensure_topics(infra.kafka_bootstrap, [source, topics.dead_letter(source)], 1)
    projection = Names()
    projection.fail_on = {"hỏng"}
    broker = make_broker(infra.kafka_bootstrap, client_id="park", idempotent_producer=False)
    runner = ProjectionRunner(mongo, store.db.name, projection, backoff=0.01)
    await runner.create_indexes()
    subscribe_projection(broker, runner, [source], group_id=uuid.uuid4().hex)
    await broker.start()
    producer = AIOKafkaProducer(bootstrap_servers=infra.kafka_bootstrap)
    await producer.start()
    bad, good = uuid.uuid4().hex, uuid.uuid4().hex
    try:
        uow = store.unit_of_work()
        broken = Unit(bad)
        broken.create()
        broken.rename("hỏng")
        broken.rename("sửa xong")
        fine = Unit(good)
        fine.create()
        uow.add(broken)
        uow.add(fine)
        for envelope in await uow.commit(ctx()):
            await producer.send_and_wait(
                source,
                envelope.to_bytes(),
                key=envelope.aggregate_id.encode(),
                headers=[(k, v.encode()) for k, v in headers_of(envelope).items()],
            )

        # The good unit and the bad unit's first version are applied; the failing
        # version is parked, and the one after it waits rather than jump ahead.
        await eventually(lambda: store.db.names.find_one({"_id": good}))
        parked = await eventually(lambda: list_parked(infra.kafka_bootstrap, source, "names"))
        assert parked[0]["aggregate_version"] == "2" and "hỏng" in parked[0]["error"]
        assert parked[0]["attempts"] == "3"
        doc = await store.db.names.find_one({"_id": bad})
        assert doc is not None and doc["seen"] == [1]
        assert await runner.held.count_documents({"stream_id": f"OrgUnit-{bad}"}) == 1

        projection.fail_on = set()  # the fix is deployed
        assert await replay(infra.kafka_bootstrap, source, "names") == 1

        async def caught_up() -> bool:
            doc = await store.db.names.find_one({"_id": bad})
            return bool(doc and doc["seen"] == [1, 2, 3])

        await eventually(caught_up)
        assert await replay(infra.kafka_bootstrap, source, "names") == 0  # replayed once
    finally:
        await producer.stop()
        await broker.stop()


async def test_rebuilds_stream_in_batches_and_resume_where_they_stopped(
    store: MongoEventStore, mongo: AsyncMongoClient[dict[str, Any]], infra: InfraSettings
) -> None:
    units = [uuid.uuid4().hex for _ in range(12)]
    for unit_id in units:
        await create_unit(store, unit_id, renames=2)
    live = ProjectionRunner(mongo, store.db.name, Names())
    await live.replay(await store.all_events())
    expected = await store.db.names.find({}).sort("_id").to_list()

    target = f"{store.db.name}_rebuilt"
    runner = ProjectionRunner(mongo, target, Names())
    source = store_history(store, batch_size=5)

    def dies_after_two(start: Any) -> AsyncIterator[Any]:
        async def gen() -> AsyncIterator[Any]:
            count = 0
            async for item in source(start):
                yield item
                count += 1
                if count == 2:
                    raise RuntimeError("the pod died")

        return gen()

    with pytest.raises(RuntimeError):
        await resumable_rebuild(runner, dies_after_two)
    assert 0 < await mongo[target].names.count_documents({}) < len(units)
    await resumable_rebuild(runner, source)  # resumes from the checkpoint
    assert await mongo[target].names.find({}).sort("_id").to_list() == expected

    # From the topic instead of the store: the same model.
    topic = f"sotay.rebuild-{uuid.uuid4().hex[:6]}.events"
    await ensure_topics(infra.kafka_bootstrap, [topic], 2)
    producer = AIOKafkaProducer(bootstrap_servers=infra.kafka_bootstrap)
    await producer.start()
    try:
        for chunk, _ in [c async for c in store.history()]:
            for envelope in chunk:
                await producer.send(
                    topic,
                    envelope.to_bytes(),
                    key=envelope.aggregate_id.encode(),
                    headers=[(k, v.encode()) for k, v in headers_of(envelope).items()],
                )
        await producer.flush()
    finally:
        await producer.stop()
    from_topic = ProjectionRunner(mongo, f"{store.db.name}_topic", Names())

    def topic_source(start: Any) -> AsyncIterator[Any]:
        return topic_history(infra.kafka_bootstrap, [topic], batch_size=7, start=start)

    await resumable_rebuild(from_topic, topic_source)
    rebuilt = await mongo[f"{store.db.name}_topic"].names.find({}).sort("_id").to_list()
    assert rebuilt == expected
