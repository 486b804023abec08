"""The read side: a unit's figures from its own roll-up document, never a subtree scan.

A dashboard reads the unit's roll-up and those of its children as the tree
stood at the view's moment (the dated tree around the unit: its ancestors,
what merged into it, what ever hung under it directly, kept in memory per
tree version), plus the campaigns and documents its counters name: a few
indexed queries, whatever the size of the subtree (README, "What one
dashboard request reads").
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import cached_property
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from sotay_events.catalogue.org_tree import LEVEL_LABELS, OrgLevel
from sotay_platform.errors import NotFound
from sotay_platform.org_units import COLLECTION as ORG_UNITS
from sotay_platform.tree import OrgTree
from sotay_reporting.figures import (
    TZ,
    Doc,
    Parsed,
    View,
    add_months,
    answer_days,
    behind_targets,
    campaign_figure,
    counters,
    make_view,
    month_key,
    percent,
    rates,
    read_figure,
    study_totals,
    usage_figures_dict,
)
from sotay_reporting.projections import CAMPAIGNS, META, PIECES, ROLLUPS, find_in

# The rows a dashboard reads go in concurrent slices: fewer values per `$in` to check.
ROW_SLICE = 32


def level_label(level: str | None) -> str:
    try:
        return LEVEL_LABELS[OrgLevel(level or "")]
    except ValueError:
        return level or ""


@dataclass
class Row:
    unit_id: str
    name: str
    level: str
    exists: bool
    counters: dict[str, float]
    rates: dict[str, float | None]
    behind: list[str]
    study: dict[str, float] = field(default_factory=dict)
    median_days: float | None = None
    latest_study_rate: float | None = None

    @property
    def level_label(self) -> str:
        return level_label(self.level)

    def figures(self) -> Doc:
        """The figures as the usage stream and the frozen report carry them."""
        return dict(self._figures)

    def figures_json(self) -> Doc:
        """The same, with rates None where nothing was there to measure."""
        return self._figures_json

    @cached_property
    def _figures(self) -> Doc:
        return usage_figures_dict(self.counters, self.study, self.median_days)

    @cached_property
    def _figures_json(self) -> Doc:
        return {**self._figures, **self.rates}

    @property
    def attendance_label(self) -> str | None:
        return "Chưa họp" if not self.counters.get("invited") else None


@dataclass
class Campaign:
    campaign_id: str
    key: str
    code: str
    title: str
    unit: str
    deadline: datetime | None
    closed: bool
    started: float
    completed: float
    takers: float
    passed: float
    expected: float

    @property
    def completion_rate(self) -> float | None:
        return percent(self.completed, self.expected)

    @property
    def pass_rate(self) -> float | None:
        return percent(self.passed, self.takers)


@dataclass
class Document:
    piece_id: str
    kind: str
    title: str
    number: str | None
    unit: str
    readers: float
    members: float

    @property
    def read_rate(self) -> float | None:
        return percent(self.readers, self.members)


@dataclass
class Trend:
    month: str
    exists: bool
    counters: dict[str, float]
    rates: dict[str, float | None]


@dataclass
class Rollup:
    view: View
    total: Row
    chain: list[tuple[str, str]]  # (id, name) root .. unit, as the tree stood
    children: list[Row]
    trends: list[Trend]
    campaigns: list[Campaign]
    documents: list[Document]
    activity: dict[str, int]
    computed_at: datetime
    last_event_at: datetime | None
    status: str


class UsageQueries:
    def __init__(self, db: AsyncDatabase[Doc], report_day: int, cache_seconds: float = 0) -> None:
        self.db = db
        self.report_day = report_day
        self.cache_seconds = cache_seconds
        self._cache: dict[tuple[str, View], tuple[float, Rollup]] = {}
        self._trees: dict[str, tuple[tuple[Any, Any], OrgTree]] = {}

    def view(self, kind: str = "live", month: str | None = None, today: date | None = None) -> View:
        return make_view(kind, month, today or datetime.now(TZ).date(), self.report_day)

    async def unit(self, unit_id: str) -> Doc:
        doc = await self.db[ORG_UNITS].find_one({"_id": unit_id})
        if doc is None:
            raise NotFound(f"Không tìm thấy đơn vị có mã {unit_id}", field="unit")
        return doc

    async def meta(self) -> Doc:
        return await self.db[META].find_one({"_id": "usage"}) or {}

    async def local_tree(self, unit_id: str, meta: Doc | None = None) -> OrgTree:
        """The unit, its ancestors ever, what merged into it, what ever hung under those.

        Kept in memory per tree version: the projection bumps `tree_version` in the
        commit that changes the tree, so with any number of replicas a request never
        uses a tree older than the version it read (and a reset changes the epoch)."""
        meta = await self.meta() if meta is None else meta
        version = (meta.get("tree_epoch"), meta.get("tree_version", 0))
        hit = self._trees.get(unit_id)
        if hit is not None and hit[0] == version:
            return hit[1]
        tree = await self._load_tree(unit_id)
        self._trees[unit_id] = (version, tree)
        if len(self._trees) > 1024:
            self._trees.pop(next(iter(self._trees)))
        return tree

    async def _load_tree(self, unit_id: str) -> OrgTree:
        units = self.db[ORG_UNITS]
        docs = {d["_id"]: d async for d in units.find({"_id": unit_id})}
        lineage = {u for d in docs.values() for u in d.get("lineage") or []} - set(docs)
        docs.update({d["_id"]: d for d in await find_in(units, "_id", lineage)})
        frontier, holders = [unit_id], [unit_id]
        while frontier:  # what merged into the unit, at any depth: its children hang there too
            found = [d async for d in units.find({"merged_into": {"$in": frontier}})]
            frontier = [d["_id"] for d in found if d["_id"] not in holders]
            holders += frontier
            docs.update({d["_id"]: d for d in found})
        for d in await find_in(units, "parents.parent_id", holders):
            docs.setdefault(d["_id"], d)
        return OrgTree.from_docs(docs.values())

    async def last_event_at(self) -> datetime | None:
        return _last_event_at(await self.meta())

    async def rollup(self, unit_id: str, view: View, trend_months: int = 12) -> Rollup:
        key = (unit_id, view)
        if self.cache_seconds > 0:
            hit = self._cache.get(key)
            if hit and hit[0] > time.monotonic():
                return hit[1]
        result = await self._rollup(unit_id, view, trend_months)
        if self.cache_seconds > 0:
            self._cache[key] = (time.monotonic() + self.cache_seconds, result)
            if len(self._cache) > 512:
                self._cache.pop(next(iter(self._cache)))
        return result

    async def _rollup(self, unit_id: str, view: View, trend_months: int) -> Rollup:
        meta = await self.meta()
        tree = await self.local_tree(unit_id, meta)
        if tree.get(unit_id) is None:
            raise NotFound(f"Không tìm thấy đơn vị có mã {unit_id}", field="unit")
        at = None if view.kind == "live" else view.moment
        children = tree.children(unit_id, at) if tree.exists(unit_id, at) else []
        ids = [unit_id, *children]
        docs = {d["_id"]: d for d in await find_in(self.db[ROLLUPS], "_id", ids, size=ROW_SLICE)}
        parsed = {u: Parsed.of(docs.get(u), activity=u == unit_id) for u in [unit_id, *children]}
        path = tree.path(unit_id, at) or tree.path(unit_id)
        campaigns = await self._campaigns(unit_id, path, parsed, view)
        latest = next((c for c in campaigns if c.unit in path), None)

        def row(u: str) -> Row:
            history = tree.get(u)
            c = counters(parsed[u], view)
            r = rates(c)
            latest_rate = None
            if latest is not None:
                done = parsed[u].level(campaign_figure(latest.key, "c"), view.period)
                latest_rate = percent(done, c["in_scope"])
            return Row(
                unit_id=u,
                name=history.name_at(at) if history else u,
                level=history.level if history else "",
                exists=tree.exists(u, at),
                counters=c,
                rates=r,
                behind=behind_targets(r),
                study=study_totals(parsed[u], view.period),
                median_days=answer_days(parsed[u], view),
                latest_study_rate=latest_rate,
            )

        total = row(unit_id)
        history = tree.get(unit_id)
        return Rollup(
            view=view,
            total=total,
            chain=[(u, _name(tree, u, at)) for u in path],
            children=[row(u) for u in children],
            trends=self._trends(tree, unit_id, parsed[unit_id], view, trend_months),
            campaigns=campaigns,
            documents=await self._documents(unit_id, path, parsed, view),
            activity={
                f.removeprefix("e:"): int(n)
                for f in sorted(parsed[unit_id].figure_names("e:"))
                if (n := parsed[unit_id].month_flow(f, view))
            },
            computed_at=datetime.now(UTC),
            last_event_at=_last_event_at(meta),
            status=history.status(at) if history else "active",
        )

    def _trends(
        self, tree: OrgTree, unit_id: str, parsed: Parsed, view: View, months: int
    ) -> list[Trend]:
        out = []
        current = month_key(view.today)
        for back in range(months - 1, -1, -1):
            month = add_months(view.month, -back)
            if month > current:
                continue
            kind = "live" if month == current else "month"
            if view.kind == "report" and month == view.month:
                kind = "report"
            month_view = View(kind, month, view.today, view.report_day)
            exists = tree.exists(unit_id, None if kind == "live" else month_view.moment)
            c = counters(parsed, month_view)
            out.append(Trend(month, exists, c, rates(c)))
        return out

    async def _scopes(self, units: list[str], loaded: dict[str, Parsed]) -> dict[str, Parsed]:
        """Roll-ups of the units a campaign or a document was launched at, read once."""
        missing = sorted(set(units) - set(loaded))
        found = {
            d["_id"]: Parsed.of(d, activity=False)
            for d in await find_in(self.db[ROLLUPS], "_id", missing, size=ROW_SLICE)
        }
        return {u: loaded.get(u) or found.get(u) or Parsed.of(None) for u in units}

    async def _campaigns(
        self, unit_id: str, path: list[str], loaded: dict[str, Parsed], view: View
    ) -> list[Campaign]:
        """Campaigns launched by the unit or above it, or studied in under it."""
        parsed = loaded[unit_id]
        keys = sorted({f.split(":")[1] for f in parsed.figure_names("c:")})
        found = [
            d
            async for d in self.db[CAMPAIGNS].find(
                {"$or": [{"unit": {"$in": path}}, {"key": {"$in": keys}}]}
            )
            if d.get("key") and _launched_by(d, view)
        ]
        found.sort(key=lambda d: (str(d.get("deadline") or ""), d["_id"]), reverse=True)
        scope_docs = await self._scopes([d["unit"] for d in found if d["unit"] not in path], loaded)
        p = view.period
        out = []
        for d in found:
            t = study_totals(parsed, p, [d["key"]])
            scope = parsed if d["unit"] in path else scope_docs.get(d["unit"], Parsed.of(None))
            out.append(
                Campaign(
                    campaign_id=d["_id"],
                    key=d["key"],
                    code=d.get("code", ""),
                    title=d.get("title", ""),
                    unit=d["unit"],
                    deadline=d.get("deadline"),
                    closed=bool(d.get("closed")) and _closed_by(d, view),
                    started=t["s"],
                    completed=t["c"],
                    takers=t["t"],
                    passed=t["p"],
                    expected=scope.level("in_scope", p),
                )
            )
        return out

    async def _documents(
        self, unit_id: str, path: list[str], loaded: dict[str, Parsed], view: View
    ) -> list[Document]:
        """Resolutions published to the unit or above it, or read under it, with the share
        of the members on the list who read each."""
        parsed = loaded[unit_id]
        keys = sorted(f.removeprefix("r:") for f in parsed.figure_names("r:"))
        found = [
            d
            async for d in self.db[PIECES].find(
                {"kind": "resolution", "$or": [{"unit": {"$in": path}}, {"key": {"$in": keys}}]}
            )
            if _launched_by(d, view, "published_at") and not d.get("withdrawn")
        ]
        scope_docs = await self._scopes([d["unit"] for d in found if d["unit"] not in path], loaded)
        p = view.period
        out = []
        for d in sorted(found, key=lambda d: str(d.get("published_at")), reverse=True):
            scope = parsed if d["unit"] in path else scope_docs.get(d["unit"], Parsed.of(None))
            out.append(
                Document(
                    piece_id=d["_id"],
                    kind=d.get("kind", ""),
                    title=d.get("title", ""),
                    number=d.get("number"),
                    unit=d["unit"],
                    readers=parsed.level(read_figure(d["key"]), p),
                    members=scope.level("on_list", p),
                )
            )
        return out[:20]


def _name(tree: OrgTree, unit_id: str, at: datetime | None) -> str:
    history = tree.get(unit_id)
    return history.name_at(at) if history else unit_id


def _launched_by(doc: Doc, view: View, field_name: str = "launched_at") -> bool:
    moment = doc.get(field_name)
    if view.kind == "live" or not isinstance(moment, datetime):
        return True
    return _aware(moment) <= view.moment


def _closed_by(doc: Doc, view: View) -> bool:
    return _launched_by(doc, view, "closed_at")


def _last_event_at(meta: Doc) -> datetime | None:
    moment = meta.get("last_event_at")
    return _aware(moment) if isinstance(moment, datetime) else None


def _aware(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def row_figures(row: Row) -> dict[str, Any]:
    return row.figures_json()
