"""The roll-up worker with two replicas in separate processes: one works at a time, and the
other takes over when the first is killed."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from pymongo import AsyncMongoClient

from sotay_platform.settings import InfraSettings
from sotay_platform.testing import eventually

pytestmark = pytest.mark.asyncio(loop_scope="module")

# Each tick is recorded, unfenced, by the process that ran it: were both replicas let in at
# once, their intervals would overlap.
WORKER = """
import asyncio, os, sys, time
from pymongo import AsyncMongoClient
from sotay_learning.rollup import Rollup

class Recording(Rollup):
    async def _tick(self):
        start = time.time()
        await asyncio.sleep(0.05)
        done = await super()._tick()
        await self.db["ticks"].insert_one(
            {"pid": os.getpid(), "start": start, "end": time.time(), "epoch": self.lease.epoch}
        )
        return done

async def main():
    client = AsyncMongoClient(sys.argv[1], tz_aware=True)
    await Recording(client[sys.argv[2]], interval=0.02, lease_seconds=1.5).run()

asyncio.run(main())
"""


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def db(infra: InfraSettings) -> AsyncIterator[Any]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(infra.mongo_url, tz_aware=True)
    name = f"learning_rollup_{uuid.uuid4().hex[:8]}"
    yield client[name]
    await client.drop_database(name)
    await client.close()


async def test_two_replicas_never_roll_up_at_once_and_the_survivor_takes_over(
    db: Any, infra: InfraSettings
) -> None:
    # Dirty marks to work on in every tick (campaigns that no longer exist: rows removed).
    await db["rollup_dirty"].insert_many(
        [
            {"_id": f"campaign:gone-{i}", "kind": "campaign", "target_id": f"gone-{i}", "seq": 1}
            for i in range(20)
        ]
    )
    workers = [
        await asyncio.create_subprocess_exec(sys.executable, "-c", WORKER, infra.mongo_url, db.name)
        for _ in range(2)
    ]
    try:

        async def ticks(pid: int | None = None, at_least: int = 1) -> list[dict[str, Any]]:
            query = {"pid": pid} if pid else {}
            found = await db["ticks"].find(query).sort("start").to_list()
            return found if len(found) >= at_least else []

        first = await eventually(lambda: ticks(at_least=5), timeout=60)
        holder = first[0]["pid"]
        assert {t["pid"] for t in first} == {holder}  # the other stood by throughout
        assert await db["rollup_dirty"].count_documents({}) == 0  # the work was done

        os.kill(holder, signal.SIGKILL)  # mid-tick, most likely
        survivor = next(w.pid for w in workers if w.pid != holder)
        taken = await eventually(lambda: ticks(survivor, at_least=2), timeout=30)
        everything = await db["ticks"].find({}).sort("start").to_list()
        for before, after in itertools.pairwise(everything):
            assert before["end"] <= after["start"], (before, after)  # never two at once
        assert taken[0]["epoch"] > first[0]["epoch"]  # a takeover, fenced by a new epoch
    finally:
        for worker in workers:
            if worker.returncode is None:
                worker.kill()
            await worker.wait()
