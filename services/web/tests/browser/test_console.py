"""A province admin at the committee office (1366×768): the tree, a catalogue import with a
bad row rejected and shown, a role granted."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from .conftest import BRANCH, Platform, axe_violations, shoot

pytestmark = pytest.mark.slow


def test_province_admin_console(
    platform: Platform, seeded: dict[str, Any], browser_context: Any, tmp_path: Path
) -> None:
    identity = seeded["identity"]
    admin = identity(
        "POST",
        "/members",
        json={
            "full_name": "Phạm Minh Tuấn",
            "birth_date": "05/05/1970",
            "gender": "Nam",
            "status": "official",
            "admitted_on": "01/01/1995",
            "official_on": "01/01/1996",
            "party_card_no": "51000099",
            "citizen_id": "051070005555",
            "phone": "0912000003",
            "branch_id": BRANCH,
            "password": "TinhTam2026",
        },
    )
    identity(
        "POST",
        f"/members/{admin['member_id']}/roles",
        json={"role": "province_admin", "unit_id": "QNG"},
    )
    page = browser_context(1366, 768).new_page()
    web = platform.web
    page.goto(f"{web}/dang-nhap")
    page.fill("#f-phone", "0912000003")
    page.fill("#f-password", "TinhTam2026")
    page.click("button.primary")
    page.wait_for_url("**/doi-mat-khau")
    page.fill("#f-current_password", "TinhTam2026")
    page.fill("#f-new_password", "TuanQuangNgai70")
    page.fill("#f-repeat_password", "TuanQuangNgai70")
    page.click("button.primary")
    page.wait_for_url(f"{web}/")
    page.click("nav >> text=Quản trị")
    page.wait_for_url("**/quan-tri/don-vi/QNG")
    assert "Đảng bộ xã Bình Sơn" in page.inner_text("main")
    violations = {"unit": axe_violations(page)}
    shoot(page, "50-console-province")

    catalogue = tmp_path / "danh-muc.csv"
    catalogue.write_text(
        "Mã đơn vị,Tên đơn vị,Cấp,Mã đơn vị cấp trên\n"
        "QNG.BS.TH,Chi bộ thôn Tân Hy,branch,QNG.BS\n"
        "QNG.BS.XX,Chi bộ không rõ cấp,cap-khong-co,QNG.BS\n",
        encoding="utf-8",
    )
    page.select_option("#i-kind", "units")
    page.set_input_files("#i-file", str(catalogue))
    page.click("button:has-text('Tải lên')")
    text = page.inner_text("main")
    assert "Tạo mới 1" in text and "bị từ chối 1" in text
    assert "QNG.BS.XX" in text
    violations["import"] = axe_violations(page)
    shoot(page, "51-console-import")

    page.goto(f"{web}/quan-tri/don-vi/QNG")
    page.fill("#g-member", seeded["elder_id"])
    page.select_option("#g-role", "branch_committee_member")
    page.fill("#g-unit", BRANCH)
    page.click("button:has-text('Giao nhiệm vụ')")
    assert "Đã giao nhiệm vụ" in page.inner_text("[role=status]")
    roles = identity("GET", f"/members/{seeded['elder_id']}")["roles"]
    assert any(r["role"] == "branch_committee_member" for r in roles)
    assert not {k: v for k, v in violations.items() if v}, violations
