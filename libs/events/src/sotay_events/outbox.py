"""The relay from the event store to Kafka: at-least-once, in stream order."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from faststream.kafka import KafkaBroker
from opentelemetry import context as otel_context
from opentelemetry import metrics, propagate

from sotay_events.catalogue import CATALOGUE
from sotay_events.envelope import EventEnvelope
from sotay_events.store import MongoEventStore

log = logging.getLogger(__name__)
meter = metrics.get_meter("sotay_events.outbox")
published_counter = meter.create_counter("sotay.outbox.published", unit="{event}")


def topic_of(envelope: EventEnvelope) -> str:
    return CATALOGUE.model(envelope.event_type, envelope.schema_version).topic


class OutboxRelay:
    """Publishes what the store holds unpublished, oldest first, keyed by aggregate id.

    A batch is marked published only after every message in it is acknowledged;
    a failure leaves the whole batch to be sent again, so a stream's events may
    repeat but never overtake each other. Consumers dedupe by event id.
    """

    def __init__(
        self,
        store: MongoEventStore,
        broker: KafkaBroker,
        *,
        batch_size: int = 500,
        idle_interval: float = 0.5,
        retry_interval: float = 1.0,
        prepare: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.store = store
        self.broker = broker
        self.batch_size = batch_size
        self.idle_interval = idle_interval
        self.retry_interval = retry_interval
        self.backlog = 0
        self.last_error: str | None = None
        self._wake = asyncio.Event()
        # Run before the first batch and after every failure: a broker that came
        # back empty (the embedded one keeps its log in memory) gets its topics again.
        self._prepare = prepare
        self._prepared = False

    def wake(self) -> None:
        """Called after an append so the event leaves at once instead of at the next poll."""
        self._wake.set()

    async def publish_pending(self) -> int:
        if self._prepare is not None and not self._prepared:
            await self._prepare()
            self._prepared = True
        envelopes = await self.store.unpublished(self.batch_size)
        if not envelopes:
            self.backlog = 0
            return 0
        pending: list[asyncio.Future[Any]] = []
        for envelope in envelopes:
            # The publish span continues the trace of the request that recorded the event.
            token = otel_context.attach(propagate.extract(envelope.trace_context))
            try:
                pending.append(
                    await self.broker.publish(
                        envelope.to_bytes(),
                        topic_of(envelope),
                        key=envelope.aggregate_id.encode(),
                        headers={
                            "event_type": envelope.event_type,
                            "schema_version": str(envelope.schema_version),
                        },
                        correlation_id=envelope.correlation_id,
                        no_confirm=True,
                    )
                )
            finally:
                otel_context.detach(token)
        await asyncio.gather(*pending)
        await self.store.mark_published([e.event_id for e in envelopes])
        published_counter.add(len(envelopes))
        self.backlog = 0 if len(envelopes) < self.batch_size else await self._safe_backlog()
        return len(envelopes)

    async def run(self) -> None:
        while True:
            try:
                sent = await self.publish_pending()
                self.last_error = None
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the broker or the store is away: wait, then resend
                self.last_error = repr(exc)
                self._prepared = False
                self.backlog = await self._safe_backlog()
                log.warning("outbox relay failed, will retry: %r", exc)
                await asyncio.sleep(self.retry_interval)
                continue
            if sent < self.batch_size:
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), self.idle_interval)
                except TimeoutError:
                    pass

    async def _safe_backlog(self) -> int:
        try:
            return await self.store.count_unpublished()
        except Exception:
            return self.backlog
