"""Several replicas of the services as separate processes on one embedded stack.

What the many-replica test and the fault drills (`python -m sotay_platform.drills`)
run on: each replica is a uvicorn process of a service's app, sharing the
stack's MongoDB, Kafka and Redis, killed with SIGKILL when a drill says so.
`seed` publishes a small province (tree and members) as org-tree and identity
would; `verify` checks what the drills promise of a service's events.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from pymongo import AsyncMongoClient

from sotay_events import DomainEvent, EventEnvelope, MongoEventStore, topics
from sotay_events.catalogue.identity import (
    Gender,
    MemberRegistered,
    MemberRegistrationApproved,
    MemberStatus,
)
from sotay_events.catalogue.org_tree import OrgLevel, UnitCreated
from sotay_events.consumer import Projection, ProjectionRunner
from sotay_events.outbox import headers_of
from sotay_platform.auth import Grant, Role, TokenIssuer
from sotay_platform.stack import EmbeddedStack, free_port, wait_for_port


class Replica:
    def __init__(self, app: str, env: dict[str, str], log: Path) -> None:
        self.port = free_port()
        self.app = app
        self.env = env
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def spawn(self) -> Replica:
        out = self.log.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--factory", self.app, "--port", str(self.port)],
            env=self.env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self

    def wait(self, timeout: float = 240) -> Replica:
        wait_for_port(self.port, timeout=timeout, name=self.app)
        return self

    def start(self) -> Replica:
        return self.spawn().wait()

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: no shutdown hook runs, the lease is not handed over, nothing is flushed."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.alive:
            assert self.process is not None
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()


def envelope(
    aggregate_type: str, aggregate_id: str, version: int, event: DomainEvent
) -> EventEnvelope:
    return EventEnvelope(
        event_type=event.event_type,
        schema_version=event.schema_version,
        aggregate_type=aggregate_type,
        aggregate_id=aggregate_id,
        aggregate_version=version,
        occurred_at=datetime.now(UTC) - timedelta(days=1),
        payload=event.model_dump(mode="json"),
    )


def province(branches: int, members: int, code: str = "RP") -> list[tuple[str, EventEnvelope]]:
    """A province's tree and members, as org-tree and identity publish them."""
    messages: list[tuple[str, EventEnvelope]] = []

    def unit(unit_id: str, level: OrgLevel, parent: str | None) -> None:
        event = UnitCreated(
            unit_id=unit_id, name=f"Đơn vị {unit_id}", level=level, parent_id=parent
        )
        messages.append((topics.ORG_TREE, envelope("OrgUnit", unit_id, 1, event)))

    unit("TW", OrgLevel.central, None)
    unit(code, OrgLevel.province, "TW")
    unit(f"{code}.X", OrgLevel.commune, code)
    for b in range(branches):
        branch = f"{code}.X.CB{b}"
        unit(branch, OrgLevel.branch, f"{code}.X")
        for m in range(members):
            member = f"{branch}.m{m}"
            registered = MemberRegistered(
                member_id=member,
                full_name="Đồng chí",
                gender=Gender.female,
                branch_id=branch,
                status=MemberStatus.official,
                admitted_on=date(2010, 5, 19),
                registered_by="secretary",
            )
            approved = MemberRegistrationApproved(
                member_id=member, branch_id=branch, approved_by="s"
            )
            messages.append((topics.IDENTITY, envelope("Member", member, 1, registered)))
            messages.append((topics.IDENTITY, envelope("Member", member, 2, approved)))
    return messages


async def publish(bootstrap: str, messages: list[tuple[str, EventEnvelope]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        pending = [
            await producer.send(
                topic,
                message.to_bytes(),
                key=message.aggregate_id.encode(),
                headers=[(k, v.encode()) for k, v in headers_of(message).items()],
            )
            for topic, message in messages
        ]
        for future in pending:
            await future
    finally:
        await producer.stop()


async def read_topic(bootstrap: str, topic: str, quiet_seconds: int = 3) -> list[EventEnvelope]:
    """Everything on `topic` now, read by an independent client from the beginning."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest"
    )
    await consumer.start()
    seen: list[EventEnvelope] = []
    try:
        quiet = 0
        while quiet < quiet_seconds:
            batch = await consumer.getmany(timeout_ms=1000)
            got = [EventEnvelope.from_bytes(m.value) for ms in batch.values() for m in ms]
            seen += got
            quiet = 0 if got else quiet + 1
    finally:
        await consumer.stop()
    return seen


@dataclass
class Delivery:
    """What a service's store holds against what its topic carries."""

    events: int = 0
    lost: int = 0
    reordered: int = 0
    repeated: int = 0  # messages on the topic more than once: allowed (at least once)
    streams: int = 0
    out_of_order: list[str] = field(default_factory=list)


async def delivery(store: MongoEventStore, bootstrap: str, topic: str) -> Delivery:
    history = await store.all_events()
    ours = {e.event_id for e in history}
    seen = [e for e in await read_topic(bootstrap, topic) if e.event_id in ours]
    result = Delivery(events=len(history), streams=len({e.stream_id for e in history}))
    result.lost = len(ours - {e.event_id for e in seen})
    result.repeated = len(seen) - len({e.event_id for e in seen})
    by_stream: dict[str, list[int]] = {}
    for e in seen:
        by_stream.setdefault(e.stream_id, []).append(e.aggregate_version)
    for stream, versions in by_stream.items():
        if not in_order(versions):
            result.reordered += 1
            result.out_of_order.append(stream)
    return result


def in_order(versions: list[int]) -> bool:
    """The topic holds the whole stream in version order: 1..n appear as a subsequence.

    Repeats are allowed (at least once). After a broker that lost its log, a batch
    that waited in the producer may land before the history published again; the
    history then follows in order, so a reader from the start misses nothing.
    """
    expected = 1
    for version in versions:
        if version == expected:
            expected += 1
    return expected - 1 == max(versions, default=0)


async def rebuild_differs(
    mongo: AsyncMongoClient[dict[str, Any]],
    database: str,
    projection: Projection,
    history: list[EventEnvelope],
) -> int:
    """Documents that differ between the live projection and its rebuild (0: equal)."""
    rebuilt = ProjectionRunner(mongo, f"{database}_rebuild_{uuid.uuid4().hex[:6]}", projection)
    await rebuilt.rebuild(history)
    differ = 0
    for collection in projection.collections:
        live = {d["_id"]: d async for d in mongo[database][collection].find({})}
        again = {d["_id"]: d async for d in rebuilt.db[collection].find({})}
        differ += sum(1 for k in live.keys() | again.keys() if live.get(k) != again.get(k))
    await mongo.drop_database(rebuilt.db.name)
    return differ


async def caught_up(mongo: AsyncMongoClient[dict[str, Any]], database: str, name: str) -> bool:
    """The projection `name` has applied every stream of the service's own store to its head."""
    store = MongoEventStore(mongo, database)
    heads: dict[str, int] = {}
    async for doc in store.events.find({}, {"stream_id": 1, "aggregate_version": 1}):
        heads[doc["stream_id"]] = max(heads.get(doc["stream_id"], 0), doc["aggregate_version"])
    tracked = {d["_id"]: d["v"] async for d in mongo[database][f"tracking.{name}"].find({})}
    return all(tracked.get(s, 0) >= v for s, v in heads.items())


def bearer(
    issuer: TokenIssuer, subject: str, role: Role, unit: str, member: str | None = None
) -> dict[str, str]:
    return {
        "Authorization": f"Bearer {issuer.issue(subject, [Grant(role, unit)], member_id=member)}"
    }


def service_env(stack: EmbeddedStack, issuer: TokenIssuer, run: str) -> dict[str, str]:
    return {
        **os.environ,
        **stack.env,
        "SOTAY_AUTH_JWKS": json.dumps(issuer.jwks()),
        "SOTAY_CONSUMER_GROUP_PREFIX": f"cluster-{run}",
        "SOTAY_CHECKIN_SECRET": "shared-by-every-replica",
        "SOTAY_RELAY_IDLE_INTERVAL": "0.05",
        "SOTAY_LOG_LEVEL": "WARNING",
    }


async def active_relay(replicas: list[Replica]) -> Replica | None:
    """The replica whose relay holds the outbox lease, as its readiness says."""
    async with httpx.AsyncClient(timeout=5) as client:
        for replica in replicas:
            if not replica.alive:
                continue
            try:
                ready = (await client.get(f"{replica.url}/health/ready")).json()
            except (httpx.HTTPError, ValueError):
                continue
            if ready.get("checks", {}).get("outbox", {}).get("active"):
                return replica
    return None
