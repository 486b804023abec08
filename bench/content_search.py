"""Vietnamese search over content's projection, against the embedded MongoDB.

    .venv/bin/python bench/content_search.py [--docs 100000] [--queries 300] [--json PATH]
    .venv/bin/python bench/content_search.py --quick          # 5,000 documents, under 2 minutes

Generates, in memory, published pieces (news, resolutions, directives... with
numbers and symbols, over a tree of 34 provinces, their communes and
branches), then in the same run, on SecantusDB:

1. index, raw baseline: the projection's rows written with plain `insert_many`
   (no index but _id, no transaction, no tracking);
2. index: the same pieces' events applied by the `ProjectionRunner` to
   `ContentProjection` (folded search terms, multikey index, one transaction
   per batch with its tracking records): what the service does live;
3. query: `ContentViews.search` as members type ("nghi quyet 57", a code
   "57-NQ/TW", two words, one word with a kind filter), each for a member of a
   random branch (only what targets their branch or above);
   raw baseline: fetching the very rows each search returned, by `_id`.

Prints a table; `--json PATH` writes {"index_docs_per_s", "query_p95_ms", ...}
with the baselines beside them. Not a unit test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from pymongo import AsyncMongoClient

from sotay_content.domain import DeclaredClassification, DocumentDraft, compose
from sotay_content.projections import (
    PIECES,
    ContentProjection,
    ContentViews,
    SearchFilters,
    _apply_piece,
    _rank_tokens,
    _terms,
)
from sotay_events import EventEnvelope, decode
from sotay_events.catalogue.content import (
    PieceDrafted,
    PieceKind,
    PiecePublished,
)
from sotay_events.consumer import ProjectionRunner
from sotay_platform.stack import EmbeddedStack

DATABASE = "bench_content"
BATCH = 1000

WORDS = [
    "đảng",
    "bộ",
    "chi",
    "bộ",
    "đảng",
    "viên",
    "nghị",
    "quyết",
    "chỉ",
    "thị",
    "quy",
    "định",
    "kết",
    "luận",
    "hướng",
    "dẫn",
    "công",
    "tác",
    "xây",
    "dựng",
    "chỉnh",
    "đốn",
    "tổ",
    "chức",
    "cán",
    "bộ",
    "tư",
    "tưởng",
    "chính",
    "trị",
    "đạo",
    "đức",
    "lối",
    "sống",
    "học",
    "tập",
    "làm",
    "theo",
    "tấm",
    "gương",
    "phong",
    "cách",
    "Hồ",
    "Chí",
    "Minh",
    "phát",
    "triển",
    "kinh",
    "tế",
    "xã",
    "hội",
    "quốc",
    "phòng",
    "an",
    "ninh",
    "đối",
    "ngoại",
    "khoa",
    "học",
    "công",
    "nghệ",
    "đổi",
    "mới",
    "sáng",
    "tạo",
    "chuyển",
    "đổi",
    "số",
    "dân",
    "vận",
    "mặt",
    "trận",
    "đoàn",
    "thể",
    "thanh",
    "niên",
    "phụ",
    "nữ",
    "nông",
    "dân",
    "cựu",
    "chiến",
    "binh",
    "công",
    "đoàn",
    "kiểm",
    "tra",
    "giám",
    "sát",
    "kỷ",
    "luật",
    "tuyên",
    "giáo",
    "văn",
    "phòng",
    "tỉnh",
    "ủy",
    "huyện",
    "ủy",
    "thành",
    "ủy",
    "đảng",
    "ủy",
    "xã",
    "phường",
    "thị",
    "trấn",
    "sinh",
    "hoạt",
    "thường",
    "kỳ",
    "chuyên",
    "đề",
    "kế",
    "hoạch",
    "triển",
    "khai",
    "thực",
    "hiện",
    "quán",
    "triệt",
    "nhiệm",
    "vụ",
    "giải",
    "pháp",
    "mục",
    "tiêu",
    "chỉ",
    "tiêu",
    "năm",
    "tháng",
    "quý",
    "báo",
    "cáo",
    "sơ",
    "kết",
    "tổng",
    "kết",
    "đánh",
    "giá",
    "xếp",
    "loại",
    "chất",
    "lượng",
    "hoàn",
    "thành",
    "xuất",
    "sắc",
    "tốt",
    "nông",
    "thôn",
    "mới",
    "đô",
    "thị",
    "văn",
    "minh",
    "giáo",
    "dục",
    "đào",
    "tạo",
    "y",
    "tế",
    "môi",
    "trường",
    "tài",
    "nguyên",
    "đất",
    "đai",
    "biển",
    "đảo",
    "biên",
    "giới",
    "cải",
    "cách",
    "hành",
    "chính",
    "phòng",
    "chống",
    "tham",
    "nhũng",
    "lãng",
    "phí",
    "tiêu",
    "cực",
    "bầu",
    "cử",
    "đại",
    "hội",
    "nhiệm",
    "kỳ",
    "hội",
    "nghị",
    "ban",
    "chấp",
    "hành",
    "ban",
    "thường",
    "vụ",
    "bộ",
    "chính",
    "trị",
    "ban",
    "bí",
    "thư",
    "trung",
    "ương",
    "chính",
    "phủ",
    "quốc",
    "hội",
    "nhân",
    "dân",
    "cộng",
    "đồng",
    "gia",
    "đình",
    "truyền",
    "thống",
    "lịch",
    "sử",
    "vững",
    "mạnh",
    "toàn",
    "diện",
    "trong",
    "sạch",
    "đoàn",
    "kết",
    "thống",
    "nhất",
    "dân",
    "chủ",
    "kỷ",
    "cương",
    "trách",
    "nhiệm",
]
KINDS = [
    (PieceKind.news, 30),
    (PieceKind.event, 8),
    (PieceKind.resolution, 15),
    (PieceKind.directive, 8),
    (PieceKind.regulation, 6),
    (PieceKind.conclusion, 6),
    (PieceKind.guidance, 8),
    (PieceKind.professional_guidance, 7),
    (PieceKind.meeting_topic, 7),
    (PieceKind.bulletin, 5),
]
SYMBOLS = {
    PieceKind.resolution: "NQ",
    PieceKind.directive: "CT",
    PieceKind.regulation: "QĐ",
    PieceKind.conclusion: "KL",
    PieceKind.guidance: "HD",
}
BODIES = ["Bộ Chính trị", "Ban Bí thư", "Ban Chấp hành Trung ương", "Tỉnh ủy", "Ban Tuyên giáo"]


class Tree:
    """34 provinces, each with communes, each with branches: paths for targets."""

    def __init__(self, rng: random.Random, communes: int = 20, branches: int = 10) -> None:
        self.paths: dict[str, list[str]] = {"TW": ["TW"]}
        self.branches: list[str] = []
        for p in range(34):
            province = f"T{p:02d}"
            self.paths[province] = ["TW", province]
            for c in range(communes):
                commune = f"{province}.X{c:02d}"
                self.paths[commune] = ["TW", province, commune]
                for b in range(branches):
                    branch = f"{commune}.CB{b:02d}"
                    self.paths[branch] = ["TW", province, commune, branch]
                    self.branches.append(branch)
        self.rng = rng

    def target(self) -> str:
        """Most pieces come from provinces and communes, some from the centre or a branch."""
        branch = self.rng.choice(self.branches)
        path = self.paths[branch]
        return path[self.rng.choices([0, 1, 2, 3], weights=[5, 45, 40, 10])[0]]


def sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def generate(
    count: int, tree: Tree, rng: random.Random
) -> tuple[list[EventEnvelope], list[dict[str, Any]]]:
    envelopes: list[EventEnvelope] = []
    codes: list[dict[str, Any]] = []
    start = datetime(2023, 1, 1, tzinfo=UTC)
    kinds, weights = zip(*KINDS, strict=True)
    for i in range(count):
        kind = rng.choices(kinds, weights=weights)[0]
        unit = tree.target()
        document = None
        title = sentence(rng, rng.randint(6, 14)).capitalize()
        if kind in SYMBOLS:
            number = rng.randint(1, 999)
            level = "TW" if unit == "TW" else "TU"
            code = f"{number}-{SYMBOLS[kind]}/{level}"
            issued = date(2023, 1, 1) + timedelta(days=rng.randint(0, 1000))
            document = DocumentDraft(
                number_symbol=code,
                issuing_body=rng.choice(BODIES),
                issued_on=issued,
                classification=DeclaredClassification.public,
            )
            title = f"{kind.label} số {code} về {title.lower()}"
            codes.append({"code": code, "number": str(number), "unit": unit, "kind": kind})
        body = "".join(f"<p>{sentence(rng, rng.randint(15, 30))}.</p>" for _ in range(3))
        content = compose(kind, title, sentence(rng, 20), body, document)
        piece_id = f"p{i:07d}"
        at = start + timedelta(minutes=i * 7)
        path = tuple(tree.paths[unit])
        for version, event in enumerate(
            [
                PieceDrafted(
                    piece_id=piece_id, kind=kind, unit_id=unit, content=content, author_id="bt"
                ),
                PiecePublished(
                    piece_id=piece_id,
                    unit_id=unit,
                    kind=kind,
                    title=title,
                    number_symbol=content.document.number_symbol if content.document else None,
                    revision=1,
                    approved_by="rv",
                    published_at=at,
                ),
            ],
            start=1,
        ):
            envelopes.append(
                EventEnvelope(
                    event_type=event.event_type,
                    schema_version=event.schema_version,
                    aggregate_type="Piece",
                    aggregate_id=piece_id,
                    aggregate_version=version,
                    occurred_at=at,
                    org_path=path,
                    payload=event.model_dump(mode="json"),
                )
            )
    return envelopes, codes


SHAPES = ["kind + number", "number and symbol", "two words", "one word, kind filter"]


def fold_rows(envelopes: list[EventEnvelope]) -> list[dict[str, Any]]:
    """The rows the projection writes, folded in memory: what the raw baseline inserts."""
    rows: dict[str, dict[str, Any]] = {}
    for envelope in envelopes:
        row = rows.setdefault(envelope.aggregate_id, {"_id": envelope.aggregate_id})
        _apply_piece(row, envelope.occurred_at, decode(envelope))
        row["unit_path"] = list(envelope.org_path)
        row["version"] = envelope.aggregate_version
    for row in rows.values():
        row["terms"] = _terms(row, {})
        row["rank_tokens"] = _rank_tokens(row)
    return list(rows.values())


def queries(
    rng: random.Random, codes: list[dict[str, Any]], n: int
) -> list[tuple[str, SearchFilters]]:
    out: list[tuple[str, SearchFilters]] = []
    for i in range(n):
        shape = i % 4
        if shape == 0 and codes:
            doc = rng.choice(codes)
            label = {
                "NQ": "nghi quyet",
                "CT": "chi thi",
                "QĐ": "quy dinh",
                "KL": "ket luan",
                "HD": "huong dan",
            }
            out.append(
                (
                    f"{label[doc['code'].split('-')[1].split('/')[0]]} {doc['number']}",
                    SearchFilters(),
                )
            )
        elif shape == 1 and codes:
            out.append((rng.choice(codes)["code"], SearchFilters()))
        elif shape == 2:
            out.append((f"{rng.choice(WORDS)} {rng.choice(WORDS)}", SearchFilters()))
        else:
            out.append((rng.choice(WORDS), SearchFilters(kinds=["resolution", "directive"])))
    return out


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] if ordered else 0.0


async def run(args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(args.seed)
    tree = Tree(rng)
    began = time.perf_counter()
    envelopes, codes = generate(args.docs, tree, rng)
    print(
        f"generated {args.docs:,} pieces ({len(envelopes):,} events) in {time.perf_counter() - began:.1f} s"
    )

    with tempfile.TemporaryDirectory() as workdir:
        stack = EmbeddedStack(Path(workdir))
        stack.start_mongo()
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
            stack.env["SOTAY_MONGO_URL"], tz_aware=True
        )
        try:
            db = client[DATABASE]
            projection = ContentProjection()
            runner = ProjectionRunner(client, DATABASE, projection)
            await runner.reset()

            # The raw baseline first, then dropped: both phases start from an empty server.
            rows = fold_rows(envelopes)
            raw = db["raw_pieces"]
            t0 = time.perf_counter()
            for i in range(0, len(rows), BATCH):
                await raw.insert_many(rows[i : i + BATCH], ordered=False)
            raw_index_seconds = time.perf_counter() - t0
            print(f"raw insert_many: {len(rows) / raw_index_seconds:,.0f} documents/s", flush=True)
            await db.drop_collection("raw_pieces")
            del rows

            t0 = time.perf_counter()
            for i in range(0, len(envelopes), 2 * BATCH):
                await runner.handle(envelopes[i : i + 2 * BATCH])
            index_seconds = time.perf_counter() - t0
            print(f"projection: {args.docs / index_seconds:,.0f} documents/s", flush=True)
            raw = db[PIECES]

            views = ContentViews(db)
            latencies: list[float] = []
            raw_latencies: list[float] = []
            hits = 0
            by_shape: dict[str, list[float]] = {shape: [] for shape in SHAPES}
            for n, (q, filters) in enumerate(queries(rng, codes, args.queries)):
                targets = tree.paths[rng.choice(tree.branches)]
                t0 = time.perf_counter()
                found = await views.search(q, targets, filters, limit=20)
                latencies.append(time.perf_counter() - t0)
                by_shape[SHAPES[n % 4]].append(latencies[-1])
                ids = [row["_id"] for row, _ in found]
                hits += bool(ids)
                t0 = time.perf_counter()
                await raw.find({"_id": {"$in": ids}}, {"terms": 0}).to_list()
                raw_latencies.append(time.perf_counter() - t0)

            # A code typed whole comes first, for a member who may see it.
            probe = next(c for c in codes if c["unit"] in ("TW",) or c["unit"].count(".") == 0)
            member_path = tree.paths[
                next(
                    b for b in tree.branches if b.startswith(probe["unit"]) or probe["unit"] == "TW"
                )
            ]
            first = await views.search(probe["code"], member_path, SearchFilters(), limit=5)
            assert first and first[0][0]["document"]["number_symbol"] == probe["code"], probe
        finally:
            await client.close()
            stack.stop()

    figures: dict[str, Any] = {
        "docs": args.docs,
        "index_docs_per_s": round(args.docs / index_seconds, 1),
        "index_baseline_docs_per_s": round(args.docs / raw_index_seconds, 1),
        "query_p50_ms": round(statistics.median(latencies) * 1000, 2),
        "query_p95_ms": round(pct(latencies, 0.95) * 1000, 2),
        "query_baseline_p50_ms": round(statistics.median(raw_latencies) * 1000, 2),
        "query_baseline_p95_ms": round(pct(raw_latencies, 0.95) * 1000, 2),
        "queries": args.queries,
        "queries_with_hits": hits,
        "query_p95_ms_by_shape": {k: round(pct(v, 0.95) * 1000, 2) for k, v in by_shape.items()},
    }
    print()
    print(f"{'':<34}{'measured':>14}{'raw baseline':>16}")
    print(
        f"{'index (documents/s)':<34}{figures['index_docs_per_s']:>14,.0f}{figures['index_baseline_docs_per_s']:>16,.0f}"
    )
    print(
        f"{'query p50 (ms)':<34}{figures['query_p50_ms']:>14.1f}{figures['query_baseline_p50_ms']:>16.1f}"
    )
    print(
        f"{'query p95 (ms)':<34}{figures['query_p95_ms']:>14.1f}{figures['query_baseline_p95_ms']:>16.1f}"
    )
    for shape, values in by_shape.items():
        print(f"{'  p95 ' + shape + ' (ms)':<34}{pct(values, 0.95) * 1000:>14.1f}")
    print(f"{'queries with results':<34}{hits:>14}/{args.queries}")
    print(f"target p95 < 100 ms: {'met' if figures['query_p95_ms'] < 100 else 'NOT met'}")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--quick", action="store_true", help="5,000 documents, 200 queries")
    parser.add_argument("--seed", type=int, default=57)
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    args = parser.parse_args()
    if args.quick:
        args.docs, args.queries = 5_000, 200
    figures = asyncio.run(run(args))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
        print(f"figures written to {args.json}")
    sys.exit(0)


if __name__ == "__main__":
    main()
