"""Uploads checked from their bytes; classification markings; no I/O."""

import pytest

from sotay_platform.attachments import (
    AttachmentKind,
    AttachmentLimits,
    ClassifiedRefused,
    build_docx,
    build_jpeg,
    build_pdf,
    build_png,
    detect_kind,
    find_classification_marking,
    inspect_attachment,
)
from sotay_platform.errors import Invalid, status_of


def test_kinds_come_from_the_bytes() -> None:
    assert detect_kind(build_pdf(["a"])) is AttachmentKind.pdf
    assert detect_kind(build_docx(["a"])) is AttachmentKind.docx
    assert detect_kind(build_png()) is AttachmentKind.png
    assert detect_kind(build_jpeg()) is AttachmentKind.jpeg
    assert detect_kind(b"MZ\x90\x00 an executable") is None
    assert detect_kind(b"PK\x03\x04 not really a zip") is None


def test_pdf_text_is_extracted_with_diacritics() -> None:
    inspected = inspect_attachment(
        build_pdf(["NGHỊ QUYẾT", "Số 57-NQ/TW về đột phá phát triển"], title="Nghị quyết 57")
    )
    assert inspected.kind is AttachmentKind.pdf
    assert inspected.mime_type == "application/pdf"
    assert "Số 57-NQ/TW về đột phá" in inspected.text
    assert "Nghị quyết 57" in inspected.text
    assert len(inspected.sha256) == 64


def test_docx_text_includes_headers() -> None:
    text = inspect_attachment(build_docx(["Đoạn một", "Đoạn hai"], header=["Tỉnh ủy"])).text
    assert text.splitlines() == ["Đoạn một", "Đoạn hai", "Tỉnh ủy"]


def test_images_are_parsed_and_their_text_chunks_read() -> None:
    assert inspect_attachment(build_png("chú thích")).text == "chú thích"
    assert inspect_attachment(build_jpeg("ghi chú")).text == "ghi chú"


@pytest.mark.parametrize(
    "data",
    [
        b"%PDF-1.7\nnot a pdf at all",
        build_png()[:-6],  # cut before IEND
        build_png()[:23] + b"\x07" + build_png()[24:],  # CRC no longer matches
        build_jpeg()[:30],
        b"PK\x03\x04" + build_docx(["x"])[4:40],
    ],
)
def test_broken_files_are_refused_with_a_vietnamese_message(data: bytes) -> None:
    with pytest.raises(Invalid) as refused:
        inspect_attachment(data, field_name="attachment")
    assert refused.value.field == "attachment"
    assert status_of(refused.value) == 422


def test_a_renamed_executable_or_an_empty_file_is_refused() -> None:
    with pytest.raises(Invalid, match="theo nội dung"):
        inspect_attachment(b"MZ\x90\x00 program")
    with pytest.raises(Invalid, match="rỗng"):
        inspect_attachment(b"")


def test_kinds_can_be_restricted() -> None:
    with pytest.raises(Invalid, match="Chỉ nhận tệp PNG, JPEG"):
        inspect_attachment(build_pdf(["a"]), allowed={AttachmentKind.png, AttachmentKind.jpeg})


def test_size_limits_per_kind() -> None:
    limits = AttachmentLimits(max_bytes={k: 100 for k in AttachmentKind})
    with pytest.raises(Invalid) as refused:
        inspect_attachment(build_pdf(["một dòng dài"] * 5), limits=limits)
    assert refused.value.code == "too_large"


def test_docx_zip_bomb_stops_at_the_budget() -> None:
    big = build_docx(["a" * 10_000] * 20)
    with pytest.raises(Invalid, match="giải nén quá lớn"):
        inspect_attachment(big, limits=AttachmentLimits(max_docx_xml_bytes=50_000))


@pytest.mark.parametrize(
    "text, marking",
    [
        ("MẬT\nNghị quyết về quốc phòng", "MẬT"),
        ("  [ TỐI MẬT ]  \nnội dung", "TỐI MẬT"),
        ("“TUYỆT MẬT”", "TUYỆT MẬT"),
        ("BÍ MẬT NHÀ NƯỚC", "BÍ MẬT NHÀ NƯỚC"),
        ("ĐỘ MẬT: TỐI MẬT", "TỐI MẬT"),
        ("Số: 12-NQ/TU    Độ mật: Mật", "MẬT"),
        ("độ mật : tuyệt   mật", "TUYỆT MẬT"),
    ],
)
def test_markings_are_found(text: str, marking: str) -> None:
    assert find_classification_marking(text) == marking


@pytest.mark.parametrize(
    "text",
    [
        "Bí mật nhà nước phải được bảo vệ nghiêm ngặt.",
        "BẢO VỆ BÍ MẬT NHÀ NƯỚC TRONG TÌNH HÌNH MỚI",
        "Hướng dẫn đặt mật khẩu cho tài khoản Sổ tay",
        "Mật",  # a word, not a stamp: stamps are capitals
        "MẶT TRẬN TỔ QUỐC",
        "MẶT",
        "Tài liệu được xếp độ mật theo quy định",
        "Bí mật nhà nước gồm ba độ mật: tuyệt mật, tối mật và mật.",
        "Độ mật: mật khẩu phải đủ dài",
        None,
        "",
    ],
)
def test_ordinary_words_are_not_markings(text: str | None) -> None:
    assert find_classification_marking(text) is None


def test_decomposed_unicode_marking_is_found() -> None:
    import unicodedata

    assert find_classification_marking(unicodedata.normalize("NFD", "TỐI MẬT")) == "TỐI MẬT"


@pytest.mark.parametrize(
    "data",
    [
        build_pdf(["TUYỆT MẬT", "Kế hoạch"]),
        build_docx(["Kế hoạch"], header=["MẬT"]),
        build_docx(["Độ mật: Tối mật", "Kế hoạch"]),
        build_png("TỐI MẬT"),
    ],
)
def test_classified_attachments_are_refused(data: bytes) -> None:
    with pytest.raises(ClassifiedRefused) as refused:
        inspect_attachment(data)
    assert "không được đưa lên Sổ tay" in refused.value.message
    assert status_of(refused.value) == 422
