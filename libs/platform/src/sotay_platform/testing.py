"""Pytest fixtures shared by every service's tests (a pytest plugin).

`infra` gives the servers through one door: the environment's URLs when
SOTAY_MONGO_URL is set, testcontainers where a Docker engine answers, the
embedded servers otherwise.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import ExitStack
from datetime import UTC, datetime
from typing import Any

import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from sotay_events import DomainEvent, EventEnvelope, topics
from sotay_events.catalogue.org_tree import OrgLevel, UnitCreated
from sotay_platform.auth import TokenIssuer
from sotay_platform.settings import AuthSettings, InfraSettings, ServiceSettings
from sotay_platform.stack import EmbeddedStack
from sotay_platform.telemetry import setup_tracing


def docker_answers() -> bool:
    try:
        import docker

        docker.from_env(timeout=2).ping()
        return True
    except Exception:
        return False


def _containers(stack: ExitStack) -> dict[str, str]:
    from testcontainers.kafka import KafkaContainer
    from testcontainers.redis import RedisContainer

    kafka = stack.enter_context(KafkaContainer().with_kraft())
    mongo_url = _mongo_replica_set(stack)
    redis = stack.enter_context(RedisContainer())
    return {
        "SOTAY_KAFKA_BOOTSTRAP": kafka.get_bootstrap_server(),
        "SOTAY_MONGO_URL": mongo_url,
        "SOTAY_REDIS_URL": f"redis://{redis.get_container_host_ip()}:{redis.get_exposed_port(6379)}/0",
        "SOTAY_KAFKA_IDEMPOTENT_PRODUCER": "true",
    }


def _mongo_replica_set(stack: ExitStack) -> str:
    """A one-member replica set (transactions need one), initiated by hand.

    testcontainers' MongoDbContainer takes no replica-set option and always
    enables authentication, which a replica set would then need a keyfile
    for; a plain container with `--replSet` and `rs.initiate` is what works.
    """
    import re
    import time

    from pymongo import MongoClient
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.wait_strategies import LogMessageWaitStrategy

    mongo = stack.enter_context(
        DockerContainer("mongo:7.0.14")
        .with_command("--replSet rs0 --bind_ip_all")
        .with_exposed_ports(27017)
        .waiting_for(LogMessageWaitStrategy(re.compile("waiting for connections", re.I)))
    )
    initiated = mongo.exec(
        [
            "mongosh",
            "--quiet",
            "--eval",
            "rs.initiate({_id: 'rs0', members: [{_id: 0, host: 'localhost:27017'}]})",
        ]
    )
    if initiated.exit_code != 0:
        raise RuntimeError(f"rs.initiate failed: {initiated.output!r}")
    host, port = mongo.get_container_host_ip(), mongo.get_exposed_port(27017)
    # The member calls itself localhost:27017, which the host does not see: connect directly.
    url = f"mongodb://{host}:{port}/?directConnection=true"
    client: MongoClient[dict[str, Any]]
    with MongoClient(url) as client:
        deadline = time.monotonic() + 60
        while not client.admin.command("hello").get("isWritablePrimary"):
            if time.monotonic() > deadline:
                raise TimeoutError("the MongoDB replica set elected no primary")
            time.sleep(0.5)
    return url


@pytest.fixture(scope="session")
def infra_mode() -> str:
    if os.environ.get("SOTAY_MONGO_URL"):
        return "external"
    if os.environ.get("SOTAY_TEST_CONTAINERS") != "0" and docker_answers():
        return "containers"
    return "embedded"


@pytest.fixture(scope="session")
def infra(infra_mode: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[InfraSettings]:
    with ExitStack() as stack:
        if infra_mode == "containers":
            env = _containers(stack)
        elif infra_mode == "embedded":
            embedded = EmbeddedStack(tmp_path_factory.mktemp("stack")).start()
            stack.callback(embedded.stop)
            env = embedded.env
        else:
            env = {}
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            yield InfraSettings()
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


@pytest.fixture
def own_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedStack]:
    """A Tansu broker of the test's own, for tests that stop and restart it."""
    stack = EmbeddedStack(tmp_path_factory.mktemp("kafka"))
    stack.start_kafka()
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="session")
def token_issuer() -> TokenIssuer:
    return TokenIssuer.generate()


@pytest.fixture(scope="session")
def auth_settings(token_issuer: TokenIssuer) -> AuthSettings:
    return AuthSettings(jwks=json.dumps(token_issuer.jwks()))


@pytest.fixture
def service_settings(infra: InfraSettings) -> Callable[..., dict[str, Any]]:
    """Settings for one service instance with a database and consumer groups of its own."""

    def make(service_name: str, **overrides: Any) -> dict[str, Any]:
        unique = uuid.uuid4().hex[:8]
        values: dict[str, Any] = {
            **infra.model_dump(),
            "service_name": service_name,
            "database": f"{service_name.replace('-', '_')}_{unique}",
            "consumer_group_prefix": f"test-{unique}",
            "relay_idle_interval": 0.05,
            "kafka_partitions": 3,
        }
        values.update(overrides)
        return values

    return make


_spans = InMemorySpanExporter()


@pytest.fixture(scope="session")
def span_exporter() -> InMemorySpanExporter:
    setup_tracing("sotay-tests", SimpleSpanProcessor(_spans))
    return _spans


class EventHistory:
    """Envelopes as the producing services would make them: each stream's versions from 1."""

    def __init__(self) -> None:
        self.versions: dict[str, int] = {}
        self.envelopes: list[EventEnvelope] = []

    def make(
        self,
        event: DomainEvent,
        aggregate_id: str,
        at: datetime | None = None,
        org_path: Sequence[str] = (),
    ) -> EventEnvelope:
        stream = f"{event.aggregate_type}-{aggregate_id}"
        self.versions[stream] = self.versions.get(stream, 0) + 1
        envelope = EventEnvelope(
            event_type=event.event_type,
            schema_version=event.schema_version,
            aggregate_type=event.aggregate_type,
            aggregate_id=aggregate_id,
            aggregate_version=self.versions[stream],
            occurred_at=at or datetime.now(UTC),
            org_path=tuple(org_path),
            actor="test",
            payload=event.model_dump(mode="json"),
        )
        self.envelopes.append(envelope)
        return envelope


class EventFeed:
    """Publishes other services' facts on their topics as those services would."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.history = EventHistory()

    @property
    def published(self) -> list[EventEnvelope]:
        return self.history.envelopes

    async def send(
        self,
        topic: str,
        aggregate_id: str,
        event: DomainEvent,
        org_path: Sequence[str] = (),
        occurred_at: datetime | None = None,
    ) -> EventEnvelope:
        runtime = self.app.state.runtime
        await runtime.broker_started.wait()  # the broker starts in the background
        envelope = self.history.make(event, aggregate_id, occurred_at, org_path)
        await runtime.broker.publish(envelope.to_bytes(), topic, key=aggregate_id.encode())
        return envelope

    async def org_tree(
        self, unit_id: str, event: DomainEvent, occurred_at: datetime | None = None
    ) -> EventEnvelope:
        return await self.send(topics.ORG_TREE, unit_id, event, occurred_at=occurred_at)

    async def unit(
        self,
        unit_id: str,
        level: OrgLevel,
        parent: str | None,
        occurred_at: datetime | None = None,
        name: str | None = None,
    ) -> EventEnvelope:
        created = UnitCreated(
            unit_id=unit_id, name=name or f"Đơn vị {unit_id}", level=level, parent_id=parent
        )
        return await self.org_tree(unit_id, created, occurred_at)


async def eventually(check: Callable[[], Any], timeout: float = 60.0, interval: float = 0.1) -> Any:
    """Poll an async `check` until it returns something truthy (projections are asynchronous)."""
    import asyncio
    import time

    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s (last: {last!r})")


async def fuzz_openapi(
    app: Any,
    *,
    token: str | None = None,
    max_examples: int = 20,
    exclude: Callable[[str, str], bool] | None = None,
    negative: bool = True,
    openapi_path: str = "/openapi.json",
) -> int:
    """Drive every operation of `app`'s OpenAPI with schemathesis, in process.

    Requests are generated from the schema (valid ones, and with `negative` invalid ones),
    sent with `Authorization: Bearer <token>` through httpx's ASGI transport in the running
    event loop (the app's Mongo, Kafka and Redis clients stay on their own loop), and the
    run fails on any 5xx and on any answer whose status, content type or body the schema
    does not document. `max_examples` per operation and mode bounds the time: 20 keeps a
    service of ~40 operations near a minute on this machine. `exclude(method, path)` skips
    operations (e.g. the ones that log the caller out). Returns the number of requests sent.

        sent = await fuzz_openapi(app, token=admin_token, max_examples=20)
    """
    import asyncio

    import httpx
    import requests
    import schemathesis
    from hypothesis import HealthCheck, Phase, given
    from hypothesis import settings as hypothesis_settings
    from hypothesis.errors import Unsatisfiable
    from schemathesis.checks import not_a_server_error
    from schemathesis.core.result import Err
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    checks = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
    ]
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    base_url = "http://fuzz.local"
    loop = asyncio.get_running_loop()
    failures: list[str] = []
    sent = 0
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, raise_app_exceptions=False), base_url=base_url
    ) as client:
        schema = schemathesis.openapi.from_dict((await client.get(openapi_path)).json())

        async def send(request: requests.PreparedRequest) -> httpx.Response:
            return await client.request(
                str(request.method),
                str(request.url),
                headers=[
                    (k, v.decode() if isinstance(v, bytes) else v)
                    for k, v in request.headers.items()
                ],
                content=request.body,  # type: ignore[arg-type]
            )

        def run() -> None:
            nonlocal sent
            modes = [schemathesis.GenerationMode.POSITIVE]
            if negative:
                modes.append(schemathesis.GenerationMode.NEGATIVE)
            for result in schema.get_all_operations():
                if isinstance(result, Err):
                    failures.append(f"the schema: {result.err()}")
                    continue
                operation = result.ok()
                if exclude and exclude(operation.method.upper(), operation.path):
                    continue
                for mode in modes:

                    @hypothesis_settings(
                        max_examples=max_examples,
                        deadline=None,
                        database=None,
                        derandomize=True,
                        phases=[Phase.explicit, Phase.generate],
                        suppress_health_check=list(HealthCheck),
                    )
                    @given(operation.as_strategy(generation_mode=mode))
                    def case_passes(case: Any) -> None:
                        nonlocal sent
                        kwargs = case.as_transport_kwargs(base_url=base_url, headers=headers)
                        fields = ("method", "url", "headers", "params", "json", "data", "files")
                        prepared = requests.Request(
                            **{k: kwargs[k] for k in fields if k in kwargs}
                        ).prepare()
                        response = asyncio.run_coroutine_threadsafe(send(prepared), loop).result()
                        sent += 1
                        case.validate_response(response, checks=checks)

                    try:
                        case_passes()
                    except Unsatisfiable:
                        continue  # nothing to make invalid: an operation without inputs
                    except (
                        Exception,
                        BaseExceptionGroup,
                    ) as exc:  # schemathesis groups its failures
                        failures.append(f"{operation.label} [{mode.value}]: {exc}")

        await asyncio.to_thread(run)
    if failures:
        raise AssertionError("schemathesis found:\n\n" + "\n\n".join(failures))
    return sent


__all__ = ["AsyncIterator", "ServiceSettings", "eventually", "fuzz_openapi"]
