"""Rebuild reporting's projection from the topics it subscribes to, in bounded memory.

    python -m sotay_reporting.rebuild --mongo mongodb://... --bootstrap kafka:9092 \\
        [--into sotay_reporting_rebuilt] [--fresh]

Reads only Kafka (`sotay_events.rebuild.topic_history`: one batch in memory at
a time, positions checkpointed after each batch by `resumable_rebuild`), never
another service's database. A rebuild that died goes on from its checkpoint
when run again (`--fresh` starts over). By default it writes a new database,
to be compared with the live one and switched to with SOTAY_DATABASE; the live
service keeps running meanwhile. The runner tracks versions per aggregate, so
the result does not depend on how the topics' partitions interleave.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from pymongo import AsyncMongoClient

from sotay_events.consumer import Incoming, ProjectionRunner
from sotay_events.rebuild import resumable_rebuild, topic_history
from sotay_reporting.main import USAGE_SOURCES
from sotay_reporting.projections import UsageProjection


def kafka_source(bootstrap: str, batch_size: int = 2000) -> Any:
    def source(start: dict[str, int] | None) -> AsyncIterator[tuple[list[Incoming], Any]]:
        return topic_history(bootstrap, USAGE_SOURCES, batch_size=batch_size, start=start)

    return source


async def rebuild(
    client: AsyncMongoClient[dict[str, Any]],
    bootstrap: str,
    database: str,
    report_day: int = 25,
    *,
    fresh: bool = False,
    batch_size: int = 2000,
) -> int:
    """The usage projection (tree included) rebuilt into `database`; events applied."""
    runner = ProjectionRunner(client, database, UsageProjection(report_day))
    await runner.create_indexes()
    return await resumable_rebuild(runner, kafka_source(bootstrap, batch_size), resume=not fresh)


async def main(args: argparse.Namespace) -> None:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(args.mongo, tz_aware=True)
    started = time.perf_counter()
    applied = await rebuild(
        client, args.bootstrap, args.into, args.report_day, fresh=args.fresh, batch_size=args.batch
    )
    print(
        f"đã dựng lại {applied:,} sự kiện vào {args.into} "
        f"trong {time.perf_counter() - started:.1f} giây"
    )
    await client.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mongo", required=True)
    parser.add_argument("--bootstrap", required=True, help="Kafka bootstrap servers")
    parser.add_argument("--into", default="sotay_reporting_rebuilt")
    parser.add_argument("--report-day", type=int, default=25)
    parser.add_argument("--batch", type=int, default=2000)
    parser.add_argument("--fresh", action="store_true", help="start over, ignoring a checkpoint")
    asyncio.run(main(parser.parse_args()))
