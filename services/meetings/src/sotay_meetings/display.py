"""How times are shown to people: Asia/Ho_Chi_Minh, dd/mm/yyyy."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

VN = ZoneInfo("Asia/Ho_Chi_Minh")


def as_utc(value: datetime) -> datetime:
    """A naive time is taken as Vietnam's local time (what a secretary types)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=VN)
    return value.astimezone(UTC)


def local(value: datetime) -> datetime:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(VN)


def date_vn(value: datetime) -> str:
    return local(value).strftime("%d/%m/%Y")


def datetime_vn(value: datetime) -> str:
    """'19:30 ngày 01/12/2026' reads naturally in a notice."""
    return local(value).strftime("%H:%M ngày %d/%m/%Y")


def short_vn(value: datetime) -> str:
    return local(value).strftime("%H:%M %d/%m/%Y")


def month_key(value: datetime) -> tuple[int, int]:
    """(year, month) of a meeting, in Vietnam's calendar."""
    moment = local(value)
    return moment.year, moment.month
