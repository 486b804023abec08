"""A province admin at the committee office (1366×768): the tree, a catalogue import with a
bad row rejected and shown, a unit moved (after a refusal shown next to its field), merged
and dissolved, a role granted and revoked, the dashboard, and the monthly report issued and
downloaded as Excel and CSV."""

from __future__ import annotations

import csv
import io
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from .conftest import Platform, axe_violations, person, shoot, sign_in, wait

pytestmark = pytest.mark.slow

CATALOGUE = (
    "Mã đơn vị,Tên đơn vị,Cấp,Mã đơn vị cấp trên\n"
    "QNG.BS.TH,Chi bộ thôn Tân Hy,branch,QNG.BS\n"
    "QNG.BS.XX,Chi bộ không rõ cấp,cap-khong-co,QNG.BS\n"
    "QNG.TS,Đảng bộ xã Tịnh Sơn,commune,QNG\n"
    "QNG.TS.AL,Chi bộ thôn An Lộc,branch,QNG.TS\n"
    "QNG.TS.AH,Chi bộ thôn An Hòa,branch,QNG.TS\n"
)


def test_province_admin_console(
    platform: Platform,
    seeded: dict[str, Any],
    boards_branch: str,
    browser_context: Any,
    tmp_path: Path,
) -> None:
    identity = seeded["identity"]
    admin = identity.until(
        "POST",
        "/members",
        json=person(
            99,
            "Phạm Minh Tuấn",
            phone="0912000003",
            password="TinhTam2026",
            branch_id=boards_branch,
        ),
    )
    identity(
        "POST",
        f"/members/{admin['member_id']}/roles",
        json={"role": "province_admin", "unit_id": "QNG"},
    )
    helper = identity(
        "POST", "/members", json=person(98, "Võ Thị Hoa", gender="Nữ", branch_id=boards_branch)
    )
    page = browser_context(1366, 768).new_page()
    web = platform.web
    sign_in(page, web, "0912000003", "TinhTam2026", "TuanQuangNgai70")
    page.click("nav >> text=Quản trị")
    page.wait_for_url("**/quan-tri/don-vi/QNG")
    main = page.inner_text("main")
    assert "Đảng bộ xã Bình Sơn" in main
    assert "Trung ương" not in main  # nothing above the admin's own grant
    violations = {"unit": axe_violations(page)}
    shoot(page, "50-console-province")

    # A catalogue with a bad row: the good rows go in, the bad one is shown with its reason.
    catalogue = tmp_path / "danh-muc.csv"
    catalogue.write_text(CATALOGUE, encoding="utf-8")
    page.select_option("#i-kind", "units")
    page.set_input_files("#i-file", str(catalogue))
    page.click("button:has-text('Tải lên')")
    text = page.inner_text("main")
    assert "Tạo mới 4" in text and "bị từ chối 1" in text, text
    assert "QNG.BS.XX" in text
    violations["import"] = axe_violations(page)
    shoot(page, "51-console-import")

    # Move: a refusal first (into itself), shown next to the field; then the real move.
    tree = platform.admin("orgtree")
    tree.until("GET", "/units/QNG.BS.TH")
    page.goto(f"{web}/quan-tri/don-vi/QNG.BS.TH")
    page.fill("#move-parent_code", "QNG.BS.TH")
    page.click("#chuyen button")
    page.click("button:has-text('Xác nhận')")
    assert "chính nó" in page.inner_text("#e-move-parent_code")
    assert page.get_attribute("#move-parent_code", "aria-invalid") == "true"
    violations["refused"] = axe_violations(page)
    shoot(page, "52-console-move-refused")
    page.fill("#move-parent_code", "QNG.TS")
    page.click("#chuyen button")
    assert "Đảng bộ xã Tịnh Sơn" in page.inner_text("main")
    violations["confirm"] = axe_violations(page)
    shoot(page, "53-console-confirm")
    page.click("button:has-text('Xác nhận')")
    assert "Đã chuyển" in page.inner_text("[role=status]")
    wait(lambda: tree("GET", "/units/QNG.BS.TH")["parent_code"] == "QNG.TS")

    # Merge An Hòa into An Lộc, then dissolve Tân Hy; a unit with children offers no dissolve.
    page.goto(f"{web}/quan-tri/don-vi/QNG.TS.AH")
    page.fill("#merge-into_code", "QNG.TS.AL")
    page.click("#hop-nhat button")
    page.click("button:has-text('Xác nhận')")
    page.wait_for_url("**/quan-tri/don-vi/QNG.TS.AL")
    assert "Đã hợp nhất" in page.inner_text("[role=status]")
    page.goto(f"{web}/quan-tri/don-vi/QNG.BS.TH")
    page.fill("#dissolve-reason", "Sáp nhập thôn theo Nghị quyết của HĐND tỉnh")
    page.click("#giai-the button")
    page.click("button:has-text('Xác nhận')")
    page.wait_for_url("**/quan-tri/don-vi/QNG.TS")
    assert "Đã giải thể" in page.inner_text("[role=status]")
    assert "cần chuyển, hợp nhất hoặc giải thể" in page.inner_text("#giai-the")
    wait(lambda: tree("GET", "/units/QNG.TS.AH")["status"] == "merged")
    wait(lambda: tree("GET", "/units/QNG.BS.TH")["status"] == "dissolved")

    # Accounts in scope: grant a branch role to a member, then revoke it.
    page.goto(f"{web}/quan-tri/don-vi/QNG/tai-khoan")
    violations["accounts"] = axe_violations(page)
    shoot(page, "54-console-accounts")
    page.click("text=Võ Thị Hoa")
    page.click("button:has-text('Giao «Chi ủy viên» tại Chi bộ thôn An Thạnh')")
    assert "Đã giao nhiệm vụ" in page.inner_text("[role=status]")
    roles = identity("GET", f"/members/{helper['member_id']}")["roles"]
    assert any(r["role"] == "branch_committee_member" for r in roles)
    violations["member"] = axe_violations(page)
    shoot(page, "55-console-member")
    page.click("button:has-text('Thu hồi')")
    assert "Đã thu hồi" in page.inner_text("[role=status]")
    roles = identity("GET", f"/members/{helper['member_id']}")["roles"]
    assert not any(r["role"] == "branch_committee_member" for r in roles)

    # A question bank with a question, and a campaign launched with its material and quiz.
    # At the commune imported above, which has no members: the member tests' campaigns
    # stay as they were.
    page.goto(f"{web}/quan-tri/don-vi/QNG.TS/hoc-tap")
    page.fill("#f-bank_title", "Nghị quyết 68: câu hỏi của Đảng ủy xã")
    page.click("#ngan-hang button")
    assert "Đã tạo ngân hàng" in page.inner_text("main"), page.inner_text("main")
    page.fill("#f-text", "Nghị quyết 68-NQ/TW xác định kinh tế tư nhân là gì của nền kinh tế?")
    page.fill("#f-option_0", "Một động lực quan trọng nhất")
    page.fill("#f-option_1", "Một thành phần phụ")
    page.fill("#f-option_2", "Không được khuyến khích")
    page.click("#cau-hoi button")
    assert "Đã thêm câu hỏi" in page.inner_text("[role=status]")
    violations["bank"] = axe_violations(page)
    shoot(page, "58-console-bank")
    page.click("text=← Học tập nghị quyết")
    bank = "Nghị quyết 68: câu hỏi của Đảng ủy xã (1 câu)"

    def bank_offered() -> bool:  # learning's list of banks is a projection: it may lag
        page.reload()
        return page.locator("#f-bank_id option", has_text=bank).count() > 0

    wait(bank_offered, timeout=30)
    page.fill("#f-resolution_code", "68-NQ/TW")
    page.fill("#f-resolution_title", "Về phát triển kinh tế tư nhân")
    page.fill("#f-campaign_title", "Học tập Nghị quyết 68 ở xã Tịnh Sơn")
    page.fill("#f-deadline", (date.today() + timedelta(days=20)).isoformat())
    page.fill("#f-material_title", "Những điểm mới của Nghị quyết")
    page.fill(
        "#f-material_body", "Kinh tế tư nhân là một động lực quan trọng nhất của nền kinh tế."
    )
    page.select_option("#f-bank_id", label=bank)
    page.fill("#f-question_count", "1")
    page.click("#phat-dong button")
    assert "Đã phát động" in page.inner_text("[role=status]")
    violations["campaigns"] = axe_violations(page)
    shoot(page, "59-console-campaigns")

    # The dashboard, behind the same sign-in.
    page.goto(f"{web}/quan-tri/don-vi/QNG/so-lieu")
    assert "Đảng bộ xã Bình Sơn" in page.inner_text("table")
    violations["figures"] = axe_violations(page)
    shoot(page, "56-console-figures")

    # The monthly report: issued, then downloaded as Excel (opened) and CSV.
    page.goto(f"{web}/quan-tri/don-vi/QNG")
    page.click("button:has-text('Lập báo cáo')")
    assert "Đã lập báo cáo" in page.inner_text("[role=status]")
    with page.expect_download() as got:
        page.click("text=Tải về (Excel)")
    xlsx = tmp_path / "bao-cao.xlsx"
    got.value.save_as(xlsx)
    assert got.value.suggested_filename.endswith(".xlsx")
    from openpyxl import load_workbook

    cells = [
        str(c)
        for ws in load_workbook(xlsx).worksheets
        for row in ws.iter_rows(values_only=True)
        for c in row
        if c is not None
    ]
    assert any("Quảng Ngãi" in c for c in cells), cells[:20]
    with page.expect_download() as got:
        page.click("text=Tải về (CSV)")
    rows = list(csv.reader(io.StringIO(Path(got.value.path()).read_text(encoding="utf-8-sig"))))
    assert any("Quảng Ngãi" in cell for row in rows for cell in row)
    shoot(page, "57-console-report")
    assert not {k: v for k, v in violations.items() if v}, violations
