"""Parked messages: list them, and replay them once the cause is fixed.

    python -m sotay_events.dlq list sotay.meetings.events [--projection NAME]
    python -m sotay_events.dlq replay sotay.meetings.events [--projection NAME]

A projection parks a message it could not apply on `<topic>.dlq`, with its
name, the error, the attempt count and the original headers. Replaying sends
the parked message back to its source topic with its original key and
headers: the projection that parked it applies it now (its aggregate's later
events, held meanwhile, follow in order), and every other projection sees a
version it already has and changes nothing. Replays are tracked by a
consumer group of the tool's own, so a message is replayed once.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from sotay_events import topics
from sotay_events.kafka import end_offsets

REPLAY_GROUP = "sotay.dlq.replay"
DLQ_HEADERS = ("dlq_projection", "dlq_error", "dlq_attempts", "dlq_source_topic", "dlq_parked_at")


async def parked(
    bootstrap: str, topic: str, *, group: str | None = None, projection: str | None = None
) -> AsyncIterator[tuple[Any, dict[str, str]]]:
    """Every parked message of `topic` up to now (from a group's position when given)."""
    dlq = topics.dead_letter(topic)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        partitions = [TopicPartition(dlq, p) for p in consumer.partitions_for_topic(dlq) or ()]
        if not partitions:
            return
        held = await end_offsets(bootstrap, [(tp.topic, tp.partition) for tp in partitions])
        ends = {tp: held.get(f"{tp.topic}:{tp.partition}", 0) for tp in partitions}
        consumer.assign(partitions)
        if group is None:
            await consumer.seek_to_beginning(*partitions)
        remaining = {tp for tp in partitions if await consumer.position(tp) < ends[tp]}
        while remaining:
            fetched = await consumer.getmany(*remaining, timeout_ms=1000)
            for tp, records in fetched.items():
                for record in records:
                    if record.offset >= ends[tp]:
                        continue
                    headers = {k: v.decode(errors="replace") for k, v in record.headers or ()}
                    if projection is None or headers.get("dlq_projection") == projection:
                        yield record, headers
                if group is not None and records:
                    await consumer.commit({tp: records[-1].offset + 1})
            remaining = {tp for tp in remaining if await consumer.position(tp) < ends[tp]}
    finally:
        await consumer.stop()


async def list_parked(bootstrap: str, topic: str, projection: str | None) -> list[dict[str, Any]]:
    return [
        {
            "offset": record.offset,
            "partition": record.partition,
            "projection": headers.get("dlq_projection"),
            "error": headers.get("dlq_error"),
            "attempts": headers.get("dlq_attempts"),
            "event_type": headers.get("event_type"),
            "aggregate_id": headers.get("aggregate_id"),
            "aggregate_version": headers.get("aggregate_version"),
            "parked_at": headers.get("dlq_parked_at"),
        }
        async for record, headers in parked(bootstrap, topic, projection=projection)
    ]


async def replay(bootstrap: str, topic: str, projection: str | None) -> int:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    count = 0
    try:
        group = f"{REPLAY_GROUP}.{projection or 'all'}"
        async for record, headers in parked(bootstrap, topic, group=group, projection=projection):
            original = [(k, v.encode()) for k, v in headers.items() if k not in DLQ_HEADERS]
            source = headers.get("dlq_source_topic") or topic
            await producer.send_and_wait(source, record.value, key=record.key, headers=original)
            count += 1
    finally:
        await producer.stop()
    return count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sotay_events.dlq", description=__doc__)
    parser.add_argument("command", choices=["list", "replay"])
    parser.add_argument("topic", help="the source topic, e.g. sotay.meetings.events")
    parser.add_argument("--projection", help="only what this projection parked")
    parser.add_argument(
        "--bootstrap", default=os.environ.get("SOTAY_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
    )
    args = parser.parse_args(argv)
    if args.command == "list":
        rows = asyncio.run(list_parked(args.bootstrap, args.topic, args.projection))
        for row in rows:
            print(json.dumps(row, ensure_ascii=False))
        print(f"{len(rows)} parked", file=sys.stderr)
    else:
        count = asyncio.run(replay(args.bootstrap, args.topic, args.projection))
        print(f"{count} replayed", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
