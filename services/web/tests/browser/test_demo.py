"""The living demo loads through the services' APIs; a run aborted before its meetings is
finished by the next one; its accounts work in the app."""

from __future__ import annotations

from typing import Any

import pytest

from sotay_platform.auth import Grant, Role
from sotay_web.demo import ACCOUNT_PHONES, DEMO_PASSWORDS, LABELS, Demo, print_accounts

from .conftest import Platform, shoot, wait

pytestmark = pytest.mark.slow


def test_demo_province_is_real_through_the_apis(
    platform: Platform,
    seeded: dict[str, Any],  # the shared tree first, whatever the order of the tests
    browser_context: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    names = ("orgtree", "identity", "meetings", "content", "learning", "feedback")
    urls = {k: platform.urls[k] for k in names}
    token = platform.token([Grant(Role.system_admin, "TW")])

    def demo() -> Demo:
        return Demo(urls, token, branches_wanted=2, members_per_branch=3, start_in_seconds=10)

    # The first run stops after the accounts (as if Ctrl-C came while meetings were loading).
    aborted = demo()
    aborted.tree()
    aborted.members()
    aborted.roles_and_accounts()
    again = demo()
    again.run()
    assert again.created == 0, "the second run found every member the first one made"
    print_accounts(again, platform.web)
    printed = capsys.readouterr().out
    assert platform.web in printed
    for kind in ACCOUNT_PHONES:
        assert LABELS[kind] in printed and DEMO_PASSWORDS[kind] in printed
    tree = platform.admin("orgtree")
    communes = tree("GET", "/units/QNG/children")
    assert any(c["name"].startswith(("Đảng bộ phường", "Đảng bộ xã")) for c in communes)
    first = again.branches[0][0]
    meetings = platform.admin("meetings")

    def reported() -> bool:
        found = meetings("GET", f"/units/{first}/meetings")["meetings"]
        return any(m["status"] == "closed" for m in found)

    try:
        wait(reported, timeout=30)  # this month's meeting was held and closed (a projection)
    except AssertionError:
        raise AssertionError(meetings("GET", f"/units/{first}/meetings")) from None
    office = platform.api("feedback", again.accounts["answering"].token or "")
    assert office("GET", "/feedback/web-demo-hoi-1")["answers"]  # answered, publicly

    page = browser_context().new_page()
    page.goto(f"{platform.web}/dang-nhap")
    page.fill("#f-phone", ACCOUNT_PHONES["member"])
    page.fill("#f-password", DEMO_PASSWORDS["member"])
    page.click("button.primary")
    page.wait_for_url(f"{platform.web}/")
    main = page.inner_text("main")
    assert "Học tập, quán triệt Nghị quyết 57-NQ/TW" in main
    shoot(page, "40-demo-member-home")
