"""Check-ins per second and latency for the meetings service, on this machine.

Starts the embedded stack (Tansu, SecantusDB, redis-server), runs the meetings app
(uvicorn in a child process by default, or in this process with --inprocess),
feeds it a tree and a roster through Kafka the way org-tree and identity would,
convenes meetings through the API, and then measures self check-ins with the
code the secretary shows:

  A. many small meetings: every member of every meeting checks in, shuffled,
     with a fixed number of concurrent clients;
  B. one large meeting: all of its members check in at the same moment;
  C. the same large meeting again: every check-in is a duplicate (idempotent).

and, as the baseline (issue 10), the same clients drive scenario A's requests
against a bare FastAPI endpoint taking the same body, served by the same
uvicorn set-up in the same run: the ratio says what the check-in itself costs
over HTTP, JSON and the server.

It prints check-ins per second and p50/p99 latency for each, checks that every
check-in is in the event store exactly once, and waits for the outbox to
publish them all. `--json PATH` writes {"checkin_per_s", "baseline_per_s",
"checkin_ratio", "burst_p99_ms"}; `--quick` finishes in under two minutes.
Not a unit test: `python bench/meetings_checkin.py --help`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from pymongo import AsyncMongoClient

from sotay_events import DomainEvent, EventEnvelope, topics
from sotay_events.catalogue.identity import (
    Gender,
    MemberRegistered,
    MemberRegistrationApproved,
    MemberStatus,
)
from sotay_events.catalogue.org_tree import OrgLevel, UnitCreated
from sotay_events.kafka import make_broker
from sotay_meetings.api import CheckInCode
from sotay_platform.auth import Grant, Role, TokenIssuer
from sotay_platform.settings import AuthSettings
from sotay_platform.stack import EmbeddedStack, free_port

DATABASE = "bench_meetings"
BENCH_DIR = str(Path(__file__).resolve().parent)
UVICORN_FLAGS = [
    "--host",
    "127.0.0.1",
    "--log-level",
    "warning",
    "--no-access-log",
    "--timeout-keep-alive",
    "300",
    "--backlog",
    "4096",
]


def baseline_app() -> Any:
    """The bare endpoint: the same path and body as a check-in, validated by the same model,
    answered with a body of the same shape; no token, no cache, no store."""
    from fastapi import FastAPI

    app = FastAPI()

    @app.post("/meetings/{meeting_id}/check-in", status_code=201)
    async def check_in(meeting_id: str, body: CheckInCode) -> dict[str, Any]:
        return {
            "meeting_id": meeting_id,
            "member_id": "baseline",
            "recorded": True,
            "already_recorded": False,
            "method": "self",
            "message": "Đã điểm danh",
        }

    @app.get("/health/live")
    async def live() -> dict[str, str]:
        return {"status": "ok"}

    return app


@dataclass
class Run:
    name: str
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    elapsed: float = 0.0

    def record(self, status: int, seconds: float) -> None:
        self.statuses[status] = self.statuses.get(status, 0) + 1
        self.latencies.append(seconds)

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.elapsed if self.elapsed else 0.0

    @property
    def p99_ms(self) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000 if ordered else 0.0

    def row(self) -> str:
        ordered = sorted(self.latencies)
        n = len(ordered)
        p50 = statistics.median(ordered) * 1000 if n else 0.0
        p99 = ordered[min(n - 1, int(n * 0.99))] * 1000 if n else 0.0
        rate = n / self.elapsed if self.elapsed else 0.0
        codes = ", ".join(f"{k}×{v}" for k, v in sorted(self.statuses.items()))
        return (
            f"{self.name:<42} {n:>6} {rate:>10.0f} {p50:>9.1f} {p99:>9.1f} "
            f"{max(ordered) * 1000 if n else 0:>9.1f}   {codes}"
        )


HEADER = (
    f"{'scenario':<42} {'n':>6} {'check-ins/s':>10} {'p50 ms':>9} {'p99 ms':>9} "
    f"{'max ms':>9}   statuses"
)


class Feed:
    """Publishes org-tree's and identity's events, as those services would."""

    def __init__(self, bootstrap: str) -> None:
        self.broker = make_broker(bootstrap, client_id="bench", idempotent_producer=False)
        self.versions: dict[str, int] = {}
        self.pending: list[Awaitable[Any]] = []

    async def publish(
        self, topic: str, aggregate_type: str, aggregate_id: str, event: DomainEvent
    ) -> None:
        key = f"{aggregate_type}-{aggregate_id}"
        self.versions[key] = self.versions.get(key, 0) + 1
        envelope = EventEnvelope(
            event_type=event.event_type,
            schema_version=event.schema_version,
            aggregate_type=aggregate_type,
            aggregate_id=aggregate_id,
            aggregate_version=self.versions[key],
            payload=event.model_dump(mode="json"),
        )
        self.pending.append(
            await self.broker.publish(
                envelope.to_bytes(), topic, key=aggregate_id.encode(), no_confirm=True
            )
        )
        if len(self.pending) >= 500:
            await self.flush()

    async def flush(self) -> None:
        await asyncio.gather(*self.pending)
        self.pending.clear()

    async def unit(self, unit_id: str, level: OrgLevel, parent: str | None) -> None:
        await self.publish(
            topics.ORG_TREE,
            "OrgUnit",
            unit_id,
            UnitCreated(unit_id=unit_id, name=f"Chi bộ {unit_id}", level=level, parent_id=parent),
        )

    async def member(self, member_id: str, branch: str) -> None:
        await self.publish(
            topics.IDENTITY,
            "Member",
            member_id,
            MemberRegistered(
                member_id=member_id,
                full_name=f"Đảng viên {member_id}",
                gender=Gender.female,
                branch_id=branch,
                status=MemberStatus.official,
                admitted_on=date(2015, 2, 3),
                registered_by="import",
            ),
        )
        await self.publish(
            topics.IDENTITY,
            "Member",
            member_id,
            MemberRegistrationApproved(member_id=member_id, branch_id=branch, approved_by="import"),
        )


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc); 0 where unknown."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


class CpuMeter:
    """CPU seconds spent by each process of the bench between `start` and `stop`."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.began: dict[str, float] = {}
        self.spent: dict[str, float] = {}

    def start(self) -> None:
        self.began = {name: cpu_seconds(pid) for name, pid in self.pids.items()}

    def stop(self) -> None:
        self.spent = {name: cpu_seconds(pid) - self.began[name] for name, pid in self.pids.items()}

    def per_item(self, count: int) -> str:
        return ", ".join(f"{name} {1000 * secs / count:.1f}" for name, secs in self.spent.items())


SERVER_PID: dict[str, int] = {}


@contextlib.asynccontextmanager
async def meetings_server(
    stack: EmbeddedStack, jwks: str, inprocess: bool, workdir: Path
) -> AsyncIterator[httpx.AsyncClient]:
    env = {
        **stack.env,
        "SOTAY_DATABASE": DATABASE,
        "SOTAY_SERVICE_NAME": "meetings",
        "SOTAY_AUTH_JWKS": jwks,
        "SOTAY_CHECKIN_SECRET": "bench-secret",
        "SOTAY_CHECKIN_CODE_STEP_SECONDS": "300",
        "SOTAY_KAFKA_PARTITIONS": str(stack.partitions),
        "SOTAY_RELAY_IDLE_INTERVAL": "0.05",
        "SOTAY_LOG_LEVEL": "WARNING",
    }
    if inprocess:
        from asgi_lifespan import LifespanManager

        from sotay_meetings.main import create_app
        from sotay_meetings.settings import MeetingsSettings

        os.environ.update(env)
        app = create_app(MeetingsSettings(), AuthSettings())
        async with LifespanManager(app, startup_timeout=60, shutdown_timeout=30):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(
                transport=transport, base_url="http://meetings", timeout=60
            ) as client:
                yield client
        return
    async with uvicorn_server("sotay_meetings.main:create_app", env, workdir, "app") as client:
        yield client


@contextlib.asynccontextmanager
async def uvicorn_server(
    factory: str, env: dict[str, str], workdir: Path, name: str, app_dir: str | None = None
) -> AsyncIterator[httpx.AsyncClient]:
    """One uvicorn worker in a child process, with the same flags for the app and the baseline."""
    limits = httpx.Limits(max_connections=400, max_keepalive_connections=400)
    port = free_port()
    log = open(workdir / f"{name}.log", "ab")  # noqa: SIM115, ASYNC230 - lives as long as the child
    extra = ["--app-dir", app_dir] if app_dir else []
    server = subprocess.Popen(  # noqa: ASYNC220 - started once, before any measurement
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            factory,
            *extra,
            "--port",
            str(port),
            *UVICORN_FLAGS,
        ],
        env={**os.environ, **env},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    SERVER_PID[f"{name} (uvicorn)"] = server.pid
    try:
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", timeout=60, limits=limits
        ) as client:
            deadline = time.monotonic() + 90
            while True:
                try:
                    if (await client.get("/health/live")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError(f"{name} did not start; see {workdir / f'{name}.log'}")
                await asyncio.sleep(0.2)
            yield client
    finally:
        SERVER_PID.pop(f"{name} (uvicorn)", None)
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()


async def wait_for(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 120) -> float:
    started = time.monotonic()
    while not await check():
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"{what} not done within {timeout}s")
        await asyncio.sleep(0.2)
    return time.monotonic() - started


async def run_checkins(
    name: str,
    phones: list[httpx.AsyncClient],
    jobs: list[tuple[str, str, dict[str, str]]],
    concurrency: int,
) -> Run:
    """`concurrency` phones, each with its own connection, work through the jobs."""
    run = Run(name)
    queue = list(jobs)
    queue.reverse()

    async def worker(phone: httpx.AsyncClient) -> None:
        while queue:
            meeting_id, code, headers = queue.pop()
            began = time.perf_counter()
            try:
                r = await phone.post(
                    f"/meetings/{meeting_id}/check-in", json={"code": code}, headers=headers
                )
                status = r.status_code
            except httpx.TransportError:
                status = 0  # counted, and shown in the statuses column
            run.record(status, time.perf_counter() - began)

    began = time.perf_counter()
    await asyncio.gather(*(worker(p) for p in phones[: min(concurrency, len(jobs))]))
    run.elapsed = time.perf_counter() - began
    print(f"  {name}: {len(jobs)} check-ins in {run.elapsed:.1f}s", flush=True)
    return run


@contextlib.asynccontextmanager
async def phones(client: httpx.AsyncClient, count: int) -> AsyncIterator[list[httpx.AsyncClient]]:
    """One client and one open connection per member's phone: the load generator's own
    connection pool is not what gets measured. In-process, the ASGI client is shared."""
    if isinstance(client._transport, httpx.ASGITransport):
        yield [client] * count
        return
    async with contextlib.AsyncExitStack() as stack:
        opened = [
            await stack.enter_async_context(
                httpx.AsyncClient(
                    base_url=client.base_url,
                    timeout=60,
                    limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
                )
            )
            for _ in range(count)
        ]
        await asyncio.gather(*(p.get("/health/live") for p in opened))
        yield opened


async def main(args: argparse.Namespace) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="bench-meetings-"))
    stack = EmbeddedStack(workdir)
    print(f"starting the embedded stack in {workdir} …", flush=True)
    stack.start()
    try:
        return await bench(stack, workdir, args)
    finally:
        stack.stop()
        shutil.rmtree(workdir, ignore_errors=True)


async def bench(stack: EmbeddedStack, workdir: Path, args: argparse.Namespace) -> int:
    issuer = TokenIssuer.generate()
    jwks = json.dumps(issuer.jwks())
    small = [f"CB{i:04d}" for i in range(args.meetings)]
    large = "CBLARGE"
    members = {b: [f"{b}-m{j:03d}" for j in range(args.members)] for b in small}
    members[large] = [f"{large}-m{j:03d}" for j in range(args.large)]
    total_members = sum(len(v) for v in members.values())

    async with meetings_server(stack, jwks, args.inprocess, workdir) as client:
        mode = "in-process (httpx ASGI)" if args.inprocess else "uvicorn, 1 worker, HTTP"
        print(f"meetings is up ({mode})", flush=True)

        # The tree and the roster, through Kafka.
        feed = Feed(stack.env["SOTAY_KAFKA_BOOTSTRAP"])
        await feed.broker.start()
        began = time.monotonic()
        await feed.unit("TW", OrgLevel.central, None)
        await feed.unit("P01", OrgLevel.province, "TW")
        await feed.unit("X01", OrgLevel.commune, "P01")
        for branch in [*small, large]:
            await feed.unit(branch, OrgLevel.branch, "X01")
        for branch, ids in members.items():
            for member_id in ids:
                await feed.member(member_id, branch)
        await feed.flush()
        await feed.broker.stop()
        mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
            stack.env["SOTAY_MONGO_URL"], tz_aware=True
        )
        db = mongo[DATABASE]

        async def roster_ready() -> bool:
            approved = await db["roster"].count_documents({"approved": True})
            units = await db["org_units"].count_documents({})
            return approved == total_members and units == len(small) + 4

        await wait_for(roster_ready, "roster projection")
        print(
            f"tree of {len(small) + 4} units and roster of {total_members} members projected "
            f"in {time.monotonic() - began:.1f}s",
            flush=True,
        )

        # Convene every meeting; the secretary's grant covers the commune's branches.
        secretary = {
            "Authorization": "Bearer "
            + issuer.issue(
                "bench-secretary", [Grant(Role.branch_secretary, "X01")], ttl_seconds=3600
            )
        }
        start = datetime.now(UTC) + timedelta(minutes=10)
        meeting_of: dict[str, str] = {}
        began = time.monotonic()
        sem = asyncio.Semaphore(8)

        async def convene(branch: str) -> None:
            async with sem:
                r = await client.post(
                    "/meetings",
                    json={
                        "unit_id": branch,
                        "title": f"Sinh hoạt chi bộ {branch}",
                        "starts_at": start.isoformat(),
                        "ends_at": (start + timedelta(hours=2)).isoformat(),
                        "location": "Hội trường",
                    },
                    headers=secretary,
                )
                r.raise_for_status()
                assert len(r.json()["invitee_ids"]) == len(members[branch]), branch
                meeting_of[branch] = r.json()["meeting_id"]

        await asyncio.gather(*(convene(b) for b in [*small, large]))
        print(f"{len(meeting_of)} meetings convened in {time.monotonic() - began:.1f}s", flush=True)

        codes: dict[str, str] = {}
        for branch, meeting_id in meeting_of.items():
            r = await client.get(f"/meetings/{meeting_id}/checkin-code", headers=secretary)
            r.raise_for_status()
            codes[branch] = r.json()["code"]

        tokens = {
            m: {
                "Authorization": "Bearer "
                + issuer.issue(m, [Grant(Role.member, b)], member_id=m, ttl_seconds=3600)
            }
            for b, ids in members.items()
            for m in ids
        }
        jobs_small = [(meeting_of[b], codes[b], tokens[m]) for b in small for m in members[b]]
        random.Random(7).shuffle(jobs_small)
        jobs_large = [(meeting_of[large], codes[large], tokens[m]) for m in members[large]]

        pids = {
            **SERVER_PID,
            "mongo": stack.processes["mongo"].pid,
            "kafka": stack.processes["kafka"].pid,
            "redis": stack.processes["redis"].pid,
            "load generator" + (" + app" if args.inprocess else ""): os.getpid(),
        }
        meter = CpuMeter(pids)
        async with phones(client, max(args.concurrency, len(jobs_large))) as devices:
            warm = await run_checkins("warm-up", devices, jobs_small[:50], 10)
            meter.start()
            runs = [
                await run_checkins(
                    f"A. {len(small)} meetings × {args.members} members, c={args.concurrency}",
                    devices,
                    jobs_small[50:],
                    args.concurrency,
                ),
                await run_checkins(
                    f"B. 1 meeting × {args.large} members, all at once",
                    devices,
                    jobs_large,
                    len(jobs_large),
                ),
                await run_checkins(
                    f"C. the same {args.large} again (duplicates)",
                    devices,
                    jobs_large,
                    len(jobs_large),
                ),
            ]

            meter.stop()
        expected = len(jobs_small) + len(jobs_large)

        async def stored() -> bool:
            return await db["events"].count_documents({"aggregate_type": "Attendance"}) == expected

        await wait_for(stored, "attendance in the store", 30)
        published_in = await wait_for(lambda: _outbox_empty(db), "the outbox relay", timeout=180)
        await mongo.close()

    # The baseline: the same requests, clients and uvicorn set-up, a bare endpoint.
    baseline: Run | None = None
    if not args.inprocess:
        bench_dir = BENCH_DIR
        async with uvicorn_server(
            "meetings_checkin:baseline_app", {}, workdir, "baseline", app_dir=bench_dir
        ) as bare:
            async with phones(bare, args.concurrency) as devices:
                await run_checkins("baseline warm-up", devices, jobs_small[:50], 10)
                baseline = await run_checkins(
                    f"baseline: bare endpoint, same body, c={args.concurrency}",
                    devices,
                    jobs_small[50:],
                    args.concurrency,
                )

    print()
    print(HEADER)
    for run in [warm, *runs, *([baseline] if baseline else [])]:
        print(run.row())
    ok_a = runs[0].statuses.get(201, 0) == len(jobs_small) - 50
    ok_b = runs[1].statuses.get(201, 0) == len(jobs_large)
    ok_c = runs[2].statuses.get(200, 0) == len(jobs_large)
    print()
    measured = sum(len(r.latencies) for r in runs)
    print(f"CPU ms per check-in over A+B+C, by process: {meter.per_item(measured)}")
    print(f"attendance streams in the store: {expected} (one per member per meeting)")
    print(f"outbox drained to Kafka {published_in:.1f}s after the last check-in")
    print(
        "all first check-ins recorded (201): "
        f"{'yes' if ok_a and ok_b else 'NO'}; duplicates answered 200: {'yes' if ok_c else 'NO'}"
    )
    figures = {
        "checkin_per_s": round(runs[0].rate, 1),
        "baseline_per_s": round(baseline.rate, 1) if baseline else None,
        "checkin_ratio": round(runs[0].rate / baseline.rate, 3) if baseline else None,
        "burst_p99_ms": round(runs[1].p99_ms, 1),
    }
    print(
        f"check-ins/s {figures['checkin_per_s']} against {figures['baseline_per_s']} for the "
        f"bare endpoint: ratio {figures['checkin_ratio']} (target ≥ 0.5); "
        f"{args.large} at once p99 {figures['burst_p99_ms']} ms"
    )
    if args.json:
        write_json(args.json, figures)
    return 0 if ok_a and ok_b and ok_c else 1


def write_json(path: str, figures: dict[str, Any]) -> None:
    Path(path).write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    print(f"figures written to {path}")


async def _outbox_empty(db: Any) -> bool:
    return await db["events"].count_documents({"published": False}) == 0


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--meetings", type=int, default=200, help="small meetings (200)")
    parser.add_argument("--members", type=int, default=8, help="members per small meeting (8)")
    parser.add_argument("--large", type=int, default=250, help="members of the large meeting (250)")
    parser.add_argument("--concurrency", type=int, default=64, help="clients in scenario A (64)")
    parser.add_argument("--inprocess", action="store_true", help="run the app in this process")
    parser.add_argument("--quick", action="store_true", help="60 small meetings: under two minutes")
    parser.add_argument("--json", metavar="PATH", help="write the figures as JSON")
    args = parser.parse_args()
    if args.quick:
        args.meetings, args.large = min(args.meetings, 40), min(args.large, 150)
    return args


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse())))
