"""The living demo loads through the services' APIs, and its member account works in the app."""

from __future__ import annotations

from typing import Any

import pytest

from sotay_platform.auth import Grant, Role
from sotay_web.demo import ACCOUNT_PHONES, DEMO_PASSWORDS, Demo, print_accounts

from .conftest import Platform, shoot, wait

pytestmark = pytest.mark.slow


def test_demo_province_is_real_through_the_apis(
    platform: Platform, browser_context: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    urls = {k: platform.urls[k] for k in ("orgtree", "identity", "meetings", "learning")}
    token = platform.token([Grant(Role.system_admin, "TW")])
    demo = Demo(urls, token, branches_wanted=2, members_per_branch=3, start_in_seconds=10)
    demo.run()
    print_accounts(demo, platform.web)
    printed = capsys.readouterr().out
    assert platform.web in printed and DEMO_PASSWORDS["secretary"] in printed
    tree = platform.admin("orgtree")
    communes = tree("GET", "/units/QNG/children")
    assert any(
        c["name"].startswith("Đảng bộ phường") or c["name"].startswith("Đảng bộ xã")
        for c in communes
    )
    first = demo.branches[0][0]
    meetings = platform.admin("meetings")

    def closed() -> bool:
        found = meetings("GET", f"/units/{first}/meetings")["meetings"]
        return any(m["status"] == "closed" for m in found)

    try:
        wait(closed, timeout=30)  # this month's meeting was held and closed (a projection)
    except AssertionError:
        raise AssertionError(meetings("GET", f"/units/{first}/meetings")) from None

    page = browser_context().new_page()
    page.goto(f"{platform.web}/dang-nhap")
    page.fill("#f-phone", ACCOUNT_PHONES["member"])
    page.fill("#f-password", DEMO_PASSWORDS["member"])
    page.click("button.primary")
    page.wait_for_url(f"{platform.web}/")
    assert "Học tập, quán triệt Nghị quyết 57-NQ/TW" in page.inner_text("main")
    shoot(page, "40-demo-member-home")
