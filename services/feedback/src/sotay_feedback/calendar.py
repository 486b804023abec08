"""Working days in Vietnam and how times are shown: pure functions, no clock of their own.

A deadline of N working days counts from the day after receipt, skipping
Saturdays, Sundays and Vietnamese public holidays (PyPI `holidays`, country
VN: Tết, Giỗ Tổ Hùng Vương, 30/4, 1/5, Quốc khánh and the days observed in
lieu), and ends at midnight, Hà Nội time, after its last day.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import holidays

VN = ZoneInfo("Asia/Ho_Chi_Minh")
_HOLIDAYS = holidays.country_holidays("VN")  # years are added on first look-up


def local(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(VN)


def date_vn(moment: datetime) -> str:
    return local(moment).strftime("%d/%m/%Y")


def datetime_vn(moment: datetime) -> str:
    return local(moment).strftime("%H:%M ngày %d/%m/%Y")


def is_working_day(day: date) -> bool:
    return day.weekday() < 5 and day not in _HOLIDAYS


def add_working_days(start: date, days: int) -> date:
    """The `days`-th working day after `start` (`start` itself not counted); `start` for 0."""
    day = start
    counted = 0
    while counted < days:
        day += timedelta(days=1)
        if is_working_day(day):
            counted += 1
    return day


def end_of(day: date) -> datetime:
    """Midnight after `day` in Hà Nội, in UTC."""
    return datetime.combine(day + timedelta(days=1), time(), VN).astimezone(UTC)


def deadline_after(
    received_at: datetime, days: int, reminder_days: int
) -> tuple[datetime, datetime]:
    """(deadline, when to remind) for something received at `received_at`."""
    received = local(received_at).date()
    deadline = end_of(add_working_days(received, days))
    remind = end_of(add_working_days(received, max(days - reminder_days, 0)))
    return deadline, min(remind, deadline)
