"""Session rules, CSRF and page shaping: pure functions, no servers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from starlette.datastructures import FormData

from sotay_platform.auth import Grant, Role, TokenIssuer
from sotay_web import views
from sotay_web.core import safe_next
from sotay_web.sessions import (
    apply_tokens,
    csrf_ok,
    needs_refresh,
    new_session,
    signed_in,
    ttl_seconds,
)

ISSUER = TokenIssuer.generate()


def tokens(expires_in: int = 600, refresh_in: int = 30 * 86400, must_change: bool = False) -> dict:
    access = ISSUER.issue(
        "m1",
        [Grant(Role.member, "CB1"), Grant(Role.branch_secretary, "CB1")],
        member_id="m1",
    )
    return {
        "access_token": access,
        "expires_in": expires_in,
        "refresh_token": "sid.secret",
        "refresh_expires_in": refresh_in,
        "member_id": "m1",
        "must_change_password": must_change,
    }


def test_signing_in_gives_a_new_id_and_csrf_token() -> None:
    anonymous = new_session(1000.0)
    session = signed_in(anonymous, tokens(), 1000.0)
    assert session.sid != anonymous.sid and session.csrf != anonymous.csrf
    assert session.member_id == "m1" and session.signed_in
    assert session.secretary_units == ["CB1"] and session.admin_units == []


def test_session_lives_as_long_as_the_refresh_token() -> None:
    session = signed_in(new_session(0), tokens(refresh_in=3600), 0)
    assert ttl_seconds(session, 600, anonymous_ttl=7200) == 3000
    assert ttl_seconds(new_session(0), 600, anonymous_ttl=7200) == 7200
    assert ttl_seconds(session, 5000, anonymous_ttl=7200) == 1  # never a negative TTL


def test_refresh_shortly_before_the_access_token_expires() -> None:
    session = signed_in(new_session(0), tokens(expires_in=600), 0)
    assert not needs_refresh(session, 100, margin=60)
    assert needs_refresh(session, 545, margin=60)
    assert not needs_refresh(new_session(0), 10_000, margin=60)  # nothing to refresh


def test_temporary_password_is_carried() -> None:
    session = new_session(0)
    apply_tokens(session, tokens(must_change=True), 0)
    assert session.must_change_password


def test_csrf_token_must_match() -> None:
    session = new_session(0)
    assert csrf_ok(session, session.csrf)
    assert not csrf_ok(session, None)
    assert not csrf_ok(session, "")
    assert not csrf_ok(session, session.csrf[:-1] + "x")


def test_only_local_paths_after_sign_in() -> None:
    assert safe_next("/hop/1?x=2") == "/hop/1?x=2"
    for hostile in ("https://evil.example", "//evil.example", "/\\evil.example", "", None):
        assert safe_next(hostile) == "/"


def test_quiz_form_to_answers() -> None:
    form = FormData(
        [("question", "q1"), ("question", "q2"), ("q-q1", "a"), ("q-q2", "b"), ("q-q2", "c")]
    )
    assert views.quiz_answers(form) == [
        {"question_id": "q1", "option_ids": ["a"]},
        {"question_id": "q2", "option_ids": ["b", "c"]},
    ]
    assert views.quiz_answers(FormData([("question", "q1")])) == [
        {"question_id": "q1", "option_ids": []}
    ]


def test_upcoming_meetings_soonest_first_without_the_finished() -> None:
    now = datetime(2026, 12, 1, 12, tzinfo=UTC)

    def inv(mid: str, days: float, status: str = "convened") -> dict:
        start = now + timedelta(days=days)
        return {
            "meeting_id": mid,
            "starts_at": start.isoformat(),
            "ends_at": (start + timedelta(hours=2)).isoformat(),
            "meeting_status": status,
        }

    found = views.upcoming(
        [inv("late", 5), inv("soon", 1), inv("gone", -2), inv("off", 2, "cancelled")], now
    )
    assert [i["meeting_id"] for i in found] == ["soon", "late"]


def test_campaigns_due_are_open_and_unfinished() -> None:
    campaigns = [
        {"campaign_id": "b", "status": "open", "deadline": "2026-12-20", "progress": {}},
        {"campaign_id": "a", "status": "open", "deadline": "2026-12-10", "progress": {}},
        {
            "campaign_id": "done",
            "status": "open",
            "deadline": "2026-12-01",
            "progress": {"studied": True},
        },
        {"campaign_id": "old", "status": "expired", "deadline": "2026-11-01", "progress": {}},
    ]
    assert [c["campaign_id"] for c in views.campaigns_due(campaigns)] == ["a", "b"]


def test_dates_in_vietnam_time() -> None:
    assert views.vn_date("2026-12-31T18:30:00Z") == "01/01/2027"
    assert views.vn_datetime("2026-12-03T12:30:00+00:00") == "19:30 03/12/2026"
    assert views.vn_date(None) == "" and views.vn_date("not a date") == ""
    assert views.score(85.5) == "85,5" and views.score(100.0) == "100" and views.score(None) == "—"


def test_check_in_offered_around_the_meeting_only() -> None:
    start = datetime(2026, 12, 3, 12, 30, tzinfo=UTC)
    meeting = {
        "starts_at": start.isoformat(),
        "ends_at": (start + timedelta(hours=2)).isoformat(),
        "status": "convened",
    }
    assert not views.checkin_open(meeting, start - timedelta(minutes=31))
    assert views.checkin_open(meeting, start - timedelta(minutes=29))
    assert views.checkin_open(meeting, start + timedelta(hours=2, minutes=29))
    assert not views.checkin_open(meeting, start + timedelta(hours=2, minutes=31))
    assert not views.checkin_open(meeting | {"status": "closed"}, start)
