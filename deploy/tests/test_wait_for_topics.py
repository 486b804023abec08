"""The API pods' init container (ConfigMap wait-for-topics) against a real broker: it
holds the pod back while a topic is missing or the broker is away, and lets it start
once every topic exists."""

from __future__ import annotations

import asyncio
import os
import select
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from sotay_events.kafka import ensure_topics
from sotay_events.topics import ALL_TOPICS
from sotay_platform.stack import free_port

# Generous bounds against a hung child, not timings under test.
FIRST_LINE_BOUND = 120.0


def start(script: Path, bootstrap: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOTAY_")}
    return subprocess.Popen(
        [sys.executable, str(script)],
        env=env | {"SOTAY_KAFKA_BOOTSTRAP": bootstrap},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,  # aiokafka logs its failed connects there
        text=True,
    )


def first_line(proc: subprocess.Popen[str]) -> str:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], FIRST_LINE_BOUND)
    assert ready, "the init script printed nothing"
    return proc.stdout.readline()


def script(manifests: Any, tmp_path: Path) -> Path:
    path = tmp_path / "wait_for_topics.py"
    path.write_text(manifests.config_map_data("wait-for-topics")["wait_for_topics.py"])
    return path


async def delete_topic(bootstrap: str, name: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.delete_topics([name])
    finally:
        await admin.close()


@pytest.mark.parametrize("overlay", ["dev"])
def test_it_waits_for_a_missing_topic_then_lets_the_pod_start(
    own_kafka: Any, manifests: Any, tmp_path: Path
) -> None:
    bootstrap = own_kafka.env["SOTAY_KAFKA_BOOTSTRAP"]
    missing = ALL_TOPICS[-1]
    asyncio.run(delete_topic(bootstrap, missing))
    proc = start(script(manifests, tmp_path), bootstrap)
    try:
        line = first_line(proc)
        assert line.strip() == f"waiting for topics: {missing}", line
        assert proc.poll() is None
        asyncio.run(ensure_topics(bootstrap, [missing], 3))
        assert proc.wait(timeout=FIRST_LINE_BOUND) == 0
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.parametrize("overlay", ["dev"])
def test_it_waits_while_the_broker_is_away(manifests: Any, tmp_path: Path) -> None:
    proc = start(script(manifests, tmp_path), f"127.0.0.1:{free_port()}")
    try:
        line = first_line(proc)
        assert line.startswith("waiting for topics: (broker unreachable"), line
        assert proc.poll() is None
    finally:
        proc.kill()
        proc.wait()
