"""The tree's rules, without I/O."""

import pytest

from sotay_events.catalogue.org_tree import (
    OrgLevel,
    UnitCreated,
    UnitMerged,
    UnitMoved,
    UnitRenamed,
)
from sotay_orgtree.domain import OrgUnit, RuleBroken


def unit(code: str, level: OrgLevel, parent: OrgUnit | None = None) -> OrgUnit:
    created = OrgUnit.create(code, f"Đơn vị {code}", level, parent)
    created.mark_saved()
    return created


@pytest.fixture
def tree() -> dict[str, OrgUnit]:
    tw = unit("TW", OrgLevel.central)
    hn = unit("HN", OrgLevel.province, tw)
    xa = unit("HN.X1", OrgLevel.commune, hn)
    cb = unit("HN.X1.CB1", OrgLevel.branch, xa)
    return {"TW": tw, "HN": hn, "X1": xa, "CB1": cb}


def test_create_records_the_fact(tree: dict[str, OrgUnit]) -> None:
    created = OrgUnit.create("HN.X1.CB2", "  Chi bộ   thôn 2 ", OrgLevel.branch, tree["X1"])
    [event] = created.pending
    assert isinstance(event, UnitCreated)
    assert event.name == "Chi bộ thôn 2"
    assert event.parent_id == "HN.X1"


@pytest.mark.parametrize(
    ("level", "parent", "field"),
    [
        (OrgLevel.branch, "CB1", "parent_code"),  # a branch under a branch
        (OrgLevel.province, "X1", "parent_code"),
        (OrgLevel.commune, None, "parent_code"),  # only the centre has no parent
    ],
)
def test_levels_must_fit_under_their_parent(
    tree: dict[str, OrgUnit], level: OrgLevel, parent: str | None, field: str
) -> None:
    with pytest.raises(RuleBroken) as caught:
        OrgUnit.create("NEW", "Mới", level, tree[parent] if parent else None)
    assert caught.value.field == field


def test_codes_and_names_are_checked(tree: dict[str, OrgUnit]) -> None:
    with pytest.raises(RuleBroken) as bad_code:
        OrgUnit.create("mã có dấu", "Chi bộ", OrgLevel.branch, tree["X1"])
    assert bad_code.value.field == "code"
    with pytest.raises(RuleBroken) as empty:
        OrgUnit.create("CB9", "   ", OrgLevel.branch, tree["X1"])
    assert empty.value.field == "name"


def test_moving_under_a_descendant_is_a_cycle(tree: dict[str, OrgUnit]) -> None:
    tree["X1"].level = OrgLevel.commune
    with pytest.raises(RuleBroken) as caught:
        tree["HN"].move(tree["X1"], ["TW", "HN", "HN.X1"])
    assert caught.value.code == "cycle"


def test_move_records_from_and_to(tree: dict[str, OrgUnit]) -> None:
    other = unit("HN.X2", OrgLevel.commune, tree["HN"])
    tree["CB1"].move(other, ["TW", "HN", "HN.X2"])
    [event] = tree["CB1"].pending
    assert isinstance(event, UnitMoved)
    assert (event.from_parent_id, event.to_parent_id) == ("HN.X1", "HN.X2")


def test_moving_to_the_same_parent_records_nothing(tree: dict[str, OrgUnit]) -> None:
    tree["CB1"].move(tree["X1"], ["TW", "HN", "HN.X1"])
    assert tree["CB1"].pending == []


def test_no_move_into_a_closed_unit(tree: dict[str, OrgUnit]) -> None:
    other = unit("HN.X2", OrgLevel.commune, tree["HN"])
    other.dissolve(0, "sáp nhập")
    with pytest.raises(RuleBroken) as caught:
        tree["CB1"].move(other, ["TW", "HN", "HN.X2"])
    assert caught.value.code == "closed_unit"


def test_merge_needs_the_same_level_and_an_open_target(tree: dict[str, OrgUnit]) -> None:
    x2 = unit("HN.X2", OrgLevel.commune, tree["HN"])
    with pytest.raises(RuleBroken) as level:
        tree["CB1"].merge_into(x2, ["TW", "HN", "HN.X2"])
    assert level.value.code == "level_mismatch"
    tree["X1"].merge_into(x2, ["TW", "HN", "HN.X2"])
    [event] = tree["X1"].pending
    assert isinstance(event, UnitMerged)
    assert not tree["X1"].is_active
    with pytest.raises(RuleBroken):
        tree["X1"].rename("Không được")


def test_dissolve_refused_while_children_are_active(tree: dict[str, OrgUnit]) -> None:
    with pytest.raises(RuleBroken) as caught:
        tree["X1"].dissolve(1, "")
    assert caught.value.code == "has_children"
    tree["CB1"].dissolve(0, "giải thể")
    assert tree["CB1"].status == "dissolved"


def test_rename_to_the_same_name_records_nothing(tree: dict[str, OrgUnit]) -> None:
    tree["CB1"].rename("Đơn vị HN.X1.CB1")
    assert tree["CB1"].pending == []
    tree["CB1"].rename("Chi bộ Khu phố 1")
    assert isinstance(tree["CB1"].pending[0], UnitRenamed)


def test_state_is_rebuilt_from_events(tree: dict[str, OrgUnit]) -> None:
    events = [
        UnitCreated(unit_id="A", name="A", level=OrgLevel.commune, parent_id="HN"),
        UnitRenamed(unit_id="A", name="B", previous_name="A"),
        UnitMerged(unit_id="A", into_unit_id="C"),
    ]
    rebuilt = OrgUnit.rebuild("A", events)
    assert (rebuilt.name, rebuilt.status, rebuilt.merged_into, rebuilt.version) == (
        "B",
        "merged",
        "C",
        3,
    )
