"""Reporting's usage projection against raw consume-and-decode of the same events.

    .venv/bin/python bench/reporting_projection.py [--branches 200] [--members 4000]
        [--months 1] [--json PATH]

Generates a province (`bench/dashboard.py`'s generator: communes, branches,
members registered, approved, activated, signing in, meeting, studying),
publishes it to the embedded Kafka as the relays would (routing headers
included), then in the same run:

1. raw: a consumer reads every message and decodes it, no writes;
2. projection: the same read, each batch handed to reporting's
   `ProjectionRunner` (tree and facts, one transaction per batch);
3. rebuild: `sotay_reporting.rebuild` from the topics into a fresh database,
   compared with the live one.

Prints events/s of each and the ratio; `--json PATH` writes
{"projection_events_per_s", "raw_events_per_s", "ratio", "rebuild_events_per_s",
"rebuild_equals_live"}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

# bench/ is the script's directory, so its generator imports as a sibling module
from dashboard import Country
from pymongo import AsyncMongoClient

from sotay_events import EventEnvelope
from sotay_events.catalogue import CATALOGUE
from sotay_events.catalogue.org_tree import OrgLevel
from sotay_events.consumer import Incoming, ProjectionRunner
from sotay_events.outbox import headers_of, topic_of
from sotay_platform.stack import EmbeddedStack
from sotay_reporting.figures import strip_zeros
from sotay_reporting.main import USAGE_SOURCES
from sotay_reporting.projections import ROLLUPS, UsageProjection
from sotay_reporting.rebuild import rebuild


async def produce(bootstrap: str, envelopes: list[EventEnvelope]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks=1, linger_ms=20)
    await producer.start()
    try:
        pending = []
        for envelope in envelopes:
            headers = [(k, v.encode()) for k, v in headers_of(envelope).items()]
            pending.append(
                await producer.send(
                    topic_of(envelope),
                    envelope.to_bytes(),
                    key=envelope.aggregate_id.encode(),
                    headers=headers,
                )
            )
        await asyncio.gather(*pending)
    finally:
        await producer.stop()


async def consume(bootstrap: str, total: int, handle: Any, batch: int) -> float:
    consumer = AIOKafkaConsumer(
        *USAGE_SOURCES,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    seen = 0
    started = time.perf_counter()
    try:
        while seen < total:
            fetched = await consumer.getmany(timeout_ms=1000, max_records=batch)
            for records in fetched.values():
                messages = [
                    Incoming.from_kafka(
                        r.value, {k: v.decode() for k, v in r.headers or ()}, r.topic
                    )
                    for r in records
                ]
                seen += len(messages)
                await handle(messages)
    finally:
        await consumer.stop()
    return time.perf_counter() - started


async def decode_only(messages: list[Incoming]) -> None:
    for m in messages:
        envelope = m.envelope
        CATALOGUE.decode(envelope.event_type, envelope.schema_version, envelope.payload)


async def main(args: argparse.Namespace) -> None:
    country = Country()
    country.unit("TW", "Trung ương", OrgLevel.central, None, country.now - timedelta(days=400))
    country.province("P", args.branches, args.members, args.months)
    envelopes = country.envelopes
    print(f"history: {len(envelopes):,} events")
    with tempfile.TemporaryDirectory() as workdir:
        stack = EmbeddedStack(Path(workdir))
        stack.start_kafka()
        stack.start_mongo()
        try:
            bootstrap = stack.env["SOTAY_KAFKA_BOOTSTRAP"]
            client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
                stack.env["SOTAY_MONGO_URL"], tz_aware=True
            )
            await produce(bootstrap, envelopes)
            raw = len(envelopes) / await consume(bootstrap, len(envelopes), decode_only, args.batch)
            runner = ProjectionRunner(client, "bench_live", UsageProjection())
            await runner.reset()
            seconds = await consume(bootstrap, len(envelopes), runner.handle, args.batch)
            live = len(envelopes) / seconds
            started = time.perf_counter()
            await rebuild(client, bootstrap, "bench_rebuilt", fresh=True, batch_size=args.batch)
            rebuilt = len(envelopes) / (time.perf_counter() - started)

            async def snapshot(db: str) -> list[Any]:
                return [strip_zeros(d) async for d in client[db][ROLLUPS].find({}).sort("_id", 1)]

            same = await snapshot("bench_live") == await snapshot("bench_rebuilt")
            await client.close()
        finally:
            stack.stop()
    print(f"{'step':<28} {'events/s':>10}")
    print(f"{'raw consume + decode':<28} {raw:>10,.0f}")
    print(f"{'usage projection (live)':<28} {live:>10,.0f}")
    print(f"{'rebuild from the topics':<28} {rebuilt:>10,.0f}")
    print(f"ratio projection / raw: {live / raw:.1%}; rebuild equals live: {same}")
    figures = {
        "projection_events_per_s": round(live),
        "raw_events_per_s": round(raw),
        "ratio": round(live / raw, 4),
        "rebuild_events_per_s": round(rebuilt),
        "rebuild_equals_live": same,
    }
    if args.json:
        write_json(args.json, figures)


def write_json(path: str, figures: dict[str, Any]) -> None:
    Path(path).write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--branches", type=int, default=200)
    parser.add_argument("--members", type=int, default=4_000)
    parser.add_argument("--months", type=int, default=1)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--json")
    asyncio.run(main(parser.parse_args()))
