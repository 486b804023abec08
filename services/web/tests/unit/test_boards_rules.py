"""What the committee console, the editorial queue and the answering queue offer: the same
rules as the services behind them, so that no screen offers what the API would refuse."""

from __future__ import annotations

from typing import Any

from fastapi.routing import APIRoute

from sotay_web import answering, campaigns, console, editorial
from sotay_web.core import checked_form, month_label
from sotay_web.sessions import Session


def session(*grants: tuple[str, str], member_id: str = "m-1") -> Session:
    return Session(
        sid="s",
        csrf="c",
        created_at=0.0,
        access_token="t",
        member_id=member_id,
        grants=[{"role": r, "unit": u} for r, u in grants],
    )


def unit(code: str, level: str, path: list[str], status: str = "active") -> dict[str, Any]:
    parent = path[-2] if len(path) > 1 else None
    return {"code": code, "level": level, "path": path, "status": status, "parent_code": parent}


TREE = [
    unit("QNG", "province", ["TW", "QNG"]),
    unit("QNG.BS", "commune", ["TW", "QNG", "QNG.BS"]),
    unit("QNG.BS.PL", "branch", ["TW", "QNG", "QNG.BS", "QNG.BS.PL"]),
    unit("QNG.TS", "commune", ["TW", "QNG", "QNG.TS"]),
    unit("QNG.TS.AL", "branch", ["TW", "QNG", "QNG.TS", "QNG.TS.AL"]),
    unit("QNG.OLD", "commune", ["TW", "QNG", "QNG.OLD"], status="dissolved"),
]


def test_every_post_of_the_boards_checks_the_csrf_token() -> None:
    for module in (console, campaigns, editorial, answering):
        for route in module.router.routes:
            if isinstance(route, APIRoute) and "POST" in route.methods:
                calls = {d.call for d in route.dependant.dependencies}
                assert checked_form in calls, route.path


def test_a_unit_may_move_only_under_an_active_unit_of_an_allowed_level_outside_itself() -> None:
    branch = unit("QNG.BS.PL", "branch", ["TW", "QNG", "QNG.BS", "QNG.BS.PL"])
    assert [u["code"] for u in console.move_targets(branch, TREE)] == ["QNG.TS"]
    commune = unit("QNG.BS", "commune", ["TW", "QNG", "QNG.BS"])
    assert console.move_targets(commune, TREE) == []  # already under its only possible parent


def test_a_unit_merges_only_into_an_active_unit_of_its_level() -> None:
    commune = unit("QNG.BS", "commune", ["TW", "QNG", "QNG.BS"])
    found = [u["code"] for u in console.merge_targets(commune, TREE) if u["code"] != "QNG.BS"]
    assert found == ["QNG.TS"]


def test_roles_offered_follow_identitys_grantors_and_levels() -> None:
    office = session(("committee_admin", "QNG.BS"))
    on_branch = console.grantable_roles(office, ["TW", "QNG", "QNG.BS", "QNG.BS.PL"], "branch")
    assert set(on_branch) == {"branch_committee_member", "branch_secretary", "editor"} | {
        "editorial_reviewer"
    }
    assert console.grantable_roles(office, ["TW", "QNG", "QNG.TS"], "commune") == {}
    province = session(("province_admin", "QNG"))
    assert "province_admin" in console.grantable_roles(province, ["TW", "QNG"], "province")
    assert "province_admin" not in console.grantable_roles(
        province, ["TW", "QNG", "QNG.BS"], "commune"
    )
    secretary = session(("branch_secretary", "QNG.BS.PL"))
    assert set(
        console.grantable_roles(secretary, ["TW", "QNG", "QNG.BS", "QNG.BS.PL"], "branch")
    ) == {"branch_committee_member"}


def test_nobody_is_offered_to_approve_their_own_piece() -> None:
    path = ["TW", "QNG"]
    board = session(("editor", "QNG"), ("editorial_reviewer", "QNG"), member_id="m-1")
    own = {"status": "submitted", "author_id": "m-1"}
    assert editorial.actions_for(own, path, board) == {"return"}
    other = {"status": "submitted", "author_id": "m-2"}
    assert editorial.actions_for(other, path, board) == {"return", "approve"}
    assert editorial.actions_for({"status": "draft", "author_id": "m-1"}, path, board) == {
        "edit",
        "submit",
    }
    published = {"status": "published", "author_id": "m-2"}
    assert editorial.actions_for(published, path, board) == {"revise", "withdraw"}
    outside = session(("editorial_reviewer", "QNG.TS"))
    assert editorial.actions_for(other, path, outside) == set()


def test_a_plain_body_becomes_paragraphs_and_back() -> None:
    typed = "Dòng một\ncòn tiếp <b>\n\nĐoạn hai"
    assert editorial.paragraphs("Một & hai\n\nBa") == "<p>Một &amp; hai</p><p>Ba</p>"
    html = editorial.paragraphs("Dòng một\ncòn tiếp\n\nĐoạn hai")
    assert editorial.plain(html) == "Dòng một\ncòn tiếp\n\nĐoạn hai"
    assert editorial.paragraphs(typed) == typed  # markup is content's to sanitise


def test_queues_and_forwarding_follow_feedbacks_body_roles() -> None:
    person = session(
        ("committee_admin", "QNG.BS"), ("branch_secretary", "QNG.BS.PL"), ("member", "QNG.BS.PL")
    )
    queues = answering.my_queues(person)
    assert ("QNG.BS", "office") in queues and ("QNG.BS.PL", "branch") in queues
    assert len(queues) == 5
    assert answering.my_queues(session(("member", "QNG.BS.PL"))) == []
    assert answering.my_queues(session(("propaganda_department", "QNG"))) == [
        ("QNG", "propaganda_department")
    ]
    from_branch = answering.forward_choices("branch")
    assert "branch" not in from_branch and "office" in from_branch
    from_office = answering.forward_choices("office")
    assert "office" not in from_office and {"branch", "up"} <= set(from_office)


def test_months_read_as_people_write_them() -> None:
    assert month_label("2026-12") == "12/2026"
