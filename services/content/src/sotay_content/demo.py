"""Demo pieces for `make run`: published through the service's own API, like an editorial board.

    from sotay_content.demo import load_demo
    load_demo("http://127.0.0.1:8004", editor_token, reviewer_token)

The two tokens belong to two people (a reviewer never approves their own
piece), with grants covering the demo province QNG: `editor` for the first,
`editorial_reviewer` for the second. Piece ids are fixed,
so running it again publishes nothing twice. `python -m sotay_content.demo`
prints the pieces.
"""

from __future__ import annotations

import time
from typing import Any

import httpx

from sotay_platform.attachments import build_pdf

PIECES: list[dict[str, Any]] = [
    {
        "piece_id": "demo-nq57",
        "kind": "resolution",
        "unit_id": "QNG",
        "title": "Nghị quyết số 57-NQ/TW về đột phá phát triển khoa học, công nghệ, "
        "đổi mới sáng tạo và chuyển đổi số quốc gia",
        "summary": "Bộ Chính trị xác định phát triển khoa học, công nghệ, đổi mới sáng tạo và "
        "chuyển đổi số là đột phá quan trọng hàng đầu.",
        "body": "<h2>Quan điểm chỉ đạo</h2><p>Phát triển khoa học, công nghệ, đổi mới sáng tạo và "
        "chuyển đổi số quốc gia là <strong>đột phá quan trọng hàng đầu</strong>, là động lực chính "
        "để phát triển nhanh lực lượng sản xuất hiện đại.</p>",
        "document": {
            "number_symbol": "57-NQ/TW",
            "issuing_body": "Bộ Chính trị",
            "issued_on": "22/12/2024",
            "effective_on": "22/12/2024",
            "classification": "public",
        },
        "attachment": (
            "Nghị quyết 57-NQ-TW.pdf",
            [
                "NGHỊ QUYẾT",
                "về đột phá phát triển khoa học, công nghệ,",
                "đổi mới sáng tạo và chuyển đổi số quốc gia",
            ],
        ),
    },
    {
        "piece_id": "demo-ct35",
        "kind": "directive",
        "unit_id": "QNG",
        "title": "Chỉ thị số 35-CT/TW về tổ chức đại hội đảng bộ các cấp tiến tới Đại hội đại biểu "
        "toàn quốc lần thứ XIV của Đảng",
        "summary": "Ban Chấp hành Trung ương chỉ đạo công tác chuẩn bị và tổ chức đại hội.",
        "body": "<p>Đại hội đảng bộ các cấp là sinh hoạt chính trị quan trọng của toàn Đảng.</p>",
        "document": {
            "number_symbol": "35-CT/TW",
            "issuing_body": "Bộ Chính trị",
            "issued_on": "14/06/2024",
            "classification": "public",
        },
    },
    {
        "piece_id": "demo-bao-mat",
        "kind": "professional_guidance",
        "unit_id": "QNG",
        "title": "Hướng dẫn bảo vệ bí mật nhà nước khi sử dụng Sổ tay đảng viên điện tử",
        "summary": "Không đăng tải, lưu trữ tài liệu mật trên ứng dụng.",
        "body": "<h2>BẢO VỆ BÍ MẬT NHÀ NƯỚC</h2><p>Tài liệu có dấu độ mật (mật, tối mật, tuyệt "
        "mật) tuyệt đối không chụp, không đăng tải lên Sổ tay. Đặt mật khẩu đủ mạnh và không "
        "chia sẻ tài khoản.</p>",
    },
    {
        "piece_id": "demo-ban-tin-12",
        "kind": "bulletin",
        "unit_id": "QNG",
        "title": "Bản tin sinh hoạt chi bộ tháng 12",
        "summary": "Chuyên đề: học tập và làm theo tư tưởng, đạo đức, phong cách Hồ Chí Minh.",
        "body": "<ul><li>Thông tin thời sự trong tỉnh</li><li>Gợi ý nội dung sinh hoạt chuyên đề"
        "</li></ul>",
    },
    {
        "piece_id": "demo-tin-binh-son",
        "kind": "news",
        "unit_id": "QNG.BSON",
        "title": "Đảng bộ xã Bình Sơn triển khai Sổ tay đảng viên điện tử đến 100% chi bộ",
        "summary": "Các chi bộ thôn sử dụng Sổ tay trong sinh hoạt chi bộ thường kỳ.",
        "body": "<p>Đến nay, 100% chi bộ trực thuộc đã sử dụng Sổ tay trong sinh hoạt.</p>",
    },
]


def _wait_for_unit(client: httpx.Client, body: dict[str, Any], timeout: float) -> httpx.Response:
    """The tree reaches content through Kafka: a unit just imported may not be known yet."""
    deadline = time.monotonic() + timeout
    while True:
        r = client.post("/pieces", json=body)
        if r.status_code != 404 or time.monotonic() > deadline:
            return r
        time.sleep(1)


def load_demo(base_url: str, editor_token: str, reviewer_token: str, timeout: float = 60) -> int:
    """Publish the demo pieces; returns how many were published now."""
    published = 0
    editor = {"Authorization": f"Bearer {editor_token}"}
    reviewer = {"Authorization": f"Bearer {reviewer_token}"}
    with httpx.Client(base_url=base_url, timeout=60) as client:
        for piece in PIECES:
            body = {k: v for k, v in piece.items() if k != "attachment"}
            client.headers.update(editor)
            r = _wait_for_unit(client, body, timeout)
            if r.status_code == 200:
                continue  # drafted by an earlier run
            r.raise_for_status()
            if "attachment" in piece:
                name, lines = piece["attachment"]
                client.post(
                    f"/pieces/{piece['piece_id']}/attachments",
                    params={"name": name},
                    content=build_pdf(lines, title=piece["title"][:60]),
                    headers={"Content-Type": "application/octet-stream"},
                ).raise_for_status()
            client.post(f"/pieces/{piece['piece_id']}/submit").raise_for_status()
            client.headers.update(reviewer)
            client.post(f"/pieces/{piece['piece_id']}/approve", json={}).raise_for_status()
            published += 1
    return published


if __name__ == "__main__":
    for piece in PIECES:
        print(f"{piece['unit_id']:<10} {piece['kind']:<22} {piece['title']}")
