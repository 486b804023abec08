"""Commands through the service layer: authorization, the check-in hot path (also a code typed
offline, `typed_at`), idempotence, a vote racing its poll's close."""

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from sotay_events.catalogue.meetings import MeetingKind
from sotay_meetings.checkin import CheckinCodes, LocalMeetingCache
from sotay_meetings.domain import Duplicate, NotInvited, WrongState, WrongTime
from sotay_meetings.handlers import MeetingsService, TooManyAttempts
from sotay_platform.auth import Grant, Principal, Role
from sotay_platform.errors import Forbidden, Invalid, NotFound, status_of

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)  # the fixtures' clock: 19:00 in Hà Nội
SECRETARY = Principal("sec1", (Grant(Role.branch_secretary, "CB1"),), member_id="m0")
OTHER_SECRETARY = Principal("sec2", (Grant(Role.branch_secretary, "CB2"),), member_id="x0")
COMMITTEE = Principal("dy", (Grant(Role.committee_admin, "X1"),), member_id="c0")


def member(member_id: str, unit: str = "CB1") -> Principal:
    return Principal(f"u-{member_id}", (Grant(Role.member, unit),), member_id=member_id)


START = NOW + timedelta(minutes=20)  # check-in opens 30 minutes before: open now


async def convene(service: MeetingsService, **overrides):  # type: ignore[no-untyped-def]
    values = {
        "unit_id": "CB1",
        "kind": MeetingKind.regular,
        "title": "Sinh hoạt chi bộ tháng 12/2026",
        "starts_at": START,
        "ends_at": START + timedelta(hours=2),
        "location": "Hội trường",
    }
    values.update(overrides)
    meeting, created = await service.convene(SECRETARY, **values)
    assert created
    return meeting


async def test_only_the_branch_secretary_convenes_in_their_branch(
    service: MeetingsService,
) -> None:
    with pytest.raises(Forbidden):
        await service.convene(
            OTHER_SECRETARY,
            unit_id="CB1",
            kind=MeetingKind.regular,
            title="T",
            starts_at=START,
            ends_at=START + timedelta(hours=1),
            location="X",
        )
    with pytest.raises(Forbidden):
        await service.convene(
            member("m1"),
            unit_id="CB1",
            kind=MeetingKind.regular,
            title="T",
            starts_at=START,
            ends_at=START + timedelta(hours=1),
            location="X",
        )
    with pytest.raises(NotFound) as unknown:
        await convene(service, unit_id="NOPE")
    assert unknown.value.field == "unit_id"
    meeting = await convene(service)
    assert meeting.invitees == ["m0", "m1", "m2", "m3", "m4", "m5"]


async def test_a_committee_meeting_invites_the_committee_only(
    service: MeetingsService,
) -> None:
    meeting, _ = await service.convene(
        COMMITTEE,
        unit_id="CB1",
        kind=MeetingKind.committee,
        title="Họp chi ủy",
        starts_at=START,
        ends_at=START + timedelta(hours=1),
        location="Phòng họp",
    )
    assert meeting.invitees == ["m0", "m1"]
    with pytest.raises(Invalid) as not_branch:
        await service.convene(
            COMMITTEE,
            unit_id="X1",
            kind=MeetingKind.regular,
            title="T",
            starts_at=START,
            ends_at=START + timedelta(hours=1),
            location="X",
        )
    assert not_branch.value.field == "unit_id"


async def test_a_retried_convene_with_the_same_id_convenes_once(
    service: MeetingsService, store
) -> None:
    first = await convene(service, meeting_id="client-0001")
    again, created = await service.convene(
        SECRETARY,
        unit_id="CB1",
        kind=MeetingKind.regular,
        title="Sinh hoạt chi bộ tháng 12/2026",
        starts_at=START,
        ends_at=START + timedelta(hours=2),
        location="Hội trường",
        meeting_id="client-0001",
    )
    assert (again.id, created) == (first.id, False)
    assert len(store.streams["Meeting-client-0001"]) == 1
    with pytest.raises(Duplicate) as other:
        await convene(service, meeting_id="client-0001", title="Khác")
    assert other.value.field == "meeting_id"


async def test_self_check_in_with_the_code_is_idempotent(
    service: MeetingsService, codes: CheckinCodes, store
) -> None:
    meeting = await convene(service)
    issued = await service.checkin_code(SECRETARY, meeting.id)
    assert len(issued.code) == 6 and issued.code.isdigit()
    assert issued.payload.endswith(f"m={meeting.id}&c={issued.code}")
    first = await service.check_in(member("m1"), meeting.id, issued.code)
    second = await service.check_in(member("m1"), meeting.id, issued.code)
    assert (first.recorded, second.recorded) == (True, False)
    assert len(store.streams[f"Attendance-{meeting.id}:m1"]) == 1
    assert len(store.streams[f"Meeting-{meeting.id}"]) == 1  # the meeting's stream is untouched


async def test_check_in_refusals_name_their_field(service: MeetingsService, clock) -> None:
    meeting = await convene(service)
    code = (await service.checkin_code(SECRETARY, meeting.id)).code
    with pytest.raises(NotInvited) as outsider:
        await service.check_in(member("x1", "CB2"), meeting.id, code)
    assert outsider.value.field == "member_id"
    wrong = "000000" if code != "000000" else "111111"
    with pytest.raises(Invalid) as bad:
        await service.check_in(member("m2"), meeting.id, wrong)
    assert bad.value.field == "code"
    with pytest.raises(Forbidden):
        await service.checkin_code(member("m2"), meeting.id)
    with pytest.raises(NotFound) as missing:
        await service.check_in(member("m2"), "no-such-meeting", code)
    assert missing.value.field == "meeting_id"
    clock.advance(hours=3)  # past the end and the 30 minutes after
    with pytest.raises(WrongTime) as late:
        await service.check_in(member("m2"), meeting.id, code)
    assert late.value.code == "too_late"


async def test_check_in_is_refused_before_the_window(service: MeetingsService) -> None:
    meeting = await convene(
        service, starts_at=NOW + timedelta(hours=5), ends_at=NOW + timedelta(hours=6)
    )
    with pytest.raises(WrongTime) as early:
        await service.check_in_for(SECRETARY, meeting.id, "m1")
    assert (early.value.field, early.value.code) == ("meeting_id", "too_early")
    assert "ngày 01/12/2026" in early.value.message  # Vietnam's time, dd/mm/yyyy


async def test_codes_rotate_and_the_previous_one_is_still_accepted(
    codes: CheckinCodes,
) -> None:
    issued = codes.issue("M1", NOW)
    assert codes.verify("M1", issued.code, NOW + timedelta(seconds=61))
    assert not codes.verify("M1", issued.code, NOW + timedelta(seconds=150))
    assert not codes.verify("M2", issued.code, NOW) or codes.issue("M2", NOW).code == issued.code
    assert not codes.verify("M1", "12345", NOW)
    assert not codes.verify("M1", "abcdef", NOW)


async def test_guessing_codes_is_stopped(service: MeetingsService) -> None:
    meeting = await convene(service)
    code = (await service.checkin_code(SECRETARY, meeting.id)).code
    wrong = "000000" if code != "000000" else "111111"
    for _ in range(10):
        with pytest.raises(Invalid):
            await service.check_in(member("m3"), meeting.id, wrong)
    with pytest.raises(TooManyAttempts) as stopped:
        await service.check_in(member("m3"), meeting.id, wrong)
    assert status_of(stopped.value) == 429
    assert stopped.value.headers["Retry-After"] == "900"


async def test_two_hundred_members_check_in_at_once_without_touching_the_meeting(
    service: MeetingsService,
    roster,
    store,  # type: ignore[no-untyped-def]
) -> None:
    roster.branches["CB1"] = [f"m{i}" for i in range(250)]
    meeting = await convene(service)
    code = (await service.checkin_code(SECRETARY, meeting.id)).code
    store.loads.clear()
    results = await asyncio.gather(
        *(service.check_in(member(f"m{i}"), meeting.id, code) for i in range(250))
    )
    assert all(r.recorded for r in results)
    assert "Meeting" not in store.loads  # the hot path never replays the meeting
    assert len(await service.ledger.present(meeting.id)) == 250


async def test_an_empty_cache_is_refilled_from_the_store(service: MeetingsService, store) -> None:
    meeting = await convene(service)
    code = (await service.checkin_code(SECRETARY, meeting.id)).code
    service.cache = LocalMeetingCache()  # Redis lost its keys
    assert (await service.check_in(member("m4"), meeting.id, code)).recorded
    store.loads.clear()
    assert (await service.check_in(member("m5"), meeting.id, code)).recorded
    assert "Meeting" not in store.loads


async def test_a_cancelled_meeting_refuses_check_in(service: MeetingsService) -> None:
    meeting = await convene(service)
    await service.cancel(SECRETARY, meeting.id, "Mưa bão")
    with pytest.raises(WrongState) as cancelled:
        await service.check_in_for(SECRETARY, meeting.id, "m1")
    assert cancelled.value.code == "cancelled"


async def test_the_secretary_records_members_of_their_branch_only(
    service: MeetingsService,
) -> None:
    meeting = await convene(service)
    result = await service.check_in_for(SECRETARY, meeting.id, "m2")
    assert (result.recorded, result.method) == (True, "secretary")
    with pytest.raises(Forbidden):
        await service.check_in_for(OTHER_SECRETARY, meeting.id, "m3")
    with pytest.raises(Forbidden):
        await service.check_in_for(member("m1"), meeting.id, "m3")
    with pytest.raises(NotInvited):
        await service.check_in_for(SECRETARY, meeting.id, "x1")


async def test_votes_one_per_member_present(service: MeetingsService, clock) -> None:
    meeting = await convene(service)
    clock.advance(minutes=25)
    poll = await service.open_poll(
        SECRETARY, meeting.id, "Thông qua nghị quyết?", ["Tán thành", "Không tán thành"]
    )
    with pytest.raises(NotInvited) as absent:
        await service.vote(member("m1"), meeting.id, poll.poll_id, "Tán thành")
    assert absent.value.code == "not_present"
    for m in ("m1", "m2", "m3"):
        await service.check_in_for(SECRETARY, meeting.id, m)
    await service.vote(member("m1"), meeting.id, poll.poll_id, "Tán thành")
    await service.vote(member("m2"), meeting.id, poll.poll_id, "Tán thành")
    await service.vote(member("m3"), meeting.id, poll.poll_id, "Không tán thành")
    with pytest.raises(Duplicate) as twice:
        await service.vote(member("m1"), meeting.id, poll.poll_id, "Không tán thành")
    assert twice.value.field == "poll_id"
    closed = await service.close_poll(SECRETARY, meeting.id, poll.poll_id)
    assert closed.tally == {"Tán thành": 2, "Không tán thành": 1}
    with pytest.raises(WrongState) as after:
        await service.vote(member("m2"), meeting.id, poll.poll_id, "Tán thành")
    assert after.value.field == "poll_id"


async def test_a_whole_meeting_and_its_report_up(service: MeetingsService, clock) -> None:
    meeting = await convene(service)
    await service.request_absence(member("m5"), meeting.id, "Đi công tác")
    await service.decide_absence(SECRETARY, meeting.id, "m5", approve=True)
    code = (await service.checkin_code(SECRETARY, meeting.id)).code
    for m in ("m1", "m2"):
        await service.check_in(member(m), meeting.id, code)
    await service.check_in_for(SECRETARY, meeting.id, "m0")
    live = await service.statistics(SECRETARY, meeting.id)
    assert (live["final"], live["present"], live["excused"]) == (False, 3, 1)
    clock.advance(hours=1)
    await service.record_minutes(SECRETARY, meeting.id, "Biên bản", ["Kết luận 1"], [])
    await service.close(SECRETARY, meeting.id)
    stats = await service.statistics(member("m1"), meeting.id)
    assert stats["final"] is True
    assert stats["present_ids"] == ["m0", "m1", "m2"]
    assert stats["excused_ids"] == ["m5"]
    assert stats["absent_without_leave_ids"] == ["m3", "m4"]
    await service.grade(SECRETARY, meeting.id, "good")
    submitted = await service.submit_report(SECRETARY, meeting.id, "Tóm tắt")
    assert submitted.report_to == "X1"  # the branch's superior committee
    with pytest.raises(Forbidden):
        await service.acknowledge_report(SECRETARY, meeting.id)
    with pytest.raises(Forbidden):
        await service.acknowledge_report(OTHER_SECRETARY, meeting.id)
    acknowledged = await service.acknowledge_report(COMMITTEE, meeting.id)
    assert acknowledged.report_acknowledged_by == "c0"
    with pytest.raises(Duplicate):
        await service.acknowledge_report(COMMITTEE, meeting.id)
    with pytest.raises(Forbidden):
        await service.statistics(member("x1", "CB2"), meeting.id)


async def test_a_check_in_after_the_close_is_refused_by_the_store_not_the_cache(
    service: MeetingsService, clock, store, codes: CheckinCodes
) -> None:
    meeting = await convene(service)
    code = (await service.checkin_code(SECRETARY, meeting.id)).code
    stale = LocalMeetingCache()
    stale.hot, stale.invited = dict(service.cache.hot), dict(service.cache.invited)  # type: ignore[attr-defined]
    await service.check_in(member("m1"), meeting.id, code)
    clock.advance(minutes=30)
    await service.close(SECRETARY, meeting.id)
    service.cache = stale  # a replica whose cache still says "convened"
    code = codes.issue(meeting.id, clock.now).code
    with pytest.raises(WrongState) as closed:
        await service.check_in(member("m2"), meeting.id, code)
    assert (closed.value.code, closed.value.field) == ("closed", "meeting_id")
    again = await service.check_in(member("m1"), meeting.id, code)
    assert again.recorded is False  # present before the close: still "already recorded"
    [event] = store.streams[f"Attendance-{meeting.id}:m2"]
    assert event.event_type == "AttendanceClosed"


async def test_a_check_in_landing_while_the_close_counts_is_counted(
    service: MeetingsService, clock, store
) -> None:
    meeting = await convene(service)
    clock.advance(minutes=30)
    ledger = service.ledger
    raced: list[str] = []

    class RacingLedger:
        """The close reads who is present; m3 checks in before the close commits."""

        async def present(self, meeting_id: str) -> set[str]:
            found = await ledger.present(meeting_id)
            if not raced:
                raced.append("m3")
                service.ledger = ledger
                await service.check_in_for(SECRETARY, meeting_id, "m3")
                service.ledger = self  # type: ignore[assignment]
            return found

        async def is_present(self, meeting_id: str, member_id: str) -> bool:
            return await ledger.is_present(meeting_id, member_id)

        async def votes(self, meeting_id: str, poll_id: str) -> dict[str, str]:
            return await ledger.votes(meeting_id, poll_id)

    service.ledger = RacingLedger()
    closed = await service.close(SECRETARY, meeting.id)
    assert raced == ["m3"]
    assert closed.closing is not None and closed.closing.present_ids == ["m3"]
    assert [e.event_type for e in store.streams[f"Meeting-{meeting.id}"]][-1] == "MeetingClosed"
    assert store.streams[f"Attendance-{meeting.id}:m3"][0].event_type == "AttendanceRecorded"


async def test_the_central_office_acknowledges_on_behalf_of_the_committee(
    service: MeetingsService, clock, store
) -> None:
    meeting = await convene(service)
    clock.advance(hours=1)
    await service.record_minutes(SECRETARY, meeting.id, "Biên bản", [], [])
    await service.close(SECRETARY, meeting.id)
    await service.submit_report(SECRETARY, meeting.id, "")
    central = Principal("ops", (Grant(Role.system_admin, "TW"),), member_id=None)
    acknowledged = await service.acknowledge_report(central, meeting.id)
    assert acknowledged.report_acknowledged_for == "X1"
    event = store.streams[f"Meeting-{meeting.id}"][-1]
    assert (event.event_type, event.payload["on_behalf_of"]) == ("BranchReportAcknowledged", "X1")
    assert event.payload["by_unit_id"] == "X1" and event.actor == "ops"


async def test_the_committee_acknowledges_for_itself(
    service: MeetingsService, clock, store
) -> None:
    meeting = await convene(service)
    clock.advance(hours=1)
    await service.record_minutes(SECRETARY, meeting.id, "Biên bản", [], [])
    await service.close(SECRETARY, meeting.id)
    await service.submit_report(SECRETARY, meeting.id, "")
    await service.acknowledge_report(COMMITTEE, meeting.id)
    assert store.streams[f"Meeting-{meeting.id}"][-1].payload["on_behalf_of"] is None


# A check-in code typed offline (`typed_at`).


async def test_a_code_valid_when_typed_counts_though_it_rotated_since(
    service: MeetingsService, clock, store, codes: CheckinCodes
) -> None:
    meeting = await convene(service)
    typed_at = clock.now
    code = codes.issue(meeting.id, typed_at).code
    clock.advance(minutes=10)  # back online: the code rotated ten times since
    with pytest.raises(Invalid) as now_wrong:
        await service.check_in(member("m1"), meeting.id, code)
    assert now_wrong.value.code == "wrong_code"
    first = await service.check_in(member("m1"), meeting.id, code, typed_at)
    assert first.recorded
    [event] = store.streams[f"Attendance-{meeting.id}:m1"]
    assert event.payload["typed_at"] == typed_at.isoformat().replace("+00:00", "Z")
    assert event.payload["received_at"] == clock.now.isoformat().replace("+00:00", "Z")
    # The queue sends it again (its first answer was lost): nothing changes.
    again = await service.check_in(member("m1"), meeting.id, code, typed_at)
    assert again.recorded is False
    assert len(store.streams[f"Attendance-{meeting.id}:m1"]) == 1


async def test_typed_after_check_in_closed_is_refused_but_typed_before_counts(
    service: MeetingsService, clock, codes: CheckinCodes
) -> None:
    """The window is judged at the moment typed, the closing of the meeting at arrival."""
    meeting = await convene(service)
    typed_at = START + timedelta(hours=2, minutes=25)  # check-in closes 30 min after the end
    clock.now = typed_at + timedelta(minutes=20)
    code = codes.issue(meeting.id, typed_at).code
    assert (await service.check_in(member("m2"), meeting.id, code, typed_at)).recorded
    late = START + timedelta(hours=2, minutes=35)
    with pytest.raises(WrongTime) as too_late:
        await service.check_in(member("m3"), meeting.id, codes.issue(meeting.id, late).code, late)
    assert (too_late.value.field, too_late.value.code) == ("typed_at", "typed_too_late")


@pytest.mark.parametrize(
    ("typed", "code"),
    [
        (NOW + timedelta(minutes=3), "typed_in_future"),
        (START - timedelta(minutes=31), "typed_too_early"),
    ],
)
async def test_typed_at_in_the_future_or_before_opening_is_422_naming_it(
    service: MeetingsService, codes: CheckinCodes, typed, code
) -> None:
    meeting = await convene(service)
    with pytest.raises(WrongTime) as refused:
        await service.check_in(member("m1"), meeting.id, codes.issue(meeting.id, typed).code, typed)
    assert (status_of(refused.value), refused.value.field, refused.value.code) == (
        422,
        "typed_at",
        code,
    )


async def test_a_phone_clock_slightly_ahead_is_clamped_to_now(
    service: MeetingsService, clock, store, codes: CheckinCodes
) -> None:
    meeting = await convene(service)
    ahead = clock.now + timedelta(seconds=90)
    code = codes.issue(meeting.id, clock.now).code
    assert (await service.check_in(member("m1"), meeting.id, code, ahead)).recorded
    [event] = store.streams[f"Attendance-{meeting.id}:m1"]
    assert event.payload["typed_at"] == event.payload["received_at"]


async def test_typed_at_older_than_the_bound_is_422(
    service: MeetingsService, clock, codes: CheckinCodes
) -> None:
    meeting = await convene(service, ends_at=START + timedelta(hours=20))
    typed_at = clock.now
    code = codes.issue(meeting.id, typed_at).code
    clock.advance(hours=12, minutes=1)
    with pytest.raises(WrongTime) as old:
        await service.check_in(member("m1"), meeting.id, code, typed_at)
    assert (status_of(old.value), old.value.field, old.value.code) == (
        422,
        "typed_at",
        "typed_too_long_ago",
    )
    assert "12 giờ" in old.value.message


async def test_an_offline_check_in_arriving_after_the_close_is_refused(
    service: MeetingsService, clock, store, codes: CheckinCodes
) -> None:
    meeting = await convene(service)
    typed_at = clock.now
    code = codes.issue(meeting.id, typed_at).code
    await service.check_in(member("m1"), meeting.id, code, typed_at)
    stale = LocalMeetingCache()
    stale.hot, stale.invited = dict(service.cache.hot), dict(service.cache.invited)  # type: ignore[attr-defined]
    clock.advance(minutes=30)
    await service.close(SECRETARY, meeting.id)
    for cache in (service.cache, stale):  # this replica's cache, and one still "convened"
        service.cache = cache
        with pytest.raises(WrongState) as closed:
            await service.check_in(member("m2"), meeting.id, code, typed_at)
        assert (status_of(closed.value), closed.value.code) == (409, "closed")
        assert closed.value.message.startswith("Cuộc họp đã kết thúc")
        # Sent again after the close, the one that went through is still "already recorded".
        again = await service.check_in(member("m1"), meeting.id, code, typed_at)
        assert again.recorded is False
    [event] = store.streams[f"Attendance-{meeting.id}:m2"]
    assert event.event_type == "AttendanceClosed"


# A vote racing its poll's close.


async def _poll_with_present(service: MeetingsService, clock, members: list[str]) -> str:
    meeting = await convene(service)
    for m in members:
        await service.check_in_for(SECRETARY, meeting.id, m)
    clock.advance(minutes=25)
    poll = await service.open_poll(SECRETARY, meeting.id, "Thông qua?", ["Có", "Không"])
    return f"{meeting.id}/{poll.poll_id}"


async def test_a_vote_landing_while_the_close_counts_is_counted(
    service: MeetingsService, clock, store
) -> None:
    meeting_id, poll_id = (await _poll_with_present(service, clock, ["m1", "m2"])).split("/")
    await service.vote(member("m1"), meeting_id, poll_id, "Có")
    ledger = service.ledger
    raced: list[str] = []

    class RacingLedger:
        """The close reads the votes; m2 votes before the close commits."""

        async def present(self, meeting_id: str) -> set[str]:
            return await ledger.present(meeting_id)

        async def is_present(self, meeting_id: str, member_id: str) -> bool:
            return await ledger.is_present(meeting_id, member_id)

        async def votes(self, meeting_id: str, poll_id: str) -> dict[str, str]:
            found = await ledger.votes(meeting_id, poll_id)
            if not raced:
                raced.append("m2")
                await service.vote(member("m2"), meeting_id, poll_id, "Không")
            return found

    service.ledger = RacingLedger()
    closed = await service.close_poll(SECRETARY, meeting_id, poll_id)
    assert raced == ["m2"]
    assert closed.tally == {"Có": 1, "Không": 1}
    events = [e for s in store.streams.values() for e in s if e.aggregate_type == "Vote"]
    assert sorted(e.event_type for e in events) == ["VoteClosed"] * 4 + ["VoteRecorded"] * 2


async def test_a_vote_after_the_close_is_refused_by_the_store_not_the_cache(
    service: MeetingsService, clock, store
) -> None:
    meeting_id, poll_id = (await _poll_with_present(service, clock, ["m1", "m2"])).split("/")
    stale = LocalMeetingCache()
    stale.hot, stale.invited = dict(service.cache.hot), dict(service.cache.invited)  # type: ignore[attr-defined]
    await service.vote(member("m1"), meeting_id, poll_id, "Có")
    closed = await service.close_poll(SECRETARY, meeting_id, poll_id)
    service.cache = stale  # a replica whose cache still says the poll is open
    with pytest.raises(WrongState) as late:
        await service.vote(member("m2"), meeting_id, poll_id, "Không")
    assert (status_of(late.value), late.value.code, late.value.field) == (
        409,
        "poll_closed",
        "poll_id",
    )
    assert closed.tally == {"Có": 1, "Không": 0}
    [event] = store.streams[f"Vote-{meeting_id}:{poll_id}:m2"]
    assert event.event_type == "VoteClosed"
