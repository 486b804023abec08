"""The relay from the event store to Kafka: one active per service, in commit order.

Every replica runs a relay; one holds the service's lease and publishes, the
others stand by and take over within seconds of its death (`Lease`). A
batch is, for each stream it touches, that stream's unpublished events in
version order (`MongoEventStore.unpublished`), so publication follows
commit order whatever the replicas' clocks. A batch is marked published,
stamped with the lease's next sequence number, only after every message in
it is acknowledged by every in-sync replica; a failure sends the whole batch
again. Consumers track versions, so a repeat changes nothing.

A broker that comes back without its log (the embedded one keeps it in
memory) is noticed by its partitions holding fewer messages than the relay
published to them; the relay then publishes the whole history again.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

from faststream.kafka import KafkaBroker
from opentelemetry import context as otel_context
from opentelemetry import metrics, propagate

from sotay_events.catalogue import CATALOGUE
from sotay_events.envelope import EventEnvelope
from sotay_events.kafka import end_offsets
from sotay_events.lease import Lease
from sotay_events.store import MongoEventStore

log = logging.getLogger(__name__)
meter = metrics.get_meter("sotay_events.outbox")
published_counter = meter.create_counter("sotay.outbox.published", unit="{event}")


HEADS_REMEMBERED = 100_000


def topic_of(envelope: EventEnvelope) -> str:
    return CATALOGUE.model(envelope.event_type, envelope.schema_version).topic


def headers_of(envelope: EventEnvelope) -> dict[str, str]:
    """What a consumer needs to route, filter and track a message without parsing its body."""
    return {
        "event_id": envelope.event_id,
        "event_type": envelope.event_type,
        "schema_version": str(envelope.schema_version),
        "aggregate_type": envelope.aggregate_type,
        "aggregate_id": envelope.aggregate_id,
        "aggregate_version": str(envelope.aggregate_version),
    }


class OutboxRelay:
    def __init__(
        self,
        store: MongoEventStore,
        broker: KafkaBroker,
        *,
        name: str = "relay",
        bootstrap_servers: str | None = None,
        batch_size: int = 500,
        idle_interval: float = 0.5,
        retry_interval: float = 1.0,
        lease_timeout: float = 5.0,
        prepare: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.store = store
        self.broker = broker
        self.lease = Lease(store.db["leases"], f"outbox:{name}", timeout=lease_timeout)
        self.bootstrap_servers = bootstrap_servers
        self.batch_size = batch_size
        self.idle_interval = idle_interval
        self.retry_interval = retry_interval
        self.backlog = 0
        self.last_error: str | None = None
        self._wake = asyncio.Event()
        # Run before the first batch and after every failure: a broker that came
        # back empty gets its topics again, and the history if it lost it.
        self._prepare = prepare
        self._prepared = False
        self._offsets: dict[str, int] = {}  # "topic:partition" -> highest offset published
        # The last version published of recent streams: most batches need no extra look-up.
        self._heads: OrderedDict[str, int] = OrderedDict()

    @property
    def active(self) -> bool:
        return self.lease.held

    def wake(self, *_: Any) -> None:
        """Called after a commit so its events leave at once instead of at the next poll."""
        self._wake.set()

    async def publish_pending(self) -> int:
        if not self._prepared:
            await self._recover()
            self._prepared = True
        batch = await self.lease.next_sequence()
        if batch is None:
            return 0  # the lease moved to another replica: stand by
        envelopes = await self.store.unpublished(self.batch_size, self._heads)
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
                        headers=headers_of(envelope),
                        correlation_id=envelope.correlation_id,
                        no_confirm=True,
                    )
                )
            finally:
                otel_context.detach(token)
        reset = False
        for record in await asyncio.gather(*pending):
            key = f"{record.topic}:{record.partition}"
            # An offset at or below one published before: the broker came back without
            # its log while this batch waited in the producer's buffer.
            reset = reset or record.offset <= self._offsets.get(key, -1)
            self._offsets[key] = max(self._offsets.get(key, -1), record.offset)
        # Fenced: a relay that lost its lease while publishing marks nothing.
        if not await self.lease.set_fields({"offsets": self._offsets}):
            return 0
        await self.store.mark_published([e.event_id for e in envelopes], batch)
        if reset:
            count = await self.store.republish_all()
            log.warning("the broker lost its log; publishing %d events again", count)
            self._offsets = {}
            self._heads.clear()
            await self.lease.set_fields({"offsets": {}})
            return len(envelopes)
        for envelope in envelopes:
            self._heads[envelope.stream_id] = envelope.aggregate_version
            self._heads.move_to_end(envelope.stream_id)
        while len(self._heads) > HEADS_REMEMBERED:
            self._heads.popitem(last=False)
        published_counter.add(len(envelopes))
        full = len(envelopes) >= self.batch_size
        # Bounded: catching up after an outage costs the same per batch, however long the backlog.
        self.backlog = await self.store.count_unpublished(limit=20 * self.batch_size) if full else 0
        return len(envelopes)

    async def _recover(self) -> None:
        if self._prepare is not None:
            await self._prepare()
        if not self._offsets:
            self._offsets = dict((await self.lease.state()).get("offsets") or {})
        if not self._offsets or self.bootstrap_servers is None:
            return
        partitions = [(k.rsplit(":", 1)[0], int(k.rsplit(":", 1)[1])) for k in self._offsets]
        held = await end_offsets(self.bootstrap_servers, partitions)
        # A partition that answered with fewer messages than were published to it.
        if any(k in held and held[k] <= offset for k, offset in self._offsets.items()):
            count = await self.store.republish_all()
            log.warning("the broker lost its log; publishing %d events again", count)
            self._offsets = {}
            await self.lease.set_fields({"offsets": {}})

    def forget(self) -> None:
        """After losing the lease another relay may have published: trust nothing remembered."""
        self._heads.clear()

    async def run(self) -> None:
        while True:
            try:
                if not await self.lease.hold():
                    self._prepared = False
                    self.forget()
                    await asyncio.sleep(min(1.0, self.lease.timeout / 3))
                    continue
                sent = await self.publish_pending()
                self.last_error = None
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the broker or the store is away: wait, then resend
                self.last_error = repr(exc)
                self._prepared = False
                log.warning("outbox relay failed, will retry: %r", exc)
                await asyncio.sleep(self.retry_interval)
                continue
            if sent < self.batch_size:
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), self.idle_interval)
                except TimeoutError:
                    pass

    async def stop(self) -> None:
        """Hand the lease over at once on a clean shutdown."""
        try:
            await self.lease.release()
        except Exception:  # the store is away: the lease simply times out
            log.warning("could not release the outbox lease", exc_info=True)
