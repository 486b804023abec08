"""One request's path across services and Kafka, as a tree with timings.

    python -m sotay_platform.trace TRACE_ID [--file .stack/traces.jsonl]

Reads the OTLP JSON lines every service writes to SOTAY_TRACE_FILE when no
collector is configured (`make run` does), and prints the spans of one trace,
each under its parent, with its service, start offset and duration. The
trace id comes from any response's `X-Trace-Id` header.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Span:
    span_id: str
    parent_id: str | None
    name: str
    service: str
    start_ns: int
    end_ns: int
    children: list[Span] = field(default_factory=list)


def spans_of(lines: Iterable[str], trace_id: str) -> Iterator[Span]:
    """The spans of `trace_id` in OTLP JSON lines (trace ids as hex, as OTLP JSON writes them)."""
    wanted = trace_id.lower()
    for line in lines:
        line = line.strip()
        if not line or wanted not in line.lower():
            continue
        try:
            data = json.loads(line)
        except ValueError:
            continue
        for resource_spans in data.get("resourceSpans", []):
            service = _service(resource_spans.get("resource", {}))
            for scope in resource_spans.get("scopeSpans", []):
                for raw in scope.get("spans", []):
                    if str(raw.get("traceId", "")).lower() != wanted:
                        continue
                    yield Span(
                        span_id=raw["spanId"],
                        parent_id=raw.get("parentSpanId") or None,
                        name=raw.get("name", "?"),
                        service=service,
                        start_ns=int(raw.get("startTimeUnixNano", 0)),
                        end_ns=int(raw.get("endTimeUnixNano", 0)),
                    )


def _service(resource: dict[str, Any]) -> str:
    for attribute in resource.get("attributes", []):
        if attribute.get("key") == "service.name":
            return str(attribute.get("value", {}).get("stringValue", "?"))
    return "?"


def tree(spans: Iterable[Span]) -> list[Span]:
    by_id = {s.span_id: s for s in spans}
    roots: list[Span] = []
    for span in by_id.values():
        parent = by_id.get(span.parent_id or "")
        (parent.children if parent else roots).append(span)
    for span in by_id.values():
        span.children.sort(key=lambda s: s.start_ns)
    return sorted(roots, key=lambda s: s.start_ns)


def render(roots: list[Span]) -> list[str]:
    if not roots:
        return []
    origin = min(r.start_ns for r in roots)
    out: list[str] = []

    def walk(span: Span, depth: int) -> None:
        start = (span.start_ns - origin) / 1e6
        took = (span.end_ns - span.start_ns) / 1e6
        out.append(f"{'  ' * depth}{span.name}  [{span.service}]  +{start:.1f} ms  {took:.1f} ms")
        for child in span.children:
            walk(child, depth + 1)

    for root in roots:
        walk(root, 0)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sotay_platform.trace", description=__doc__)
    parser.add_argument("trace_id")
    parser.add_argument(
        "--file", default=os.environ.get("SOTAY_TRACE_FILE", ".stack/traces.jsonl"), type=Path
    )
    args = parser.parse_args(argv)
    if not args.file.exists():
        print(f"no trace file at {args.file}", file=sys.stderr)
        return 2
    with args.file.open(encoding="utf-8") as lines:
        lines_out = render(tree(spans_of(lines, args.trace_id)))
    if not lines_out:
        print(f"no span of trace {args.trace_id} in {args.file}", file=sys.stderr)
        return 1
    print("\n".join(lines_out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
