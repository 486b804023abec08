"""Shared input types: declare a field's rule once, get a Vietnamese 422 naming the field.

Every request model (and event payload) field that comes from a person uses one of these
instead of a bare `str`, `int`, `date` or `datetime`, so hostile or careless input is refused
at the boundary and never reaches a 500, a unique index or Kafka as sent:

    from typing import Annotated
    from sotay_platform.inputs import (
        CitizenId, Code, EventDatetime, Items, Line, Limit, Month, Name, Offset, PastDate,
        Phone, Text,
    )

    class ConveneMeeting(BaseModel):
        unit_id: Code
        title: Annotated[str, Text(300)]             # one line, 1..300 characters
        agenda: Annotated[list[Line], Items(50)] = []  # at most 50 lines
        notes: Annotated[str, Text(20_000, min_length=0, multiline=True)] = ""
        starts_at: EventDatetime                     # aware, 2000..2100, returned in UTC

    @router.get("/members")
    async def members(offset: Offset = 0, limit: Limit = 100, month: Month | None = None): ...

Text (`Text`, `Line`, `Name`, `Paragraph`, `LongText`): lone surrogates, control characters
(newline and tab only in multi-line text) and bidi overrides are refused, the text is NFC
normalised, trimmed, and single-line text has its runs of spaces collapsed; the length is
counted after that. `Password` refuses the same characters but keeps the text as typed.

Identifiers (`CitizenId`, `Phone`, `PartyCardNo`) accept digits of any script (fullwidth
`２`, Arabic-Indic `٤`) and separators, and return ONE canonical ASCII form, so a unique
index sees one citizen ID however it was typed; `ascii_digits()` is the function behind
them. `Code` (unit codes, ids chosen by a person) is ASCII letters, digits and `._-`
after NFKC (fullwidth letters fold to ASCII).

Dates accept dd/mm/yyyy (also with `-` or `.`) or yyyy-mm-dd and are bounded for their
meaning (`PastDate`: 1900 to tomorrow in Vietnam; `EventDate`/`EventDatetime`: 2000..2100).
Datetimes without an offset are Vietnamese time; calendar ends never raise OverflowError.
Integers are bounded (`Offset`, `Limit`, `Year`; otherwise `Annotated[int, Interval(ge=,
le=)]`), lists by `Items(n)`.

Outside pydantic, `clean_text()`, `ascii_digits()`, `fold()` and `citizen_id_problem()` are
plain functions; they raise `ValueError` with a Vietnamese message.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from annotated_types import Interval, Len
from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, PydanticCustomError, core_schema

VIETNAM = ZoneInfo("Asia/Ho_Chi_Minh")

# C0 and C1 controls, DEL, bidi embeddings/overrides/isolates (they disguise text), the line and
# paragraph separators and the two non-characters. Multi-line text may hold \t, \n and \r.
_FORBIDDEN_LINE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufffe\uffff]"
)
_FORBIDDEN_MULTI = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufffe\uffff]"
)


def _error(kind: str, message: str, **ctx: Any) -> PydanticCustomError:
    return PydanticCustomError(f"sotay_{kind}", message, ctx or None)


def _ddmmyyyy(day: date) -> str:
    return day.strftime("%d/%m/%Y")


def clean_text(
    value: str,
    *,
    multiline: bool = False,
    normalise: bool = True,
) -> str:
    """NFC, trimmed, spaces collapsed (single-line); raises ValueError on characters refused."""
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("Văn bản chứa ký tự Unicode không hợp lệ (nửa cặp thay thế)") from None
    bad = (_FORBIDDEN_MULTI if multiline else _FORBIDDEN_LINE).search(value)
    if bad:
        what = "xuống dòng hoặc tab" if bad.group() in "\t\n\r" else "ký tự điều khiển"
        raise ValueError(f"Văn bản chứa {what} không được phép ở vị trí {bad.start() + 1}")
    if not normalise:
        return value
    if not value.isascii():
        value = unicodedata.normalize("NFC", value)
    if multiline:
        return value.replace("\r\n", "\n").replace("\r", "\n").strip()
    return " ".join(value.split())


@dataclass(frozen=True)
class Text:
    """`Annotated[str, Text(300)]`: bounded, cleaned text (see the module docstring)."""

    max_length: int
    min_length: int = 1
    multiline: bool = False
    normalise: bool = True

    def validate(self, value: str) -> str:
        # NFC may shorten decomposed Vietnamese; anything far over the bound is refused unread.
        if len(value) > 4 * self.max_length + 16:
            raise _too_long(self.max_length)
        try:
            value = clean_text(value, multiline=self.multiline, normalise=self.normalise)
        except ValueError as exc:
            raise _error("text_invalid", str(exc)) from None
        if len(value) > self.max_length:
            raise _too_long(self.max_length)
        if len(value) < self.min_length:
            if not value:
                raise _error("text_empty", "Không được để trống")
            raise _error("text_too_short", "Cần ít nhất {min} ký tự", min=self.min_length)
        return value

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        return core_schema.no_info_after_validator_function(self.validate, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        js = handler(schema)
        js.update(maxLength=self.max_length, minLength=self.min_length)
        return js


def _too_long(limit: int) -> PydanticCustomError:
    return _error("text_too_long", "Dài quá {max} ký tự", max=limit)


Line = Annotated[str, Text(500)]
Name = Annotated[str, Text(200)]
Paragraph = Annotated[str, Text(5_000, multiline=True)]
LongText = Annotated[str, Text(100_000, multiline=True)]
Password = Annotated[str, Text(256, normalise=False)]


def Items(max_items: int, min_items: int = 0) -> Len:
    """`Annotated[list[Line], Items(50)]`: a list of at most `max_items`."""
    return Len(min_items, max_items)


# --- identifiers ----------------------------------------------------------------


def ascii_digits(value: str, separators: str = "") -> str:
    """The ASCII digits of `value` in any script (NFKC, then each digit's value);
    `separators` are dropped; anything else raises ValueError."""
    text = unicodedata.normalize("NFKC", value)
    out: list[str] = []
    for char in text:
        if "0" <= char <= "9":
            out.append(char)
        elif char in separators:
            continue
        else:
            digit = unicodedata.digit(char, None)
            if digit is None:
                raise ValueError("Chỉ được gồm chữ số")
            out.append(str(digit))
    return "".join(out)


@dataclass(frozen=True, eq=False)  # hashed by identity: its schema is a dict
class _Identifier:
    clean: Callable[[str], str]
    schema: dict[str, Any]

    def validate(self, value: str) -> str:
        if len(value) > 64:
            raise _too_long(64)
        try:
            return self.clean(value)
        except ValueError as exc:
            raise _error("identifier_invalid", str(exc)) from None

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        return core_schema.no_info_after_validator_function(self.validate, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        js = handler(schema)
        js.update(self.schema)
        return js


def _citizen_id(value: str) -> str:
    try:
        digits = ascii_digits(value, " .-")
    except ValueError:
        raise ValueError("Số định danh công dân chỉ gồm chữ số") from None
    if len(digits) != 12:
        raise ValueError("Số định danh công dân phải gồm đúng 12 chữ số")
    if not 1 <= int(digits[:3]) <= 96:
        raise ValueError("Số định danh công dân có mã tỉnh (3 số đầu) không hợp lệ")
    return digits


def citizen_id_problem(citizen_id: str, birth_date: date, female: bool | None) -> str | None:
    """What a valid 12-digit citizen ID contradicts (Circular 59/2021/TT-BCA: the 4th digit
    is the century and gender, the 5th and 6th the birth year), or None."""
    century = birth_date.year // 100 - 19  # 1900s -> 0, 2000s -> 1 ...
    code = int(citizen_id[3])
    if not 0 <= century <= 4 or code // 2 != century:
        return "Số định danh công dân không khớp với thế kỷ của năm sinh"
    if female is not None and code % 2 != female:
        return "Số định danh công dân không khớp với giới tính"
    if citizen_id[4:6] != f"{birth_date.year % 100:02d}":
        return "Số định danh công dân không khớp với năm sinh"
    return None


_MOBILE = re.compile(r"0[35789][0-9]{8}")


def _phone(value: str) -> str:
    text = unicodedata.normalize("NFKC", value).strip()
    plus = text.startswith("+")
    try:
        digits = ascii_digits(text[1:] if plus else text, " .-()")
    except ValueError:
        raise ValueError("Số điện thoại chỉ gồm chữ số") from None
    if plus or (digits.startswith("84") and len(digits) == 11):
        if not digits.startswith("84"):
            raise ValueError("Chỉ nhận số điện thoại Việt Nam (+84)")
        digits = "0" + digits[2:]
    if not _MOBILE.fullmatch(digits):
        raise ValueError(
            "Số điện thoại phải là số di động Việt Nam gồm 10 chữ số, "
            "bắt đầu bằng 03, 05, 07, 08 hoặc 09"
        )
    return digits


def _party_card(value: str) -> str:
    try:
        digits = ascii_digits(value, " .-/")
    except ValueError:
        raise ValueError("Số thẻ đảng viên chỉ gồm chữ số (có thể có dấu chấm)") from None
    if not 4 <= len(digits) <= 20:
        raise ValueError("Số thẻ đảng viên gồm từ 4 đến 20 chữ số")
    return digits


_CODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def _code(value: str) -> str:
    code = unicodedata.normalize("NFKC", value).strip()
    if not _CODE.fullmatch(code):
        raise ValueError(
            "Mã chỉ gồm chữ cái không dấu, chữ số và dấu . _ -, bắt đầu bằng chữ hoặc số, "
            "tối đa 64 ký tự"
        )
    return code


# Canonical forms: 12 ASCII digits; 0xxxxxxxxx; the card's digits only; the code as typed.
CitizenId = Annotated[
    str,
    _Identifier(_citizen_id, {"pattern": "^[0-9]{12}$", "examples": ["038075001234"]}),
]
Phone = Annotated[
    str,
    _Identifier(_phone, {"pattern": "^0[35789][0-9]{8}$", "examples": ["0912345678"]}),
]
PartyCardNo = Annotated[
    str,
    _Identifier(_party_card, {"pattern": "^[0-9]{4,20}$", "examples": ["01234567"]}),
]
Code = Annotated[
    str,
    _Identifier(
        _code,
        {"pattern": "^[A-Za-z0-9][A-Za-z0-9._-]*$", "maxLength": 64, "examples": ["HN.BD.CB01"]},
    ),
]


# --- numbers ------------------------------------------------------------------

Offset = Annotated[int, Interval(ge=0, le=1_000_000)]
Limit = Annotated[int, Interval(ge=1, le=500)]
Year = Annotated[int, Interval(ge=2000, le=2100)]


# --- dates, datetimes, months -----------------------------------------------------


def today_in_vietnam() -> date:
    return datetime.now(VIETNAM).date()


_DMY = re.compile(r"([0-9]{1,2})[/.-]([0-9]{1,2})[/.-]([0-9]{4})")
_ISO_DATE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")


def _parse_day(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.date()
    if not isinstance(value, str):
        return value
    text = value.strip()
    try:
        if m := _DMY.fullmatch(text):
            return date(int(m[3]), int(m[2]), int(m[1]))
        if m := _ISO_DATE.fullmatch(text):
            return date(int(m[1]), int(m[2]), int(m[3]))
    except ValueError:
        pass
    raise _error("date_invalid", "Ngày không hợp lệ: cần dạng dd/mm/yyyy")


@dataclass(frozen=True)
class DateWithin:
    """`Annotated[date, DateWithin(date(1900, 1, 1), timedelta(days=1))]`: dd/mm/yyyy or
    yyyy-mm-dd, between `earliest` and `latest` (a timedelta: from today in Vietnam)."""

    earliest: date
    latest: date | timedelta

    def bounds(self) -> tuple[date, date]:
        latest = self.latest
        if isinstance(latest, timedelta):
            latest = today_in_vietnam() + latest
        return self.earliest, latest

    def validate(self, value: date) -> date:
        earliest, latest = self.bounds()
        if not earliest <= value <= latest:
            raise _error(
                "date_out_of_range",
                "Ngày phải trong khoảng {earliest} đến {latest}",
                earliest=_ddmmyyyy(earliest),
                latest=_ddmmyyyy(latest),
            )
        return value

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        return core_schema.no_info_before_validator_function(
            _parse_day, core_schema.no_info_after_validator_function(self.validate, handler(source))
        )

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {"type": "string", "format": "date", "examples": ["2026-12-03"]}


@dataclass(frozen=True)
class DatetimeWithin:
    """`Annotated[datetime, DatetimeWithin(2000, 2100)]`: ISO 8601, between the first and
    the last year (Vietnamese time); without an offset, Vietnamese time; returned in UTC."""

    first_year: int
    last_year: int

    def validate(self, value: datetime) -> datetime:
        out_of_range = _error(
            "datetime_out_of_range",
            "Thời điểm phải trong khoảng năm {first} đến năm {last}",
            first=self.first_year,
            last=self.last_year,
        )
        # The wall-clock year first: converting 0001-01-01 or 9999-12-31 would overflow.
        if not self.first_year - 1 <= value.year <= self.last_year + 1:
            raise out_of_range
        if value.tzinfo is None or value.utcoffset() is None:
            value = value.replace(tzinfo=VIETNAM)
        try:
            local = value.astimezone(VIETNAM)
        except OverflowError:
            raise out_of_range from None
        if not self.first_year <= local.year <= self.last_year:
            raise out_of_range
        return value.astimezone(UTC)

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        return core_schema.no_info_after_validator_function(self.validate, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        js = handler(schema)
        js["examples"] = ["2026-12-03T19:30:00+07:00"]
        return js


Date = Annotated[date, DateWithin(date(1900, 1, 1), date(2100, 12, 31))]
PastDate = Annotated[date, DateWithin(date(1900, 1, 1), timedelta(days=1))]
EventDate = Annotated[date, DateWithin(date(2000, 1, 1), date(2100, 12, 31))]
EventDatetime = Annotated[datetime, DatetimeWithin(2000, 2100)]

_MONTH = re.compile(r"([0-9]{4})-([0-9]{2})")
_MONTH_VN = re.compile(r"([0-9]{1,2})/([0-9]{4})")


def _month(value: str) -> str:
    text = value.strip()
    if m := _MONTH.fullmatch(text):
        year, month = int(m[1]), int(m[2])
    elif m := _MONTH_VN.fullmatch(text):
        year, month = int(m[2]), int(m[1])
    else:
        year, month = 0, 0
    if not (2000 <= year <= 2100 and 1 <= month <= 12):
        raise _error("month_invalid", "Tháng cần dạng YYYY-MM, từ 2000-01 đến 2100-12")
    return f"{year:04d}-{month:02d}"


class _MonthType:
    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        return core_schema.no_info_after_validator_function(_month, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        js = handler(schema)
        js.update(pattern="^(20[0-9]{2}|2100)-(0[1-9]|1[0-2])$", examples=["2026-11"])
        return js


Month = Annotated[str, _MonthType()]
"""'YYYY-MM' (also 'MM/YYYY'), 2000-01..2100-12, returned as 'YYYY-MM'."""


def month_start(month: str) -> datetime:
    """The first instant of a validated month, Vietnamese time (aware)."""
    return datetime.combine(date(int(month[:4]), int(month[5:7]), 1), time(), VIETNAM)


# --- matching -------------------------------------------------------------------


def fold(text: str) -> str:
    """Lower case, no diacritics, single spaces, `_` as a space: how labels and headers match."""
    text = unicodedata.normalize("NFD", text.replace("đ", "d").replace("Đ", "D"))
    text = "".join(c for c in text if unicodedata.category(c) != "Mn")
    return " ".join(text.lower().replace("_", " ").split())


__all__ = [
    "VIETNAM",
    "CitizenId",
    "Code",
    "Date",
    "DateWithin",
    "DatetimeWithin",
    "EventDate",
    "EventDatetime",
    "Interval",
    "Items",
    "Limit",
    "Line",
    "LongText",
    "Month",
    "Name",
    "Offset",
    "Paragraph",
    "PartyCardNo",
    "Password",
    "PastDate",
    "Phone",
    "Text",
    "Year",
    "ascii_digits",
    "citizen_id_problem",
    "clean_text",
    "fold",
    "month_start",
    "today_in_vietnam",
]
