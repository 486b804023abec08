"""Follow the usage stream from the command line: what the central office runs.

    python -m sotay_reporting.follow_usage --bootstrap kafka:9092 --unit HN [--subtree]

Prints one line per publication (unit, period, headline figures against the
100% targets), or the JSON payload with --json. Reads with a consumer group of
its own choosing (none by default: it starts from the latest, or from the
beginning with --from-beginning) and never commits anything for others.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from typing import TextIO

from aiokafka import AIOKafkaConsumer

from sotay_events import EventEnvelope, decode, topics
from sotay_events.catalogue.reporting import UsageFiguresPublished
from sotay_reporting.figures import format_moment, month_label


def wanted(event: UsageFiguresPublished, unit: str | None, subtree: bool) -> bool:
    if unit is None:
        return True
    return event.unit_id == unit or (subtree and unit in event.path)


def line(event: UsageFiguresPublished) -> str:
    f = event.figures
    kind = "báo cáo tháng" if event.period_kind == "monthly_report" else "lũy kế tháng"
    mark = "ĐẠT" if f.meets_targets else "CHƯA ĐẠT"
    return (
        f"{event.unit_id} | {event.unit_name} | {kind} {month_label(event.period)} "
        f"| tính đến {format_moment(event.as_of)} "
        f"| đảng viên {f.members_on_list} | đăng ký {f.registered} ({f.registered_rate}%) "
        f"| sử dụng 30 ngày {f.active_30d} ({f.active_30d_rate}%) "
        f"| chi bộ sinh hoạt {f.branches_met}/{f.branches} ({f.branches_met_rate}%) "
        f"| dự họp {f.attendance_rate}% | mục tiêu 100%: {mark}"
    )


async def follow(
    bootstrap: str,
    unit: str | None,
    *,
    subtree: bool = False,
    from_beginning: bool = False,
    group: str | None = None,
    max_messages: int = 0,
    timeout: float = 0,
    as_json: bool = False,
    out: TextIO | None = None,
) -> int:
    stream = out or sys.stdout
    consumer = AIOKafkaConsumer(
        topics.USAGE_STREAM,
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=group is not None,
        auto_offset_reset="earliest" if from_beginning else "latest",
        client_id="sotay-follow-usage",
    )
    await consumer.start()
    seen = 0
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout if timeout else None
    try:
        while deadline is None or loop.time() < deadline:
            batches = await consumer.getmany(timeout_ms=500, max_records=100)
            for records in batches.values():
                for record in records:
                    try:
                        envelope = EventEnvelope.from_bytes(record.value)
                        event = decode(envelope)
                    except Exception as exc:  # a message of another shape: say so, go on
                        print(f"# bỏ qua một thông điệp không đọc được: {exc}", file=sys.stderr)
                        continue
                    if not isinstance(event, UsageFiguresPublished) or not wanted(
                        event, unit, subtree
                    ):
                        continue
                    text = (
                        json.dumps(event.model_dump(mode="json"), ensure_ascii=False)
                        if as_json
                        else line(event)
                    )
                    print(text, file=stream, flush=True)
                    seen += 1
                    if max_messages and seen >= max_messages:
                        return seen
    finally:
        await consumer.stop()
    return seen


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m sotay_reporting.follow_usage",
        description="Theo dõi luồng số liệu sử dụng Sổ tay đảng viên điện tử (sotay.reporting.usage).",
    )
    parser.add_argument("--bootstrap", required=True, help="Kafka bootstrap servers, host:port")
    parser.add_argument("--unit", help="mã đơn vị cần theo dõi (bỏ trống: mọi đơn vị)")
    parser.add_argument("--subtree", action="store_true", help="cả các đơn vị trực thuộc")
    parser.add_argument("--from-beginning", action="store_true", help="đọc từ đầu luồng")
    parser.add_argument("--group", help="consumer group để ghi nhớ vị trí đã đọc")
    parser.add_argument("--max", type=int, default=0, help="dừng sau N thông điệp")
    parser.add_argument("--timeout", type=float, default=0, help="dừng sau N giây")
    parser.add_argument("--json", action="store_true", help="in payload JSON")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        count = asyncio.run(
            follow(
                args.bootstrap,
                args.unit,
                subtree=args.subtree,
                from_beginning=args.from_beginning,
                group=args.group,
                max_messages=args.max,
                timeout=args.timeout,
                as_json=args.json,
            )
        )
    except KeyboardInterrupt:
        return 0
    return 0 if count or not args.max else 1


if __name__ == "__main__":
    sys.exit(main())
