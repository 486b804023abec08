"""Reporting's usage projection under a province's worth of history.

    .venv/bin/python bench/reporting_projection.py [--members 200000] [--branches 5000]

Generates, in memory, a province: communes and branches, members registered,
approved and activated, sign-ins, a year of monthly branch meetings and a
resolution study campaign. Publishes the envelopes to a real (embedded) Kafka
broker, then in the same run:

1. raw read: the consumer reads and decodes every event from the broker
   (what `subscribe_projection` does before it hands a batch on), no writes;
2. projection: the same read, each batch applied by the `ProjectionRunner`
   (one MongoDB transaction per batch, tracking records included);
3. rebuild: `ProjectionRunner.rebuild` from the in-memory history;
4. the province's and a commune's dashboard roll-up.

Prints events per second for 1 and 2, the rebuild time, and checks that the
rebuild equals the live projection. At the default size (836,658 events) it
takes about 25 minutes on two cores, nearly all of it in the embedded MongoDB;
`--members 50000 --branches 1250 --skip-rebuild` takes about 3.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from pymongo import AsyncMongoClient

from sotay_events import DomainEvent, EventEnvelope, topics
from sotay_events.catalogue.identity import (
    AccountActivated,
    Gender,
    MemberRegistered,
    MemberRegistrationApproved,
    MemberSignedIn,
    MemberStatus,
)
from sotay_events.catalogue.learning import (
    ResolutionStudied,
    StudyCampaignLaunched,
    StudyStarted,
)
from sotay_events.catalogue.meetings import MeetingClosed, MeetingConvened, MeetingKind
from sotay_events.catalogue.org_tree import OrgLevel, UnitCreated
from sotay_events.consumer import ProjectionRunner, parse
from sotay_platform.org_units import OrgUnitsProjection
from sotay_platform.org_units import create_indexes as create_tree_indexes
from sotay_platform.stack import EmbeddedStack
from sotay_reporting.figures import TZ, strip_zeros
from sotay_reporting.projections import STATS, UsageProjection
from sotay_reporting.projections import create_indexes as create_usage_indexes
from sotay_reporting.queries import UsageQueries
from sotay_reporting.rebuild import rebuild

SOURCE_TOPICS = [topics.ORG_TREE, topics.IDENTITY, topics.MEETINGS, topics.LEARNING]


class Generator:
    def __init__(self, members: int, branches: int, months: int, seed: int = 1) -> None:
        self.members = members
        self.branches = branches
        self.months = months
        self.rng = random.Random(seed)
        self.versions: dict[str, int] = {}
        self.now = datetime.now(UTC)
        self.envelopes: list[EventEnvelope] = []

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

    def generate(self) -> list[EventEnvelope]:
        rng, now = self.rng, self.now
        start = now - timedelta(days=31 * self.months + 5)
        self.add(
            UnitCreated(unit_id="TW", name="Trung ương", level=OrgLevel.central),
            "TW",
            start,
            ("TW",),
        )
        self.add(
            UnitCreated(unit_id="P", name="Đảng bộ tỉnh", level=OrgLevel.province, parent_id="TW"),
            "P",
            start,
            ("TW", "P"),
        )
        communes = max(1, self.branches // 40)
        branch_paths: list[tuple[str, ...]] = []
        for c in range(communes):
            commune = f"P.X{c:03d}"
            self.add(
                UnitCreated(
                    unit_id=commune, name=f"Đảng bộ xã {c}", level=OrgLevel.commune, parent_id="P"
                ),
                commune,
                start,
                ("TW", "P", commune),
            )
        for b in range(self.branches):
            commune = f"P.X{b % communes:03d}"
            branch = f"{commune}.CB{b:05d}"
            path = ("TW", "P", commune, branch)
            branch_paths.append(path)
            self.add(
                UnitCreated(
                    unit_id=branch, name=f"Chi bộ {b}", level=OrgLevel.branch, parent_id=commune
                ),
                branch,
                start,
                path,
            )
        self.add(
            StudyCampaignLaunched(
                campaign_id="K57",
                unit_id="P",
                resolution_code="57-NQ/TW",
                resolution_title="Đột phá phát triển khoa học, công nghệ",
                deadline=now + timedelta(days=30),
                has_quiz=True,
            ),
            "K57",
            now - timedelta(days=60),
            ("TW", "P"),
        )
        for m in range(self.members):
            path = branch_paths[m % self.branches]
            branch = path[-1]
            member = f"M{m:07d}"
            joined = start + timedelta(days=rng.randint(0, 60))
            self.add(
                MemberRegistered(
                    member_id=member,
                    full_name="Đảng viên",
                    gender=Gender.male if m % 2 else Gender.female,
                    branch_id=branch,
                    status=MemberStatus.official,
                    admitted_on=date(2000, 1, 1),
                    registered_by="import",
                ),
                member,
                joined,
                path,
            )
            self.add(
                MemberRegistrationApproved(member_id=member, branch_id=branch, approved_by="bt"),
                member,
                joined,
                path,
            )
            if rng.random() < 0.75:
                self.add(
                    AccountActivated(member_id=member, branch_id=branch),
                    member,
                    joined + timedelta(days=1),
                    path,
                )
                if rng.random() < 0.7:
                    self.add(
                        MemberSignedIn(member_id=member, branch_id=branch),
                        member,
                        now - timedelta(days=rng.randint(0, 40), minutes=5),
                        path,
                    )
                if rng.random() < 0.25:
                    self.add(
                        StudyStarted(campaign_id="K57", member_id=member, unit_id=branch),
                        f"K57|{member}",
                        now - timedelta(days=20),
                        path,
                    )
                    self.add(
                        ResolutionStudied(
                            campaign_id="K57",
                            member_id=member,
                            unit_id=branch,
                            resolution_code="57-NQ/TW",
                            resolution_title="Đột phá phát triển khoa học, công nghệ",
                            materials_completed=3,
                            score=80,
                            passed=True,
                        ),
                        f"K57|{member}",
                        now - timedelta(days=19),
                        path,
                    )
        size = max(1, self.members // self.branches)
        for b, path in enumerate(branch_paths):
            for month in range(self.months):
                if rng.random() < 0.15:
                    continue
                meeting = f"H{b:05d}-{month:02d}"
                # monthly meetings fall in the first days of the month, Hà Nội time
                local = now.astimezone(TZ)
                index = local.year * 12 + local.month - 1 - month
                day = 2 + b % 5
                if month == 0 and local.day <= day:
                    continue
                starts = datetime(index // 12, index % 12 + 1, day, 19, tzinfo=TZ).astimezone(UTC)
                self.add(
                    MeetingConvened(
                        meeting_id=meeting,
                        unit_id=path[-1],
                        kind=MeetingKind.regular,
                        title="Sinh hoạt chi bộ thường kỳ",
                        starts_at=starts,
                        ends_at=starts + timedelta(hours=2),
                    ),
                    meeting,
                    starts - timedelta(days=5),
                    path,
                )
                present = rng.randint(size // 2, size)
                excused = rng.randint(0, size - present)
                self.add(
                    MeetingClosed(
                        meeting_id=meeting,
                        unit_id=path[-1],
                        kind=MeetingKind.regular,
                        invited=size,
                        present=present,
                        excused=excused,
                        absent_without_leave=size - present - excused,
                    ),
                    meeting,
                    starts + timedelta(hours=2),
                    path,
                )
        return self.envelopes


def topic_of(envelope: EventEnvelope) -> str:
    return {
        "OrgUnit": topics.ORG_TREE,
        "Member": topics.IDENTITY,
        "Meeting": topics.MEETINGS,
        "Attendance": topics.MEETINGS,
    }.get(envelope.aggregate_type, topics.LEARNING)


async def produce(bootstrap: str, envelopes: list[EventEnvelope]) -> float:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks=1, linger_ms=20, max_batch_size=1 << 20
    )
    await producer.start()
    started = time.perf_counter()
    try:
        pending = []
        for envelope in envelopes:
            pending.append(
                await producer.send(
                    topic_of(envelope), envelope.to_bytes(), key=envelope.aggregate_id.encode()
                )
            )
            if len(pending) >= 5000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return time.perf_counter() - started


async def consume(
    bootstrap: str,
    source: list[str],
    total: int,
    handle: Any,
    max_records: int,
) -> float:
    """Read `total` messages from `source` as the projection consumer does, decoding each."""
    consumer = AIOKafkaConsumer(
        *source,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_partition_fetch_bytes=8 << 20,
        fetch_max_bytes=64 << 20,
    )
    await consumer.start()
    seen = 0
    started = time.perf_counter()
    try:
        while seen < total:
            batches = await consumer.getmany(timeout_ms=1000, max_records=max_records)
            for records in batches.values():
                envelopes = [parse(record.value) for record in records]
                seen += len(envelopes)
                await handle(envelopes)
    finally:
        await consumer.stop()
    return time.perf_counter() - started


async def snapshot(client: AsyncMongoClient[dict[str, Any]], database: str) -> list[Any]:
    return [strip_zeros(d) async for d in client[database][STATS].find({}).sort("_id", 1)]


async def main(args: argparse.Namespace) -> None:
    generated = time.perf_counter()
    envelopes = Generator(args.members, args.branches, args.months).generate()
    tree = [e for e in envelopes if e.aggregate_type == "OrgUnit"]
    usage = [e for e in envelopes if e.aggregate_type != "OrgUnit"]
    print(
        f"history: {len(envelopes):,} events ({args.members:,} members, {args.branches:,} branches, "
        f"{args.months} months of meetings), generated in {time.perf_counter() - generated:.1f} s"
    )

    with tempfile.TemporaryDirectory() as workdir:
        stack = EmbeddedStack(Path(workdir))
        stack.start_kafka()
        stack.start_mongo()
        try:
            bootstrap = stack.env["SOTAY_KAFKA_BOOTSTRAP"]
            client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
                stack.env["SOTAY_MONGO_URL"], tz_aware=True
            )
            seconds = await produce(bootstrap, envelopes)
            print(
                f"publish to the broker:   {len(envelopes) / seconds:>10,.0f} events/s  ({seconds:.1f} s)"
            )

            async def nothing(_: list[EventEnvelope]) -> None:
                return None

            usage_topics = [t for t in SOURCE_TOPICS if t != topics.ORG_TREE]
            raw = await consume(bootstrap, usage_topics, len(usage), nothing, args.batch)
            print(f"raw read + decode:       {len(usage) / raw:>10,.0f} events/s  ({raw:.1f} s)")

            await create_tree_indexes(client["bench_live"])
            await create_usage_indexes(client["bench_live"])
            live_tree = ProjectionRunner(client, "bench_live", OrgUnitsProjection())
            live = ProjectionRunner(client, "bench_live", UsageProjection())
            tree_seconds = await consume(
                bootstrap, [topics.ORG_TREE], len(tree), live_tree.handle, args.batch
            )
            seconds = await consume(bootstrap, usage_topics, len(usage), live.handle, args.batch)
            print(
                f"projection (live):       {len(usage) / seconds:>10,.0f} events/s  ({seconds:.1f} s; "
                f"tree {len(tree):,} events in {tree_seconds:.1f} s)"
            )
            print(f"  ratio projection / raw read: {raw / seconds:.1%}")

            if not args.skip_rebuild:
                started = time.perf_counter()
                await rebuild(client, envelopes, "bench_rebuild", batch_size=args.batch)
                seconds = time.perf_counter() - started
                print(
                    f"full rebuild:            {len(envelopes) / seconds:>10,.0f} events/s  ({seconds:.1f} s)"
                )
                same = await snapshot(client, "bench_live") == await snapshot(
                    client, "bench_rebuild"
                )
                print(f"  rebuild equals live:  {same}")

            queries = UsageQueries(client["bench_live"], 25)
            for unit in ("P", "P.X000"):
                started = time.perf_counter()
                rollup = await queries.rollup(unit, queries.view())
                seconds = time.perf_counter() - started
                f = rollup.total.figures()
                print(
                    f"dashboard roll-up {unit:<7} {seconds:6.2f} s: {f['members_on_list']:,} members, "
                    f"{f['branches']:,} branches, {len(rollup.children)} child units, "
                    f"registered {f['registered_rate']}%, active 30 days {f['active_30d_rate']}%, "
                    f"branches met {f['branches_met_rate']}% "
                    f"(as of {datetime.now(TZ):%d/%m/%Y})"
                )
            await client.close()
        finally:
            stack.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--members", type=int, default=200_000)
    parser.add_argument("--branches", type=int, default=5_000)
    parser.add_argument("--months", type=int, default=12)
    parser.add_argument(
        "--batch", type=int, default=1000, help="records per batch (the service uses 500)"
    )
    parser.add_argument("--skip-rebuild", action="store_true")
    asyncio.run(main(parser.parse_args()))
