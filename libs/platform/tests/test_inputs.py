"""The shared input types: what they accept, the one form they return, what they refuse."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any

import pytest
from pydantic import BaseModel, ValidationError

from sotay_platform.inputs import (
    CitizenId,
    Code,
    EventDatetime,
    Items,
    Limit,
    Line,
    LongText,
    Month,
    Name,
    Offset,
    Paragraph,
    PartyCardNo,
    Password,
    PastDate,
    Phone,
    Text,
    Year,
    ascii_digits,
    citizen_id_problem,
    fold,
    today_in_vietnam,
)


class Form(BaseModel):
    name: Name | None = None
    line: Line | None = None
    para: Paragraph | None = None
    long: LongText | None = None
    password: Password | None = None
    short: Annotated[str, Text(5, min_length=0)] = ""
    citizen_id: CitizenId | None = None
    phone: Phone | None = None
    card: PartyCardNo | None = None
    code: Code | None = None
    born: PastDate | None = None
    at: EventDatetime | None = None
    month: Month | None = None
    offset: Offset = 0
    limit: Limit = 10
    year: Year = 2026
    tags: Annotated[list[Line], Items(3)] = []


def ok(**fields: Any) -> Form:
    return Form.model_validate(fields)


def refused(raw: str | dict[str, Any]) -> dict[str, Any]:
    """The one error of a body parsed as FastAPI parses it (json.loads, then validation)."""
    data = json.loads(raw) if isinstance(raw, str) else raw
    with pytest.raises(ValidationError) as exc:
        Form.model_validate(data)
    errors = exc.value.errors()
    assert len(errors) == 1, errors
    return {"field": ".".join(map(str, errors[0]["loc"])), **errors[0]}


def test_fullwidth_and_arabic_indic_citizen_ids_equal_their_ascii_twin() -> None:
    ascii_twin = ok(citizen_id="058075245783").citizen_id
    assert ok(citizen_id="058075２４５７８３").citizen_id == ascii_twin
    assert ok(citizen_id="٠٥٨٠٧٥٢٤٥٧٨٣").citizen_id == ascii_twin
    assert ok(citizen_id="058 075 245 783").citizen_id == ascii_twin
    for bad in ("05807524578", "05807524578x", "000075245783", "0580752457830"):
        assert refused({"citizen_id": bad})["field"] == "citizen_id"


def test_phones_have_one_canonical_form() -> None:
    forms = ["0912345678", "+84 912 345 678", "84912345678", "091.234.5678", "０９１２３４５６７８"]
    assert {ok(phone=p).phone for p in forms} == {"0912345678"}
    for bad in ("0212345678", "+1 912 345 678", "09123456789", "09l2345678"):
        err = refused({"phone": bad})
        assert err["field"] == "phone" and "số điện thoại" in err["msg"].lower()


def test_party_card_numbers_keep_their_digits_only() -> None:
    assert ok(card="01.234.567").card == ok(card="０１２３４５６７").card == "01234567"
    assert refused({"card": "AB12"})["field"] == "card"
    assert refused({"card": "123"})["field"] == "card"


def test_ascii_digits() -> None:
    assert ascii_digits("１２-٣", separators="-") == "123"
    with pytest.raises(ValueError):
        ascii_digits("12a")


def test_text_is_nfc_trimmed_and_collapsed() -> None:
    decomposed = "  Nguye\u0302\u0303n   Va\u0306n  An "
    assert ok(name=decomposed).name == "Nguyễn Văn An"
    assert ok(para="Dòng 1\r\nDòng 2\n\tthụt lề  ").para == "Dòng 1\nDòng 2\n\tthụt lề"
    assert ok(password="  mật khẩu  ").password == "  mật khẩu  "  # as typed


@pytest.mark.parametrize("field", ["name", "line", "para", "long", "password"])
def test_a_lone_surrogate_is_refused_naming_the_field(field: str) -> None:
    err = refused(f'{{"{field}": "ab\\ud800cd"}}')
    assert err["field"] == field and "Unicode" in err["msg"]


def test_control_characters_are_refused_newlines_only_in_multiline_text() -> None:
    assert refused({"name": "a\nb"})["type"] == "sotay_text_invalid"
    assert refused({"name": "a\tb"})["type"] == "sotay_text_invalid"
    assert refused({"para": "a\x00b"})["field"] == "para"
    assert refused({"line": "abc\u202edcba"})["field"] == "line"  # a bidi override
    assert ok(para="a\nb").para == "a\nb"


def test_every_string_is_bounded() -> None:
    assert refused({"line": "x" * 501})["type"] == "sotay_text_too_long"
    assert refused({"long": "x" * 1_000_000})["msg"] == "Dài quá 100000 ký tự"
    assert refused({"name": "   "})["msg"] == "Không được để trống"
    assert ok(short="").short == ""
    # Decomposed Vietnamese at the bound still fits once composed.
    assert ok(short="e\u0302\u0301" * 5).short == "ế" * 5


def test_lists_are_bounded() -> None:
    assert ok(tags=["a", "b", "c"]).tags == ["a", "b", "c"]
    assert refused({"tags": ["a"] * 4})["type"] == "too_long"
    assert refused({"tags": ["ok", "x" * 501]})["field"] == "tags.1"


def test_codes_are_ascii() -> None:
    assert ok(code="HN.BD.CB01").code == "HN.BD.CB01"
    assert ok(code="ＨＮ.ＢＤ").code == "HN.BD"  # fullwidth folds to ASCII
    for bad in ("Hà-Nội", ".HN", "a b", "x" * 65, ""):
        assert refused({"code": bad})["field"] == "code"


def test_huge_integers_are_refused() -> None:
    for field in ("offset", "limit", "year"):
        assert refused({field: 10**30})["field"] == field
    assert refused({"offset": -1})["type"] == "greater_than_equal"
    assert refused({"year": 1999})["field"] == "year"
    assert ok(offset="20", limit=500).offset == 20


@pytest.mark.parametrize(
    "value", ["0001-01-01T00:00:00", "9999-12-31T23:00:00-05:00", "1999-12-31T12:00:00+00:00"]
)
def test_calendar_edge_datetimes_are_refused_never_overflow(value: str) -> None:
    err = refused({"at": value})
    assert err["field"] == "at" and err["type"] == "sotay_datetime_out_of_range"


def test_event_datetimes_are_aware_utc_and_naive_means_vietnam() -> None:
    at = ok(at="2026-12-03T19:30:00").at
    assert at == datetime(2026, 12, 3, 12, 30, tzinfo=UTC) and at.tzinfo is UTC
    assert ok(at="2026-12-03T19:30:00+07:00").at == at
    assert ok(at="2100-12-31T23:59:00+07:00").at is not None
    assert refused({"at": "2101-01-01T00:00:00+07:00"})["field"] == "at"


def test_past_dates() -> None:
    assert ok(born="15/08/1975").born == ok(born="1975-08-15").born == date(1975, 8, 15)
    assert ok(born="15.08.1975").born == date(1975, 8, 15)
    assert ok(born=today_in_vietnam() + timedelta(days=1)).born is not None
    too_late = (today_in_vietnam() + timedelta(days=2)).strftime("%d/%m/%Y")
    for bad in ("31/02/2000", "01/01/1899", "0001-01-01", "9999-12-31", too_late, "hôm qua"):
        err = refused({"born": bad})
        assert err["field"] == "born" and "Ngày" in err["msg"]


def test_months() -> None:
    assert ok(month="2026-11").month == ok(month="11/2026").month == "2026-11"
    for bad in ("0000-01", "9999-12", "2026-13", "2026-1", "1999-12", "٢٠٢٦-١١"):
        assert refused({"month": bad})["field"] == "month"


def test_citizen_id_against_birth_date_and_gender() -> None:
    assert citizen_id_problem("038075001234", date(1975, 8, 15), female=False) is None
    assert citizen_id_problem("038175001234", date(1975, 8, 15), female=True) is None
    assert "giới tính" in str(citizen_id_problem("038075001234", date(1975, 8, 15), True))
    assert "năm sinh" in str(citizen_id_problem("038076001234", date(1975, 8, 15), None))
    assert "thế kỷ" in str(citizen_id_problem("038275001234", date(1975, 8, 15), None))


def test_json_schema_documents_the_bounds() -> None:
    props = Form.model_json_schema()["properties"]
    line = props["tags"]
    assert (line["maxItems"], line["items"]["maxLength"]) == (3, 500)
    assert props["offset"]["maximum"] == 1_000_000
    assert props["citizen_id"]["anyOf"][0]["pattern"] == "^[0-9]{12}$"


def test_fold() -> None:
    assert fold("  Số_định   danh Công dân ") == "so dinh danh cong dan"
    assert fold("ĐẢNG") == "dang"
