"""Uploaded files checked from their bytes, their text read, classified ones refused.

Everything here works on bytes already in memory and writes nothing, so a
service calls `inspect_attachment` before it stores a single byte: a refused
file leaves no trace. The type comes from the content (magic numbers, then a
real parse), never from the file name or the declared content type.

Classification markings (`find_classification_marking`). State secrets must
never reach the handbook (Bình Định plan, seed 000), but the words "bí mật"
and "mật" are ordinary Vietnamese: a guidance on *protecting* state secrets
says "bảo vệ bí mật nhà nước" in every paragraph and is not classified. The
rule follows how a classified document is actually marked (the "độ mật"
stamp of Decree 26/2020/NĐ-CP):

* a line that is nothing but a marking, written in capitals as stamps are:
  "MẬT", "TỐI MẬT", "TUYỆT MẬT", "BÍ MẬT NHÀ NƯỚC", "TÀI LIỆU MẬT"
  (surrounding punctuation, boxes and quotes ignored; "ĐỘ MẬT: TỐI MẬT" too);
* a classification field, any case, standing apart as forms lay it out (at the
  start of a line or after a wide gap, its value ending the line or followed by
  another gap): "Độ mật: Mật", "Số: 12-NQ/TU      Độ mật: Tối mật".

So "Bí mật nhà nước phải được bảo vệ" or "ba độ mật: tuyệt mật, tối mật và mật" in a sentence, a heading "BẢO VỆ BÍ MẬT
NHÀ NƯỚC", or "mật khẩu" pass; a stamp line "TỐI MẬT" does not. Diacritics
count here (NFC, no folding): "MẶT" is not "MẬT".

Images have no text layer (no OCR here); only their embedded text chunks
(PNG tEXt/iTXt, JPEG comments) are read.
"""

from __future__ import annotations

import hashlib
import io
import re
import struct
import unicodedata
import zipfile
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from xml.etree import ElementTree

from sotay_platform.errors import Invalid

MB = 1024 * 1024


class AttachmentKind(StrEnum):
    pdf = "pdf"
    docx = "docx"
    png = "png"
    jpeg = "jpeg"


MIME_TYPES = {
    AttachmentKind.pdf: "application/pdf",
    AttachmentKind.docx: "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    AttachmentKind.png: "image/png",
    AttachmentKind.jpeg: "image/jpeg",
}
DOCUMENT_KINDS = frozenset({AttachmentKind.pdf, AttachmentKind.docx})
IMAGE_KINDS = frozenset({AttachmentKind.png, AttachmentKind.jpeg})


@dataclass(frozen=True)
class AttachmentLimits:
    max_bytes: dict[AttachmentKind, int] = field(
        default_factory=lambda: {
            AttachmentKind.pdf: 20 * MB,
            AttachmentKind.docx: 20 * MB,
            AttachmentKind.png: 5 * MB,
            AttachmentKind.jpeg: 5 * MB,
        }
    )
    max_pdf_pages: int = 500
    # Uncompressed XML read from a DOCX: a zip bomb stops here.
    max_docx_xml_bytes: int = 50 * MB
    max_text_chars: int = 1_000_000

    @property
    def largest(self) -> int:
        return max(self.max_bytes.values())


DEFAULT_LIMITS = AttachmentLimits()


@dataclass(frozen=True)
class InspectedAttachment:
    kind: AttachmentKind
    size: int
    sha256: str
    text: str  # what the file says, for marking checks and search ("" for most images)

    @property
    def mime_type(self) -> str:
        return MIME_TYPES[self.kind]


class ClassifiedRefused(Invalid):
    """A classified document: refused, never stored (422)."""

    code = "classified"


# --- type detection -------------------------------------------------------

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def detect_kind(data: bytes) -> AttachmentKind | None:
    """The kind by magic number (a DOCX is a zip holding a Word document)."""
    if data.startswith(b"%PDF-"):
        return AttachmentKind.pdf
    if data.startswith(_PNG_SIGNATURE):
        return AttachmentKind.png
    if data.startswith(b"\xff\xd8\xff"):
        return AttachmentKind.jpeg
    if data.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                names = set(archive.namelist())
        except (zipfile.BadZipFile, ValueError, OSError):
            return None
        if "[Content_Types].xml" in names and "word/document.xml" in names:
            return AttachmentKind.docx
    return None


# --- text extraction -------------------------------------------------------


def _broken(kind: AttachmentKind, field_name: str) -> Invalid:
    return Invalid(
        f"Tệp {kind.value.upper()} bị hỏng hoặc không đọc được nội dung", field=field_name
    )


def _pdf_text(data: bytes, limits: AttachmentLimits, field_name: str) -> str:
    from pypdf import PdfReader

    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted and not reader.decrypt(""):
            raise Invalid(
                "Tệp PDF có mật khẩu: không kiểm tra được nội dung nên không nhận",
                field=field_name,
            )
        if len(reader.pages) > limits.max_pdf_pages:
            raise Invalid(
                f"Tệp PDF quá {limits.max_pdf_pages} trang", field=field_name, code="too_large"
            )
        parts: list[str] = []
        meta = reader.metadata
        if meta:
            parts.extend(str(v) for v in (meta.title, meta.subject) if v)
        for page in reader.pages:
            parts.append(page.extract_text() or "")
    except Invalid:
        raise
    except Exception:  # pypdf raises many kinds of error on crafted files
        raise _broken(AttachmentKind.pdf, field_name) from None
    return "\n".join(parts)


_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
_DOCX_PARTS = re.compile(
    r"^(word/(document|header\d*|footer\d*|footnotes|endnotes)\.xml|docProps/core\.xml)$"
)


def _xml_lines(xml: bytes) -> Iterable[str]:
    root = ElementTree.fromstring(xml)
    paragraphs = list(root.iter(f"{_W}p"))
    if not paragraphs:  # docProps/core.xml: plain elements
        for element in root.iter():
            if element.text and element.text.strip():
                yield element.text
        return
    for paragraph in paragraphs:
        pieces = []
        for node in paragraph.iter():
            if node.tag == f"{_W}t" and node.text:
                pieces.append(node.text)
            elif node.tag in (f"{_W}tab", f"{_W}br"):
                pieces.append("\n" if node.tag == f"{_W}br" else "\t")
        yield "".join(pieces)


def _docx_text(data: bytes, limits: AttachmentLimits, field_name: str) -> str:
    lines: list[str] = []
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            parts = [i for i in archive.infolist() if _DOCX_PARTS.match(i.filename)]
            # document first, so the text reads in order; headers and footers carry stamps too
            parts.sort(key=lambda i: (i.filename != "word/document.xml", i.filename))
            budget = limits.max_docx_xml_bytes
            for info in parts:
                if info.file_size > budget:
                    raise Invalid("Tệp DOCX giải nén quá lớn", field=field_name, code="too_large")
                with archive.open(info) as handle:
                    xml = handle.read(budget + 1)
                if len(xml) > budget:  # the header lied about the size
                    raise Invalid("Tệp DOCX giải nén quá lớn", field=field_name, code="too_large")
                budget -= len(xml)
                lines.extend(_xml_lines(xml))
    except Invalid:
        raise
    except Exception:  # bad zip, bad XML, bad compression
        raise _broken(AttachmentKind.docx, field_name) from None
    return "\n".join(lines)


def _png_text(data: bytes, field_name: str) -> str:
    texts: list[str] = []
    pos = len(_PNG_SIGNATURE)
    seen_header = seen_end = False
    while pos + 12 <= len(data):
        length, chunk_type = struct.unpack(">I4s", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + length]
        crc_bytes = data[pos + 8 + length : pos + 12 + length]
        if len(body) != length or len(crc_bytes) != 4:
            break
        if zlib.crc32(chunk_type + body) != struct.unpack(">I", crc_bytes)[0]:
            raise _broken(AttachmentKind.png, field_name)
        if not seen_header:
            if chunk_type != b"IHDR" or length != 13:
                raise _broken(AttachmentKind.png, field_name)
            seen_header = True
        if chunk_type == b"tEXt":
            texts.append(body.partition(b"\0")[2].decode("latin-1"))
        elif chunk_type == b"iTXt":
            _, _, rest = body.partition(b"\0")
            if len(rest) >= 2 and rest[0] == 0:  # uncompressed
                text = rest[2:].split(b"\0", 2)
                if len(text) == 3:
                    texts.append(text[2].decode("utf-8", "replace"))
        elif chunk_type == b"IEND":
            seen_end = True
            break
        pos += 12 + length
    if not (seen_header and seen_end):
        raise _broken(AttachmentKind.png, field_name)
    return "\n".join(texts)


def _jpeg_text(data: bytes, field_name: str) -> str:
    texts: list[str] = []
    pos = 2
    seen_frame = False
    while True:
        if pos + 4 > len(data) or data[pos] != 0xFF:
            raise _broken(AttachmentKind.jpeg, field_name)
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        if length < 2 or pos + 2 + length > len(data):
            raise _broken(AttachmentKind.jpeg, field_name)
        if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF):
            seen_frame = True
        elif marker == 0xFE:
            texts.append(data[pos + 4 : pos + 2 + length].decode("utf-8", "replace"))
        elif marker == 0xDA:  # start of scan: the image data follows
            break
        pos += 2 + length
    if not seen_frame or b"\xff\xd9" not in data[pos:]:
        raise _broken(AttachmentKind.jpeg, field_name)
    return "\n".join(texts)


# --- classification markings ----------------------------------------------

_STAMPS = ("TUYỆT MẬT", "TỐI MẬT", "BÍ MẬT NHÀ NƯỚC", "TÀI LIỆU MẬT", "MẬT")
_STAMP_LINE = re.compile(
    r"^(?:ĐỘ MẬT\s*[:：]?\s*)?(" + "|".join(_STAMPS) + r")$",
)
# The field stands apart: at the start of a line or after a wide gap (a form's layout),
# its value ending the line or followed by another gap. Prose ("ba độ mật: tuyệt mật,
# tối mật và mật") runs on with single spaces and punctuation.
_FIELD = re.compile(
    r"(?:^|[ \t]{2,}|\t)độ[ \t]+mật[ \t]*[:：][ \t]*(tuyệt[ \t]+mật|tối[ \t]+mật|mật)[ \t]*(?:$|[ \t]{2,}|\t)",
    re.IGNORECASE | re.MULTILINE,
)
_EDGE = " \t\r\f\v\"'“”‘’«»()[]{}<>*_-–—=|.:;,!#~•·■□▪"


def find_classification_marking(text: str | None) -> str | None:
    """The secrecy marking `text` bears ("MẬT", "TỐI MẬT", …), or None (rule above)."""
    if not text:
        return None
    text = unicodedata.normalize("NFC", text)
    found = _FIELD.search(text)
    if found:
        return " ".join(found.group(1).split()).upper()
    for raw in text.splitlines():
        line = " ".join(raw.strip(_EDGE).split())
        if not line or len(line) > 40 or line != line.upper():
            continue
        stamp = _STAMP_LINE.match(line)
        if stamp:
            return stamp.group(1)
    return None


def refuse_if_classified(text: str | None, field_name: str, where: str = "Nội dung") -> None:
    marking = find_classification_marking(text)
    if marking:
        raise ClassifiedRefused(
            f"{where} mang dấu độ mật «{marking}»: tài liệu mật (mật, tối mật, tuyệt mật) "
            "không được đưa lên Sổ tay và đã không được lưu",
            field=field_name,
        )


# --- the one entry point ---------------------------------------------------


def inspect_attachment(
    data: bytes,
    *,
    allowed: Iterable[AttachmentKind] = tuple(AttachmentKind),
    limits: AttachmentLimits = DEFAULT_LIMITS,
    field_name: str = "file",
) -> InspectedAttachment:
    """Check an upload from its bytes; raise `Invalid` or `ClassifiedRefused`, else describe it.

    Writes nothing: call it before storing any byte.
    """
    allowed = frozenset(allowed)
    names = ", ".join(k.value.upper() for k in AttachmentKind if k in allowed)
    if not data:
        raise Invalid("Tệp đính kèm rỗng", field=field_name)
    kind = detect_kind(data)
    if kind is None or kind not in allowed:
        raise Invalid(
            f"Chỉ nhận tệp {names} (loại tệp được xác định theo nội dung, không theo tên tệp)",
            field=field_name,
            code="unsupported_type",
        )
    if len(data) > limits.max_bytes[kind]:
        raise Invalid(
            f"Tệp {kind.value.upper()} vượt quá giới hạn {limits.max_bytes[kind] / MB:g} MB",
            field=field_name,
            code="too_large",
        )
    if kind is AttachmentKind.pdf:
        text = _pdf_text(data, limits, field_name)
    elif kind is AttachmentKind.docx:
        text = _docx_text(data, limits, field_name)
    elif kind is AttachmentKind.png:
        text = _png_text(data, field_name)
    else:
        text = _jpeg_text(data, field_name)
    refuse_if_classified(text, field_name, where="Tệp đính kèm")
    return InspectedAttachment(
        kind=kind,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        text=text[: limits.max_text_chars],
    )


# --- well-formed samples, for demo data and tests ---------------------------


def build_pdf(lines: Iterable[str], title: str | None = None) -> bytes:
    """A small valid PDF whose text layer reads `lines` (any Unicode, via a ToUnicode map)."""
    lines = list(lines)
    codes: dict[str, int] = {}
    for ch in "".join(lines):
        if ch not in codes:
            if len(codes) >= 254:
                raise ValueError("too many distinct characters for one simple font")
            codes[ch] = len(codes) + 1
    cmap_entries = "\n".join(f"<{c:02X}> <{ord(ch):04X}>" for ch, c in codes.items())
    cmap = (
        "/CIDInit /ProcSet findresource begin 12 dict begin begincmap\n"
        "/CIDSystemInfo << /Registry (Adobe) /Ordering (UCS) /Supplement 0 >> def\n"
        "/CMapName /Sotay def /CMapType 2 def\n"
        "1 begincodespacerange <00> <FF> endcodespacerange\n"
        f"{len(codes)} beginbfchar\n{cmap_entries}\nendbfchar\n"
        "endcmap CMapName currentdict /CMap defineresource pop end end"
    ).encode()
    ops = ["BT", "/F1 12 Tf", "14 TL", "50 800 Td"]
    for line in lines:
        hex_text = "".join(f"{codes[ch]:02X}" for ch in line)
        ops.append(f"<{hex_text}> Tj T*")
    ops.append("ET")
    content = "\n".join(ops).encode()
    info = b"<< >>"
    if title is not None:
        info = b"<< /Title <FEFF" + title.encode("utf-16-be").hex().upper().encode() + b"> >>"
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] "
        b"/Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /FirstChar 1 /LastChar 255 "
        b"/Widths [" + b" ".join([b"500"] * 255) + b"] /ToUnicode 6 0 R >>",
        b"<< /Length " + str(len(content)).encode() + b" >>\nstream\n" + content + b"\nendstream",
        b"<< /Length " + str(len(cmap)).encode() + b" >>\nstream\n" + cmap + b"\nendstream",
        info,
    ]
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
    out += (
        f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R /Info {len(objects)} 0 R >>\n"
        f"startxref\n{xref}\n%%EOF\n"
    ).encode()
    return bytes(out)


def _docx_paragraphs(paragraphs: Iterable[str]) -> str:
    from xml.sax.saxutils import escape

    return "".join(
        f'<w:p><w:r><w:t xml:space="preserve">{escape(p)}</w:t></w:r></w:p>' for p in paragraphs
    )


def build_docx(paragraphs: Iterable[str], header: Iterable[str] = ()) -> bytes:
    """A small valid DOCX with `paragraphs` in its body and `header` lines in its page header."""
    ns = 'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"'
    rel_ns = 'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"'
    header = list(header)
    section = (
        '<w:sectPr><w:headerReference w:type="default" r:id="rIdH"/></w:sectPr>' if header else ""
    )
    files = {
        "[Content_Types].xml": (
            '<?xml version="1.0" encoding="UTF-8"?>'
            '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
            '<Default Extension="xml" ContentType="application/xml"/>'
            '<Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/>'
            '<Override PartName="/word/header1.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.header+xml"/>'
            "</Types>"
        ),
        "_rels/.rels": (
            '<?xml version="1.0" encoding="UTF-8"?>'
            '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
            '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="word/document.xml"/>'
            "</Relationships>"
        ),
        "word/document.xml": (
            f'<?xml version="1.0" encoding="UTF-8"?><w:document {ns} {rel_ns}><w:body>'
            f"{_docx_paragraphs(paragraphs)}{section}</w:body></w:document>"
        ),
    }
    if header:
        files["word/_rels/document.xml.rels"] = (
            '<?xml version="1.0" encoding="UTF-8"?>'
            '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
            '<Relationship Id="rIdH" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/header" Target="header1.xml"/>'
            "</Relationships>"
        )
        files["word/header1.xml"] = (
            f'<?xml version="1.0" encoding="UTF-8"?><w:hdr {ns}>{_docx_paragraphs(header)}</w:hdr>'
        )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, body in files.items():
            archive.writestr(name, body.encode())
    return buffer.getvalue()


def build_png(text: str | None = None) -> bytes:
    """A valid 1×1 PNG, with an optional iTXt comment chunk."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    out = _PNG_SIGNATURE + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0))
    if text is not None:
        out += chunk(b"iTXt", b"Comment\0\0\0\0\0" + text.encode())
    out += chunk(b"IDAT", zlib.compress(b"\x00\xff\xff\xff"))
    return out + chunk(b"IEND", b"")


def build_jpeg(comment: str | None = None) -> bytes:
    """A structurally valid baseline JPEG header and scan (tiny, grey), with an optional comment."""

    def segment(marker: int, body: bytes) -> bytes:
        return bytes([0xFF, marker]) + struct.pack(">H", len(body) + 2) + body

    out = b"\xff\xd8" + segment(0xE0, b"JFIF\0\x01\x01\0\0\x01\0\x01\0\0")
    if comment is not None:
        out += segment(0xFE, comment.encode())
    out += segment(0xDB, b"\0" + bytes([1] * 64))
    out += segment(0xC0, b"\x08\0\x01\0\x01\x01\x01\x11\0")
    out += segment(0xC4, b"\0" + bytes([1] + [0] * 15) + b"\0")
    out += segment(0xC4, b"\x10" + bytes([1] + [0] * 15) + b"\0")
    out += segment(0xDA, b"\x01\x01\0\0\x3f\0")
    return out + b"\0\0\xff\xd9"
