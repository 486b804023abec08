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
