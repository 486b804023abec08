"""Fault drills: several replicas under steady load while something breaks.

    python -m sotay_platform.drills [--only NAME] [--markdown docs/DRILLS.md]   (`make drill`)

Each drill starts an embedded stack (MongoDB on disk, so it survives its own
restart), two replicas of meetings and a steady stream of commands through
both (meetings convened, attendance recorded), breaks one thing, repairs it,
stops the load, waits for delivery, then checks every promise of the runtime
and prints one line:

    drill NAME: N commands, N accepted, 0 lost, 0 reordered, 0 applied twice, rebuild equal: yes

- lost: an accepted command whose events are not in the store, or an event in
  the store that never reached Kafka;
- reordered: a stream whose versions reached Kafka out of order;
- applied twice: documents of the meeting views that differ from their rebuild
  (a repeat applied twice would show there);
- rebuild equal: the live projection equals its rebuild from the history.

The drills: the broker stopped for 30 s; MongoDB restarted (commands answer a
clear 503 while it is away); a consumer killed mid-batch; Redis stopped and
flushed; a poison message (parked with the projection's name, the partition
moving on, replayed after the fix).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaProducer
from pymongo import AsyncMongoClient
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from sotay_events import MongoEventStore, topics
from sotay_events.catalogue.org_tree import OrgLevel, UnitCreated, UnitRenamed
from sotay_events.consumer import Applied, ProjectionRunner, subscribe_projection
from sotay_events.dlq import list_parked, replay
from sotay_events.kafka import ensure_topics, make_broker
from sotay_events.outbox import headers_of
from sotay_platform.auth import Role, TokenIssuer
from sotay_platform.cluster import (
    Replica,
    bearer,
    caught_up,
    delivery,
    envelope,
    province,
    publish,
    rebuild_differs,
    service_env,
)
from sotay_platform.stack import EmbeddedStack

BRANCHES = 3
MEMBERS = 8


@dataclass
class Outcome:
    name: str
    commands: int = 0
    accepted: int = 0
    refused: int = 0
    lost: int = 0
    reordered: int = 0
    applied_twice: int = 0
    rebuild_equal: bool = False
    note: str = ""

    def line(self) -> str:
        return (
            f"drill {self.name}: {self.commands} commands, {self.accepted} accepted, "
            f"{self.lost} lost, {self.reordered} reordered, {self.applied_twice} applied twice, "
            f"rebuild equal: {'yes' if self.rebuild_equal else 'no'}"
        )

    @property
    def passed(self) -> bool:
        return self.rebuild_equal and not (self.lost or self.reordered or self.applied_twice)


class Load:
    """Commands through every live replica in turn, as a branch's secretaries would send them."""

    def __init__(self, replicas: list[Replica], issuer: TokenIssuer, outcome: Outcome) -> None:
        self.replicas = replicas
        self.issuer = issuer
        self.outcome = outcome
        self.meetings: list[tuple[str, str]] = []  # (meeting, branch)
        self.statuses: dict[int, int] = {}
        self._stop = asyncio.Event()

    async def run(self) -> None:
        async with httpx.AsyncClient(timeout=20) as client:
            n = 0
            while not self._stop.is_set():
                live = [r for r in self.replicas if r.alive]
                replica = live[n % len(live)]
                branch = f"RP.X.CB{n % BRANCHES}"
                secretary = bearer(self.issuer, f"sec-{branch}", Role.branch_secretary, branch)
                await self._one(client, replica, branch, secretary, n)
                n += 1
                await asyncio.sleep(0.05)

    async def _one(
        self,
        client: httpx.AsyncClient,
        replica: Replica,
        branch: str,
        secretary: dict[str, str],
        n: int,
    ) -> None:
        self.outcome.commands += 1
        starts = datetime.now(UTC) + timedelta(minutes=10)
        try:
            if n % 3 == 0 or not self.meetings:
                meeting = f"DRILL-{uuid.uuid4().hex[:10]}"
                r = await client.post(
                    f"{replica.url}/meetings",
                    json={
                        "unit_id": branch,
                        "title": "Sinh hoạt chi bộ",
                        "starts_at": starts.isoformat(),
                        "ends_at": (starts + timedelta(hours=1)).isoformat(),
                        "meeting_id": meeting,
                        "location": "Hội trường",
                    },
                    headers=secretary,
                )
                if r.status_code == 201:
                    self.meetings.append((meeting, branch))
            else:
                meeting, owner = self.meetings[-1]
                member = f"{owner}.m{n % MEMBERS}"
                secretary = bearer(self.issuer, f"sec-{owner}", Role.branch_secretary, owner)
                r = await client.post(
                    f"{replica.url}/meetings/{meeting}/attendance",
                    json={"member_id": member},
                    headers=secretary,
                )
        except httpx.HTTPError:
            self.outcome.refused += 1  # the replica is away: the client tries again later
            return
        self.statuses[r.status_code] = self.statuses.get(r.status_code, 0) + 1
        if r.status_code in (200, 201):
            self.outcome.accepted += 1
        else:
            self.outcome.refused += 1

    def stop(self) -> None:
        self._stop.set()


class Drill:
    def __init__(self, name: str, workdir: Path) -> None:
        self.name = name
        self.workdir = workdir / name
        self.workdir.mkdir(parents=True)
        (self.workdir / "mongo").mkdir()
        self.stack = EmbeddedStack(self.workdir, mongo_storage=str(self.workdir / "mongo"))
        self.issuer = TokenIssuer.generate()
        self.run_id = uuid.uuid4().hex[:6]
        self.database = f"drill_{self.run_id}"
        self.replicas: list[Replica] = []
        self.outcome = Outcome(name)

    async def __aenter__(self) -> Drill:
        self.stack.start()
        bootstrap = self.stack.env["SOTAY_KAFKA_BOOTSTRAP"]
        await ensure_topics(bootstrap, topics.ALL_TOPICS, 3)
        env = service_env(self.stack, self.issuer, self.run_id) | {"SOTAY_DATABASE": self.database}
        self.env = env
        for i in range(2):
            self.replicas.append(
                Replica(
                    "sotay_meetings.main:create_app", env, self.workdir / f"meetings{i}.log"
                ).start()
            )
        await publish(bootstrap, province(BRANCHES, MEMBERS))
        await self._roster_ready()
        return self

    async def __aexit__(self, *exc: object) -> None:
        for replica in self.replicas:
            replica.stop()
        self.stack.stop()

    async def _roster_ready(self) -> None:
        async with httpx.AsyncClient(timeout=10) as client:
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                ok = True
                for replica in self.replicas:
                    branch = "RP.X.CB0"
                    secretary = bearer(self.issuer, "s", Role.branch_secretary, branch)
                    try:
                        r = await client.get(
                            f"{replica.url}/units/{branch}/roster", headers=secretary
                        )
                        ok = ok and r.status_code == 200 and f"{branch}.m{MEMBERS - 1}" in r.text
                    except httpx.HTTPError:
                        ok = False
                if ok:
                    return
                await asyncio.sleep(0.5)
        raise TimeoutError("the roster did not reach the replicas")

    async def under_load(self, fault: Callable[[], Awaitable[None]]) -> Load:
        load = Load(self.replicas, self.issuer, self.outcome)
        running = asyncio.create_task(load.run())
        await asyncio.sleep(3)
        await fault()
        await asyncio.sleep(3)
        load.stop()
        await running
        return load

    async def check(self, load: Load | None = None) -> Outcome:
        mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
            self.stack.env["SOTAY_MONGO_URL"], tz_aware=True
        )
        try:
            store = MongoEventStore(mongo, self.database)
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                with contextlib.suppress(Exception):
                    if await store.count_unpublished() == 0 and await caught_up(
                        mongo, self.database, "meeting_views"
                    ):
                        break
                await asyncio.sleep(1)
            if load is not None:  # every meeting whose convening was accepted is in the store
                stored = {
                    d["aggregate_id"]
                    async for d in store.events.find(
                        {"event_type": "MeetingConvened"}, {"aggregate_id": 1}
                    )
                }
                unstored = sum(1 for m, _ in load.meetings if m not in stored)
                self.outcome.lost += unstored
                self.outcome.note += f"; accepted but not stored: {unstored}"
            result = await delivery(store, self.stack.env["SOTAY_KAFKA_BOOTSTRAP"], topics.MEETINGS)
            self.outcome.lost += result.lost
            self.outcome.note += f"; stored but not on Kafka: {result.lost} of {result.events}"
            self.outcome.reordered = result.reordered
            from sotay_meetings.projections import MeetingViewsProjection

            history = await store.all_events()
            differ = await rebuild_differs(mongo, self.database, MeetingViewsProjection(), history)
            self.outcome.applied_twice = differ
            self.outcome.rebuild_equal = differ == 0
        finally:
            await mongo.close()
        return self.outcome


async def broker_outage(workdir: Path) -> Outcome:
    async with Drill("broker", workdir) as drill:

        async def fault() -> None:
            drill.stack.stop_one("kafka")
            await asyncio.sleep(30)
            drill.stack.start_kafka()

        load = await drill.under_load(fault)
        drill.outcome.note = f"answers {load.statuses}"
        return await drill.check(load)


async def mongo_restart(workdir: Path) -> Outcome:
    async with Drill("mongodb", workdir) as drill:

        async def fault() -> None:
            drill.stack.stop_one("mongo")
            await asyncio.sleep(15)  # longer than the services' server selection timeout
            drill.stack.start_mongo()

        load = await drill.under_load(fault)
        refused = load.statuses.get(503, 0)
        drill.outcome.note = f"answers {load.statuses}: {refused} clear 503 while MongoDB was away"
        return await drill.check(load)


async def consumer_killed(workdir: Path) -> Outcome:
    async with Drill("consumer", workdir) as drill:

        async def fault() -> None:
            victim = drill.replicas[0]
            victim.kill()
            await asyncio.sleep(2)
            drill.replicas[0] = Replica(victim.app, drill.env, drill.workdir / "meetings-again.log")
            drill.replicas[0].start()

        load = await drill.under_load(fault)
        drill.outcome.note = f"answers {load.statuses}"
        return await drill.check(load)


async def redis_flushed(workdir: Path) -> Outcome:
    async with Drill("redis", workdir) as drill:

        async def fault() -> None:
            drill.stack.stop_one("redis")
            await asyncio.sleep(3)
            drill.stack.start_redis()  # it comes back empty: nothing there was the only copy

        load = await drill.under_load(fault)
        drill.outcome.note = f"answers {load.statuses}"
        return await drill.check(load)


class Names:
    """A projection with a bug that the drill fixes: it cannot apply one name."""

    name = "drill_names"
    collections = ("drill_names",)
    event_types = frozenset({"UnitCreated", "UnitRenamed"})
    broken = True

    async def apply_batch(
        self, db: AsyncDatabase[dict[str, Any]], items: list[Applied], session: AsyncClientSession
    ) -> None:
        for envelope_, event in items:
            assert isinstance(event, UnitCreated | UnitRenamed)
            if self.broken and "lỗi" in event.name:
                raise RuntimeError("the projection cannot apply this name (the bug)")
            await db.drill_names.update_one(
                {"_id": envelope_.aggregate_id},
                {"$set": {"name": event.name}, "$inc": {"applied": 1}},
                upsert=True,
                session=session,
            )


async def poison(workdir: Path) -> Outcome:
    outcome = Outcome("poison")
    path = workdir / "poison"
    path.mkdir()
    stack = EmbeddedStack(path).start()
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        stack.env["SOTAY_MONGO_URL"], tz_aware=True
    )
    bootstrap = stack.env["SOTAY_KAFKA_BOOTSTRAP"]
    try:
        await ensure_topics(bootstrap, topics.ALL_TOPICS, 1)
        store = MongoEventStore(mongo, "drill_poison")
        await store.create_indexes()
        projection = Names()
        broker = make_broker(bootstrap, client_id="drill", idempotent_producer=False)
        runner = ProjectionRunner(mongo, "drill_poison", projection, backoff=0.05)
        await runner.create_indexes()
        subscribe_projection(broker, runner, [topics.ORG_TREE], group_id="drill-poison")
        await broker.start()
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
        await producer.start()
        try:
            units = [f"U{i}" for i in range(30)]
            history = []
            for i, unit in enumerate(units):
                created = UnitCreated(
                    unit_id=unit, name=f"Chi bộ {i}", level=OrgLevel.branch, parent_id="P"
                )
                history.append(envelope("OrgUnit", unit, 1, created))
                name = "Chi bộ lỗi" if i == 7 else f"Chi bộ {i} mới"
                history.append(
                    envelope(
                        "OrgUnit",
                        unit,
                        2,
                        UnitRenamed(unit_id=unit, name=name, previous_name=f"Chi bộ {i}"),
                    )
                )
            await store.events.insert_many([{**_doc(e)} for e in history])
            for e in history:
                outcome.commands += 1
                await producer.send_and_wait(
                    topics.ORG_TREE,
                    e.to_bytes(),
                    key=e.aggregate_id.encode(),
                    headers=[(k, v.encode()) for k, v in headers_of(e).items()],
                )
                outcome.accepted += 1
            names = mongo.drill_poison.drill_names
            await until(lambda: _at_least(names, 29), 60)
            parked = await list_parked(bootstrap, topics.ORG_TREE, projection.name)
            moving = await mongo.drill_poison.drill_names.count_documents({"applied": 2}) == 29
            projection.broken = False  # the fix is deployed
            replayed = await replay(bootstrap, topics.ORG_TREE, projection.name)
            await until(lambda: _at_least(names, 30), 60)
            applied = await mongo.drill_poison.drill_names.count_documents({"applied": 2})
            outcome.lost = 30 - applied
            live = await mongo.drill_poison.drill_names.find({}).sort("_id").to_list()
            rebuilt = ProjectionRunner(mongo, "drill_poison_rebuild", Names())
            Names.broken = False
            await rebuilt.rebuild(history)
            again = await mongo.drill_poison_rebuild.drill_names.find({}).sort("_id").to_list()
            outcome.rebuild_equal = live == again
            outcome.applied_twice = sum(1 for d in live if d["applied"] > 2)
            outcome.note = (
                f"{len(parked)} parked with the projection's name, partition moving: "
                f"{'yes' if moving else 'no'}, {replayed} replayed after the fix"
            )
            if len(parked) != 1 or not moving or replayed != 1:
                outcome.lost = max(outcome.lost, 1)
        finally:
            await producer.stop()
            await broker.stop()
    finally:
        await mongo.close()
        stack.stop()
    return outcome


async def _at_least(names: Any, count: int) -> bool:
    return bool(await names.count_documents({"applied": 2}) >= count)


async def until(check: Callable[[], Awaitable[bool]], timeout: float) -> bool:
    """Poll `check` for up to `timeout` seconds; whether it came true."""
    for _ in range(int(timeout * 2)):
        if await check():
            return True
        await asyncio.sleep(0.5)
    return False


def _doc(e: Any) -> dict[str, Any]:
    from sotay_events.store import to_document

    doc = to_document(e)
    doc["published"] = True
    return doc


DRILLS: dict[str, Callable[[Path], Awaitable[Outcome]]] = {
    "broker": broker_outage,
    "mongodb": mongo_restart,
    "consumer": consumer_killed,
    "redis": redis_flushed,
    "poison": poison,
}


async def main(only: str | None, markdown: Path | None) -> int:
    outcomes: list[Outcome] = []
    with tempfile.TemporaryDirectory() as workdir:
        for name, drill in DRILLS.items():
            if only and name != only:
                continue
            started = time.monotonic()
            try:
                outcome = await drill(Path(workdir))
            except Exception as exc:  # a drill that could not run is a failed drill
                outcome = Outcome(name, note=f"could not run: {exc!r}")
            outcome.note += f" ({time.monotonic() - started:.0f} s)"
            print(outcome.line(), flush=True)
            print(f"  {outcome.note}", flush=True)
            outcomes.append(outcome)
    if markdown is not None:
        lines = [
            "# Fault drills",
            "",
            "Written by `make drill` (`python -m sotay_platform.drills`): each drill runs two",
            "replicas of meetings under steady load on the embedded servers, breaks one thing,",
            "repairs it, and checks delivery, order, repeats and the rebuild.",
            "",
            f"Last run: {datetime.now(UTC):%d/%m/%Y %H:%M} UTC.",
            "",
            "```",
            *[o.line() for o in outcomes],
            "```",
            "",
            *[f"- **{o.name}**: {o.note.strip()}" for o in outcomes],
            "",
        ]
        await asyncio.to_thread(markdown.write_text, "\n".join(lines), encoding="utf-8")
    return 0 if all(o.passed for o in outcomes) else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m sotay_platform.drills", description=__doc__)
    parser.add_argument("--only", choices=list(DRILLS))
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args()
    raise SystemExit(asyncio.run(main(args.only, args.markdown)))
