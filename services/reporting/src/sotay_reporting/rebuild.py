"""Rebuild reporting's projections from the producing services' event stores.

    python -m sotay_reporting.rebuild --mongo mongodb://... \\
        --stores sotay_org_tree,sotay_identity,sotay_meetings,sotay_learning \\
        [--into sotay_reporting_rebuilt]

Reads every store's whole history (`MongoEventStore.all_events`), then replays
the tree into `org_units` and everything else into the usage projection, with
`ProjectionRunner.rebuild`. By default it writes to a new database, to be
compared with the live one and switched to with SOTAY_DATABASE; the live
service keeps running meanwhile. Events of one aggregate keep their order;
the result does not depend on how aggregates interleave.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from pymongo import AsyncMongoClient

from sotay_events import EventEnvelope, MongoEventStore
from sotay_events.consumer import ProjectionRunner
from sotay_platform.org_units import OrgUnitsProjection
from sotay_reporting.projections import UsageProjection
from sotay_reporting.projections import create_indexes as create_usage_indexes


async def rebuild(
    client: AsyncMongoClient[dict[str, Any]],
    history: list[EventEnvelope],
    database: str,
    report_day: int = 25,
    batch_size: int = 1000,
) -> tuple[int, int]:
    """`ProjectionRunner.rebuild` for both projections, with the usage indexes back before
    the replay (the runner's reset drops collections with their indexes)."""
    db = client[database]
    tree = ProjectionRunner(client, database, OrgUnitsProjection())
    usage = ProjectionRunner(client, database, UsageProjection(report_day))
    await tree.reset()
    await usage.reset()
    await create_usage_indexes(db)
    applied = []
    for runner, events in (
        (tree, [e for e in history if e.aggregate_type == "OrgUnit"]),
        (usage, [e for e in history if e.aggregate_type != "OrgUnit"]),
    ):
        count = 0
        for start in range(0, len(events), batch_size):
            count += await runner.handle(events[start : start + batch_size])
        applied.append(count)
    return applied[0], applied[1]


async def main(args: argparse.Namespace) -> None:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(args.mongo, tz_aware=True)
    started = time.perf_counter()
    history: list[EventEnvelope] = []
    for name in args.stores.split(","):
        events = await MongoEventStore(client, name.strip()).all_events()
        print(f"{name}: {len(events):,} sự kiện")
        history.extend(events)
    history.sort(key=lambda e: e.occurred_at)
    tree, usage = await rebuild(client, history, args.into, args.report_day, args.batch)
    print(
        f"đã dựng lại {tree:,} sự kiện cây tổ chức và {usage:,} sự kiện sử dụng "
        f"vào {args.into} trong {time.perf_counter() - started:.1f} giây"
    )
    await client.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mongo", required=True)
    parser.add_argument("--stores", required=True, help="event store databases, comma separated")
    parser.add_argument("--into", default="sotay_reporting_rebuilt")
    parser.add_argument("--report-day", type=int, default=25)
    parser.add_argument("--batch", type=int, default=1000)
    asyncio.run(main(parser.parse_args()))
