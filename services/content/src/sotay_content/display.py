"""How dates are shown to people: Asia/Ho_Chi_Minh, dd/mm/yyyy."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

VN = ZoneInfo("Asia/Ho_Chi_Minh")


def date_vn(value: datetime | date | str | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = date.fromisoformat(value)
    if isinstance(value, datetime):
        if value.tzinfo is None:  # stored moments are UTC
            value = value.replace(tzinfo=UTC)
        return value.astimezone(VN).strftime("%d/%m/%Y")
    return value.strftime("%d/%m/%Y")


def datetime_vn(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(VN).strftime("%H:%M ngày %d/%m/%Y")
