"""The dated org tree, without I/O: merges, moves, and dates before and after them."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sotay_events.catalogue.org_tree import (
    OrgLevel,
    UnitCreated,
    UnitDissolved,
    UnitMerged,
    UnitMoved,
    UnitRenamed,
)
from sotay_platform.tree import OrgTree, UnitHistory, end_of_day

T0 = datetime(2026, 10, 1, tzinfo=UTC)


def day(n: int) -> datetime:
    return T0 + timedelta(days=n)


Fact = tuple[Any, datetime, int]


class Script:
    """Facts in the order they happened; each unit's versions counted as org-tree would."""

    def __init__(self) -> None:
        self.facts: list[Fact] = []
        self.versions: dict[str, int] = {}

    def __call__(self, when: int, event: Any) -> None:
        version = self.versions[event.unit_id] = self.versions.get(event.unit_id, 0) + 1
        self.facts.append((event, day(when), version))

    def unit(self, when: int, unit_id: str, level: OrgLevel, parent: str | None) -> None:
        self(
            when,
            UnitCreated(unit_id=unit_id, name=f"Đơn vị {unit_id}", level=level, parent_id=parent),
        )

    def tree(self, facts: list[Fact] | None = None) -> OrgTree:
        tree = OrgTree()
        for event, at, version in self.facts if facts is None else facts:
            tree.apply(event, at, version)
        return tree

    def shuffled(self, seed: int) -> list[Fact]:
        """Units interleaved at random, each unit's own events still in version order."""
        rng = random.Random(seed)
        queues: dict[str, list[Fact]] = {}
        for fact in self.facts:
            queues.setdefault(fact[0].unit_id, []).append(fact)
        out: list[Fact] = []
        while queues:
            unit = rng.choice(sorted(queues))
            out.append(queues[unit].pop(0))
            if not queues[unit]:
                del queues[unit]
        return out


def province() -> Script:
    """TW > QNG > communes X1, X2 > branches; C1 merges into C2, then C2 moves."""
    s = Script()
    s.unit(0, "TW", OrgLevel.central, None)
    s.unit(0, "QNG", OrgLevel.province, "TW")
    s.unit(0, "X1", OrgLevel.commune, "QNG")
    s.unit(0, "X2", OrgLevel.commune, "QNG")
    s.unit(1, "C1", OrgLevel.branch, "X1")
    s.unit(1, "C2", OrgLevel.branch, "X1")
    s.unit(1, "C3", OrgLevel.branch, "X2")
    s(10, UnitMerged(unit_id="C1", into_unit_id="C2"))
    s(20, UnitMoved(unit_id="C2", from_parent_id="X1", to_parent_id="X2"))
    s(30, UnitMerged(unit_id="C2", into_unit_id="C3"))
    s(40, UnitCreated(unit_id="C4", name="Chi bộ mới", level=OrgLevel.branch, parent_id="X1"))
    return s


def test_merges_are_followed_through_chains_as_of_each_date() -> None:
    tree = province().tree()
    assert tree.successor("C1", day(5)) == "C1"
    assert tree.successor("C1", day(15)) == "C2"
    assert tree.successor("C1", day(35)) == "C3"
    assert tree.successor("C1") == "C3"
    assert tree.merged_into_it("C3", day(15)) == []
    assert tree.merged_into_it("C2", day(15)) == ["C1"]
    assert tree.merged_into_it("C3", day(35)) == ["C1", "C2"]
    assert tree.rollup_path("C1", day(15)) == ["TW", "QNG", "X1", "C2"]
    assert tree.rollup_path("C1", day(25)) == ["TW", "QNG", "X2", "C2"]


def test_merge_then_move_carries_the_merged_unit_along() -> None:
    tree = province().tree()
    assert tree.subtree("X1", day(15)) == ["X1", "C2", "C1"]
    assert tree.subtree("X2", day(15)) == ["X2", "C3"]
    assert tree.subtree("X1", day(25)) == ["X1"]
    assert tree.subtree("X2", day(25)) == ["X2", "C2", "C1", "C3"]
    assert tree.subtree("X2", day(35)) == ["X2", "C3", "C1", "C2"]
    # a merged unit keeps the place it last had; its facts count at its successor
    assert tree.path("C1", day(25)) == ["TW", "QNG", "X1", "C1"]
    assert tree.path("C2", day(25)) == ["TW", "QNG", "X2", "C2"]


def test_subtree_before_and_after_a_move() -> None:
    tree = province().tree()
    assert tree.path("C2", day(19)) == ["TW", "QNG", "X1", "C2"]
    assert tree.path("C2", day(20)) == ["TW", "QNG", "X2", "C2"]
    assert "C2" in tree.subtree("QNG", day(19)) and "C2" in tree.subtree("QNG", day(21))
    assert tree.children("X1", day(19)) == ["C2"]
    assert tree.children("X1", day(21)) == []


def test_a_unit_that_did_not_exist_yet() -> None:
    tree = province().tree()
    assert tree.created_at("C4") == day(40)
    assert not tree.exists("C4", day(39))
    assert tree.exists("C4", day(40))
    assert tree.path("C4", day(39)) == []
    assert tree.subtree("C4", day(39)) == []
    assert "C4" not in tree.subtree("QNG", day(39))
    assert tree.subtree("X1") == ["X1", "C4"]
    assert tree.created_at("nowhere") is None and not tree.exists("nowhere")


def test_out_of_order_delivery_gives_the_same_tree() -> None:
    script = province()
    expected = script.tree()
    moments = [None, *(day(n) for n in (0, 1, 5, 10, 15, 20, 25, 30, 35, 40))]
    for seed in range(20):
        tree = script.tree(script.shuffled(seed))
        for at in moments:
            for unit in ("TW", "QNG", "X1", "X2", "C1", "C2", "C3", "C4"):
                assert tree.path(unit, at) == expected.path(unit, at)
                assert tree.subtree(unit, at) == expected.subtree(unit, at)
                assert tree.successor(unit, at) == expected.successor(unit, at)


def test_move_then_merge_arriving_before_the_target_exists() -> None:
    """The merge of a moved committee lands before the committee it merged into is known."""
    s = Script()
    s.unit(0, "TW", OrgLevel.central, None)
    s.unit(0, "P", OrgLevel.province, "TW")
    s.unit(0, "K1", OrgLevel.grassroots_committee, "P")
    s.unit(1, "B1", OrgLevel.branch, "K1")
    s.unit(2, "Q", OrgLevel.province, "TW")
    s(5, UnitMoved(unit_id="K1", from_parent_id="P", to_parent_id="Q"))
    s.unit(6, "K2", OrgLevel.grassroots_committee, "Q")
    s(8, UnitMerged(unit_id="K1", into_unit_id="K2"))
    late = [f for f in s.facts if f[0].unit_id == "K2"]
    early = [f for f in s.facts if f[0].unit_id != "K2"]
    tree = s.tree(early)
    assert tree.successor("K1") == "K2" and tree.path("B1") == ["B1"]
    for fact in late:
        tree.apply(*fact)
    assert tree.path("B1") == ["TW", "Q", "K2", "B1"]
    assert tree.path("B1", day(4)) == ["TW", "P", "K1", "B1"]
    assert tree.path("B1", day(7)) == ["TW", "Q", "K1", "B1"]
    assert tree.children("K2") == ["B1"]
    assert tree.subtree("Q", day(9)) == ["Q", "K2", "K1", "B1"]
    assert tree.subtree("P", day(9)) == ["P"]


def test_dissolved_units_leave_the_subtree_and_facts_apply_once() -> None:
    s = province()
    s(45, UnitDissolved(unit_id="C4", reason="Không còn đảng viên"))
    s(50, UnitRenamed(unit_id="X1", name="Xã Một", previous_name="Đơn vị X1"))
    tree = s.tree()
    assert tree.subtree("X1", day(44)) == ["X1", "C4"]
    assert tree.subtree("X1", day(46)) == ["X1"]
    assert tree.get("X1") is not None
    history = tree.get("X1")
    assert history is not None
    assert history.name_at(day(49)) == "Đơn vị X1" and history.name_at() == "Xã Một"
    event, at, version = s.facts[-1]
    assert not tree.apply(event, at, version)
    assert not tree.apply(UnitMerged(unit_id="C1", into_unit_id="C3"), day(60), 0)
    assert tree.successor("C1") == "C3"  # via C2, not the replayed fact


def test_history_round_trips_through_its_stored_shape() -> None:
    tree = province().tree()
    again = OrgTree.from_docs({"_id": u.id, **u.to_doc()} for u in tree.units.values())
    for unit in tree.units:
        assert again.path(unit, day(25)) == tree.path(unit, day(25))
        assert again.units[unit] == tree.units[unit]
    bare = UnitHistory.from_doc({"_id": "X"})
    assert not bare.exists() and bare.parent_at() is None


def test_a_day_ends_at_midnight_in_vietnam() -> None:
    assert end_of_day(date(2026, 11, 25)) == datetime(2026, 11, 25, 16, 59, 59, 999999, tzinfo=UTC)
