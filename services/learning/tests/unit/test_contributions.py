"""The counters' arithmetic: a member counts once, in their current branch, while they take part."""

from sotay_learning.projections import _settle, campaign_contribution
from sotay_platform.roster import is_expected as must_take_part


def member(branch: str, status: str = "official", **extra: object) -> dict:
    return {"_id": "m1", "branch_id": branch, "status": status, "approved": True} | extra


def row(**flags: object) -> dict:
    return {
        "_id": "HD:m1",
        "campaign_id": "HD",
        "member_id": "m1",
        "branch_id": "CB1",
        "contributed": None,
    } | flags


def settle(r: dict, m: dict | None) -> dict:
    dirty: set = set()
    deltas = _settle(
        {"HD:m1": r},
        {"m1": m} if m else {},
        campaign_contribution,
        "campaign_id",
        dirty,
        "campaign",
    )
    return {k: {n: v for n, v in d.items() if v} for k, d in deltas.items()}


def test_who_takes_part() -> None:
    assert must_take_part(member("CB1"))
    assert must_take_part(member("CB1", "probationary"))
    assert not must_take_part(member("CB1", "exempted"))
    assert not must_take_part(member("CB1", removed=True))
    assert not must_take_part(member("CB1") | {"approved": False})


def test_a_transfer_moves_the_members_numbers_and_exemption_removes_them() -> None:
    r = row(started=True, passed=True, best_score=80.0, studied=True, finished=True)
    first = settle(r, member("CB1"))
    assert first == {
        ("HD", "CB1"): {
            "started": 1,
            "finished": 1,
            "passed": 1,
            "studied": 1,
            "scored": 1,
            "score_sum": 80.0,
        }
    }
    assert settle(r, member("CB1")) == {}  # nothing changed: nothing to add
    moved = settle(r, member("CB2"))
    assert moved[("HD", "CB1")]["started"] == -1 and moved[("HD", "CB2")]["score_sum"] == 80.0
    gone = settle(r, member("CB2", "exempted"))
    assert gone == {
        ("HD", "CB2"): {
            "started": -1,
            "finished": -1,
            "passed": -1,
            "studied": -1,
            "scored": -1,
            "score_sum": -80.0,
        }
    }
    assert r["current_branch"] is None


def test_before_identity_is_heard_of_the_event_branch_counts() -> None:
    r = row(started=True)
    assert settle(r, None) == {("HD", "CB1"): {"started": 1}}
