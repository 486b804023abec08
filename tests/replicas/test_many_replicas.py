"""Three replicas of meetings and two of reporting, as separate processes, on one embedded stack.

Check-ins go through every replica at once; the replica whose relay holds the
outbox lease and one reporting replica are killed with SIGKILL mid-batch; the
broker is restarted (it comes back without its log). Then: every event is on
Kafka at least once, each stream in version order; no projection applied
anything twice; every projection equals its rebuild.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from pymongo import AsyncMongoClient

from sotay_events import MongoEventStore, topics
from sotay_events.kafka import ensure_topics
from sotay_platform.auth import Role, TokenIssuer
from sotay_platform.cluster import (
    Replica,
    active_relay,
    bearer,
    caught_up,
    delivery,
    province,
    publish,
    rebuild_differs,
    service_env,
)
from sotay_platform.stack import EmbeddedStack
from sotay_platform.testing import eventually

BRANCHES = 4
MEMBERS = 12  # per branch


@pytest.fixture
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedStack]:
    embedded = EmbeddedStack(tmp_path_factory.mktemp("replicas")).start()
    try:
        yield embedded
    finally:
        embedded.stop()


@pytest.fixture
async def cluster(
    stack: EmbeddedStack, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[dict[str, Any]]:
    issuer = TokenIssuer.generate()
    run = uuid.uuid4().hex[:6]
    env = service_env(stack, issuer, run)
    bootstrap = stack.env["SOTAY_KAFKA_BOOTSTRAP"]
    await ensure_topics(bootstrap, topics.ALL_TOPICS, 3)
    logs = tmp_path_factory.mktemp("logs")
    meetings = [
        Replica(
            "sotay_meetings.main:create_app",
            env | {"SOTAY_DATABASE": f"m_{run}"},
            logs / f"m{i}.log",
        )
        for i in range(3)
    ]
    reporting = [
        Replica(
            "sotay_reporting.main:create_app",
            env | {"SOTAY_DATABASE": f"r_{run}"},
            logs / f"r{i}.log",
        )
        for i in range(2)
    ]
    try:
        for replica in meetings + reporting:  # started together: they come up in parallel
            replica.spawn()
        for replica in meetings + reporting:
            replica.wait()
        await publish(bootstrap, province(BRANCHES, MEMBERS))
        yield {"issuer": issuer, "meetings": meetings, "reporting": reporting, "run": run}
    finally:
        for replica in meetings + reporting:
            replica.stop()


async def test_replicas_lose_nothing_repeat_nothing_and_keep_order(
    cluster: dict[str, Any], stack: EmbeddedStack
) -> None:
    issuer: TokenIssuer = cluster["issuer"]
    meetings: list[Replica] = cluster["meetings"]
    reporting: list[Replica] = cluster["reporting"]
    bootstrap = stack.env["SOTAY_KAFKA_BOOTSTRAP"]
    branches = [f"RP.X.CB{b}" for b in range(BRANCHES)]
    limits = httpx.Limits(keepalive_expiry=1)  # never reuse a connection uvicorn is closing

    async with httpx.AsyncClient(timeout=30, limits=limits) as client:

        async def roster_everywhere() -> bool:
            # Every branch: their tree events travel on different partitions, so the last
            # branch known says nothing about the others.
            for branch in branches:
                secretary = bearer(issuer, "s", Role.branch_secretary, branch)
                for replica in meetings:
                    r = await client.get(f"{replica.url}/units/{branch}/roster", headers=secretary)
                    if r.status_code != 200 or f"{branch}.m{MEMBERS - 1}" not in r.text:
                        return False
            return True

        await eventually(roster_everywhere, timeout=90)

        starts = datetime.now(UTC) + timedelta(minutes=5)
        meeting_of: dict[str, str] = {}
        for i, branch in enumerate(branches):  # convened through the replicas in turn
            secretary = bearer(issuer, f"sec-{branch}", Role.branch_secretary, branch)
            r = await client.post(
                f"{meetings[i % 3].url}/meetings",
                json={
                    "unit_id": branch,
                    "title": "Sinh hoạt chi bộ thường kỳ",
                    "starts_at": starts.isoformat(),
                    "ends_at": (starts + timedelta(hours=1)).isoformat(),
                    "location": "Hội trường",
                },
                headers=secretary,
            )
            assert r.status_code == 201, r.text
            meeting_of[branch] = r.json()["meeting_id"]

        async def check_in(replica: Replica, branch: str, member: str) -> int:
            secretary = bearer(issuer, f"sec-{branch}", Role.branch_secretary, branch)
            meeting = meeting_of[branch]
            try:
                shown = await client.get(
                    f"{replica.url}/meetings/{meeting}/checkin-code", headers=secretary
                )
                r = await client.post(
                    f"{replica.url}/meetings/{meeting}/check-in",
                    json={"code": shown.json()["code"]},
                    headers=bearer(issuer, member, Role.member, branch, member),
                )
            except httpx.HTTPError:  # the replica died under the request
                return 599
            return r.status_code

        everyone = [(b, f"{b}.m{m}") for b in branches for m in range(MEMBERS)]
        half = len(everyone) // 2
        first = await asyncio.gather(
            *(check_in(meetings[n % 3], b, m) for n, (b, m) in enumerate(everyone[:half]))
        )
        assert set(first) <= {200, 201}, first

        # Mid-batch: the active relay's replica and one reporting replica die at once.
        victim = await eventually(lambda: active_relay(meetings), timeout=30)
        in_flight = asyncio.gather(
            *(check_in(meetings[n % 3], b, m) for n, (b, m) in enumerate(everyone[half:]))
        )
        await asyncio.sleep(0.3)
        victim.kill()
        reporting[0].kill()
        second = await in_flight
        survivor = next(r for r in meetings if r.alive)
        for (b, m), status in zip(everyone[half:], second, strict=True):
            if status not in (200, 201):  # the client tries again on a live replica
                assert await check_in(survivor, b, m) in (200, 201)

        # The broker restarts and comes back without its log; commands go on meanwhile.
        stack.stop_one("kafka")
        branch = branches[0]
        secretary = bearer(issuer, f"sec-{branch}", Role.branch_secretary, branch)
        later = starts + timedelta(days=30)
        r = await client.post(
            f"{survivor.url}/meetings",
            json={
                "unit_id": branch,
                "title": "Sinh hoạt chi bộ tháng sau",
                "starts_at": later.isoformat(),
                "ends_at": (later + timedelta(hours=1)).isoformat(),
                "location": "Hội trường",
            },
            headers=secretary,
        )
        assert r.status_code == 201, r.text  # accepted while the broker is away
        stack.start_kafka()
        await ensure_topics(bootstrap, topics.ALL_TOPICS, 3)
        # org-tree's and identity's relays would publish their history again too.
        await publish(bootstrap, province(BRANCHES, MEMBERS))

    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        stack.env["SOTAY_MONGO_URL"], tz_aware=True
    )
    database = f"m_{cluster['run']}"
    try:
        store = MongoEventStore(mongo, database)

        async def settled() -> bool:
            return await store.count_unpublished() == 0 and await caught_up(
                mongo, database, "meeting_views"
            )

        await eventually(settled, timeout=120)
        history = await store.all_events()
        assert len(history) >= len(everyone) + len(branches) + 1  # every check-in and meeting
        result = await delivery(store, bootstrap, topics.MEETINGS)
        assert result.lost == 0, result  # every event on Kafka at least once
        assert result.reordered == 0, result.out_of_order  # each stream in version order

        from sotay_meetings.projections import MeetingViewsProjection

        assert await rebuild_differs(mongo, database, MeetingViewsProjection(), history) == 0
    finally:
        await mongo.close()
