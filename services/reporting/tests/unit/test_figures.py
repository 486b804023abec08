"""The figure logic without I/O: member transitions, time buckets, roll-up through the tree."""

from __future__ import annotations

from datetime import UTC, date, datetime

from sotay_reporting.figures import (
    Increments,
    View,
    apply_enrolment_event,
    apply_meeting_event,
    apply_member_event,
    behind_targets,
    counters,
    deep_add,
    effective_paths,
    end_of_day_utc,
    group_under,
    new_enrolment,
    new_meeting,
    new_member,
    period_of,
    rates,
    report_date,
    strip_zeros,
    usage_figures_dict,
)

R = 25


def apply_all(events: list[tuple[str, dict, date]]) -> tuple[dict, dict]:
    """Run a member's events; returns (state, the statistics documents they produce)."""
    inc = Increments(R)
    state = new_member("m1")
    for event_type, payload, day in events:
        state = apply_member_event(state, event_type, payload, day, inc)
    docs: dict[str, dict] = {}
    for unit, paths in inc.nonzero().items():
        doc = docs.setdefault(unit, {})
        for path, n in paths.items():
            node = doc
            *parents, leaf = path.split(".")
            for p in parents:
                node = node.setdefault(p, {})
            node[leaf] = node.get(leaf, 0) + n
    return state, docs


REG = {"branch_id": "CB1", "status": "official", "registered_by": "import"}
OCT2, OCT20, OCT27, NOV20 = (
    date(2026, 10, 2),
    date(2026, 10, 20),
    date(2026, 10, 27),
    date(2026, 11, 20),
)


def live(today: date = date(2026, 11, 25)) -> View:
    return View("live", "2026-11", today, R)


def test_imported_member_counts_on_the_list_but_not_registered_until_activated() -> None:
    _, docs = apply_all([("MemberRegistered", REG, OCT2)])
    c = counters(docs["CB1"], live())
    assert (c["on_list"], c["in_scope"], c["registered"], c["pending"]) == (1, 1, 0, 0)
    _, docs = apply_all(
        [
            ("MemberRegistered", REG, OCT2),
            ("MemberRegistrationApproved", {"branch_id": "CB1"}, OCT2),
            ("AccountActivated", {"branch_id": "CB1"}, OCT20),
        ]
    )
    c = counters(docs["CB1"], live())
    assert (c["registered"], c["approved"]) == (1, 1)


def test_self_registration_is_pending_until_approved_and_gone_when_rejected() -> None:
    reg = {**REG, "registered_by": "self"}
    _, docs = apply_all([("MemberRegistered", reg, OCT2)])
    c = counters(docs["CB1"], live())
    assert (c["on_list"], c["registered"], c["pending"], c["approved"]) == (1, 1, 1, 0)
    _, docs = apply_all(
        [("MemberRegistered", reg, OCT2), ("MemberRegistrationRejected", {}, OCT20)]
    )
    assert strip_zeros(docs.get("CB1", {}).get("tot", {})) == {}


def test_exempted_members_leave_the_target_denominator() -> None:
    _, docs = apply_all(
        [
            ("MemberRegistered", REG, OCT2),
            ("MemberStatusChanged", {"status": "exempted", "branch_id": "CB1"}, OCT20),
        ]
    )
    c = counters(docs["CB1"], live())
    assert (c["on_list"], c["in_scope"]) == (1, 0)


def test_sign_ins_give_7_and_30_day_activity_and_monthly_users() -> None:
    _, docs = apply_all(
        [
            ("MemberRegistered", REG, OCT2),
            ("MemberSignedIn", {"branch_id": "CB1"}, OCT20),
            ("MemberSignedIn", {"branch_id": "CB1"}, OCT20),
            ("MemberSignedIn", {"branch_id": "CB1"}, NOV20),
        ]
    )
    c = counters(docs["CB1"], live())
    assert (c["active_7d"], c["active_30d"], c["active_in_month"], c["registered"]) == (1, 1, 1, 1)
    october = counters(docs["CB1"], View("month", "2026-10", date(2026, 11, 25), R))
    assert october["active_in_month"] == 1
    # a month later nobody is active any more
    later = counters(docs["CB1"], live(date(2026, 12, 31)))
    assert (later["active_7d"], later["active_30d"]) == (0, 0)


def test_transfer_moves_every_figure_to_the_new_branch() -> None:
    _, docs = apply_all(
        [
            ("MemberRegistered", REG, OCT2),
            ("MemberSignedIn", {"branch_id": "CB1"}, NOV20),
            ("MemberTransferred", {"from_branch_id": "CB1", "to_branch_id": "CB2"}, NOV20),
        ]
    )
    old, new = counters(docs["CB1"], live()), counters(docs["CB2"], live())
    assert (old["on_list"], old["active_7d"]) == (0, 0)
    assert (new["on_list"], new["active_7d"]) == (1, 1)


def test_levels_as_of_the_report_day_ignore_what_came_after() -> None:
    _, docs = apply_all(
        [
            ("MemberRegistered", REG, OCT2),
            ("AccountActivated", {"branch_id": "CB1"}, OCT27),  # after the 25th
            ("MemberRemoved", {"branch_id": "CB1"}, NOV20),
        ]
    )
    report = counters(docs["CB1"], View("report", "2026-10", date(2026, 11, 25), R))
    assert (report["on_list"], report["registered"]) == (1, 0)
    month_end = counters(docs["CB1"], View("month", "2026-10", date(2026, 11, 25), R))
    assert (month_end["on_list"], month_end["registered"]) == (1, 1)
    now = counters(docs["CB1"], live())
    assert now["on_list"] == 0


def test_reporting_period_runs_from_the_26th_to_the_25th() -> None:
    assert period_of(date(2026, 10, 25), R) == "2026-10"
    assert period_of(date(2026, 10, 26), R) == "2026-11"
    assert period_of(date(2026, 12, 31), R) == "2027-01"
    assert report_date("2026-02", 30) == date(2026, 2, 28)
    assert end_of_day_utc(date(2026, 11, 25)) == datetime(2026, 11, 25, 16, 59, 59, tzinfo=UTC)
    _, docs = apply_all(
        [
            ("MemberRegistered", REG, OCT2),
            ("MemberSignedIn", {"branch_id": "CB1"}, date(2026, 9, 30)),
            ("MemberSignedIn", {"branch_id": "CB1"}, OCT27),
        ]
    )
    # the October report's period is 26/09 .. 25/10: the sign-in on 30/09 counts
    october = counters(docs["CB1"], View("report", "2026-10", date(2026, 11, 25), R))
    assert october["active_30d"] == 1
    november = counters(docs["CB1"], View("report", "2026-11", date(2026, 11, 25), R))
    assert november["active_30d"] == 1


def test_meeting_closed_counts_in_the_month_it_was_held_once() -> None:
    inc = Increments(R)
    m = new_meeting("mt1")
    m = apply_meeting_event(
        m,
        "MeetingConvened",
        {
            "unit_id": "CB1",
            "kind": "regular",
            "starts_at": datetime(2026, 10, 31, 18, 0, tzinfo=UTC),
        },
        date(2026, 10, 28),
        inc,
    )
    closed = {
        "unit_id": "CB1",
        "kind": "regular",
        "invited": 10,
        "present": 7,
        "excused": 2,
        "absent_without_leave": 1,
    }
    m = apply_meeting_event(m, "MeetingClosed", closed, date(2026, 11, 1), inc)
    m = apply_meeting_event(m, "MeetingClosed", closed, date(2026, 11, 1), inc)
    # 18:00 UTC on 31/10 is 01:00 on 01/11 in Hà Nội: a November meeting
    assert inc.nonzero()["CB1"] == {
        "m.2026-11.a.meetings": 1,
        "m.2026-11.a.regular": 1,
        "m.2026-11.a.invited": 10,
        "m.2026-11.a.present": 7,
        "m.2026-11.a.excused": 2,
        "m.2026-11.a.absent": 1,
    }


def test_enrolment_counts_each_member_once() -> None:
    inc = Increments(R)
    e = new_enrolment("c1|m1")
    p = {"campaign_id": "c.1", "unit_id": "CB1"}
    for event_type, extra in [
        ("StudyStarted", {}),
        ("MaterialStudied", {}),
        ("QuizAttemptSubmitted", {"passed": False}),
        ("QuizAttemptSubmitted", {"passed": True}),
        ("ResolutionStudied", {"passed": True}),
        ("ResolutionStudied", {"passed": True}),
    ]:
        e = apply_enrolment_event(e, event_type, {**p, **extra}, OCT20, inc)
    assert inc.nonzero()["CB1"] == {
        "camp.c_1.s": 1,
        "camp.c_1.t": 1,
        "camp.c_1.p": 1,
        "camp.c_1.c": 1,
        "m.2026-10.a.studied": 1,
    }


def test_merged_units_count_under_their_successor_and_moves_follow_the_path() -> None:
    units = [
        {"_id": "TW", "path": ["TW"], "status": "active"},
        {"_id": "X1", "path": ["TW", "X1"], "status": "active"},
        {"_id": "X2", "path": ["TW", "X2"], "status": "active"},
        {"_id": "CB1", "path": ["TW", "X1", "CB1"], "status": "active"},
        {"_id": "CB2", "path": ["TW", "X2", "CB2"], "status": "merged", "merged_into": "CB1"},
        {"_id": "CB3", "path": ["TW", "X2", "CB3"], "status": "active"},
    ]
    paths = effective_paths(units)
    assert paths["CB2"] == ["TW", "X1", "CB1"]
    assert group_under("TW", paths) == {
        "TW": "TW",
        "X1": "X1",
        "X2": "X2",
        "CB1": "X1",
        "CB2": "X1",
        "CB3": "X2",
    }
    assert group_under("X1", paths) == {"X1": "X1", "CB1": "CB1", "CB2": "CB1"}
    # a unit merged into one that was not loaded counts elsewhere
    assert "CB2" not in effective_paths([u for u in units if u["_id"] != "CB1"])


def test_rates_and_targets() -> None:
    c = {
        "on_list": 10,
        "in_scope": 8,
        "registered": 8,
        "approved": 8,
        "pending": 0,
        "active_7d": 4,
        "active_30d": 6,
        "active_in_month": 6,
        "meetings": 2,
        "regular": 2,
        "invited": 20,
        "present": 15,
        "excused": 3,
        "absent": 2,
        "studied": 0,
        "branches": 2,
        "branches_met": 2,
    }
    r = rates(c)
    assert (r["registered_rate"], r["active_30d_rate"], r["attendance_rate"]) == (100.0, 75.0, 75.0)
    assert (r["excused_rate"], r["unexcused_rate"], r["branches_met_rate"]) == (15.0, 10.0, 100.0)
    assert behind_targets(r, c) == ["active_30d_rate"]
    figures = usage_figures_dict(c)
    assert figures["meets_targets"] is False and figures["members_on_list"] == 10


def test_deep_add_sums_nested_counters() -> None:
    total = deep_add({}, {"_id": "a", "tot": {"on_list": 2}, "m": {"2026-11": {"a": {"mau": 1}}}})
    deep_add(total, {"_id": "b", "tot": {"on_list": 3}, "m": {"2026-11": {"a": {"mau": 2}}}})
    assert total == {"tot": {"on_list": 5}, "m": {"2026-11": {"a": {"mau": 3}}}}
