"""The read side: a unit's figures, rolled up through the tree at query time.

The subtree is one indexed query on the tree's `path`; units merged into a
unit of the subtree are added, and counted under their successor. Then the
statistics documents of those units are summed per child of the unit. Nothing
about a unit's ancestors is ever stored with its counters, so a move or a
merge needs no rewrite of any figure.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from sotay_events.catalogue.org_tree import LEVEL_LABELS, OrgLevel
from sotay_platform.errors import NotFound
from sotay_platform.org_units import COLLECTION as ORG_UNITS
from sotay_reporting.figures import (
    TZ,
    Doc,
    View,
    add_flat,
    add_months,
    behind_targets,
    branch_counts,
    counters,
    effective_paths,
    flat_study,
    group_under,
    month_key,
    percent,
    rates,
    study_totals,
    unflatten,
    usage_figures_dict,
)
from sotay_reporting.projections import CAMPAIGNS, META, STATS

IN_QUERY_LIMIT = 300  # above this many units, one scan beats `$in` on the embedded server


def level_label(level: str | None) -> str:
    try:
        return LEVEL_LABELS[OrgLevel(level or "")]
    except ValueError:
        return level or ""


@dataclass
class Row:
    unit: Doc
    counters: dict[str, float]
    rates: dict[str, float]
    behind: list[str]
    study: dict[str, float] = field(default_factory=dict)
    latest_study_rate: float | None = None

    @property
    def unit_id(self) -> str:
        return str(self.unit["_id"])

    @property
    def name(self) -> str:
        return str(self.unit.get("name") or self.unit["_id"])

    @property
    def level_label(self) -> str:
        return level_label(self.unit.get("level"))

    def figures(self) -> Doc:
        return usage_figures_dict(self.counters, self.study)


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
    def completion_rate(self) -> float:
        return percent(self.completed, self.expected)

    @property
    def pass_rate(self) -> float:
        return percent(self.passed, self.takers)


@dataclass
class Rollup:
    view: View
    total: Row
    chain: list[Doc]
    children: list[Row]
    own: Row | None
    trends: list[dict[str, Any]]
    campaigns: list[Campaign]
    activity: dict[str, int]
    computed_at: datetime
    last_event_at: datetime | None

    @property
    def unit(self) -> Doc:
        return self.total.unit


class UsageQueries:
    def __init__(self, db: AsyncDatabase[Doc], report_day: int, cache_seconds: float = 0) -> None:
        self.db = db
        self.report_day = report_day
        self.cache_seconds = cache_seconds
        self._cache: dict[tuple[str, View], tuple[float, Rollup]] = {}

    def view(self, kind: str = "live", month: str | None = None, today: date | None = None) -> View:
        today = today or datetime.now(TZ).date()
        current = month_key(today)
        month = month or current
        if kind == "live" and month != current:
            kind = "month"
        return View(kind, month, today, self.report_day)

    async def unit(self, unit_id: str) -> Doc:
        doc = await self.db[ORG_UNITS].find_one({"_id": unit_id})
        if doc is None:
            raise NotFound(f"Không tìm thấy đơn vị có mã {unit_id}", field="unit")
        return doc

    async def subtree(self, unit_id: str) -> tuple[dict[str, Doc], dict[str, list[str]]]:
        """Every unit counted in `unit_id`'s figures, and the path each one counts under."""
        units = {d["_id"]: d async for d in self.db[ORG_UNITS].find({"path": unit_id})}
        frontier = list(units)
        while frontier:
            merged = [
                d
                async for d in self.db[ORG_UNITS].find({"merged_into": {"$in": frontier}})
                if d["_id"] not in units
            ]
            for doc in merged:
                units[doc["_id"]] = doc
            frontier = [d["_id"] for d in merged]
        paths = effective_paths(units.values())
        return units, {u: p for u, p in paths.items() if unit_id in p}

    async def stats(self, unit_ids: list[str]) -> dict[str, Doc]:
        collection = self.db[STATS]
        if len(unit_ids) <= IN_QUERY_LIMIT:
            found = collection.find({"_id": {"$in": unit_ids}})
        else:
            found = collection.find({})
        wanted = set(unit_ids)
        return {d["_id"]: d async for d in found if d["_id"] in wanted}

    async def last_event_at(self) -> datetime | None:
        meta = await self.db[META].find_one({"_id": "usage"})
        moment = meta.get("last_event_at") if meta else None
        if isinstance(moment, datetime) and moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment

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
        root = await self.unit(unit_id)
        units, paths = await self.subtree(unit_id)
        units.setdefault(unit_id, root)
        groups = group_under(unit_id, paths)
        stats = await self.stats(sorted(groups))
        chain = [
            d async for d in self.db[ORG_UNITS].find({"_id": {"$in": list(root.get("path") or [])}})
        ]
        chain.sort(key=lambda d: list(root.get("path") or []).index(d["_id"]))

        # Stored documents are flat: summed as they are, unflattened once per child.
        flat_sums: dict[str, Doc] = {}
        branch_totals: dict[str, list[int]] = {}
        for member_unit, group in groups.items():
            doc = stats.get(member_unit)
            if doc:
                add_flat(flat_sums.setdefault(group, {}), doc)
            branches, met = branch_counts(units[member_unit], doc, view)
            tally = branch_totals.setdefault(group, [0, 0])
            tally[0] += branches
            tally[1] += met
        flat_total: Doc = {}
        for doc in flat_sums.values():
            add_flat(flat_total, doc)
        summed = {group: unflatten(doc) for group, doc in flat_sums.items()}
        total_doc = unflatten(flat_total)

        campaigns = await self._campaigns(root, units, paths)
        root_path = list(root.get("path") or [unit_id])
        # the latest campaign every child takes part in: launched by the unit or above it
        latest = next((c for c in campaigns if c.unit in root_path), None)

        def row(unit: Doc, doc: Doc, tally: list[int]) -> Row:
            c = counters(doc, view)
            c["branches"], c["branches_met"] = float(tally[0]), float(tally[1])
            r = rates(c)
            study = study_totals(doc)
            latest_rate = None
            if latest is not None:
                completed = study_totals(doc, [latest.key]).get("c", 0.0)
                latest_rate = percent(completed, c["in_scope"])
            return Row(unit, c, r, behind_targets(r, c), study, latest_rate)

        total_tally = [
            sum(t[0] for t in branch_totals.values()),
            sum(t[1] for t in branch_totals.values()),
        ]
        total = row(root, total_doc, total_tally)
        for campaign in campaigns:
            self._campaign_figures(campaign, unit_id, root_path, paths, stats, view, total)
        children = [
            row(units[g], summed.get(g, {}), branch_totals.get(g, [0, 0]))
            for g in sorted(set(groups.values()))
            if g != unit_id and units.get(g, {}).get("status", "active") == "active"
        ]
        own_flat: Doc = {}
        for g, doc in flat_sums.items():
            if g == unit_id or units.get(g, {}).get("status", "active") != "active":
                add_flat(own_flat, doc)
        own_doc = unflatten(own_flat)
        own_tally = [
            sum(t[0] for g, t in branch_totals.items() if g == unit_id),
            sum(t[1] for g, t in branch_totals.items() if g == unit_id),
        ]
        own = row(root, own_doc, own_tally) if own_doc or own_tally[0] else None

        trends = self._trends(total_doc, units, groups, stats, view, trend_months)
        activity = {
            k: int(v)
            for k, v in sorted(((total_doc.get("e") or {}).get(view.month) or {}).items())
            if v
        }
        return Rollup(
            view=view,
            total=total,
            chain=chain,
            children=children,
            own=own,
            trends=trends,
            campaigns=campaigns,
            activity=activity,
            computed_at=datetime.now(UTC),
            last_event_at=await self.last_event_at(),
        )

    def _trends(
        self,
        total_doc: Doc,
        units: dict[str, Doc],
        groups: dict[str, str],
        stats: dict[str, Doc],
        view: View,
        months: int,
    ) -> list[dict[str, Any]]:
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
            c = counters(total_doc, month_view)
            branches = met = 0
            for member_unit in groups:
                b, m = branch_counts(units[member_unit], stats.get(member_unit), month_view)
                branches += b
                met += m
            c["branches"], c["branches_met"] = float(branches), float(met)
            r = rates(c)
            out.append(
                {
                    "month": month,
                    "counters": c,
                    "rates": r,
                    "active_month_rate": percent(c["active_in_month"], c["in_scope"]),
                }
            )
        return out

    async def _campaigns(
        self, root: Doc, units: dict[str, Doc], paths: dict[str, list[str]]
    ) -> list[Campaign]:
        """Campaigns launched by the unit, one of its ancestors, or a unit inside its subtree."""
        ancestors = list(root.get("path") or [root["_id"]])
        inside = list(paths)
        found = [
            d
            async for d in self.db[CAMPAIGNS].find({"unit": {"$in": ancestors + inside}})
            if d.get("key")
        ]
        found.sort(key=lambda d: (str(d.get("deadline") or ""), d["_id"]), reverse=True)
        out = []
        for d in found:
            campaign = Campaign(
                campaign_id=d["_id"],
                key=d["key"],
                code=d.get("code", ""),
                title=d.get("title", ""),
                unit=d["unit"],
                deadline=d.get("deadline"),
                closed=bool(d.get("closed")),
                started=0,
                completed=0,
                takers=0,
                passed=0,
                expected=0,
            )
            out.append(campaign)
        return out

    def _campaign_figures(
        self,
        campaign: Campaign,
        unit_id: str,
        root_path: list[str],
        paths: dict[str, list[str]],
        stats: dict[str, Doc],
        view: View,
        total: Row,
    ) -> None:
        """Participants within the unit's part of the campaign's scope, and who was expected."""
        scope = unit_id if campaign.unit in root_path else campaign.unit
        expected = 0.0
        for member_unit, path in paths.items():
            if scope not in path:
                continue
            doc = stats.get(member_unit) or {}
            t = flat_study(doc, campaign.key)
            campaign.started += t["s"]
            campaign.completed += t["c"]
            campaign.takers += t["t"]
            campaign.passed += t["p"]
            if scope != unit_id:
                expected += counters(unflatten(doc), view)["in_scope"]
        campaign.expected = total.counters["in_scope"] if scope == unit_id else expected
