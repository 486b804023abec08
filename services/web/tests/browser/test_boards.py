"""The editorial board and an answering body at 1366×768; the member reads the result at
phone size.

- An editor (who is also a reviewer) drafts a resolution, is told next to the field what
  is missing, submits it, and is not offered to approve their own piece; another reviewer
  publishes it from the queue; a member finds it in the member app.
- A commune's committee office takes a member's question from its Ban Tổ chức queue,
  assigns it, forwards it to the office with a reason, answers it publicly and closes it;
  the member reads the answer in the member app.
"""

from __future__ import annotations

from typing import Any

import pytest

from sotay_platform.auth import Grant, Role

from .conftest import Platform, axe_violations, shoot, sign_in, staff, wait

pytestmark = pytest.mark.slow


def test_editor_submits_and_reviewer_publishes(
    platform: Platform, seeded: dict[str, Any], boards_branch: str, browser_context: Any
) -> None:
    web = platform.web
    # The piece targets the boards' branch only: the seeded members' feed stays as it was.
    both = [("editor", boards_branch), ("editorial_reviewer", boards_branch)]
    trang = staff(seeded, 97, "Đặng Thu Trang", "0912000010", both, branch_id=boards_branch)
    binh = staff(
        seeded,
        96,
        "Huỳnh Văn Bình",
        "0912000011",
        [("editorial_reviewer", "QNG")],
        branch_id=boards_branch,
    )
    sau = staff(seeded, 95, "Ngô Văn Sáu", "0912000012", [], branch_id=boards_branch)
    violations: dict[str, Any] = {}

    editor = browser_context(1366, 768).new_page()
    sign_in(editor, web, "0912000010", trang["temporary"], "TrangBienTap2026")
    editor.click("nav >> text=Biên tập")
    editor.click("text=Soạn bài mới")
    editor.select_option("#f-kind", "resolution")
    editor.fill(
        "#f-title", "Nghị quyết số 66-NQ/TW về đổi mới công tác xây dựng và thi hành pháp luật"
    )
    editor.fill("#f-summary", "Pháp luật là nền tảng, thể chế là đột phá của đột phá.")
    editor.fill(
        "#f-body",
        "Bộ Chính trị ban hành Nghị quyết về công tác xây dựng và thi hành pháp luật.\n\n"
        "Mỗi chi bộ tổ chức học tập, quán triệt trong tháng.",
    )
    editor.fill("#f-issuing_body", "Bộ Chính trị")
    editor.fill("#f-issued_on", "2025-04-30")
    editor.click("button:has-text('Lưu bản nháp')")
    assert editor.is_visible("#e-number_symbol"), editor.inner_text("main")
    violations["refused"] = axe_violations(editor)
    shoot(editor, "60-editorial-refused")
    editor.fill("#f-number_symbol", "66-NQ/TW")
    editor.click("button:has-text('Lưu bản nháp')")
    editor.wait_for_url("**/bien-tap/bai/*")
    piece_id = editor.url.rsplit("/", 1)[-1]
    editor.click("button:has-text('Gửi duyệt')")
    assert "Đã gửi bài" in editor.inner_text("[role=status]")
    # The editor reviews too, but not their own piece: no approval is offered.
    assert editor.locator("#duyet").count() == 0
    assert "cần một thành viên khác" in editor.inner_text("main")
    violations["own"] = axe_violations(editor)
    shoot(editor, "61-editorial-own-piece")

    reviewer = browser_context(1366, 768).new_page()
    sign_in(reviewer, web, "0912000011", binh["temporary"], "BinhDuyetBai2026")
    reviewer.click("nav >> text=Biên tập")

    def queued() -> bool:
        reviewer.reload()
        return reviewer.locator(f"a[href='/bien-tap/bai/{piece_id}']").count() > 0

    wait(queued, timeout=30)
    row = reviewer.locator("tr", has=reviewer.locator(f"a[href='/bien-tap/bai/{piece_id}']"))
    assert "Đặng Thu Trang" in row.inner_text()  # the author by name, not by code
    violations["desk"] = axe_violations(reviewer)
    shoot(reviewer, "62-editorial-queue")
    reviewer.click(f"a[href='/bien-tap/bai/{piece_id}']")
    violations["review"] = axe_violations(reviewer)
    shoot(reviewer, "63-editorial-review")
    reviewer.click("#duyet button")
    assert "Đã duyệt và đăng bài" in reviewer.inner_text("[role=status]")
    assert reviewer.is_visible("#thu-hoi")  # a published piece may be withdrawn or corrected

    reader = browser_context(360, 800).new_page()
    sign_in(reader, web, "0912000012", sau["temporary"], "SauDocBao2026")

    def listed() -> bool:
        reader.goto(f"{web}/van-ban")
        return "Nghị quyết số 66-NQ/TW" in reader.inner_text("main")

    wait(listed, timeout=30)
    reader.goto(f"{web}/van-ban/{piece_id}")
    assert "Mỗi chi bộ tổ chức học tập" in reader.inner_text("main")
    assert not {k: v for k, v in violations.items() if v}, violations


def test_answering_body_assigns_forwards_and_answers(
    platform: Platform, seeded: dict[str, Any], boards_branch: str, browser_context: Any
) -> None:
    web = platform.web
    office = staff(
        seeded,
        94,
        "Trương Công Định",
        "0912000013",
        [("committee_admin", "QNG.BS")],
        branch_id=boards_branch,
    )
    asker = staff(
        seeded, 93, "Phan Thị Mai", "0912000014", [], gender="Nữ", branch_id=boards_branch
    )
    colleague = staff(
        seeded,
        92,
        "Đoàn Văn Tư",
        "0912000015",
        [("organisation_department", "QNG.BS")],
        branch_id=boards_branch,
    )
    violations: dict[str, Any] = {}
    feedback = platform.api(
        "feedback",
        platform.token([Grant(Role.member, boards_branch)], member_id=asker["member_id"]),
    )
    sent = feedback.until(
        "POST",
        "/feedback",
        json={
            "kind": "question",
            "subject": "organisation",
            "addressed_to": "committee",
            "title": "Thủ tục chuyển sinh hoạt đảng tạm thời",
            "text": "Tôi đi làm ở tỉnh khác 6 tháng, cần làm thủ tục gì để sinh hoạt tạm thời?",
            "public_allowed": True,
        },
    )
    fid = sent["feedback_id"]

    body = browser_context(1366, 768).new_page()
    sign_in(body, web, "0912000013", office["temporary"], "DinhVanPhong2026")
    body.click("nav >> text=Trả lời góp ý")
    violations["queues"] = axe_violations(body)
    shoot(body, "70-answer-queues")
    body.click("a[href='/tra-loi/hang-doi/QNG.BS/organisation_department']")

    def waiting() -> bool:
        body.reload()
        return body.locator(f"a[href='/tra-loi/gop-y/{fid}']").count() > 0

    wait(waiting, timeout=30)
    violations["queue"] = axe_violations(body)
    shoot(body, "71-answer-queue")
    body.click(f"a[href='/tra-loi/gop-y/{fid}']")
    assert "6 tháng" in body.inner_text("main")
    violations["item"] = axe_violations(body)
    shoot(body, "72-answer-item")
    body.set_viewport_size({"width": 768, "height": 1024})  # a tablet
    shoot(body, "75-answer-item-tablet")
    body.set_viewport_size({"width": 1366, "height": 768})
    # Handed to a colleague of the committee, picked by name and role, not typed as a code.
    body.select_option("#assign-assignee", colleague["member_id"])
    body.click("#giao-khac button")
    assert "Đã phân công" in body.inner_text("[role=status]")

    def handed() -> bool:
        body.reload()
        return "Đoàn Văn Tư" in body.inner_text("dl")

    wait(handed, timeout=30)
    body.click("#phan-cong button")
    assert "Đã phân công" in body.inner_text("[role=status]")
    # Forwarding needs a reason: the refusal comes back next to the field.
    body.check("input[name=to_body][value=office]")
    body.fill("#forward-reason", " ")
    body.click("#chuyen button")
    assert body.is_visible("#e-reason"), body.inner_text("main")
    violations["forward-refused"] = axe_violations(body)
    shoot(body, "74-answer-forward-refused")
    body.fill("#forward-reason", "Văn phòng hướng dẫn thủ tục giấy giới thiệu")
    body.click("#chuyen button")
    assert "Đã chuyển đến Văn phòng" in body.inner_text("[role=status]")
    body.goto(f"{web}/tra-loi/gop-y/{fid}")
    assert "Văn phòng" in body.inner_text("dl")
    body.fill(
        "#answer-text",
        "Đồng chí xin giấy giới thiệu sinh hoạt đảng tạm thời của chi bộ, nộp cho đảng ủy nơi đến.",
    )
    body.check("input[name=visibility][value=public]")
    body.click("#tra-loi button")
    assert "Đã gửi câu trả lời" in body.inner_text("[role=status]")
    body.click("button:has-text('Kết thúc xử lý')")
    assert "Đã kết thúc" in body.inner_text("[role=status]")

    member = browser_context(360, 800).new_page()
    sign_in(member, web, "0912000014", asker["temporary"], "MaiHoiDap2026")
    member.goto(f"{web}/gop-y/{fid}")
    assert "giấy giới thiệu sinh hoạt đảng tạm thời" in member.inner_text("main")
    shoot(member, "73-answer-member-sees")
    assert not {k: v for k, v in violations.items() if v}, violations
