"""Reporting's dashboards at scale: a province of 5,000 branches and the whole country.

    .venv/bin/python bench/dashboard.py [--quick] [--json PATH]

Builds, through reporting's own usage projection (`ProjectionRunner.handle`,
one transaction per batch, on the embedded MongoDB): a province of
`--branches` branches in communes of 40 and `--members` members (registered,
approved, activated, signing in, meeting monthly, studying a resolution), and
the rest of the country sampled (33 more provinces, a few communes each).
Then serves the real app (uvicorn-free, through httpx's ASGI transport) and
measures, each against a raw baseline in the same run:

- the province's dashboard JSON (`/units/P/figures`) and HTML page
  (`/dashboard/P`) against a raw `find` of the same roll-up documents;
- the national ones (`TW`, 34 provinces) likewise;
- the projection's events/s against decoding the same events (no writes).

The history is applied in bulk batches (`--bulk`, one transaction each: a
batch costs about one write per document it touches, whatever its size), then
its last `--measure` events in batches of `--batch`, which is the projection's
rate reported. What is timed is the real endpoint, roll-ups and tree as the
projection wrote them.

`--keep DIR` keeps the built database in DIR and, when DIR already holds a
build of the same size, measures it again without rebuilding (the
projection's rate is then the one measured when it was built).

Prints a table; `--json PATH` writes {"province_p95_ms", "national_p95_ms",
"rollup_events_per_s", ...} with the baselines. `--quick` builds 1,000
branches in 25 communes, 4,000 members and one month.
Targets: province p95 < 100 ms, national p95 < 300 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import random
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from asgi_lifespan import LifespanManager
from pymongo import AsyncMongoClient

from sotay_events import DomainEvent, EventEnvelope
from sotay_events.catalogue import CATALOGUE
from sotay_events.catalogue.identity import (
    AccountActivated,
    Gender,
    MemberRegistered,
    MemberRegistrationApproved,
    MemberSignedIn,
    MemberStatus,
)
from sotay_events.catalogue.learning import ResolutionStudied, StudyCampaignLaunched
from sotay_events.catalogue.meetings import MeetingClosed, MeetingKind
from sotay_events.catalogue.org_tree import OrgLevel, UnitCreated
from sotay_events.consumer import ProjectionRunner
from sotay_platform.auth import Grant, Role, TokenIssuer
from sotay_platform.settings import AuthSettings
from sotay_platform.stack import EmbeddedStack
from sotay_reporting.figures import TZ
from sotay_reporting.main import create_app
from sotay_reporting.projections import ROLLUPS, UsageProjection
from sotay_reporting.settings import ReportingSettings

DB = "bench_dashboard"


class Country:
    """Envelopes as the producing services' relays would publish them."""

    def __init__(self, seed: int = 1) -> None:
        self.rng = random.Random(seed)
        self.versions: dict[str, int] = {}
        self.now = datetime.now(UTC)
        self.envelopes: list[EventEnvelope] = []

    def add(self, event: DomainEvent, aggregate_id: str, at: datetime) -> None:
        version = self.versions.get(aggregate_id, 0) + 1
        self.versions[aggregate_id] = version
        self.envelopes.append(
            EventEnvelope(
                event_type=event.event_type,
                schema_version=event.schema_version,
                aggregate_type=event.aggregate_type,
                aggregate_id=aggregate_id,
                aggregate_version=version,
                occurred_at=at,
                actor="bench",
                payload=event.model_dump(mode="json"),
            )
        )

    def unit(self, code: str, name: str, level: OrgLevel, parent: str | None, at: datetime) -> None:
        self.add(UnitCreated(unit_id=code, name=name, level=level, parent_id=parent), code, at)

    def province(self, code: str, branches: int, members: int, months: int) -> None:
        rng, now = self.rng, self.now
        start = now - timedelta(days=31 * months + 5)
        self.unit(code, f"Đảng bộ tỉnh {code}", OrgLevel.province, "TW", start)
        communes = max(1, branches // 40)
        for c in range(communes):
            name = f"Đảng bộ xã {code}-{c}"
            self.unit(f"{code}.X{c:03d}", name, OrgLevel.commune, code, start)
        ids = []
        for b in range(branches):
            commune = f"{code}.X{b % communes:03d}"
            ids.append(f"{commune}.CB{b:05d}")
            self.unit(ids[-1], f"Chi bộ {b}", OrgLevel.branch, commune, start)
        campaign = f"{code}-K57"
        self.add(
            StudyCampaignLaunched(
                campaign_id=campaign,
                unit_id=code,
                resolution_code="57-NQ/TW",
                resolution_title="Đột phá phát triển khoa học, công nghệ",
                deadline=now + timedelta(days=30),
            ),
            campaign,
            now - timedelta(days=40),
        )
        for m in range(members):
            branch = ids[m % branches]
            member = f"{code}.M{m:07d}"
            joined = start + timedelta(days=rng.randint(0, 60))
            self.add(
                MemberRegistered(
                    member_id=member,
                    full_name="Đảng viên",
                    gender=Gender.male if m % 2 else Gender.female,
                    branch_id=branch,
                    status=MemberStatus.official,
                    admitted_on=date(2000, 1, 1),
                    registered_by="import",
                ),
                member,
                joined,
            )
            approved = MemberRegistrationApproved(
                member_id=member, branch_id=branch, approved_by="s"
            )
            self.add(approved, member, joined)
            if rng.random() < 0.75:
                self.add(AccountActivated(member_id=member, branch_id=branch), member, joined)
                if rng.random() < 0.7:
                    seen = now - timedelta(days=rng.randint(0, 40), minutes=5)
                    self.add(MemberSignedIn(member_id=member, branch_id=branch), member, seen)
                if rng.random() < 0.25:
                    self.add(
                        ResolutionStudied(
                            campaign_id=campaign,
                            member_id=member,
                            unit_id=branch,
                            resolution_code="57-NQ/TW",
                            resolution_title="Đột phá phát triển khoa học, công nghệ",
                            materials_completed=3,
                        ),
                        f"{campaign}|{member}",
                        now - timedelta(days=rng.randint(1, 30)),
                    )
        size = max(1, members // branches)
        local = now.astimezone(TZ)
        for b, branch in enumerate(ids):
            for back in range(months):
                index = local.year * 12 + local.month - 1 - back
                day = 2 + b % 5
                if rng.random() < 0.15 or (back == 0 and local.day <= day):
                    continue
                held = datetime(index // 12, index % 12 + 1, day, 21, tzinfo=TZ).astimezone(UTC)
                present = rng.randint(size // 2, size)
                excused = rng.randint(0, size - present)
                self.add(
                    MeetingClosed(
                        meeting_id=f"{branch}.H{back:02d}",
                        unit_id=branch,
                        kind=MeetingKind.regular,
                        invited=size,
                        present=present,
                        excused=excused,
                        absent_without_leave=size - present - excused,
                    ),
                    f"{branch}.H{back:02d}",
                    held,
                )


def p95(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=20)[-1] if len(samples) > 1 else samples[0]


async def timed(call: Callable[[], Awaitable[Any]], repeat: int) -> list[float]:
    await call()  # warm
    out = []
    for _ in range(repeat):
        started = time.perf_counter()
        await call()
        out.append((time.perf_counter() - started) * 1000)
    return out


async def build(
    client: AsyncMongoClient[dict[str, Any]],
    envelopes: list[EventEnvelope],
    args: argparse.Namespace,
) -> float:
    """The history through the projection; returns its events/s over the measured tail.

    The province is built in bulk (a batch of tens of thousands costs about what one
    of a thousand does: one write per document it touches); the rate is measured on
    the last events, in batches of --batch."""
    runner = ProjectionRunner(client, DB, UsageProjection())
    await runner.reset()
    tail = min(args.measure, len(envelopes) // 2)
    bulk, measured = envelopes[: len(envelopes) - tail], envelopes[len(envelopes) - tail :]
    started = time.perf_counter()
    for i in range(0, len(bulk), args.bulk):
        await runner.handle(bulk[i : i + args.bulk])
    print(f"built in bulk: {len(bulk):,} events in {time.perf_counter() - started:.0f} s")
    started = time.perf_counter()
    for i in range(0, len(measured), args.batch):
        await runner.handle(measured[i : i + args.batch])
    rollup_per_s = len(measured) / (time.perf_counter() - started)
    print(f"projection: {rollup_per_s:,.0f} events/s over the last {len(measured):,} events")
    return rollup_per_s


async def main(args: argparse.Namespace) -> None:
    if args.quick:
        args.branches, args.members, args.months, args.repeat = 1_000, 4_000, 1, 30
    members, months = args.members, args.months
    country = Country()
    country.unit("TW", "Trung ương", OrgLevel.central, None, country.now - timedelta(days=400))
    country.province("P", args.branches, members, months)
    for p in range(33):  # the rest of the country, sampled: a commune and a few branches each
        country.province(f"T{p:02d}", 5, 50, months)
    envelopes = country.envelopes
    print(
        f"history: {len(envelopes):,} events; province P: {args.branches:,} branches, "
        f"{members:,} members, {months} months; 33 sampled provinces"
    )

    started = time.perf_counter()
    for envelope in envelopes:
        CATALOGUE.decode(envelope.event_type, envelope.schema_version, envelope.payload)
    decode_per_s = len(envelopes) / (time.perf_counter() - started)

    token_issuer = TokenIssuer.generate()
    auth = AuthSettings(jwks=json.dumps(token_issuer.jwks()))
    headers = {
        "Authorization": f"Bearer {token_issuer.issue('bench', [Grant(Role.central_office, 'TW')], ttl_seconds=3600)}"
    }
    size = {"branches": args.branches, "members": members, "months": months}
    with tempfile.TemporaryDirectory() as workdir:
        stack = EmbeddedStack(Path(workdir))
        built: dict[str, Any] = {}
        marker = Path(args.keep or workdir) / "built.json"
        if args.keep:
            marker.parent.mkdir(parents=True, exist_ok=True)
            stack.mongo_storage = str(marker.parent / "mongo")
            if marker.exists():
                built = json.loads(marker.read_text(encoding="utf-8"))
                if built.get("size") != size:
                    raise SystemExit(f"{args.keep} holds a build of {built.get('size')}")
        stack.start_kafka()
        stack.start_mongo()
        try:
            client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
                stack.env["SOTAY_MONGO_URL"], tz_aware=True
            )
            if built:
                rollup_per_s = float(built["rollup_events_per_s"])
                print(f"measuring the build kept in {args.keep}")
            else:
                rollup_per_s = await build(client, envelopes, args)
                if args.keep:
                    built = {"size": size, "rollup_events_per_s": rollup_per_s}
                    marker.write_text(json.dumps(built), encoding="utf-8")
            # A reporting pod holds no history: the measured app should not pay for
            # collecting the bench's hundreds of thousands of envelopes.
            country.envelopes.clear()
            del envelopes
            gc.collect()

            settings = ReportingSettings(
                **{k.removeprefix("SOTAY_").lower(): v for k, v in stack.env.items()},
                database=DB,
                cache_seconds=0,
                usage_publish_interval=0,
                consumer_group_prefix=f"bench-{time.time_ns()}",
            )
            app = create_app(settings, auth)
            rollups = client[DB][ROLLUPS]
            rows: list[tuple[str, str, float, float]] = []
            medians: dict[tuple[str, str], float] = {}
            async with LifespanManager(app, startup_timeout=60, shutdown_timeout=30):
                transport = httpx.ASGITransport(app=app)
                async with httpx.AsyncClient(transport=transport, base_url="http://bench") as http:
                    for label, unit in (("province", "P"), ("national", "TW")):
                        body = (await http.get(f"/units/{unit}/figures", headers=headers)).json()
                        ids = [unit, *(c["code"] for c in body["children"])]

                        async def raw(ids: list[str] = ids) -> None:
                            await rollups.find({"_id": {"$in": ids}}).to_list()

                        async def as_json(unit: str = unit) -> None:
                            r = await http.get(f"/units/{unit}/figures", headers=headers)
                            assert r.status_code == 200, r.text

                        async def page(unit: str = unit) -> None:
                            r = await http.get(f"/dashboard/{unit}", headers=headers)
                            assert r.status_code == 200, r.text

                        base = p95(await timed(raw, args.repeat))
                        for kind, call in (("JSON", as_json), ("HTML", page)):
                            samples = await timed(call, args.repeat)
                            medians[(label, kind)] = statistics.median(samples)
                            rows.append((label, kind, p95(samples), base))
                        f = body["unit"]["figures"]
                        print(
                            f"{label}: {f['members_on_list']:,} members, {f['branches']:,} "
                            f"branches, {len(body['children'])} child units"
                        )
            await client.close()
        finally:
            stack.stop()

    print(
        f"\n{'dashboard':<10} {'answer':<6} {'p95 ms':>9} {'median ms':>10} {'raw find p95 ms':>16}"
    )
    for label, kind, ms, base in rows:
        print(f"{label:<10} {kind:<6} {ms:>9.1f} {medians[(label, kind)]:>10.1f} {base:>16.1f}")
    print(f"\nprojection {rollup_per_s:,.0f} events/s; decoding alone {decode_per_s:,.0f} events/s")
    figures = {
        "province_p95_ms": round(max(ms for label, _, ms, _ in rows if label == "province"), 1),
        "national_p95_ms": round(max(ms for label, _, ms, _ in rows if label == "national"), 1),
        "rollup_events_per_s": round(rollup_per_s),
        "baseline": {
            "province_raw_find_p95_ms": round(rows[0][3], 1),
            "national_raw_find_p95_ms": round(rows[2][3], 1),
            "decode_events_per_s": round(decode_per_s),
        },
        "detail": {f"{label}_{kind.lower()}_p95_ms": round(ms, 1) for label, kind, ms, _ in rows},
    }
    print(json.dumps(figures, indent=2))
    if args.json:
        write_json(args.json, figures)


def write_json(path: str, figures: dict[str, Any]) -> None:
    Path(path).write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="1,000 branches, 4,000 members")
    parser.add_argument("--branches", type=int, default=5_000)
    parser.add_argument("--members", type=int, default=200_000)
    parser.add_argument("--months", type=int, default=12)
    parser.add_argument("--batch", type=int, default=1000, help="batch of the measured events")
    parser.add_argument("--bulk", type=int, default=20_000, help="batch of the bulk build")
    parser.add_argument("--measure", type=int, default=20_000, help="events measured at --batch")
    parser.add_argument("--repeat", type=int, default=40)
    parser.add_argument("--json", help="write the figures to this file")
    parser.add_argument("--keep", help="keep the built database in this folder, or reuse it")
    arguments = parser.parse_args()
    if arguments.keep:  # the database server runs in another folder
        arguments.keep = str(Path(arguments.keep).resolve())
    asyncio.run(main(arguments))
