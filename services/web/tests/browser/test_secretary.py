"""The branch secretary on a laptop (1366×768): the branch page, then the meeting-room screen
with the rotating QR large and attendance filling in live while members check in."""

from __future__ import annotations

from typing import Any

import pytest

from sotay_platform.auth import Grant, Role

from .conftest import BRANCH, Platform, axe_violations, shoot

pytestmark = pytest.mark.slow


def test_secretary_runs_the_meeting_room(
    platform: Platform, seeded: dict[str, Any], browser_context: Any
) -> None:
    web, meetings = platform.web, seeded["meetings"]
    seeded["identity"](
        "POST", f"/members/{seeded['secretary_id']}/password", json={"password": "BiThuTam2026"}
    )
    context = browser_context(1366, 768)
    page = context.new_page()
    page.goto(f"{web}/dang-nhap")
    page.fill("#f-phone", "0912000002")
    page.fill("#f-password", "BiThuTam2026")
    page.click("button.primary")
    page.wait_for_url("**/doi-mat-khau")
    page.fill("#f-current_password", "BiThuTam2026")
    page.fill("#f-new_password", "HungPhuLoc1965")
    page.fill("#f-repeat_password", "HungPhuLoc1965")
    page.click("button.primary")
    page.wait_for_url(f"{web}/")
    violations: dict[str, Any] = {}

    page.click("nav >> text=Chi bộ")
    page.wait_for_url(f"**/chi-bo/{BRANCH}")
    assert "Sinh hoạt chuyên đề: chuyển đổi số ở thôn" in page.inner_text("main")
    violations["branch"] = axe_violations(page)
    shoot(page, "30-secretary-branch")

    page.goto(f"{web}/chi-bo/hop/{seeded['tonight']}")
    code = page.inner_text("[data-field=code]")
    assert code.isdigit() and len(code) == 6
    assert page.locator("img[data-qr]").bounding_box()["width"] >= 300  # big on the screen
    before = int(page.inner_text("[data-field=present]"))
    # A member checks in from a phone: the screen fills in without a reload.
    member = platform.api(
        "meetings",
        platform.token([Grant(Role.member, BRANCH)], member_id=seeded["secretary_id"]),
    )
    member("POST", f"/meetings/{seeded['tonight']}/check-in", json={"code": code})
    page.locator("[data-field=present]", has_text=str(before + 1)).wait_for(timeout=15_000)
    violations["room"] = axe_violations(page)
    shoot(page, "31-secretary-room")

    # The elderly member without a phone is recorded by hand.
    page.select_option("#f-member", seeded["elder_id"])
    page.click("button:has-text('Ghi nhận có mặt')")
    assert "Đã ghi nhận có mặt" in page.inner_text("[role=status]")
    present = meetings("GET", f"/meetings/{seeded['tonight']}/statistics")["present_ids"]
    assert seeded["elder_id"] in present

    page.fill("#f-question", "Thông qua kế hoạch chuyển đổi số của thôn")
    page.click("button:has-text('Mở biểu quyết')")
    assert "Đã mở biểu quyết" in page.inner_text("[role=status]")
    shoot(page, "32-secretary-poll")
    assert not {k: v for k, v in violations.items() if v}, violations
