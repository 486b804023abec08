"""The piece's rules and the checks on what it says, without I/O."""

from datetime import UTC, date, datetime, timedelta

import pytest

from sotay_content.domain import (
    DRAFT,
    PUBLISHED,
    SCHEDULED,
    SUBMITTED,
    WITHDRAWN,
    AttachmentInfo,
    DeclaredClassification,
    DocumentDraft,
    Library,
    Piece,
    PieceReading,
    RuleBroken,
    compose,
    normalise_number_symbol,
)
from sotay_events.catalogue.content import (
    Classification,
    PieceKind,
    PiecePublished,
    PieceRead,
    PieceRevised,
    PieceScheduled,
)
from sotay_platform.attachments import ClassifiedRefused
from sotay_platform.errors import Forbidden, Invalid

NOW = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)


def resolution_draft(**changes: object) -> DocumentDraft:
    fields: dict = {
        "number_symbol": "57-NQ/TW",
        "issuing_body": "Bộ Chính trị",
        "issued_on": date(2024, 12, 22),
        "classification": DeclaredClassification.public,
    }
    fields.update(changes)
    return DocumentDraft(**fields)


def resolution(piece_id: str = "p1", author: str = "editor") -> Piece:
    content = compose(
        PieceKind.resolution,
        "Nghị quyết số 57-NQ/TW về đột phá phát triển khoa học, công nghệ",
        "Tóm tắt",
        "<p>Nội dung nghị quyết</p>",
        resolution_draft(),
    )
    return Piece.draft(piece_id, PieceKind.resolution, "QNG", content, author)


def submitted(author: str = "editor") -> Piece:
    piece = resolution(author=author)
    piece.submit(author)
    return piece


def test_a_party_document_carries_its_identification_and_classification() -> None:
    with pytest.raises(Invalid) as refused:
        compose(PieceKind.directive, "Chỉ thị", "", "", None)
    assert refused.value.field == "document"
    content = compose(PieceKind.resolution, "  Nghị   quyết ", "", "", resolution_draft())
    assert content.title == "Nghị quyết"
    assert content.document is not None
    assert content.document.classification is Classification.public


def test_news_has_no_document_number() -> None:
    with pytest.raises(Invalid, match="Chỉ văn bản của Đảng"):
        compose(PieceKind.news, "Tin", "", "", resolution_draft())


@pytest.mark.parametrize(
    "raw, expected",
    [("57-NQ/TW", "57-NQ/TW"), (" 57-nq/tw ", "57-NQ/TW"), ("339-QĐ/TW", "339-QĐ/TW"),
     ("01-HD/BTGTW", "01-HD/BTGTW"), ("1742-CV/TU", "1742-CV/TU")],
)  # fmt: skip
def test_number_and_symbol_are_normalised(raw: str, expected: str) -> None:
    assert normalise_number_symbol(raw) == expected


@pytest.mark.parametrize("raw", ["NQ/TW", "57", "57/NQ-TW", "số 57", "57-NQ/"])
def test_malformed_numbers_are_refused(raw: str) -> None:
    with pytest.raises(Invalid) as refused:
        normalise_number_symbol(raw)
    assert refused.value.field == "document.number_symbol"


def test_dates_of_effect_follow_the_date_of_issue() -> None:
    with pytest.raises(Invalid) as refused:
        compose(PieceKind.resolution, "NQ", "", "", resolution_draft(effective_on=date(2024, 1, 1)))
    assert refused.value.field == "document.effective_on"


@pytest.mark.parametrize(
    "level",
    [
        DeclaredClassification.secret,
        DeclaredClassification.top_secret,
        DeclaredClassification.absolute_secret,
    ],
)
def test_a_declared_secret_is_refused(level: DeclaredClassification) -> None:
    with pytest.raises(ClassifiedRefused) as refused:
        compose(PieceKind.resolution, "NQ", "", "", resolution_draft(classification=level))
    assert refused.value.field == "document.classification"
    assert "không được đưa lên Sổ tay" in refused.value.message


@pytest.mark.parametrize(
    "title, summary, body, field",
    [
        ("TỐI MẬT", "", "", "title"),
        ("Kế hoạch", "Độ mật: Mật", "", "summary"),
        ("Kế hoạch", "", "<h1>TUYỆT MẬT</h1><p>Nội dung</p>", "body"),
        ("Kế hoạch", "", "<div>MẬT</div><div>Số 12-KH/TU</div>", "body"),
    ],
)
def test_markings_in_the_text_are_refused(title: str, summary: str, body: str, field: str) -> None:
    with pytest.raises(ClassifiedRefused) as refused:
        compose(PieceKind.guidance, title, summary, body, resolution_draft())
    assert refused.value.field == field


def test_a_guidance_about_protecting_secrets_is_not_classified() -> None:
    content = compose(
        PieceKind.professional_guidance,
        "Hướng dẫn bảo vệ bí mật nhà nước trong sử dụng Sổ tay đảng viên",
        "Không đưa tài liệu mật lên ứng dụng.",
        "<h2>BẢO VỆ BÍ MẬT NHÀ NƯỚC</h2><p>Bí mật nhà nước gồm ba độ mật: tuyệt mật, tối mật "
        "và mật. Tài liệu có đóng dấu độ mật không được đăng tải.</p>",
        None,
    )
    assert "BẢO VỆ BÍ MẬT NHÀ NƯỚC" in content.body


def test_the_workflow_from_draft_to_published() -> None:
    piece = submitted()
    assert piece.status == SUBMITTED
    assert piece.approve("reviewer", NOW)
    assert piece.status == PUBLISHED
    published = piece.pending[-1]
    assert isinstance(published, PiecePublished)
    assert (published.unit_id, published.kind, published.number_symbol) == (
        "QNG",
        PieceKind.resolution,
        "57-NQ/TW",
    )
    assert not piece.approve("reviewer", NOW)  # a retried approval changes nothing


def test_nobody_approves_their_own_piece() -> None:
    piece = submitted(author="editor")
    with pytest.raises(Forbidden) as refused:
        piece.approve("editor", NOW)
    assert refused.value.code == "own_piece"
    other = resolution(author="a")
    other.submit("b")  # submitted by someone else than the author
    with pytest.raises(Forbidden):
        other.approve("b", NOW)


def test_a_draft_cannot_be_published_without_review() -> None:
    with pytest.raises(RuleBroken):
        resolution().approve("reviewer", NOW)


def test_returned_pieces_go_back_to_draft_and_can_be_edited() -> None:
    piece = submitted()
    piece.return_to_editor("reviewer", "Bổ sung tóm tắt")
    assert piece.status == DRAFT
    content = compose(PieceKind.resolution, "Nghị quyết 57", "Tóm tắt mới", "", resolution_draft())
    assert piece.edit(content, "editor")
    assert not piece.edit(content, "editor")
    piece.submit("editor")
    with pytest.raises(RuleBroken):
        piece.edit(content, "editor")


def test_a_scheduled_piece_is_published_when_its_time_comes() -> None:
    piece = submitted()
    at = NOW + timedelta(hours=2)
    piece.approve("reviewer", NOW, publish_at=at)
    assert piece.status == SCHEDULED
    assert isinstance(piece.pending[-1], PieceScheduled)
    assert not piece.publish_due(NOW + timedelta(hours=1))
    assert piece.publish_due(at)
    assert piece.status == PUBLISHED
    event = piece.pending[-1]
    assert isinstance(event, PiecePublished)
    assert (event.published_at, event.approved_by) == (at, "reviewer")
    assert not piece.publish_due(at + timedelta(hours=1))


def test_a_revision_keeps_the_history() -> None:
    piece = submitted()
    piece.approve("reviewer", NOW)
    first = piece.content
    corrected = compose(
        PieceKind.resolution, "Nghị quyết 57 (đính chính)", "", "", resolution_draft()
    )
    with pytest.raises(Invalid):
        piece.revise(corrected, " ", "reviewer")
    assert piece.revise(corrected, "Sửa lỗi chính tả", "reviewer")
    event = piece.pending[-1]
    assert isinstance(event, PieceRevised) and event.revision == 2
    rebuilt = Piece.rebuild(piece.id, piece.pending)
    assert rebuilt.revisions == [first, corrected]
    assert rebuilt.revision == 2


def test_withdrawal_needs_a_reason_and_happens_once() -> None:
    piece = submitted()
    piece.approve("reviewer", NOW)
    with pytest.raises(Invalid):
        piece.withdraw("", "reviewer")
    assert piece.withdraw("Văn bản hết hiệu lực", "reviewer")
    assert piece.status == WITHDRAWN
    assert not piece.withdraw("Lần nữa", "reviewer")
    with pytest.raises(RuleBroken):
        piece.revise(piece.content, "x", "reviewer")


def test_a_scheduled_piece_withdrawn_is_never_published() -> None:
    piece = submitted()
    piece.approve("reviewer", NOW, publish_at=NOW + timedelta(hours=1))
    piece.withdraw("Hoãn đăng", "reviewer")
    assert not piece.publish_due(NOW + timedelta(hours=2))


def test_attachments_only_on_drafts_and_the_same_file_once() -> None:
    piece = resolution()
    info = AttachmentInfo("a1", "nq57.pdf", "application/pdf", 100, "ab" * 32)
    assert piece.add_attachment(info)
    assert not piece.add_attachment(
        AttachmentInfo("a2", "again.pdf", "application/pdf", 100, "ab" * 32)
    )
    assert piece.remove_attachment("a1")
    assert not piece.remove_attachment("a1")
    piece.submit("editor")
    with pytest.raises(RuleBroken):
        piece.add_attachment(info)


def test_a_reading_carries_what_reporting_counts_and_no_personal_data() -> None:
    piece = submitted()
    piece.approve("reviewer", NOW)
    reading = PieceReading.start(piece, "m1", "CB1")
    assert reading.id == "p1:m1"
    (event,) = reading.pending
    assert isinstance(event, PieceRead)
    assert event.model_dump(mode="json") == {
        "piece_id": "p1",
        "member_id": "m1",
        "unit_id": "QNG",
        "kind": "resolution",
        "branch_id": "CB1",
    }


def test_the_library_saves_and_removes_idempotently() -> None:
    library = Library("m1")
    assert library.save("p1")
    assert not library.save("p1")
    assert library.unsave("p1")
    assert not library.unsave("p1")
    assert Library.rebuild("m1", library.pending).saved == {}


def test_the_demo_pieces_pass_every_check() -> None:
    from sotay_content.demo import PIECES

    for piece in PIECES:
        raw = piece.get("document")
        document = (
            DocumentDraft(
                number_symbol=raw["number_symbol"],
                issuing_body=raw["issuing_body"],
                issued_on=date(*reversed([int(x) for x in raw["issued_on"].split("/")])),
                classification=DeclaredClassification(raw["classification"]),
            )
            if raw
            else None
        )
        content = compose(
            PieceKind(piece["kind"]), piece["title"], piece["summary"], piece["body"], document
        )
        assert content.title == piece["title"]
