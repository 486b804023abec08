"""One bootstrap for every service: store, broker, outbox relay, projections, lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from typing import Any

from fastapi import FastAPI
from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Observation
from pymongo import AsyncMongoClient
from redis.asyncio import Redis

from sotay_events import MongoEventStore, topics
from sotay_events.consumer import Projection, ProjectionRunner, subscribe_projection
from sotay_events.kafka import ensure_topics, make_broker
from sotay_events.outbox import OutboxRelay
from sotay_platform.auth import TokenVerifier
from sotay_platform.errors import install_error_handlers
from sotay_platform.health import Check, health_router
from sotay_platform.settings import AuthSettings, ServiceSettings
from sotay_platform.telemetry import (
    instrument_app,
    setup_logging,
    setup_metrics,
    setup_tracing,
)

log = logging.getLogger(__name__)


class ServiceRuntime:
    """The adapters a service needs, built from settings and started in the app's lifespan."""

    def __init__(
        self,
        settings: ServiceSettings,
        auth: AuthSettings | None = None,
        verifier: TokenVerifier | None = None,
    ) -> None:
        self.settings = settings
        # A short server selection: while MongoDB is away a command answers a clear 503
        # within seconds instead of hanging for half a minute.
        self.mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
            settings.mongo_url, tz_aware=True, serverSelectionTimeoutMS=5000
        )
        self.db = self.mongo[settings.database]
        self.store = MongoEventStore(self.mongo, settings.database)
        self.redis = Redis.from_url(settings.redis_url)
        self.broker = make_broker(
            settings.kafka_bootstrap,
            client_id=settings.service_name,
            idempotent_producer=settings.kafka_idempotent_producer,
            request_timeout_ms=settings.kafka_request_timeout_ms,
        )
        self.relay = OutboxRelay(
            self.store,
            self.broker,
            name=settings.service_name,
            bootstrap_servers=settings.kafka_bootstrap,
            prepare=self.ensure_topics,
            batch_size=settings.relay_batch_size,
            idle_interval=settings.relay_idle_interval,
        )
        # Every commit wakes the relay, so its events leave at once.
        self.store.listeners.append(self.relay.wake)
        self.broker_started = asyncio.Event()
        self.verifier = verifier or TokenVerifier(auth or AuthSettings())
        self.runners: list[ProjectionRunner] = []
        self.startup_hooks: list[Callable[[], Awaitable[None]]] = []
        # A service's own readiness checks (Redis, a worker), beside the shared ones.
        self.readiness_checks: dict[str, Check] = {}
        # Long-running loops (a roll-up, a scheduler) started after the broker, cancelled at stop.
        self.workers: list[tuple[str, Callable[[], Coroutine[Any, Any, None]]]] = []
        self._tasks: list[asyncio.Task[None]] = []

    def add_projection(
        self, projection: Projection, source_topics: Sequence[str], *, batch: bool = True
    ) -> ProjectionRunner:
        runner = ProjectionRunner(self.mongo, self.settings.database, projection)
        subscribe_projection(
            self.broker,
            runner,
            source_topics,
            group_id=f"{self.settings.consumer_group_prefix}.{self.settings.service_name}.{projection.name}",
            batch=batch,
        )
        self.runners.append(runner)
        return runner

    async def ensure_topics(self) -> None:
        await ensure_topics(
            self.settings.kafka_bootstrap, topics.ALL_TOPICS, self.settings.kafka_partitions
        )

    async def start(self) -> None:
        await self.store.create_indexes()
        for runner in self.runners:
            await runner.create_indexes()
        for hook in self.startup_hooks:
            await hook()
        # Kafka may be away: commands are accepted anyway (the outbox keeps their
        # events) and the broker, the relay and the projections start when it answers.
        task = asyncio.create_task(self._start_broker(), name="kafka")
        self._tasks.append(task)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self.broker_started.wait()), 10.0)
        for name, worker in self.workers:
            self._tasks.append(asyncio.create_task(worker(), name=name))

    async def _start_broker(self) -> None:
        delay = 0.5
        while True:
            try:
                await self.ensure_topics()
                await self.broker.start()
                break
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("Kafka is not reachable yet, retrying: %r", exc)
                with contextlib.suppress(Exception):
                    await self.broker.stop()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
        self.broker_started.set()
        await self.relay.run()

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        await self.relay.stop()
        await self.broker.stop()
        await self.redis.aclose()
        await self.mongo.close()

    def health_checks(self) -> dict[str, Check]:
        async def mongo() -> dict[str, Any]:
            await self.db.command("ping")
            return {"ok": True}

        async def outbox() -> dict[str, Any]:
            # Never a reason to refuse traffic: a broker outage only delays delivery.
            return {
                "ok": True,
                "active": self.relay.active,
                "backlog": self.relay.backlog,
                "kafka": self.broker_started.is_set() and self.relay.last_error is None,
                "last_error": self.relay.last_error,
            }

        async def projections() -> dict[str, Any]:
            return {
                r.projection.name: {
                    "applied": r.applied_total,
                    "lag_seconds": r.last_lag_seconds,
                    "consumer_lag": sum(r.offset_lag.values()),
                    "parked": r.parked_total,
                    "held": r.held_total,
                    "last_applied_at": r.last_applied_at.isoformat() if r.last_applied_at else None,
                }
                for r in self.runners
            } | {"ok": True}

        shared: dict[str, Check] = {"mongo": mongo, "outbox": outbox, "projections": projections}
        return shared | self.readiness_checks

    def _observe_metrics(self) -> None:
        meter = metrics.get_meter("sotay_platform.runtime")
        service = {"service": self.settings.service_name}

        def outbox_backlog(_: CallbackOptions) -> list[Observation]:
            return [Observation(self.relay.backlog, service)]

        def consumer_lag(_: CallbackOptions) -> list[Observation]:
            return [
                Observation(lag, {**service, "projection": r.projection.name, "partition": key})
                for r in self.runners
                for key, lag in r.offset_lag.items()
            ]

        def projection_lag(_: CallbackOptions) -> list[Observation]:
            return [
                Observation(r.last_lag_seconds, {**service, "projection": r.projection.name})
                for r in self.runners
            ]

        meter.create_observable_gauge("sotay.outbox.backlog", [outbox_backlog], unit="{event}")
        meter.create_observable_gauge("sotay.consumer.lag", [consumer_lag], unit="{message}")
        meter.create_observable_gauge("sotay.projection.lag.last", [projection_lag], unit="s")

    def install(self, app: FastAPI) -> None:
        """Error handlers, health endpoints, tracing and the lifespan, on `app`."""
        app.state.runtime = self
        app.state.token_verifier = self.verifier
        install_error_handlers(app)
        app.include_router(health_router(self.health_checks()))
        setup_logging(self.settings.log_level)
        setup_tracing(self.settings.service_name)
        setup_metrics(self.settings.service_name)
        self._observe_metrics()
        instrument_app(app)

    @contextlib.asynccontextmanager
    async def lifespan(self, app: FastAPI) -> AsyncIterator[None]:
        await self.start()
        try:
            yield
        finally:
            await self.stop()
