"""A member with two devices, at phone size (360×800): her phone loses the network in the
meeting hall just as she types the check-in code; at home, on the other device, she finds a
resolution by searching without diacritics, saves it and reads it from "my library" (offline
too), sends a question to her branch, follows it and reads the answer, and finds it in the
public Q&A. When the phone is back online, the code it kept has rotated on the room's screen
long since, and the check-in still counts: meetings checks it at the moment it was typed.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from sotay_platform.auth import Grant, Role

from .conftest import BRANCH, Platform, iso, shoot, sign_in, staff, wait
from .test_member_journey import check_page

pytestmark = pytest.mark.slow

PIECE = "web-nq57-member"
TITLE = (
    "Nghị quyết 57-NQ/TW về đột phá phát triển khoa học, công nghệ, đổi mới sáng tạo "
    "và chuyển đổi số quốc gia"
)
ANSWER = (
    "Đảng viên tuổi cao, sức khỏe yếu làm đơn gửi chi bộ; chi bộ xem xét, quyết định miễn "
    "sinh hoạt và công tác theo Quy định của Ban Chấp hành Trung ương."
)


def publish(platform: Platform) -> None:
    """A piece through content's editorial flow: one person drafts, another approves."""
    editor = platform.api("content", platform.token([Grant(Role.editor, "QNG")]))
    reviewer = platform.api("content", platform.token([Grant(Role.editorial_reviewer, "QNG")]))
    editor.until(
        "POST",
        "/pieces",
        json={
            "piece_id": PIECE,
            "kind": "resolution",
            "unit_id": "QNG",
            "title": TITLE,
            "summary": "Khoa học, công nghệ, đổi mới sáng tạo và chuyển đổi số là đột phá "
            "quan trọng hàng đầu.",
            "body": "<h2>Quan điểm chỉ đạo</h2><p>Phát triển khoa học, công nghệ là "
            "<strong>đột phá quan trọng hàng đầu</strong>.</p>",
            "document": {
                "number_symbol": "57-NQ/TW",
                "issuing_body": "Bộ Chính trị",
                "issued_on": "22/12/2024",
                "classification": "public",
            },
        },
    )
    editor("POST", f"/pieces/{PIECE}/submit")
    reviewer("POST", f"/pieces/{PIECE}/approve", json={})


def test_member_reads_asks_and_checks_in_offline(
    platform: Platform, seeded: dict[str, Any], browser_context: Any
) -> None:
    web, meetings = platform.web, seeded["meetings"]
    hanh = staff(seeded, 81, "Đỗ Thị Hạnh", "0912000021", [], gender="Nữ")
    seen: dict[str, list[Any]] = {}

    def on_roster() -> bool:
        found = {m["member_id"] for m in meetings("GET", f"/units/{BRANCH}/roster")["members"]}
        return hanh["member_id"] in found

    wait(on_roster, timeout=120)  # a projection: slow on a busy machine
    now = datetime.now(UTC).replace(microsecond=0)
    meeting_id = meetings(
        "POST",
        "/meetings",
        json={
            "unit_id": BRANCH,
            "kind": "thematic",
            "title": "Sinh hoạt chuyên đề: phòng chống lừa đảo qua mạng",
            # Check-in opens 30 minutes before; starting after the seeded "tonight", this
            # meeting is never the next one on another member's home page.
            "starts_at": iso(now + timedelta(minutes=25)),
            "ends_at": iso(now + timedelta(hours=2)),
            "location": "Nhà văn hóa thôn Phú Lộc",
        },
    )["meeting_id"]
    publish(platform)

    # The phone in the meeting hall: the code is typed while the network is gone.
    phone = browser_context().new_page()
    sign_in(phone, web, "0912000021", hanh["temporary"], "HanhPhuLoc1970")
    phone.goto(f"{web}/hop/{meeting_id}")
    phone.wait_for_load_state("networkidle")
    shown = meetings("GET", f"/meetings/{meeting_id}/checkin-code")  # the room's screen
    phone.context.set_offline(True)
    phone.fill("#f-code", shown["code"])
    phone.click("button:has-text('Điểm danh')")
    queue = phone.locator("#queue")
    queue.wait_for(state="visible")
    assert "đang chờ gửi" in queue.inner_text()
    check_page(phone, "20-check-in-offline-queued", seen)
    present = meetings("GET", f"/meetings/{meeting_id}/statistics")["present_ids"]
    assert hanh["member_id"] not in present

    # At home, on the other device: documents.
    page = browser_context().new_page()
    page.goto(f"{web}/dang-nhap")
    page.fill("#f-phone", "0912000021")
    page.fill("#f-password", "HanhPhuLoc1970")
    page.click("button.primary")
    page.wait_for_url(f"{web}/")
    link = f"a[href='/van-ban/{PIECE}']"

    def found() -> bool:
        page.goto(f"{web}/van-ban?q=nghi+quyet+57")
        return page.locator(link).count() > 0

    wait(found, timeout=90)
    assert page.input_value("#f-q") == "nghi quyet 57"
    check_page(page, "21-documents-search", seen)
    page.click(link)
    assert "Bộ Chính trị" in page.inner_text("main")
    check_page(page, "22-document", seen)
    page.click("button:has-text('Lưu để đọc khi mất mạng')")
    assert "Đã lưu văn bản" in page.inner_text("[role=status]")
    page.goto(f"{web}/van-ban")
    page.click("text=Văn bản đã lưu")
    assert TITLE in page.inner_text("main")
    check_page(page, "23-library", seen)
    page.click(link)
    assert "đột phá quan trọng hàng đầu" in page.inner_text("main")
    # The saved piece reads without a network: the service worker kept a copy.
    kept = f"""() => caches.open('sotay-saved')
        .then(c => c.match(location.origin + '/van-ban/{PIECE}')).then(r => !!r)"""
    wait(lambda: page.evaluate(kept), timeout=15)
    page.context.set_offline(True)
    page.goto(f"{web}/van-ban/{PIECE}")
    assert "đột phá quan trọng hàng đầu" in page.inner_text("main")
    page.context.set_offline(False)

    # Feedback: a question to her branch, followed, answered, then in the public Q&A.
    page.goto(f"{web}/gop-y")
    check_page(page, "24-feedback", seen)
    page.select_option("#f-kind", "question")
    page.select_option("#f-subject", "branch_work")
    page.fill("#f-title", "Đảng viên tuổi cao có được miễn sinh hoạt chi bộ không?")
    page.fill("#f-text", "Tôi năm nay 78 tuổi, đi lại khó khăn. Tôi có được miễn sinh hoạt không?")
    page.click("form[action='/gop-y'] button.primary")
    page.wait_for_url("**/gop-y/*")
    assert "Đã gửi" in page.inner_text("[role=status]")
    assert "Chưa có trả lời" in page.inner_text("main")
    check_page(page, "25-feedback-sent", seen)
    feedback_id = page.url.rsplit("/", 1)[-1]
    branch_body = platform.api(
        "feedback",
        platform.token([Grant(Role.branch_secretary, BRANCH)], member_id=seeded["secretary_id"]),
    )
    branch_body.until(
        "POST",
        f"/feedback/{feedback_id}/answer",
        json={
            "text": ANSWER,
            "visibility": "public",
            "question": "Đảng viên tuổi cao có được miễn sinh hoạt chi bộ không?",
        },
        timeout=90,
    )

    def answered() -> bool:
        page.goto(f"{web}/gop-y")
        return "Đã có 1 trả lời" in page.inner_text("main")

    wait(answered, timeout=90)
    check_page(page, "26-feedback-list", seen)
    page.click(f"a[href='/gop-y/{feedback_id}']")
    assert ANSWER in page.inner_text("main")
    check_page(page, "27-feedback-answered", seen)

    def in_qa() -> bool:
        page.goto(f"{web}/gop-y/hoi-dap?q=mien+sinh+hoat")
        return ANSWER in page.inner_text("main")

    wait(in_qa, timeout=90)
    check_page(page, "28-qa", seen)

    # Back in the hall: the code kept by the phone is stale by now, and still counts.
    stale = datetime.fromisoformat(shown["valid_until"])
    while datetime.now(UTC) <= stale + timedelta(seconds=1):
        time.sleep(0.5)
    assert meetings("GET", f"/meetings/{meeting_id}/checkin-code")["code"] != shown["code"]
    elder = platform.api(
        "meetings", platform.token([Grant(Role.member, BRANCH)], member_id=seeded["elder_id"])
    )
    typed_now = elder.client.post(f"/meetings/{meeting_id}/check-in", json={"code": shown["code"]})
    assert typed_now.status_code == 422 and typed_now.json()["field"] == "code", typed_now.text
    phone.context.set_offline(False)
    phone.locator("#queue", has_text="đã gửi").wait_for(timeout=60_000)
    shoot(phone, "29-check-in-offline-sent")
    statistics = meetings("GET", f"/meetings/{meeting_id}/statistics")
    assert hanh["member_id"] in statistics["present_ids"]
    assert seeded["elder_id"] not in statistics["present_ids"]

    failing = {name: v for name, v in seen.items() if v}
    assert not failing, f"axe WCAG 2.1 AA violations: {failing}"
