"""The figure logic without I/O: periods, who counts, placement on the dated tree, views."""

from __future__ import annotations

import copy
import itertools
from datetime import UTC, date, datetime
from typing import Any

from sotay_events.catalogue.identity import (
    Gender,
    MemberRegistered,
    MemberRegistrationApproved,
    MemberStatus,
    MemberStatusChanged,
)
from sotay_events.catalogue.org_tree import OrgLevel, UnitCreated, UnitMerged, UnitMoved
from sotay_platform.roster import apply_member_event
from sotay_platform.tree import OrgTree
from sotay_reporting.figures import (
    TZ,
    Parsed,
    Placer,
    Tally,
    View,
    behind_targets,
    counters,
    flow_key,
    level_key,
    make_view,
    member_counters,
    met_flags,
    month_period,
    percent,
    period_end,
    period_of,
    rates,
    replace_tree,
)

RD = 25


def at(month: int, day: int, hour: int = 9) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=TZ).astimezone(UTC)


def test_periods_split_each_month_at_the_report_day() -> None:
    assert period_of(at(11, 25, 23), RD) == month_period("2026-11", 0)
    assert period_of(at(11, 26, 0), RD) == month_period("2026-11", 1)
    assert period_end(month_period("2026-11", 0), RD) == datetime(
        2026, 11, 25, 23, 59, 59, 999999, tzinfo=TZ
    ).astimezone(UTC)
    report = View("report", "2026-11", date(2026, 12, 9), RD)
    assert report.as_of == date(2026, 11, 25) and report.period == month_period("2026-11", 0)
    assert make_view("live", "2026-11", date(2026, 12, 9), RD).kind == "month"
    assert make_view("live", None, date(2026, 12, 9), RD).month == "2026-12"


def test_nothing_to_measure_is_not_zero_and_never_meets_a_target() -> None:
    assert percent(0, 0) is None and percent(0, 4) == 0.0
    c = counters(Parsed.of({}), View("month", "2026-11", date(2026, 12, 1), RD))
    r = rates(c)
    assert r["attendance_rate"] is None and r["registered_rate"] is None
    assert behind_targets(r) == ["registered_rate", "active_30d_rate", "branches_met_rate"]


def test_a_branch_meets_once_a_month() -> None:
    assert met_flags(0, 0) == (0, 0)
    assert met_flags(1, 0) == (1, 0)
    assert met_flags(0, 2) == (0, 1)
    assert met_flags(2, 1) == (1, 0)


def _member(*events: tuple[Any, datetime]) -> dict[str, Any]:
    doc: dict[str, Any] = {"_id": "m1"}
    for version, (event, moment) in enumerate(events, start=1):
        apply_member_event(doc, event, moment, version)
    return doc


REGISTERED = MemberRegistered(
    member_id="m1",
    full_name="Nguyễn Văn A",
    gender=Gender.male,
    branch_id="B1",
    status=MemberStatus.official,
    admitted_on=date(2000, 1, 1),
    registered_by="self",
)


def test_who_counts_follows_the_roster_rule_dated() -> None:
    """A pending self-registration is not on the list; it counts from its approval."""
    pending = member_counters(_member((REGISTERED, at(11, 3))), RD)
    assert pending == {"B1": {level_key("pending", period_of(at(11, 3), RD)): 1}}
    approved_at = at(11, 27)
    doc = _member(
        (REGISTERED, at(11, 3)),
        (MemberRegistrationApproved(member_id="m1", branch_id="B1", approved_by="s"), approved_at),
    )
    counted = member_counters(doc, RD)["B1"]
    p = period_of(approved_at, RD)
    assert counted[level_key("on_list", p)] == 1 and counted[level_key("in_scope", p)] == 1
    parsed = Parsed.of(counted)
    assert parsed.level("in_scope", month_period("2026-11", 0)) == 0  # the 25th: not yet
    assert parsed.level("in_scope", month_period("2026-11", 1)) == 1
    assert parsed.level("pending", month_period("2026-11", 0)) == 1
    assert parsed.level("pending", month_period("2026-11", 1)) == 0
    exempted = _member(
        (REGISTERED, at(11, 3)),
        (MemberRegistrationApproved(member_id="m1", branch_id="B1", approved_by="s"), at(11, 4)),
        (
            MemberStatusChanged(
                member_id="m1",
                branch_id="B1",
                status=MemberStatus.exempted,
                previous_status=MemberStatus.official,
                effective_on=date(2026, 12, 1),
            ),
            at(11, 20),
        ),
    )
    parsed = Parsed.of(member_counters(exempted, RD)["B1"])
    assert parsed.level("on_list", month_period("2026-12", 1)) == 1
    assert parsed.level("in_scope", month_period("2026-11", 1)) == 1
    assert parsed.level("in_scope", month_period("2026-12", 0)) == 0


# ---------------------------------------------------------------- placement is order-free

TREE = [
    (UnitCreated(unit_id="P", name="Tỉnh", level=OrgLevel.province), at(1, 1)),
    (UnitCreated(unit_id="C1", name="Xã 1", level=OrgLevel.commune, parent_id="P"), at(1, 1)),
    (UnitCreated(unit_id="C2", name="Xã 2", level=OrgLevel.commune, parent_id="P"), at(1, 1)),
    (UnitCreated(unit_id="B", name="Chi bộ", level=OrgLevel.branch, parent_id="C1"), at(1, 1)),
    (UnitMoved(unit_id="B", from_parent_id="C1", to_parent_id="C2"), at(11, 10)),
    (UnitMerged(unit_id="C1", into_unit_id="C2"), at(11, 28)),
]
FACTS = [
    ("B", level_key("on_list", period_of(at(10, 5), RD)), 3),
    ("B", flow_key("meetings", period_of(at(11, 5), RD)), 1),
    ("C1", flow_key("meetings", period_of(at(11, 20), RD)), 1),
    ("B", flow_key("meetings", period_of(at(11, 12), RD)), 1),
]


class Model:
    """The projection's algebra in memory: rollups = sum of place(own, tree)."""

    def __init__(self) -> None:
        self.tree = OrgTree()
        self.versions: dict[str, int] = {}
        self.own: dict[str, dict[str, float]] = {}
        self.rollups = Tally()

    def tree_event(self, event: Any, moment: datetime) -> None:
        old = copy.deepcopy(self.tree)
        self.versions[event.unit_id] = self.versions.get(event.unit_id, 0) + 1
        self.tree.apply(event, moment, self.versions[event.unit_id])
        replace_tree(self.own, Placer(old, RD), Placer(self.tree, RD), self.rollups)

    def fact(self, unit: str, key: str, n: float) -> None:
        self.own.setdefault(unit, {})
        self.own[unit][key] = self.own[unit].get(key, 0) + n
        Placer(self.tree, RD).place(unit, {key: n}, self.rollups)

    def figure(self, unit: str, view: View, name: str) -> float:
        return counters(Parsed.of(self.rollups.nonzero().get(unit)), view)[name]


def _run(order: list[tuple[str, Any]]) -> Model:
    model = Model()
    for kind, item in order:
        if kind == "tree":
            model.tree_event(*item)
        else:
            model.fact(*item)
    return model


def test_rollups_do_not_depend_on_arrival_order_and_follow_the_tree_of_their_date() -> None:
    tree = [("tree", t) for t in TREE]
    facts = [("fact", f) for f in FACTS]
    # one unit's tree events keep their order; facts and other units interleave freely
    orders = [tree + facts, facts + tree, facts[:2] + tree[:5] + facts[2:] + tree[5:]]
    orders += [list(p) for p in itertools.islice(itertools.permutations(facts), 3)]
    orders[-3:] = [o + tree for o in orders[-3:]]
    results = [_run(order).rollups.nonzero() for order in orders]
    assert all(r == results[0] for r in results)

    model = _run(orders[0])
    today = date(2026, 12, 9)
    october = View("month", "2026-10", today, RD)
    report = View("report", "2026-11", today, RD)
    november = View("month", "2026-11", today, RD)
    # October: B under C1; the report of the 25th/11: B moved to C2 (10/11), C1 still there
    assert model.figure("C1", october, "on_list") == 3
    assert model.figure("C2", october, "on_list") == 0
    assert model.figure("C1", report, "on_list") == 0
    assert model.figure("C2", report, "on_list") == 3
    # a meeting before the move counts under the new parent in any figure dated after it
    assert model.figure("C2", report, "meetings") == 2
    assert model.figure("C1", report, "meetings") == 1
    # November's end: C1 merged into C2 (28/11), so C1's meeting counts in C2
    assert model.figure("C2", november, "meetings") == 3
    assert model.figure("C1", november, "meetings") == 0
    assert model.figure("P", report, "meetings") == 3 == model.figure("P", november, "meetings")
    assert model.figure("P", october, "on_list") == 3
