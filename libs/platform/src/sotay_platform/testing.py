"""Pytest fixtures shared by every service's tests (a pytest plugin).

`infra` gives the servers through one door: the environment's URLs when
SOTAY_MONGO_URL is set, testcontainers where a Docker engine answers, the
embedded servers otherwise.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import ExitStack
from typing import Any

import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

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
    from testcontainers.mongodb import MongoDbContainer
    from testcontainers.redis import RedisContainer

    kafka = stack.enter_context(KafkaContainer().with_kraft())
    mongo = stack.enter_context(MongoDbContainer("mongo:7", replica_set="rs0"))
    redis = stack.enter_context(RedisContainer())
    return {
        "SOTAY_KAFKA_BOOTSTRAP": kafka.get_bootstrap_server(),
        "SOTAY_MONGO_URL": mongo.get_connection_url() + "/?directConnection=true",
        "SOTAY_REDIS_URL": f"redis://{redis.get_container_host_ip()}:{redis.get_exposed_port(6379)}/0",
        "SOTAY_KAFKA_IDEMPOTENT_PRODUCER": "true",
    }


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


async def eventually(check: Callable[[], Any], timeout: float = 20.0, interval: float = 0.1) -> Any:
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


__all__ = ["AsyncIterator", "ServiceSettings", "eventually"]
