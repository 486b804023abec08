"""The Kafka side: one broker factory, so every service publishes the same way."""

from __future__ import annotations

import logging

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from faststream.kafka import KafkaBroker
from faststream.kafka.opentelemetry import KafkaTelemetryMiddleware

log = logging.getLogger(__name__)


def make_broker(
    bootstrap_servers: str,
    *,
    client_id: str,
    idempotent_producer: bool,
    request_timeout_ms: int = 40_000,
) -> KafkaBroker:
    """A broker whose producer waits for every in-sync replica.

    Idempotence is a setting: on for real Kafka, off for the embedded Tansu
    broker, whose memory engine refuses InitProducerId. Consumers dedupe by
    event id either way. Tracing is FastStream's own middleware, the only
    layer that writes and reads trace context in Kafka headers.
    """
    return KafkaBroker(
        bootstrap_servers,
        client_id=client_id,
        acks="all",
        enable_idempotence=idempotent_producer,
        request_timeout_ms=request_timeout_ms,
        middlewares=[KafkaTelemetryMiddleware()],
        logger=log,
    )


async def ensure_topics(bootstrap_servers: str, names: list[str], partitions: int) -> None:
    """Create missing topics; existing ones are left as they are."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [n for n in names if n not in existing]
        if missing:
            try:
                await admin.create_topics(
                    [NewTopic(n, num_partitions=partitions, replication_factor=1) for n in missing]
                )
            except TopicAlreadyExistsError:
                pass
    finally:
        await admin.close()


async def end_offsets(
    bootstrap_servers: str, partitions: list[tuple[str, int]], timeout: float = 5.0
) -> dict[str, int]:
    """Each partition's next offset ("topic:partition" -> offset): how much the broker holds.

    Read from fetch responses' high watermarks: the embedded broker answers
    ListOffsets with a wrong "latest" offset, but its fetches carry the true one.
    """
    import asyncio
    import time

    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, enable_auto_commit=False)
    await consumer.start()
    try:
        wanted = [TopicPartition(t, p) for t, p in partitions]
        consumer.assign(wanted)
        for tp in wanted:
            consumer.seek(tp, 0)
        found: dict[str, int] = {}
        deadline = time.monotonic() + timeout
        while len(found) < len(wanted) and time.monotonic() < deadline:
            await consumer.getmany(timeout_ms=200, max_records=1)
            for tp in wanted:
                high = consumer.highwater(tp)
                if high is not None:
                    found[f"{tp.topic}:{tp.partition}"] = high
                    consumer.pause(tp)
            await asyncio.sleep(0)
        return found
    finally:
        await consumer.stop()
