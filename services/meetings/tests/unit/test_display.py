"""Times for people: Asia/Ho_Chi_Minh, dd/mm/yyyy; a time without a zone is Vietnam's."""

from datetime import UTC, datetime

from sotay_meetings.display import as_utc, date_vn, datetime_vn, month_key


def test_a_naive_time_is_vietnam_time() -> None:
    assert as_utc(datetime(2026, 12, 3, 19, 30)) == datetime(2026, 12, 3, 12, 30, tzinfo=UTC)


def test_dates_are_shown_day_first_in_vietnam_time() -> None:
    late_utc = datetime(2026, 11, 30, 18, 0, tzinfo=UTC)  # already 1 December in Hà Nội
    assert date_vn(late_utc) == "01/12/2026"
    assert datetime_vn(late_utc) == "01:00 ngày 01/12/2026"
    assert month_key(late_utc) == (2026, 12)
