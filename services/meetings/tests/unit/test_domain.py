"""The meeting's rules, without I/O: every refusal names its field."""

from datetime import UTC, datetime, timedelta

import pytest

from sotay_events.catalogue.meetings import MeetingClosed, MeetingKind
from sotay_meetings.domain import (
    Duplicate,
    Meeting,
    NotInvited,
    RuleBroken,
    Vote,
    Window,
    WrongState,
    WrongTime,
)

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
START = NOW + timedelta(hours=2)


def convene(**overrides) -> Meeting:  # type: ignore[no-untyped-def]
    values = {
        "unit_id": "CB1",
        "kind": MeetingKind.regular,
        "title": "Sinh hoạt chi bộ tháng 12/2026",
        "starts_at": START,
        "ends_at": START + timedelta(hours=2),
        "location": "Nhà văn hóa khu phố 1",
        "online_url": None,
        "agenda": ["Kiểm điểm công tác tháng 11", "  ", "Phương hướng tháng 12"],
        "document_ids": ["d1", "d1"],
        "invitees": ["a", "b", "c", "d"],
        "now": NOW,
    }
    values.update(overrides)
    return Meeting.convene("M1", **values)


def test_convening_records_the_invitation() -> None:
    meeting = convene()
    [event] = meeting.pending
    assert event.event_type == "MeetingConvened"
    assert event.invitee_ids == ["a", "b", "c", "d"]
    assert event.agenda == ["Kiểm điểm công tác tháng 11", "Phương hướng tháng 12"]
    assert event.document_ids == ["d1"]


@pytest.mark.parametrize(
    ("overrides", "error", "field"),
    [
        ({"starts_at": NOW - timedelta(minutes=1)}, WrongTime, "starts_at"),
        ({"ends_at": START}, RuleBroken, "ends_at"),
        ({"ends_at": START + timedelta(hours=25)}, RuleBroken, "ends_at"),
        ({"location": None}, RuleBroken, "location"),
        ({"location": None, "online_url": "zoom.us/j/1"}, RuleBroken, "online_url"),
        ({"title": "   "}, RuleBroken, "title"),
        ({"invitees": []}, RuleBroken, "unit_id"),
    ],
)
def test_convening_refuses_bad_input(overrides, error, field) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(error) as caught:
        convene(**overrides)
    assert caught.value.field == field
    assert caught.value.message


def test_rescheduling_before_the_start_only_and_once_per_change() -> None:
    meeting = convene()
    meeting.mark_saved()
    later = START + timedelta(days=1)
    meeting.reschedule(
        starts_at=later,
        ends_at=later + timedelta(hours=1),
        location=None,
        online_url=None,
        reason="Trùng lịch",
        now=NOW,
    )
    meeting.reschedule(
        starts_at=later,
        ends_at=later + timedelta(hours=1),
        location=None,
        online_url=None,
        reason="Trùng lịch",
        now=NOW,
    )
    assert [e.event_type for e in meeting.pending] == ["MeetingRescheduled"]
    assert meeting.location == "Nhà văn hóa khu phố 1"
    with pytest.raises(WrongTime) as caught:
        meeting.reschedule(
            starts_at=later + timedelta(days=1),
            ends_at=later + timedelta(days=1, hours=1),
            location=None,
            online_url=None,
            reason="",
            now=later + timedelta(minutes=5),
        )
    assert caught.value.field == "starts_at"


def test_absence_is_flagged_late_after_the_start_and_asked_once() -> None:
    meeting = convene()
    meeting.request_absence("a", "Đi công tác", NOW)
    meeting.request_absence("b", "Ốm", START + timedelta(minutes=10))
    assert meeting.absences["a"].late is False
    assert meeting.absences["b"].late is True
    with pytest.raises(Duplicate) as caught:
        meeting.request_absence("a", "Lần nữa", NOW)
    assert caught.value.field == "member_id"
    with pytest.raises(NotInvited):
        meeting.request_absence("zz", "Không phải đảng viên chi bộ", NOW)
    with pytest.raises(RuleBroken) as empty:
        meeting.request_absence("c", "  ", NOW)
    assert empty.value.field == "reason"


def test_an_absence_is_decided_once() -> None:
    meeting = convene()
    meeting.request_absence("a", "Đi công tác", NOW)
    meeting.decide_absence("a", True, "sec")
    with pytest.raises(Duplicate):
        meeting.decide_absence("a", False, "sec")
    with pytest.raises(RuleBroken) as caught:
        meeting.decide_absence("b", True, "sec")
    assert caught.value.field == "member_id"


def test_closing_counts_present_excused_and_absent_without_leave() -> None:
    meeting = convene()
    meeting.request_absence("b", "Ốm", NOW)
    meeting.decide_absence("b", True, "sec")
    meeting.request_absence("c", "Bận", NOW)
    meeting.decide_absence("c", True, "sec")
    meeting.request_absence("d", "Không rõ", NOW)
    meeting.decide_absence("d", False, "sec", "Lý do chưa chính đáng")
    with pytest.raises(WrongTime):
        meeting.close({"a"}, NOW)
    # c was excused but came anyway: present wins.
    closed, not_present = meeting.close({"a", "c", "not-invited"}, START + timedelta(hours=1))
    assert (closed.invited, closed.present, closed.excused, closed.absent_without_leave) == (
        4,
        2,
        1,
        1,
    )
    assert closed.present_ids == ["a", "c"]
    assert closed.excused_ids == ["b"]
    assert closed.absent_without_leave_ids == ["d"]
    assert closed.starts_at == START
    # Every invitee not present has their attendance stream closed, with the outcome.
    assert [(a.id, a.closed_as) for a in not_present] == [
        ("M1:b", "excused"),
        ("M1:d", "absent_without_leave"),
    ]
    assert all(a.loaded_version == 0 and len(a.pending) == 1 for a in not_present)
    with pytest.raises(Duplicate):
        meeting.close({"a"}, START + timedelta(hours=1))
    with pytest.raises(WrongState):
        meeting.request_absence("a", "muộn", START + timedelta(hours=3))


def test_after_the_meeting_grade_report_and_acknowledgement_in_order() -> None:
    meeting = convene()
    after = START + timedelta(hours=1)
    with pytest.raises(WrongState):
        meeting.grade_quality("good", "sec")
    meeting.close({"a", "b"}, after)
    with pytest.raises(RuleBroken) as no_minutes:
        meeting.submit_report("X1", "sec", "")
    assert no_minutes.value.field == "minutes"
    meeting.record_minutes("sec", "Biên bản", ["Hoàn thành chỉ tiêu"], [], after)
    meeting.grade_quality("good", "sec")
    with pytest.raises(Duplicate) as graded:
        meeting.grade_quality("excellent", "sec")
    assert graded.value.field == "grade"
    with pytest.raises(WrongState):
        meeting.acknowledge_report("X1", "dy")
    meeting.submit_report("X1", "sec", "Tóm tắt")
    with pytest.raises(Duplicate):
        meeting.submit_report("X1", "sec", "")
    with pytest.raises(WrongState):
        meeting.record_minutes("sec", "Sửa", [], [], after)
    meeting.acknowledge_report("X1", "dy")
    with pytest.raises(Duplicate):
        meeting.acknowledge_report("X1", "dy")


def test_polls_check_options_and_tally_invitees_only() -> None:
    meeting = convene()
    window = Window()
    with pytest.raises(WrongTime):
        meeting.open_poll("p0", "Sớm quá?", ["Có", "Không"], "vote", NOW, window)
    during = START + timedelta(minutes=5)
    with pytest.raises(RuleBroken) as same:
        meeting.open_poll("p1", "Q", ["Có", "Có"], "vote", during, window)
    assert same.value.field == "options"
    meeting.open_poll(
        "p1", "Thông qua nghị quyết?", ["Tán thành", "Không tán thành"], "vote", during, window
    )
    with pytest.raises(Duplicate):
        meeting.open_poll("p1", "Lại", ["A", "B"], "vote", during, window)
    with pytest.raises(WrongState) as still_open:
        meeting.close(set(), during)
    assert still_open.value.field == "poll_id"
    poll, unvoted = meeting.close_poll(
        "p1", {"a": "Tán thành", "b": "Tán thành", "c": "Không tán thành", "zz": "Tán thành"}
    )
    assert poll.tally == {"Tán thành": 2, "Không tán thành": 1}
    assert poll.voters == 3
    # Every invitee who did not vote gets the closing event of their own vote stream.
    assert sorted(v.id for v in unvoted) == [
        Vote.stream_id(meeting.id, "p1", m)
        for m in sorted(meeting.invitees)
        if m not in {"a", "b", "c"}
    ]
    assert all(v.pending[0].event_type == "VoteClosed" for v in unvoted)
    with pytest.raises(Duplicate):
        meeting.close_poll("p1", {})


def test_a_vote_must_be_one_of_the_options() -> None:
    with pytest.raises(RuleBroken) as caught:
        Vote.cast("M1", "p1", "a", "Có lẽ", ["Có", "Không"])
    assert caught.value.field == "option"


def test_cancelled_meeting_refuses_everything() -> None:
    meeting = convene()
    meeting.cancel("Bão lớn")
    with pytest.raises(Duplicate):
        meeting.cancel("Bão lớn")
    with pytest.raises(WrongState):
        meeting.request_absence("a", "Ốm", NOW)


def test_rebuilt_meeting_equals_the_live_one() -> None:
    meeting = convene()
    meeting.request_absence("a", "Ốm", NOW)
    meeting.decide_absence("a", True, "sec")
    meeting.close({"b"}, START + timedelta(minutes=30))
    events = meeting.pending
    rebuilt = Meeting.rebuild("M1", events)
    assert rebuilt.version == meeting.version == 4
    assert rebuilt.status == "closed"
    assert isinstance(rebuilt.closing, MeetingClosed)
    assert rebuilt.closing.excused_ids == ["a"]
