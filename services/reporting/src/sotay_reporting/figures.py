"""The figure logic, without I/O: dated counters, their placement on the dated tree, views.

**Which tree a figure follows** (sotay_platform.tree): a figure describes a
moment (the live view now, a month its last day, a frozen report its report
day, each at the end of that day in Asia/Ho_Chi_Minh) and counts what had
happened by that moment, on the tree as it stood at that moment.

Time is cut in *periods*: each month has two, up to the report day (half a)
and after it (half b). Every view is the end of a period (the report of
November: the end of 25/11; November: the end of 30/11; the live view: the
end of the current period, nothing later being known), so counters need no
finer dates than their period.

A unit's counters (flat keys, `|`-separated):

- `L|<figure>|<p>`: a level's change in period p (members on the list, in
  scope, registered, branches, study done per campaign, readers per piece):
  the level at a view is the sum of its changes up to the view's period;
- `F|<figure>|<p>`: a flow that happened in period p (meetings held,
  attendance, first sign-in of the month, completions, documents published,
  feedback received and answered): a month's flow is read at the end of its
  own period or of the next one (the month's end, for half a), and
  `G|<figure>|<p>` corrects it for that next period when the tree changed in
  between;
- `S|<yyyymmdd>`: members whose latest sign-in was that day, on today's tree
  (the live 7- and 30-day figures).

Each fact is recorded once at the unit it names (`unit_own`) and *placed* on
the ancestors of that unit (`unit_rollups`): at every ancestor of its period,
and, when the unit's place changes later (a move, a merge, a dissolution), a
change taken away from the old ancestors and given to the new ones in that
period. So the roll-up of any unit, for any view, is one document, and
`rollups = sum of place(unit, own counters, tree)` holds after every batch:
a tree change adds `place(new tree) - place(old tree)` for the units under it,
a fact adds its own placement; the order of arrival does not matter.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cached_property, lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from sotay_platform.roster import Purpose, counted_branch, spans
from sotay_platform.tree import OrgTree, end_of_day, utc

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
BRANCH_LEVELS = frozenset({"branch", "grassroots_branch"})
SEP = "|"
TARGET_PERCENT = 100.0

Doc = dict[str, Any]
Counters = dict[str, float]  # flat key -> n
Placed = dict[str, Counters]  # unit -> flat key -> n


# ---------------------------------------------------------------- days and months


def local_day(moment: datetime) -> date:
    return utc(moment).astimezone(TZ).date()


def month_key(day: date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


def parse_month(key: str) -> date:
    year, month = key.split("-")
    return date(int(year), int(month), 1)


def add_months(month: str, n: int) -> str:
    first = parse_month(month)
    index = first.year * 12 + first.month - 1 + n
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def month_end(month: str) -> date:
    return parse_month(add_months(month, 1)) - timedelta(days=1)


def report_date(month: str, report_day: int) -> date:
    return parse_month(month).replace(day=min(report_day, month_end(month).day))


def end_of_day_utc(day: date) -> datetime:
    return end_of_day(day)


def format_day(day: date) -> str:
    return day.strftime("%d/%m/%Y")


def format_moment(moment: datetime) -> str:
    return utc(moment).astimezone(TZ).strftime("%H:%M %d/%m/%Y")


def month_label(month: str) -> str:
    first = parse_month(month)
    return f"{first.month:02d}/{first.year}"


def today_local(now: datetime | None = None) -> date:
    return local_day(now or datetime.now(UTC))


def safe_key(value: str) -> str:
    """A counter name from an id: no separator, no dots, no leading dollar."""
    return value.replace(".", "_").replace("$", "_").replace(SEP, "_").replace(":", "_")


# ---------------------------------------------------------------- periods


def period_of_day(day: date, report_day: int) -> int:
    return (day.year * 12 + day.month - 1) * 2 + (0 if day.day <= report_day else 1)


def period_of(moment: datetime, report_day: int) -> int:
    return period_of_day(local_day(moment), report_day)


def month_period(month: str, half: int) -> int:
    first = parse_month(month)
    return (first.year * 12 + first.month - 1) * 2 + half


def period_month(p: int) -> str:
    index = p // 2
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def period_last_day(p: int, report_day: int) -> date:
    month = period_month(p)
    return report_date(month, report_day) if p % 2 == 0 else month_end(month)


def period_end(p: int, report_day: int) -> datetime:
    return end_of_day(period_last_day(p, report_day))


@dataclass(frozen=True)
class View:
    """Which moment figures describe: "live" (now), "month" (its last day) or "report"
    (its report day). `period` is the period the view ends."""

    kind: str
    month: str
    today: date
    report_day: int

    @cached_property
    def period(self) -> int:
        if self.kind == "live":
            return period_of_day(self.today, self.report_day)
        return month_period(self.month, 0 if self.kind == "report" else 1)

    @cached_property
    def first_period(self) -> int:
        """The view month's first period (up to its report day)."""
        return month_period(self.month, 0)

    @property
    def as_of(self) -> date:
        if self.kind == "live":
            return self.today
        return period_last_day(self.period, self.report_day)

    @property
    def moment(self) -> datetime:
        """The end of the view's day; the live view holds everything known."""
        return end_of_day(self.as_of)


def make_view(kind: str, month: str | None, today: date, report_day: int) -> View:
    current = month_key(today)
    month = month or current
    if kind == "live" and month != current:
        kind = "month"
    return View(kind, month, today, report_day)


# ---------------------------------------------------------------- counters


def level_key(figure: str, p: int) -> str:
    return f"L{SEP}{figure}{SEP}{p}"


def flow_key(figure: str, p: int) -> str:
    return f"F{SEP}{figure}{SEP}{p}"


def seen_key(day: date) -> str:
    return f"S{SEP}{day:%Y%m%d}"


class Tally:
    """What a batch adds, per unit and counter."""

    def __init__(self) -> None:
        self.by_unit: dict[str, Counters] = defaultdict(lambda: defaultdict(float))

    def add(self, unit: str | None, key: str, n: float = 1) -> None:
        if unit and n:
            self.by_unit[unit][key] += n

    def merge(self, other: Mapping[str, Mapping[str, float]], sign: float = 1) -> None:
        for unit, keys in other.items():
            for key, n in keys.items():
                self.add(unit, key, sign * n)

    def nonzero(self) -> dict[str, dict[str, float | int]]:
        out: dict[str, dict[str, float | int]] = {}
        for unit, keys in self.by_unit.items():
            kept = {k: plain_number(n) for k, n in keys.items() if n}
            if kept:
                out[unit] = kept
        return out


def plain_number(n: float) -> float | int:
    return int(n) if float(n).is_integer() else n


def strip_zeros(doc: Mapping[str, Any]) -> Doc:
    """A counters document without its zeros (an older `$inc` left them): for comparisons."""
    return {k: v for k, v in doc.items() if k != "_id" and v}


# ---------------------------------------------------------------- placement on the tree


def breakpoints(tree: OrgTree, unit_id: str, report_day: int) -> list[int]:
    """The periods in which the unit's place in the tree may have changed."""
    found: set[int] = set()
    for other in tree.lineage(unit_id):
        history = tree.get(other)
        if history is None:
            continue
        moments = [history.created_at, history.merged_at, history.dissolved_at]
        moments += [entry.since for entry in history.parents]
        found.update(period_of(m, report_day) for m in moments if m is not None)
    return sorted(found)


class Placer:
    """Places one unit's counters on the ancestors it had in each period."""

    def __init__(self, tree: OrgTree, report_day: int) -> None:
        self.tree = tree
        self.report_day = report_day
        self._chains: dict[tuple[str, int | None], frozenset[str]] = {}
        self._breaks: dict[str, list[int]] = {}

    def chain(self, unit_id: str, p: int | None) -> frozenset[str]:
        key = (unit_id, p)
        if key not in self._chains:
            at = None if p is None else period_end(p, self.report_day)
            self._chains[key] = frozenset(self.tree.rollup_path(unit_id, at))
        return self._chains[key]

    def breaks(self, unit_id: str) -> list[int]:
        if unit_id not in self._breaks:
            self._breaks[unit_id] = breakpoints(self.tree, unit_id, self.report_day)
        return self._breaks[unit_id]

    def place(
        self, unit_id: str, counters: Mapping[str, float], out: Tally, sign: float = 1
    ) -> None:
        for key, n in counters.items():
            if not n:
                continue
            kind, _, rest = key.partition(SEP)
            if kind == "S":
                for ancestor in self.chain(unit_id, None):
                    out.add(ancestor, key, sign * n)
                continue
            figure, _, raw = rest.rpartition(SEP)
            p = int(raw)
            before = self.chain(unit_id, p)
            if kind == "L":
                for ancestor in before:
                    out.add(ancestor, key, sign * n)
                for q in self.breaks(unit_id):
                    if q <= p:
                        continue
                    now = self.chain(unit_id, q)
                    for ancestor in now - before:
                        out.add(ancestor, level_key(figure, q), sign * n)
                    for ancestor in before - now:
                        out.add(ancestor, level_key(figure, q), -sign * n)
                    before = now
            elif kind == "F":
                for ancestor in before:
                    out.add(ancestor, key, sign * n)
                after = self.chain(unit_id, p + 1)
                correction = f"G{SEP}{figure}{SEP}{p}"
                for ancestor in after - before:
                    out.add(ancestor, correction, sign * n)
                for ancestor in before - after:
                    out.add(ancestor, correction, -sign * n)


def replace_tree(
    owns: Mapping[str, Mapping[str, float]], old: Placer, new: Placer, out: Tally
) -> None:
    """What a tree change does to the roll-ups: each unit's counters placed anew."""
    for unit_id, counters in owns.items():
        old.place(unit_id, counters, out, -1)
        new.place(unit_id, counters, out, 1)


# ---------------------------------------------------------------- members


def _moment(doc: Mapping[str, Any], key: str) -> datetime | None:
    value = doc.get(key)
    return utc(value) if isinstance(value, datetime) else None


def member_counters(doc: Mapping[str, Any], report_day: int) -> Placed:
    """What one member adds to the counters of the branches they counted in, dated.

    Who counts is `sotay_platform.roster`'s rule: on the list (`Purpose.on_list`),
    in scope (`Purpose.attend`, the targets' and study's denominator); registered
    is in scope and holding an account (activated or signed in) by then; pending
    is a self-registration neither approved, rejected nor removed yet.
    """
    out = Tally()

    def span(branch: str, start: datetime, end: datetime | None, figure: str) -> None:
        if end is not None and end <= start:
            return
        out.add(branch, level_key(figure, period_of(start, report_day)), 1)
        if end is not None:
            out.add(branch, level_key(figure, period_of(end, report_day)), -1)

    for s in spans(doc, Purpose.on_list):
        span(s.branch_id, s.start, s.end, "on_list")
    uses = _moment(doc, "uses_at")
    for s in spans(doc, Purpose.attend):
        span(s.branch_id, s.start, s.end, "in_scope")
        if uses is not None:
            span(s.branch_id, max(s.start, uses), s.end, "registered")
    registered_at = _moment(doc, "registered_at")
    if doc.get("registered_by") == "self" and registered_at is not None:
        ends = [m for m in (_moment(doc, k) for k in ("approved_at", "rejected_at", "removed_at"))]
        closed = min((m for m in ends if m is not None), default=None)
        branches = doc.get("branches") or []
        first = branches[0]["value"] if branches else doc.get("branch_id")
        if first:
            span(str(first), registered_at, closed, "pending")
    last_seen = doc.get("last_seen")
    now_branch = counted_branch(doc, Purpose.attend)
    if last_seen and now_branch:
        out.add(now_branch, seen_key(date.fromisoformat(last_seen)), 1)
    return {u: dict(c) for u, c in out.by_unit.items()}


def diff(before: Placed, after: Placed, out: Tally) -> None:
    out.merge(before, -1)
    out.merge(after, 1)


def sign_in_flows(doc: Doc, at: datetime, report_day: int, out: Tally) -> None:
    """A sign-in counts once per member in its month, reporting period and report week."""
    branch = counted_branch(doc, Purpose.attend, at)
    if branch is None:
        return
    day = local_day(at)
    p = period_of_day(day, report_day)
    marks = {
        "mau": month_key(day),  # used in the month
        "pa": _reporting_period(day, report_day),  # in the reporting period
    }
    rd = report_date(month_key(day), report_day)
    if rd - timedelta(days=6) <= day <= rd:
        marks["w"] = month_key(day)  # the 7 days ending on the report day
    for figure, mark in marks.items():
        if doc.get(f"mark_{figure}") != mark:
            doc[f"mark_{figure}"] = mark
            out.add(branch, flow_key(figure, p), 1)


def _reporting_period(day: date, report_day: int) -> str:
    """The report a day counts for: after the report day it belongs to next month's."""
    month = month_key(day)
    return month if day.day <= report_day else add_months(month, 1)


# ---------------------------------------------------------------- meetings


def met_flags(regular_a: float, regular_b: float) -> tuple[int, int]:
    """A branch met in a month once: in half a if it met then, else in half b."""
    return int(regular_a > 0), int(regular_a <= 0 < regular_b)


# ---------------------------------------------------------------- reading a roll-up


_LEVEL, _FLOW, _CORRECTION, _SEEN = 0, 1, 2, 3
_KINDS = {"L": _LEVEL, "F": _FLOW, "G": _CORRECTION}


@lru_cache(maxsize=1 << 16)
def _key_meaning(key: str) -> tuple[int, str, int, date | None] | None:
    """(kind, figure, period, day) of a counter's key; None for what is not a counter."""
    if key.startswith("S" + SEP):
        return _SEEN, "", 0, date(int(key[2:6]), int(key[6:8]), int(key[8:10]))
    kind = _KINDS.get(key[:1])
    if kind is None or key[1:2] != SEP:
        return None
    figure, _, p = key[2:].rpartition(SEP)
    return kind, figure, int(p), None


@dataclass
class Parsed:
    levels: dict[str, dict[int, float]]
    flows: dict[str, dict[int, float]]
    corrections: dict[str, dict[int, float]]
    seen: dict[date, float]

    @classmethod
    def of(cls, doc: Mapping[str, Any] | None, activity: bool = True) -> Parsed:
        """A roll-up document's counters; `activity` False skips the per-type event counts
        (`F|e:…`, only the unit's own activity table reads them). On the dashboard's path:
        one pass, a key is unique per figure and period, and a key's meaning is parsed
        once per process (the children of a unit share their keys)."""
        levels: dict[str, dict[int, float]] = {}
        flows: dict[str, dict[int, float]] = {}
        corrections: dict[str, dict[int, float]] = {}
        seen: dict[date, float] = {}
        targets = (levels, flows, corrections)
        for key, value in (doc or {}).items():
            if not value:
                continue
            meaning = _key_meaning(key)
            if meaning is None:
                continue
            kind, figure, p, day = meaning
            if day is not None:
                seen[day] = float(value)
                continue
            if not activity and kind == _FLOW and figure.startswith("e:"):
                continue
            target = targets[kind]
            periods = target.get(figure)
            if periods is None:
                periods = target[figure] = {}
            periods[p] = float(value)
        return cls(levels, flows, corrections, seen)

    def level(self, figure: str, p: int) -> float:
        return sum(n for q, n in self.levels.get(figure, {}).items() if q <= p)

    def flow(self, figure: str, b: int, p: int) -> float:
        """A flow of period b read at the end of period p (b or the one after it)."""
        if p < b:
            return 0.0
        value = self.flows.get(figure, {}).get(b, 0.0)
        if p > b:
            value += self.corrections.get(figure, {}).get(b, 0.0)
        return value

    def month_flow(self, figure: str, view: View) -> float:
        p = view.period
        first = view.first_period
        total = self.flow(figure, first, p)
        if p > first:
            total += self.flow(figure, first + 1, p)
        return total

    def active_within(self, as_of: date, days: int) -> float:
        return sum(n for d, n in self.seen.items() if as_of - timedelta(days=days) < d <= as_of)

    def figure_names(self, prefix: str) -> set[str]:
        return {f for f in (*self.levels, *self.flows) if f.startswith(prefix)}


FLOW_FIGURES = (
    "meetings",
    "regular",
    "invited",
    "present",
    "excused",
    "absent",
    "studied",
    "published",
    "fb_received",
    "fb_answered",
    "fb_on_time",
    "fb_overdue",
)


def counters(parsed: Parsed, view: View) -> dict[str, float]:
    """A roll-up's figures for one view (counts; rates come from `rates`)."""
    p = view.period
    out = {name: parsed.level(name, p) for name in ("on_list", "in_scope", "registered")}
    out["pending"] = parsed.level("pending", p)
    out["branches"] = parsed.level("branches", p)
    out["active_in_month"] = parsed.month_flow("mau", view)
    if view.kind == "live":
        out["active_30d"] = parsed.active_within(view.as_of, 30)
        out["active_7d"] = parsed.active_within(view.as_of, 7)
    elif view.kind == "report":
        # the reporting period: the day after last month's report day to this one's
        previous = month_period(view.month, 0) - 1
        out["active_30d"] = parsed.flow("pa", previous, p) + parsed.flow("pa", p, p)
        out["active_7d"] = parsed.flow("w", p, p)
    else:
        out["active_30d"] = out["active_in_month"]
        out["active_7d"] = 0.0
    for name in FLOW_FIGURES:
        out[name] = parsed.month_flow(name, view)
    out["branches_met"] = min(parsed.month_flow("met", view), out["branches"])
    return out


def answer_days(parsed: Parsed, view: View) -> float | None:
    """Median days to answer feedback answered in the view's month (from a histogram)."""
    histogram: list[tuple[int, float]] = []
    for figure in parsed.figure_names("fb_days_"):
        n = parsed.month_flow(figure, view)
        if n > 0:
            histogram.append((int(figure.removeprefix("fb_days_")), n))
    if not histogram:
        return None
    values: list[int] = []
    for days, n in sorted(histogram):
        values.extend([days] * int(n))
    return float(statistics.median(values)) if values else None


def percent(part: float, whole: float) -> float | None:
    """None on an empty denominator: nothing to measure is not 0%."""
    return round(100.0 * part / whole, 1) if whole else None


def rates(c: Mapping[str, float]) -> dict[str, float | None]:
    return {
        "registered_rate": percent(c["registered"], c["in_scope"]),
        "active_7d_rate": percent(c["active_7d"], c["in_scope"]),
        "active_30d_rate": percent(c["active_30d"], c["in_scope"]),
        "active_month_rate": percent(c["active_in_month"], c["in_scope"]),
        "branches_met_rate": percent(c["branches_met"], c["branches"]),
        "attendance_rate": percent(c["present"], c["invited"]),
        "excused_rate": percent(c["excused"], c["invited"]),
        "unexcused_rate": percent(c["absent"], c["invited"]),
        "answered_on_time_rate": percent(c["fb_on_time"], c["fb_answered"]),
    }


TARGETS = {
    "registered_rate": "100% đảng viên đang sinh hoạt đăng ký sử dụng",
    "active_30d_rate": "100% đảng viên đang sinh hoạt sử dụng thường xuyên",
    "branches_met_rate": "100% chi bộ áp dụng phần mềm vào sinh hoạt chi bộ",
}


def behind_targets(r: Mapping[str, float | None]) -> list[str]:
    """The seed-004 targets not met; one with nothing to measure is never met."""
    return [key for key in TARGETS if (r[key] or 0.0) < TARGET_PERCENT or r[key] is None]


def usage_figures_dict(
    c: Mapping[str, float], study: Mapping[str, float] | None = None, median: float | None = None
) -> Doc:
    """The counters in the shape of the usage stream's `UsageFigures` (rates 0 when empty)."""
    r = rates(c)
    study = study or {}

    def rate(key: str) -> float:
        return r[key] or 0.0

    return {
        "members_on_list": int(c["on_list"]),
        "members_in_scope": int(c["in_scope"]),
        "registered": int(c["registered"]),
        "approved": int(c["on_list"]),
        "pending_approval": int(c["pending"]),
        "active_7d": int(c["active_7d"]),
        "active_30d": int(c["active_30d"]),
        "active_in_month": int(c["active_in_month"]),
        "branches": int(c["branches"]),
        "branches_met": int(c["branches_met"]),
        "meetings_held": int(c["meetings"]),
        "invited": int(c["invited"]),
        "present": int(c["present"]),
        "excused": int(c["excused"]),
        "absent_without_leave": int(c["absent"]),
        "study_started": int(study.get("s", 0)),
        "study_completed": int(study.get("c", 0)),
        "quiz_takers": int(study.get("t", 0)),
        "quiz_passed": int(study.get("p", 0)),
        "registered_rate": rate("registered_rate"),
        "active_30d_rate": rate("active_30d_rate"),
        "branches_met_rate": rate("branches_met_rate"),
        "attendance_rate": rate("attendance_rate"),
        "excused_rate": rate("excused_rate"),
        "unexcused_rate": rate("unexcused_rate"),
        "meets_targets": not behind_targets(r),
        "documents_published": int(c["published"]),
        "feedback_received": int(c["fb_received"]),
        "feedback_answered": int(c["fb_answered"]),
        "feedback_answered_on_time": int(c["fb_on_time"]),
        "feedback_overdue": int(c["fb_overdue"]),
        "feedback_median_days": median,
    }


def study_totals(parsed: Parsed, p: int, campaign_keys: Iterable[str] | None = None) -> Counters:
    """Study done by the view's end: started, completed, quiz takers, passed."""
    out = {"s": 0.0, "c": 0.0, "t": 0.0, "p": 0.0}
    keys = set(campaign_keys) if campaign_keys is not None else None
    for figure in parsed.figure_names("c:"):
        _, key, name = figure.split(":")
        if keys is None or key in keys:
            out[name] += parsed.level(figure, p)
    return out


def campaign_figure(key: str, name: str) -> str:
    return f"c:{key}:{name}"


def read_figure(piece_key: str) -> str:
    return f"r:{piece_key}"


def placer_factory(report_day: int) -> Callable[[OrgTree], Placer]:
    return lambda tree: Placer(tree, report_day)
