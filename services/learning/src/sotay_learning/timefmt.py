"""Times as members read them: dd/mm/yyyy, in Asia/Ho_Chi_Minh."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

VN = ZoneInfo("Asia/Ho_Chi_Minh")


def utc_now() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """A naive time is read as Vietnamese local time; an aware one is converted."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=VN)
    return value.astimezone(UTC)


def vn_date(value: datetime) -> str:
    return as_utc(value).astimezone(VN).strftime("%d/%m/%Y")


def vn_datetime(value: datetime) -> str:
    """e.g. "17:00 ngày 31/12/2026"."""
    local = as_utc(value).astimezone(VN)
    return f"{local:%H:%M} ngày {local:%d/%m/%Y}"
