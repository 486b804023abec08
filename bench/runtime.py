"""The event-sourcing runtime against its raw baselines, on the same servers in the same run.

    .venv/bin/python bench/runtime.py [--quick] [--json PATH]

1. append: commands through the unit of work (`GroupCommit`, the hot-path form:
   concurrent single-event stream starts, like check-ins) vs raw `insert_many`
   of the same documents; the transactional form (several streams, a row) is
   printed beside it for information;
2. relay: the outbox relay publishing a backlog vs a raw aiokafka producer
   sending the same messages;
3. projections (org units, usage, meeting views, learning results): consume a
   topic and apply every batch through the `ProjectionRunner` vs raw consume
   and decode of the same messages;
4. rebuild: a projection rebuilt from the store's history, streamed in
   batches: events per second and the process's peak memory.

Prints a table; `--json PATH` writes {"append_ratio", "relay_ratio",
"projection_ratio": {...}, "rebuild_events_per_s", "rebuild_peak_rss_mb"}
(ratios as fractions of the baseline). Targets: every ratio >= 0.5; a rebuild of
1,000,000 events under 60 s below 500 MB (the full run; --quick uses 100,000).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import resource
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from pymongo import AsyncMongoClient

from sotay_events import CommandContext, EventEnvelope, GroupCommit, MongoEventStore, topics
from sotay_events.aggregate import Aggregate
from sotay_events.catalogue import CATALOGUE, DomainEvent
from sotay_events.catalogue.identity import (
    Gender,
    MemberRegistered,
    MemberRegistrationApproved,
    MemberStatus,
)
from sotay_events.catalogue.meetings import MeetingClosed, MeetingConvened, MeetingKind
from sotay_events.catalogue.org_tree import OrgLevel, UnitCreated, UnitRenamed
from sotay_events.consumer import Incoming, Projection, ProjectionRunner
from sotay_events.kafka import ensure_topics, make_broker
from sotay_events.outbox import OutboxRelay, headers_of
from sotay_events.store import to_document
from sotay_platform.org_units import OrgUnitsProjection
from sotay_platform.stack import EmbeddedStack

CTX = CommandContext(actor="bench", org_path=("TW", "P"))


class Unit(Aggregate):
    aggregate_type = "OrgUnit"

    def apply(self, event: DomainEvent) -> None:
        pass


def unit_created(unit_id: str, parent: str | None, level: OrgLevel) -> UnitCreated:
    return UnitCreated(unit_id=unit_id, name=f"Đơn vị {unit_id}", level=level, parent_id=parent)


class History:
    """A province's events: its tree, members registered and approved, monthly meetings."""

    def __init__(self, branches: int, members_per_branch: int, months: int) -> None:
        self.envelopes: list[EventEnvelope] = []
        self.versions: dict[str, int] = {}
        start = datetime.now(UTC) - timedelta(days=31 * months + 3)
        self.add(unit_created("TW", None, OrgLevel.central), "TW", start, ("TW",))
        self.add(unit_created("P", "TW", OrgLevel.province), "P", start, ("TW", "P"))
        communes = max(1, branches // 40)
        for c in range(communes):
            code = f"P.X{c:03d}"
            self.add(unit_created(code, "P", OrgLevel.commune), code, start, ("TW", "P", code))
        for b in range(branches):
            commune = f"P.X{b % communes:03d}"
            branch = f"{commune}.CB{b:05d}"
            path = ("TW", "P", commune, branch)
            self.add(unit_created(branch, commune, OrgLevel.branch), branch, start, path)
            members = [f"{branch}.m{m}" for m in range(members_per_branch)]
            for member in members:
                self.add(
                    MemberRegistered(
                        member_id=member,
                        full_name="Đảng viên",
                        gender=Gender.male,
                        branch_id=branch,
                        status=MemberStatus.official,
                        admitted_on=date(2000, 1, 1),
                        registered_by="import",
                    ),
                    member,
                    start,
                    path,
                )
                self.add(
                    MemberRegistrationApproved(
                        member_id=member, branch_id=branch, approved_by="bt"
                    ),
                    member,
                    start,
                    path,
                )
            size = len(members)
            for month in range(months):
                at = start + timedelta(days=31 * month + 2)
                meeting = f"{branch}.M{month}"
                self.add(
                    MeetingConvened(
                        meeting_id=meeting,
                        unit_id=branch,
                        kind=MeetingKind.regular,
                        title="Sinh hoạt chi bộ thường kỳ",
                        starts_at=at,
                        ends_at=at + timedelta(hours=2),
                    ),
                    meeting,
                    at - timedelta(days=3),
                    path,
                )
                present = size * 4 // 5
                self.add(
                    MeetingClosed(
                        meeting_id=meeting,
                        unit_id=branch,
                        kind=MeetingKind.regular,
                        invited=size,
                        present=present,
                        excused=0,
                        absent_without_leave=size - present,
                    ),
                    meeting,
                    at + timedelta(hours=2),
                    path,
                )

    def add(
        self, event: DomainEvent, aggregate_id: str, at: datetime, path: tuple[str, ...]
    ) -> None:
        version = self.versions.get(aggregate_id, 0) + 1
        self.versions[aggregate_id] = version
        self.envelopes.append(
            EventEnvelope(
                event_type=event.event_type,
                schema_version=event.schema_version,
                aggregate_type=event.aggregate_type,
                aggregate_id=aggregate_id,
                aggregate_version=version,
                occurred_at=at,
                org_path=path,
                actor="bench",
                payload=event.model_dump(mode="json"),
            )
        )


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def bench_append(client: AsyncMongoClient[dict[str, Any]], n: int) -> dict[str, float]:
    store = MongoEventStore(client, f"bench_append_{uuid.uuid4().hex[:6]}")
    await store.create_indexes()
    group = GroupCommit(store, max_batch=500)
    units = [Unit(f"u{i}") for i in range(n)]
    for unit in units:
        unit.record(UnitRenamed(unit_id=unit.id, name="Mới", previous_name="Cũ"))

    async def one(unit: Unit) -> None:
        uow = group.unit_of_work()
        uow.add(unit)
        await uow.commit(CTX)

    started = time.perf_counter()
    for start in range(0, n, 2000):  # 2,000 commands in flight, as many clients would be
        await asyncio.gather(*(one(u) for u in units[start : start + 2000]))
    through_uow = n / (time.perf_counter() - started)

    docs = [to_document(e) for e in (await store.all_events())]
    raw = client[f"{store.db.name}_raw"]["events"]
    started = time.perf_counter()
    for start in range(0, n, 500):
        await raw.insert_many(
            [{**d, "_id": f"r{d['_id']}"} for d in docs[start : start + 500]], ordered=False
        )
    raw_rate = n / (time.perf_counter() - started)

    transactional = min(n, 2000)
    started = time.perf_counter()
    for i in range(0, transactional, 4):  # four streams and a row in each commit
        uow = store.unit_of_work()
        for j in range(4):
            unit = Unit(f"t{i + j}")
            unit.record(unit_created(unit.id, "P", OrgLevel.branch))
            uow.add(unit)
        uow.row("bench_rows", {"_id": i, "n": i})
        await uow.commit(CTX)
    transaction_rate = transactional / (time.perf_counter() - started)
    return {
        "uow_per_s": through_uow,
        "raw_per_s": raw_rate,
        "ratio": through_uow / raw_rate,
        "transaction_events_per_s": transaction_rate,
    }


async def bench_relay(
    client: AsyncMongoClient[dict[str, Any]], bootstrap: str, n: int
) -> dict[str, float]:
    store = MongoEventStore(client, f"bench_relay_{uuid.uuid4().hex[:6]}")
    await store.create_indexes()
    history = History(branches=max(1, n // 30), members_per_branch=10, months=0).envelopes[:n]
    await store.events.insert_many([to_document(e) for e in history])
    topic = f"bench.relay.{uuid.uuid4().hex[:6]}"
    await ensure_topics(bootstrap, [topic], 3)

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    started = time.perf_counter()
    try:
        pending = []
        for envelope in history:
            pending.append(
                await producer.send(
                    topic,
                    envelope.to_bytes(),
                    key=envelope.aggregate_id.encode(),
                    headers=[(k, v.encode()) for k, v in headers_of(envelope).items()],
                )
            )
            if len(pending) >= 500:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    raw_rate = n / (time.perf_counter() - started)

    broker = make_broker(bootstrap, client_id="bench-relay", idempotent_producer=False)
    await broker.start()
    relay = OutboxRelay(store, broker, name="bench", batch_size=500, idle_interval=0.01)
    started = time.perf_counter()
    try:
        assert await relay.lease.hold()
        while await relay.publish_pending():
            pass
    finally:
        await broker.stop()
    relay_rate = n / (time.perf_counter() - started)
    return {"relay_per_s": relay_rate, "raw_per_s": raw_rate, "ratio": relay_rate / raw_rate}


async def produce(bootstrap: str, topic: str, envelopes: list[EventEnvelope]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, max_batch_size=1 << 20)
    await producer.start()
    try:
        pending = []
        for envelope in envelopes:
            pending.append(
                await producer.send(
                    topic,
                    envelope.to_bytes(),
                    key=envelope.aggregate_id.encode(),
                    headers=[(k, v.encode()) for k, v in headers_of(envelope).items()],
                )
            )
        await asyncio.gather(*pending)
    finally:
        await producer.stop()


async def consume(
    bootstrap: str, topic: str, total: int, handle: Callable[[list[Any]], Awaitable[None]]
) -> float:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_partition_fetch_bytes=8 << 20,
    )
    await consumer.start()
    seen = 0
    started = time.perf_counter()
    try:
        while seen < total:
            batches = await consumer.getmany(timeout_ms=1000, max_records=500)
            for records in batches.values():
                seen += len(records)
                await handle(records)
    finally:
        await consumer.stop()
    return time.perf_counter() - started


async def raw_decode(records: list[Any]) -> None:
    for record in records:
        envelope = EventEnvelope.from_bytes(record.value)
        CATALOGUE.decode(envelope.event_type, envelope.schema_version, envelope.payload)


def projections() -> dict[str, Callable[[], Projection]]:
    """Each projection the issue names, from its service (skipped if its service is absent)."""
    found: dict[str, Callable[[], Projection]] = {"org_units": OrgUnitsProjection}
    for name, module, cls in (
        ("usage", "sotay_reporting.projections", "UsageProjection"),
        ("meeting_views", "sotay_meetings.projections", "MeetingViewsProjection"),
        ("learning_results", "sotay_learning.projections", "LearningProjection"),
    ):
        try:
            found[name] = getattr(importlib.import_module(module), cls)
        except (ImportError, AttributeError) as exc:
            print(f"  {name}: skipped ({exc})")
    return found


async def bench_projection(
    client: AsyncMongoClient[dict[str, Any]],
    bootstrap: str,
    name: str,
    make: Callable[[], Projection],
    history: list[EventEnvelope],
) -> dict[str, float]:
    projection = make()
    wanted = getattr(projection, "event_types", None)
    events = [e for e in history if wanted is None or e.event_type in wanted] or history
    topic = f"bench.{name}.{uuid.uuid4().hex[:6]}"
    await ensure_topics(bootstrap, [topic], 3)
    await produce(bootstrap, topic, events)
    raw_seconds = await consume(bootstrap, topic, len(events), raw_decode)

    runner = ProjectionRunner(client, f"bench_{name}_{uuid.uuid4().hex[:6]}", projection)
    await runner.reset()

    async def apply(records: list[Any]) -> None:
        batch = [
            Incoming.from_kafka(r.value, {k: v.decode() for k, v in r.headers or ()}, r.topic)
            for r in records
        ]
        await runner.handle(batch)

    seconds = await consume(bootstrap, topic, len(events), apply)
    rate, raw_rate = len(events) / seconds, len(events) / raw_seconds
    return {"events": len(events), "per_s": rate, "raw_per_s": raw_rate, "ratio": rate / raw_rate}


async def bench_rebuild(
    client: AsyncMongoClient[dict[str, Any]], history: list[EventEnvelope]
) -> dict[str, float]:
    store = MongoEventStore(client, f"bench_rebuild_{uuid.uuid4().hex[:6]}")
    await store.create_indexes()
    for start in range(0, len(history), 5000):
        await store.events.insert_many([to_document(e) for e in history[start : start + 5000]])
    runner = ProjectionRunner(client, f"{store.db.name}_view", OrgUnitsProjection())
    await runner.reset()
    del history
    started = time.perf_counter()
    count = 0
    async for chunk, _ in store.history(batch_size=5000):
        count += len(chunk)
        await runner.handle(chunk)
    seconds = time.perf_counter() - started
    return {"events": count, "per_s": count / seconds, "seconds": seconds, "peak_rss_mb": rss_mb()}


async def main(args: argparse.Namespace) -> dict[str, Any]:
    n_append = 5_000 if args.quick else 50_000
    n_relay = 5_000 if args.quick else 50_000
    branches = 100 if args.quick else 1_000
    rebuild_events = 100_000 if args.quick else 1_000_000
    with tempfile.TemporaryDirectory() as workdir:
        stack = EmbeddedStack(Path(workdir)).start()
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
            stack.env["SOTAY_MONGO_URL"], tz_aware=True
        )
        bootstrap = stack.env["SOTAY_KAFKA_BOOTSTRAP"]
        try:
            await ensure_topics(bootstrap, topics.ALL_TOPICS, 3)
            append = await bench_append(client, n_append)
            print(f"append: {append}")
            relay = await bench_relay(client, bootstrap, n_relay)
            print(f"relay: {relay}")
            history = History(branches=branches, members_per_branch=15, months=3).envelopes
            results: dict[str, dict[str, float]] = {}
            for name, make in projections().items():
                try:
                    results[name] = await bench_projection(client, bootstrap, name, make, history)
                    print(f"projection {name}: {results[name]}")
                except Exception as exc:  # a service in the middle of a change: say so
                    print(f"projection {name}: failed ({exc!r})")
            big = History(branches=max(1, rebuild_events // 32), members_per_branch=15, months=0)
            rebuild = await bench_rebuild(client, big.envelopes[:rebuild_events])
            print(f"rebuild: {rebuild}")
        finally:
            await client.close()
            stack.stop()
    figures = {
        "append_ratio": round(append["ratio"], 3),
        "relay_ratio": round(relay["ratio"], 3),
        "projection_ratio": {k: round(v["ratio"], 3) for k, v in results.items()},
        "rebuild_events_per_s": round(rebuild["per_s"]),
        "rebuild_peak_rss_mb": round(rebuild["peak_rss_mb"]),
    }
    print()
    print("| measure | through the runtime | raw baseline | ratio |")
    print("|---|---|---|---|")
    print(
        f"| append (GroupCommit vs insert_many) | {append['uow_per_s']:,.0f}/s | "
        f"{append['raw_per_s']:,.0f}/s | {append['ratio']:.2f} |"
    )
    print(
        f"| append, transactions of 4 streams + a row | "
        f"{append['transaction_events_per_s']:,.0f} events/s | | |"
    )
    print(
        f"| relay vs raw producer | {relay['relay_per_s']:,.0f}/s | "
        f"{relay['raw_per_s']:,.0f}/s | {relay['ratio']:.2f} |"
    )
    for name, r in results.items():
        print(
            f"| projection {name} ({r['events']:,} events) | {r['per_s']:,.0f}/s | "
            f"{r['raw_per_s']:,.0f}/s | {r['ratio']:.2f} |"
        )
    print(
        f"| rebuild of {rebuild['events']:,} events | {rebuild['per_s']:,.0f}/s in "
        f"{rebuild['seconds']:.0f} s, peak {rebuild['peak_rss_mb']:.0f} MB | | |"
    )
    return figures


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes: under 3 minutes")
    parser.add_argument("--json", help="write the figures to this file")
    arguments = parser.parse_args()
    measured = asyncio.run(main(arguments))
    if arguments.json:
        Path(arguments.json).write_text(json.dumps(measured, indent=2))
