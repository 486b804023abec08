"""The moment an offline check-in's code was typed, as the web front tells meetings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sotay_web.member import typed_moment

NOW = datetime(2026, 12, 1, 12, 30, tzinfo=UTC)


def test_the_phone_clock_is_trusted_only_for_how_long_it_waited() -> None:
    # The phone's clock is an hour fast; it typed the code 5 minutes before sending.
    moment = typed_moment("2026-12-01T13:25:00Z", "2026-12-01T13:30:00Z", NOW)
    assert moment is not None
    assert datetime.fromisoformat(moment) == NOW - timedelta(minutes=5)


def test_sent_before_typed_counts_as_now() -> None:
    moment = typed_moment("2026-12-01T12:31:00+00:00", "2026-12-01T12:30:00+00:00", NOW)
    assert moment is not None and datetime.fromisoformat(moment) == NOW


def test_without_sent_at_the_phone_moment_goes_for_meetings_to_judge() -> None:
    assert typed_moment("2026-12-01T19:05:00+07:00", "", NOW) == "2026-12-01T19:05:00+07:00"
    assert typed_moment("not a time", "2026-12-01T12:30:00Z", NOW) == "not a time"


def test_an_online_check_in_has_no_typed_moment() -> None:
    assert typed_moment("", "", NOW) is None
