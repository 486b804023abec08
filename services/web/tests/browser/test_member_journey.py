"""A member's evening on a cheap phone (360×800), in headless Chromium against the platform.

Signs in with the temporary password the branch gave, must change it first, asks leave for
one meeting, checks in to another with the code on the secretary's screen, studies and takes
the quiz, turns large text on, and sends an absence request while offline that goes out
once the phone is back online. Every page is checked with axe-core (WCAG 2.1 AA) and kept
as a screenshot; no page holds a token in its address, a script-readable cookie or storage.
"""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import CHOSEN, PHONE, QUESTIONS, TEMPORARY, Platform, axe_violations, shoot

pytestmark = pytest.mark.slow


def check_page(page: Any, name: str, seen: dict[str, list[Any]]) -> None:
    """Every screen: axe-clean, screenshot kept, no token in the address or the document."""
    page.wait_for_load_state("networkidle")
    seen[name] = axe_violations(page)
    shoot(page, name)
    assert "token" not in page.url and "eyJ" not in page.url
    assert "eyJ" not in page.content()  # no JWT anywhere in the page
    assert page.evaluate("document.cookie") == ""  # nothing script-readable
    assert page.evaluate("localStorage.length + sessionStorage.length") == 0


def test_member_evening(platform: Platform, seeded: dict[str, Any], browser_context: Any) -> None:
    web = platform.web
    context = browser_context()
    page = context.new_page()
    seen: dict[str, list[Any]] = {}
    transferred: dict[str, int] = {}

    def count(response: Any) -> None:
        if response.request.method == "GET" and response.status == 200:
            try:
                transferred[response.url.split("?")[0]] = len(response.body())
            except Exception:  # a page already navigated away from
                pass

    page.on("response", count)

    # Sign in with the temporary password: the password change comes before anything else.
    page.goto(f"{web}/")
    assert page.url.endswith("/dang-nhap")
    check_page(page, "01-sign-in", seen)
    page.fill("#f-phone", PHONE)
    page.fill("#f-password", "SaiMatKhau1")
    page.click("button.primary")
    assert "không đúng" in page.inner_text("[role=alert]")
    check_page(page, "02-sign-in-refused", seen)
    page.fill("#f-password", TEMPORARY)
    page.click("button.primary")
    page.wait_for_url("**/doi-mat-khau")
    check_page(page, "03-temporary-password", seen)
    page.goto(f"{web}/hop")
    assert page.url.endswith("/doi-mat-khau"), "nothing works before the password is changed"
    page.fill("#f-current_password", TEMPORARY)
    page.fill("#f-new_password", "ngan")
    page.fill("#f-repeat_password", "ngan")
    page.click("button.primary")
    assert page.locator("#e-new_password").is_visible(), "identity's message next to its field"
    page.fill("#f-current_password", TEMPORARY)
    page.fill("#f-new_password", CHOSEN)
    page.fill("#f-repeat_password", CHOSEN)
    page.click("button.primary")
    page.wait_for_url(f"{web}/")
    assert "Đã đổi mật khẩu" in page.inner_text("[role=status]")

    cookies = {c["name"]: c for c in context.cookies()}
    session_cookie = cookies["sotay_sid"]
    assert session_cookie["httpOnly"] and session_cookie["sameSite"] == "Lax"
    assert not session_cookie["value"].startswith("eyJ")

    body = page.inner_text("main")
    assert "Sinh hoạt chuyên đề: chuyển đổi số ở thôn" in body  # the next meeting
    assert "Học tập Nghị quyết 57-NQ/TW" in body  # the campaign due
    check_page(page, "04-home", seen)
    # First load of home from an empty cache: the page and everything it pulls in.
    home = {
        u: n
        for u, n in transferred.items()
        if u == f"{web}/" or "/static/" in u or u.endswith((".ico", ".webmanifest"))
    }
    assert sum(home.values()) < 100_000, home
    assert f"{web}/" in home and f"{web}/static/app.css" in home
    page.remove_listener("response", count)

    # Ask leave for the regular meeting.
    page.click("text=/Xem \\d+ cuộc họp khác/")  # other tests may convene more
    check_page(page, "05-meetings", seen)
    page.click("text=Sinh hoạt chi bộ thường kỳ tháng 12/2026")
    assert "Nhà văn hóa thôn Phú Lộc" in page.inner_text("main")
    check_page(page, "06-meeting", seen)
    page.fill("#f-reason", "Đi khám bệnh định kỳ tại bệnh viện tỉnh")
    page.click("text=Gửi đơn xin vắng")
    assert "Đã gửi đơn xin vắng họp" in page.inner_text("[role=status]")
    assert "Chờ duyệt" in page.inner_text("main")
    assert page.locator("#f-reason").count() == 0, "the form is not offered twice"

    # Check in to tonight's meeting with the code on the secretary's screen.
    meetings = seeded["meetings"]
    page.goto(f"{web}/hop/{seeded['tonight']}")
    page.fill("#f-code", "000000")
    page.click("button:has-text('Điểm danh')")
    assert page.locator("#e-code").is_visible() or page.locator("[role=alert]").is_visible()
    check_page(page, "07-check-in-refused", seen)
    code = meetings("GET", f"/meetings/{seeded['tonight']}/checkin-code")["code"]
    page.fill("#f-code", code)
    page.click("button:has-text('Điểm danh')")
    assert "Đã điểm danh" in page.inner_text("[role=status]")
    check_page(page, "08-checked-in", seen)
    statistics = meetings("GET", f"/meetings/{seeded['tonight']}/statistics")
    assert seeded["member_id"] in statistics["present_ids"]

    # The QR leads to the check-in page of the meeting, the code filled in.
    qr = meetings("GET", f"/meetings/{seeded['tonight']}/checkin-code")["qr_payload"]
    assert qr.startswith(f"{web}/diem-danh?")

    # Study: the material, then the quiz.
    page.click("nav >> text=Học tập")
    check_page(page, "09-study", seen)
    page.click("text=Học tập Nghị quyết 57-NQ/TW")
    check_page(page, "10-campaign", seen)
    page.click("text=Tóm tắt nội dung Nghị quyết")
    check_page(page, "11-material", seen)
    page.click("text=Tôi đã học xong tài liệu này")
    assert "Đã ghi nhận" in page.inner_text("[role=status]")
    page.click("text=Làm bài kiểm tra")
    assert page.locator("[data-countdown]").inner_text().startswith(" (còn")
    check_page(page, "12-quiz", seen)
    for _, options, right in QUESTIONS:
        page.get_by_label(options[right], exact=True).check()
    page.click("button:has-text('Nộp bài')")
    assert "100 điểm" in page.inner_text("h1")
    assert "Đạt" in page.inner_text("main")
    check_page(page, "13-quiz-result", seen)

    page.click("nav >> text=Hồ sơ")
    assert "051168001234" in page.inner_text("main")  # the member sees her own record
    check_page(page, "14-profile", seen)
    page.goto(f"{web}/chuyen-can")
    check_page(page, "15-attendance", seen)

    # Large text stays on, page after page.
    page.goto(f"{web}/")
    size = page.evaluate("parseFloat(getComputedStyle(document.documentElement).fontSize)")
    page.click("button:has-text('Chữ to')")
    page.goto(f"{web}/hop")
    assert "large" in (page.get_attribute("html", "class") or "")
    larger = page.evaluate("parseFloat(getComputedStyle(document.documentElement).fontSize)")
    assert larger >= size * 1.2
    small = page.evaluate(
        """() => [...document.querySelectorAll('a.card, button, .menu a, input, textarea')]
            .filter(e => e.offsetParent !== null)
            .map(e => e.getBoundingClientRect())
            .filter(r => r.height < 48).length"""
    )
    assert small == 0, "touch targets are at least 48 px"
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, "nothing runs off a 360 px screen"
    check_page(page, "16-large-text", seen)
    page.click("button:has-text('Tương phản cao')")
    check_page(page, "17-high-contrast", seen)
    page.click("button:has-text('Màu thường')")
    page.click("button:has-text('Chữ thường')")

    # Offline: the absence request waits in the phone and goes out when the network is back.
    page.goto(f"{web}/hop/{seeded['offline']}")
    context.set_offline(True)
    page.fill("#f-reason", "Con ốm, phải đưa đi viện")
    page.click("text=Gửi đơn xin vắng")
    queue = page.locator("#queue")
    queue.wait_for(state="visible")
    assert "đang chờ gửi" in queue.inner_text()
    check_page(page, "18-offline-queued", seen)
    absences = meetings("GET", f"/meetings/{seeded['offline']}")["absences"]
    assert absences == []
    context.set_offline(False)
    page.locator("#queue", has_text="đã gửi").wait_for(timeout=30_000)
    shoot(page, "19-offline-sent")
    absences = meetings("GET", f"/meetings/{seeded['offline']}")["absences"]
    assert [a["member_id"] for a in absences] == [seeded["member_id"]]

    failing = {name: v for name, v in seen.items() if v}
    assert not failing, f"axe WCAG 2.1 AA violations: {failing}"
