"""Working days in Vietnam: weekends and public holidays (Tết, Giỗ Tổ, 30/4, 1/5, 2/9) skipped."""

from datetime import UTC, date, datetime

from sotay_feedback.calendar import add_working_days, date_vn, deadline_after, is_working_day


def test_weekends_are_not_working_days() -> None:
    assert add_working_days(date(2026, 12, 4), 1) == date(2026, 12, 7)  # Friday → Monday
    assert add_working_days(date(2026, 12, 5), 0) == date(2026, 12, 5)


def test_tet_is_skipped() -> None:
    # Tết Bính Ngọ: 16–20/02/2026, Monday to Friday.
    assert not is_working_day(date(2026, 2, 17))
    assert add_working_days(date(2026, 2, 13), 1) == date(2026, 2, 23)


def test_hung_kings_observed_day_and_the_may_holidays_are_skipped() -> None:
    # Giỗ Tổ fell on Sunday 26/04/2026, observed Monday 27/04; then 30/04 and 01/05.
    assert add_working_days(date(2026, 4, 24), 1) == date(2026, 4, 28)
    assert add_working_days(date(2026, 4, 24), 3) == date(2026, 5, 4)


def test_national_day() -> None:
    assert not is_working_day(date(2026, 9, 2))
    assert add_working_days(date(2026, 8, 31), 1) == date(2026, 9, 3)


def test_deadline_ends_at_midnight_in_hanoi_and_the_reminder_comes_before() -> None:
    received = datetime(2026, 2, 13, 3, 0, tzinfo=UTC)  # 10:00 Friday in Hà Nội
    deadline, remind = deadline_after(received, 3, 1)
    # Working days after Tết: 23, 24, 25/02; the deadline is midnight after 25/02.
    assert deadline == datetime(2026, 2, 25, 17, 0, tzinfo=UTC)
    assert remind == datetime(2026, 2, 24, 17, 0, tzinfo=UTC)
    assert date_vn(deadline - (deadline - remind) / 2) == "25/02/2026"


def test_a_late_evening_receipt_counts_from_its_local_day() -> None:
    received = datetime(2026, 12, 3, 18, 30, tzinfo=UTC)  # 01:30 Friday 04/12 in Hà Nội
    deadline, remind = deadline_after(received, 1, 0)
    assert deadline == datetime(2026, 12, 7, 17, 0, tzinfo=UTC)  # end of Monday 07/12
    assert remind == deadline
