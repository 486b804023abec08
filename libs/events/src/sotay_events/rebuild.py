"""Histories to rebuild from, one batch in memory at a time.

A service rebuilds a projection from its own event store
(`MongoEventStore.history()`) or, for what it learns from other services,
from the Kafka topics it subscribes to (`topic_history`), never from another
service's database. `resumable` wraps either with a checkpoint in the
projection's database, so a rebuild that died goes on where it stopped:
replaying what was applied since the checkpoint changes nothing, since the
runner tracks versions.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from sotay_events.consumer import Incoming, ProjectionRunner
from sotay_events.kafka import end_offsets


async def topic_history(
    bootstrap: str,
    source_topics: Sequence[str],
    *,
    batch_size: int = 2000,
    start: dict[str, int] | None = None,
) -> AsyncIterator[tuple[list[Incoming], dict[str, int]]]:
    """Every message of `source_topics` up to their ends when called, with positions."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [
            TopicPartition(t, p)
            for t in source_topics
            for p in sorted(consumer.partitions_for_topic(t) or ())
        ]
        if not partitions:
            return
        held = await end_offsets(bootstrap, [(tp.topic, tp.partition) for tp in partitions])
        ends = {tp: held.get(f"{tp.topic}:{tp.partition}", 0) for tp in partitions}
        consumer.assign(partitions)
        for tp in partitions:
            offset = (start or {}).get(f"{tp.topic}:{tp.partition}")
            if offset is None:
                await consumer.seek_to_beginning(tp)
            else:
                consumer.seek(tp, offset)
        positions = {f"{tp.topic}:{tp.partition}": await consumer.position(tp) for tp in partitions}
        remaining = {tp for tp in partitions if await consumer.position(tp) < ends[tp]}
        while remaining:
            fetched = await consumer.getmany(*remaining, timeout_ms=1000, max_records=batch_size)
            chunk: list[Incoming] = []
            for tp, records in fetched.items():
                for record in records:
                    if record.offset >= ends[tp]:
                        continue
                    headers = {k: v.decode(errors="replace") for k, v in record.headers or ()}
                    chunk.append(Incoming.from_kafka(record.value, headers, record.topic))
                    positions[f"{tp.topic}:{tp.partition}"] = record.offset + 1
            if chunk:
                yield chunk, dict(positions)
            remaining = {tp for tp in remaining if await consumer.position(tp) < ends[tp]}
    finally:
        await consumer.stop()


async def resumable_rebuild(
    runner: ProjectionRunner,
    source: Any,
    *,
    resume: bool = True,
) -> int:
    """Rebuild `runner`'s projection from `source(start)` with a checkpoint after each batch.

    `source` is a callable taking the last checkpoint (None at the start) and
    returning an async iterator of (batch, checkpoint) pairs, such as
    `topic_history` or `store_history`.
    """
    state = await runner.rebuilds.find_one({"_id": runner.projection.name})
    start = None
    if resume and state and state.get("status") == "running":
        start = state.get("checkpoint")
    else:
        await runner.reset()
    await runner.rebuilds.replace_one(
        {"_id": runner.projection.name},
        {"_id": runner.projection.name, "status": "running", "checkpoint": start},
        upsert=True,
    )
    applied = 0
    async for chunk, checkpoint in source(start):
        applied += await runner.handle(chunk)
        await runner.rebuilds.update_one(
            {"_id": runner.projection.name}, {"$set": {"checkpoint": checkpoint}}
        )
    await runner.rebuilds.update_one({"_id": runner.projection.name}, {"$set": {"status": "done"}})
    return applied


def store_history(store: Any, batch_size: int = 2000) -> Any:
    """A `resumable_rebuild` source over a service's own event store."""

    def source(start: Any) -> AsyncIterator[tuple[list[Any], Any]]:
        return store.history(after=start, batch_size=batch_size)

    return source
