"""The branch secretary on a laptop (1366×768), the members on phones (360×800).

The secretary approves a registration and rejects one whose phone another member holds
(the conflict shown), records a member who has no phone, convenes a meeting with a
document, and runs the meeting-room screen: the QR large on screen with its code, read
back from a screenshot with zxing-cpp; one member opens the QR's link on her phone and
another types the code, and attendance fills in without a reload; the member without a
phone is recorded by hand; a poll is opened, voted on from the phones and closed with its
result; minutes, close, grade, report; then a reflection is reviewed.
"""

from __future__ import annotations

import time
import zlib
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from sotay_platform.auth import Grant, Role

from .conftest import (
    BRANCH,
    PHONE,
    Platform,
    axe_violations,
    iso,
    person,
    shoot,
    sign_in,
    staff,
    wait,
)

pytestmark = pytest.mark.slow
VN = ZoneInfo("Asia/Ho_Chi_Minh")
DOCUMENT = "web-secretary-doc"


def png_pixels(data: bytes) -> np.ndarray:
    """An 8-bit RGB(A) PNG, as Chromium writes screenshots, decoded to an array (no Pillow)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks, header = 8, [], b""
    while pos < len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            chunks.append(body)
        pos += 12 + length
    width, height = int.from_bytes(header[:4], "big"), int.from_bytes(header[4:8], "big")
    depth, colour, interlace = header[8], header[9], header[12]
    assert depth == 8 and colour in (2, 6) and interlace == 0, header
    channels = 3 if colour == 2 else 4
    raw = np.frombuffer(zlib.decompress(b"".join(chunks)), np.uint8)
    rows = raw.reshape(height, 1 + width * channels)
    out = np.zeros((height, width * channels), np.int32)
    previous = np.zeros(width * channels, np.int32)
    for y in range(height):
        kind, line = rows[y, 0], rows[y, 1:].astype(np.int32)
        if kind == 0:
            current = line
        elif kind == 2:
            current = (line + previous) % 256
        else:
            current = np.zeros_like(line)
            for x in range(width * channels):
                left = current[x - channels] if x >= channels else 0
                up = previous[x]
                if kind == 1:
                    guess = left
                elif kind == 3:
                    guess = (left + up) // 2
                else:
                    corner = previous[x - channels] if x >= channels else 0
                    p = left + up - corner
                    pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                    guess = left if pa <= pb and pa <= pc else (up if pb <= pc else corner)
                current[x] = (line[x] + guess) % 256
        out[y], previous = current, current
    return out.reshape(height, width, channels)[:, :, :3].astype(np.uint8)


def read_qr(page: Any) -> str:
    """What the QR on the screen says, from a Playwright screenshot of it."""
    import zxingcpp

    shot = page.locator("img[data-qr]").screenshot(type="png")
    found = zxingcpp.read_barcodes(png_pixels(shot))
    assert found, "no QR code found on the screen"
    text: str = found[0].text
    return text


def publish(platform: Platform) -> None:
    editor = platform.api("content", platform.token([Grant(Role.editor, "QNG")]))
    reviewer = platform.api("content", platform.token([Grant(Role.editorial_reviewer, "QNG")]))
    editor.until(
        "POST",
        "/pieces",
        json={
            "piece_id": DOCUMENT,
            "kind": "meeting_topic",
            "unit_id": "QNG",
            "title": "Chuyên đề sinh hoạt: phòng, chống lừa đảo trên không gian mạng",
            "summary": "Tài liệu sinh hoạt chuyên đề tháng 12.",
            "body": "<p>Không cung cấp mã OTP, mật khẩu cho bất kỳ ai.</p>",
        },
    )
    editor("POST", f"/pieces/{DOCUMENT}/submit")
    reviewer("POST", f"/pieces/{DOCUMENT}/approve", json={})


def test_secretary_runs_the_branch_and_the_meeting_room(
    platform: Platform, seeded: dict[str, Any], browser_context: Any
) -> None:
    web, meetings, identity = platform.web, seeded["meetings"], seeded["identity"]
    anonymous = platform.api("identity", "")
    anonymous.client.headers.pop("Authorization")
    good = anonymous(
        "POST",
        "/registrations",
        json=person(71, "Võ Văn Tâm", phone="0912000031", password="TamDangKy2026"),
    )
    anonymous(
        "POST",
        "/registrations",
        json=person(72, "Bùi Thị Nga", gender="Nữ", phone=PHONE, password="NgaDangKy2026"),
    )
    mai = staff(seeded, 73, "Phạm Thị Mai", "0912000032", [], gender="Nữ")
    long_ = staff(seeded, 74, "Huỳnh Văn Long", "0912000033", [])
    publish(platform)
    identity(
        "POST", f"/members/{seeded['secretary_id']}/password", json={"password": "BiThuTam2026"}
    )
    context = browser_context(1366, 768)
    page = context.new_page()
    sign_in(page, web, "0912000002", "BiThuTam2026", "HungPhuLoc1965")
    violations: dict[str, Any] = {}

    # Registrations: the one whose phone another member holds shows the conflict.
    page.click("nav >> text=Chi bộ")
    page.wait_for_url(f"**/chi-bo/{BRANCH}")

    def both_pending() -> bool:
        page.reload()
        main = page.inner_text("main")
        return "Võ Văn Tâm" in main and "Bùi Thị Nga" in main

    wait(both_pending, timeout=90)
    conflict = page.locator("tr", has_text="Bùi Thị Nga").locator("[data-conflict=phone]")
    assert PHONE in conflict.inner_text()
    assert page.locator("tr", has_text="Võ Văn Tâm").locator("[data-conflict]").count() == 0
    violations["branch"] = axe_violations(page)
    shoot(page, "30-secretary-branch")
    page.locator("tr", has_text="Võ Văn Tâm").locator("button:has-text('Phê duyệt')").click()
    assert "Đã phê duyệt" in page.inner_text("[role=status]")
    row = page.locator("tr", has_text="Bùi Thị Nga")
    row.locator("input[name=reason]").fill("Số điện thoại đã thuộc đảng viên khác")
    row.locator("button:has-text('Từ chối')").click()
    assert "Đã từ chối" in page.inner_text("[role=status]")
    assert identity("GET", f"/members/{good['member_id']}")["state"] == "approved"

    # A member without a phone, recorded by the secretary.
    page.click("text=Đảng viên của chi bộ")
    page.fill("#f-full_name", "Đoàn Văn Sáu")
    page.fill("#f-birth_date", "15/08/1945")
    page.fill("#f-gender", "Nam")
    page.fill("#f-admitted_on", "03/02/1968")
    page.fill("#f-official_on", "03/02/1969")
    page.fill("#f-party_card_no", "51000075")
    page.fill("#f-citizen_id", "051045000075")
    page.click("button:has-text('Thêm đảng viên')")
    assert "Đã thêm đảng viên Đoàn Văn Sáu" in page.inner_text("[role=status]")
    violations["members"] = axe_violations(page)
    shoot(page, "33-secretary-members")
    roster = identity("GET", "/members", params={"unit_id": BRANCH, "limit": 500})["items"]
    sau = next(m for m in roster if m["full_name"] == "Đoàn Văn Sáu")
    expected = {sau["member_id"], mai["member_id"], long_["member_id"], good["member_id"]}
    wait(
        lambda: (
            expected
            <= {m["member_id"] for m in meetings("GET", f"/units/{BRANCH}/roster")["members"]}
        ),
        timeout=120,
    )

    # Convening from the form, with the document attached to the invitation.
    page.goto(f"{web}/chi-bo/{BRANCH}/hop-moi")
    week = (datetime.now(VN) + timedelta(days=7)).replace(hour=19, minute=30, second=0)
    page.fill("#f-title", "Sinh hoạt chuyên đề tháng 12: an toàn trên không gian mạng")
    page.fill("#f-starts_at", week.strftime("%Y-%m-%dT%H:%M"))
    page.fill("#f-ends_at", (week + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M"))
    page.fill("#f-location", "Nhà văn hóa thôn Phú Lộc")
    page.fill("#f-agenda", "Quán triệt chuyên đề\nThảo luận")
    page.check(f"input[name=document_ids][value={DOCUMENT}]")
    violations["convene"] = axe_violations(page)
    shoot(page, "34-secretary-convene")
    page.click("button:has-text('Gửi giấy mời họp')")
    page.wait_for_url("**/chi-bo/hop/*")
    assert "Đã gửi giấy mời" in page.inner_text("[role=status]")
    convened = page.url.rsplit("/", 1)[-1]
    assert meetings("GET", f"/meetings/{convened}")["document_ids"] == [DOCUMENT]
    assert "phòng, chống lừa đảo" in page.inner_text("main")  # the document, by its title

    # Tonight's meeting, starting in a few seconds, run from the room screen.
    starts = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=20)
    meeting_id = meetings(
        "POST",
        "/meetings",
        json={
            "unit_id": BRANCH,
            "kind": "regular",
            "title": "Sinh hoạt chi bộ thường kỳ: tổng kết năm",
            "starts_at": iso(starts),
            "ends_at": iso(starts + timedelta(hours=2)),
            "location": "Nhà văn hóa thôn Phú Lộc",
        },
    )["meeting_id"]
    # Two members on their phones (signed in before the code is read: it rotates).
    phones = {}
    for who, number, chosen in (
        (mai, "0912000032", "MaiPhuLoc1970"),
        (long_, "0912000033", "LongPhuLoc1970"),
    ):
        phone = browser_context().new_page()
        sign_in(phone, web, number, who["temporary"], chosen)
        phones[who["member_id"]] = phone
    page.goto(f"{web}/chi-bo/hop/{meeting_id}")
    assert page.locator("img[data-qr]").bounding_box()["width"] >= 300  # big on the screen
    for _ in range(3):  # the screen may rotate the code between the two readings
        code = page.inner_text("[data-field=code]")
        link = read_qr(page)
        query = parse_qs(urlsplit(link).query)
        if query["c"][0] == code:
            break
    assert urlsplit(link).path == "/diem-danh"
    assert query["m"] == [meeting_id] and query["c"][0] == code
    before = int(page.inner_text("[data-field=present]"))

    # One opens the QR's link on her phone; the other types the code shown.
    first = phones[mai["member_id"]]
    first.goto(link.replace(urlsplit(link).netloc, urlsplit(web).netloc, 1))
    assert first.input_value("#f-code") == code
    first.click("button:has-text('Điểm danh')")
    assert "Đã điểm danh" in first.inner_text("[role=status]")
    second = phones[long_["member_id"]]
    second.goto(f"{web}/hop/{meeting_id}")
    second.fill("#f-code", page.inner_text("[data-field=code]"))
    second.click("button:has-text('Điểm danh')")
    assert "Đã điểm danh" in second.inner_text("[role=status]")
    page.locator("[data-field=present]", has_text=str(before + 2)).wait_for(timeout=60_000)
    assert "Phạm Thị Mai" in page.inner_text("[data-present-list]")
    violations["room"] = axe_violations(page)
    shoot(page, "31-secretary-room")

    # The member without a phone, recorded by hand.
    page.select_option("#f-member", label="Đoàn Văn Sáu")
    page.click("button:has-text('Ghi nhận có mặt')")
    assert "Đã ghi nhận có mặt" in page.inner_text("[role=status]")
    present = meetings("GET", f"/meetings/{meeting_id}/statistics")["present_ids"]
    assert {sau["member_id"], mai["member_id"], long_["member_id"]} <= set(present)

    # A poll, voted on from the phones; its result once closed.
    page.fill("#f-question", "Thông qua kế hoạch chuyển đổi số của thôn năm 2027")
    page.click("button:has-text('Mở biểu quyết')")
    assert "Đã mở biểu quyết" in page.inner_text("[role=status]")
    for phone in phones.values():
        phone.goto(f"{web}/hop/{meeting_id}")
        phone.check("input[name=option][value='Tán thành']")
        phone.click("button:has-text('Gửi biểu quyết')")
        assert "Đã ghi nhận biểu quyết" in phone.inner_text("[role=status]")
    shoot(first, "35-member-voted")
    page.click("button:has-text('Đóng biểu quyết')")
    assert "Đã đóng biểu quyết" in page.inner_text("[role=status]")
    assert "Tán thành: 2" in page.inner_text("[data-poll-tally]")
    shoot(page, "32-secretary-poll")

    # Minutes, close, grade, report (minutes and the close wait for the start).
    while datetime.now(UTC) < starts + timedelta(seconds=1):
        time.sleep(0.5)
    page.fill("#f-minutes", "Chi bộ tổng kết công tác năm, thống nhất kế hoạch năm 2027.")
    page.fill("#f-conclusions", "Hoàn thành kế hoạch chuyển đổi số trong quý I")
    page.click("button:has-text('Lưu biên bản')")
    assert "Đã lưu biên bản" in page.inner_text("[role=status]")
    page.click("button:has-text('Kết thúc cuộc họp')")
    assert "Đã kết thúc cuộc họp" in page.inner_text("[role=status]")
    page.select_option("#f-grade", "good")
    page.click("button:has-text('Lưu xếp loại')")
    assert "Đã xếp loại" in page.inner_text("[role=status]")

    def report_offered() -> bool:
        page.reload()
        return page.locator("#f-summary").count() > 0

    wait(report_offered, timeout=60)
    page.fill("#f-summary", "Chi bộ sinh hoạt đúng định kỳ, 3 đảng viên có mặt.")
    page.click("button:has-text('Gửi báo cáo')")
    assert "Đã gửi báo cáo" in page.inner_text("[role=status]")
    violations["closed"] = axe_violations(page)
    shoot(page, "36-secretary-reported")
    found = meetings("GET", f"/meetings/{meeting_id}")
    assert found["status"] == "closed" and found["report"]["to_unit_id"] == "QNG.BS"

    # A reflection, reviewed.
    learner = platform.api(
        "learning", platform.token([Grant(Role.member, BRANCH)], member_id=mai["member_id"])
    )
    learner.until(
        "POST",
        "/campaigns/QNG-57/reflection",
        json={
            "text": "Qua học tập Nghị quyết 57, tôi nhận thức rõ chuyển đổi số là đột phá. "
            "Tôi sẽ hướng dẫn bà con trong thôn dùng dịch vụ công trực tuyến."
        },
    )
    page.goto(f"{web}/chi-bo/{BRANCH}")
    page.click("text=Bài thu hoạch")

    def listed() -> bool:
        page.reload()
        return "dịch vụ công trực tuyến" in page.inner_text("main")

    wait(listed, timeout=90)
    violations["reflections"] = axe_violations(page)
    shoot(page, "37-secretary-reflections")
    box = page.locator("section.box", has_text="Phạm Thị Mai")
    box.locator("textarea[name=comment]").fill("Bài viết có kế hoạch cụ thể.")
    box.locator("button:has-text('Lưu nhận xét')").click()
    assert "Đã nhận xét: đạt" in page.inner_text("[role=status]")
    assert "Không có bài nào chờ nhận xét" in page.inner_text("main")
    assert not {k: v for k, v in violations.items() if v}, violations
