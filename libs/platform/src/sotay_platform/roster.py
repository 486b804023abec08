"""A member roster folded from identity's events, and the one rule of who counts.

Meetings (who is invited), learning (who must study), identity (the list) and
reporting (every figure's denominator) keep their own roster from identity's
events, in their own databases; the fold and the rule are the same, so they
live here.

**Who counts**, for a purpose and at a moment (`counts`, `counted_branch`):
a member whose registration had been approved by then (a pending or rejected
self-registration never counts), not removed from the rolls by then, in the
branch they belonged to then; on the list whatever their status, and for
meetings and study only if official or probationary (not exempted). A
transfer or a status change holds from its effective date (the start of that
day in Asia/Ho_Chi_Minh), never before it was recorded, so a figure for a
past date does not change when it is computed later. `LEGENDS` says it in
Vietnamese, one sentence per purpose, for the dashboards.

A roster row keeps the facts with their moments (`registered_at`,
`approved_at`, `rejected_at`, `removed_at`, `branches`, `statuses`) and, for
today's queries, the latest `branch_id`, `status`, `approved`, `removed` and
`expected` (counts for meetings now).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any, NamedTuple

from pymongo import ReplaceOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection

from sotay_events.catalogue.identity import (
    MemberProfileUpdated,
    MemberRegistered,
    MemberRegistrationApproved,
    MemberRegistrationRejected,
    MemberRemoved,
    MemberStatus,
    MemberStatusChanged,
    MemberTransferred,
    RoleGranted,
    RoleRevoked,
)
from sotay_events.consumer import Applied
from sotay_platform.tree import start_of_day, utc

Doc = dict[str, Any]

MEMBER_EVENTS = (
    MemberRegistered,
    MemberRegistrationApproved,
    MemberRegistrationRejected,
    MemberProfileUpdated,
    MemberStatusChanged,
    MemberTransferred,
    MemberRemoved,
    RoleGranted,
    RoleRevoked,
)
MEMBER_EVENT_TYPES = frozenset(e.event_type for e in MEMBER_EVENTS)
EXPECTED_STATUSES = (MemberStatus.official.value, MemberStatus.probationary.value)
LISTED_STATUSES = (*EXPECTED_STATUSES, MemberStatus.exempted.value)
# A fact folded without its moment (an old row, a caller without the envelope) counts as
# having always held.
ALWAYS = datetime(1970, 1, 1, tzinfo=UTC)


class Purpose(StrEnum):
    on_list = "on_list"  # danh sách đảng viên: reconciled against the real list
    attend = "attend"  # must attend branch meetings
    study = "study"  # must study a campaign's resolution


LEGENDS: dict[Purpose, str] = {
    Purpose.on_list: (
        "Danh sách đảng viên gồm đảng viên chính thức, dự bị và đảng viên được miễn công tác "
        "và sinh hoạt đảng đã được chi bộ duyệt, tính ở chi bộ đang sinh hoạt vào ngày của số "
        "liệu; không tính hồ sơ tự đăng ký đang chờ duyệt hoặc bị từ chối, đảng viên đã chuyển "
        "đi hoặc đã ra khỏi danh sách."
    ),
    Purpose.attend: (
        "Đảng viên phải dự họp là đảng viên chính thức và dự bị đã được duyệt, đang sinh hoạt ở "
        "chi bộ vào ngày của số liệu, không tính đảng viên được miễn công tác và sinh hoạt đảng, "
        "hồ sơ chờ duyệt hoặc bị từ chối, đảng viên đã chuyển đi hoặc ra khỏi danh sách."
    ),
    Purpose.study: (
        "Đảng viên phải học tập nghị quyết là đảng viên chính thức và dự bị đã được duyệt, đang "
        "sinh hoạt ở chi bộ vào ngày của số liệu, không tính đảng viên được miễn công tác và "
        "sinh hoạt đảng, hồ sơ chờ duyệt hoặc bị từ chối, đảng viên đã chuyển đi hoặc ra khỏi "
        "danh sách."
    ),
}


class Span(NamedTuple):
    """A member counts for a purpose in `branch_id` from `start` until `end` (None: still)."""

    branch_id: str
    start: datetime
    end: datetime | None


def _moment(member: Mapping[str, Any], key: str, flag: str) -> datetime | None:
    value = member.get(key)
    if isinstance(value, datetime):
        return utc(value)
    return ALWAYS if member.get(flag) else None


def _by(moment: datetime | None, at: datetime | None) -> bool:
    return moment is not None and (at is None or moment <= at)


def _dated(member: Mapping[str, Any], key: str, legacy: str) -> list[tuple[datetime, int, str]]:
    rows = member.get(key)
    if rows is None:
        value = member.get(legacy)
        return [(ALWAYS, 0, str(value))] if value else []
    entries = [(utc(r["since"]), int(r.get("v", 0)), str(r["value"])) for r in rows]
    return sorted(entries, key=lambda e: (e[0], e[1]))  # stable: folding order breaks ties


def _at(entries: list[tuple[datetime, int, str]], at: datetime | None) -> str | None:
    found = None
    for since, _, value in entries:
        if at is not None and since > at:
            break
        found = value
    return found


def branch_at(member: Mapping[str, Any], at: datetime | None = None) -> str | None:
    """The branch the member belonged to at `at` (None: latest)."""
    return _at(_dated(member, "branches", "branch_id"), at)


def status_at(member: Mapping[str, Any], at: datetime | None = None) -> str | None:
    return _at(_dated(member, "statuses", "status"), at)


def counted_branch(
    member: Mapping[str, Any], purpose: Purpose, at: datetime | None = None
) -> str | None:
    """The branch where the member counts for `purpose` at `at`, or None if they do not."""
    if not _by(_moment(member, "approved_at", "approved"), at):
        return None  # never registered, or a registration still pending
    if _by(_moment(member, "rejected_at", "rejected"), at):
        return None
    if _by(_moment(member, "removed_at", "removed"), at):
        return None
    allowed = LISTED_STATUSES if purpose is Purpose.on_list else EXPECTED_STATUSES
    if status_at(member, at) not in allowed:
        return None
    return branch_at(member, at) or None


def counts(member: Mapping[str, Any], purpose: Purpose, at: datetime | None = None) -> bool:
    """Does the member count for `purpose` at `at` (None: as things stand now)?"""
    return counted_branch(member, purpose, at) is not None


def spans(member: Mapping[str, Any], purpose: Purpose) -> list[Span]:
    """Every stretch of time the member counted for `purpose`, with the branch: what a
    dated counter adds at `start` and takes back at `end`."""
    moments = {
        m
        for m in (
            _moment(member, "approved_at", "approved"),
            _moment(member, "rejected_at", "rejected"),
            _moment(member, "removed_at", "removed"),
        )
        if m is not None
    }
    moments.update(since for since, _, _ in _dated(member, "branches", "branch_id"))
    moments.update(since for since, _, _ in _dated(member, "statuses", "status"))
    out: list[Span] = []
    for moment in sorted(moments):
        branch = counted_branch(member, purpose, moment)
        if out and out[-1].end is None:
            if out[-1].branch_id == branch:
                continue
            out[-1] = out[-1]._replace(end=moment)
        if branch is not None:
            out.append(Span(branch, moment, None))
    return out


def is_expected(doc: Mapping[str, Any]) -> bool:
    """Expected at branch meetings and in study campaigns, as things stand now."""
    return counts(doc, Purpose.attend)


def _effective(at: datetime, effective_on: date) -> datetime:
    """A dated change holds from its effective day, never before it was recorded."""
    return max(at, start_of_day(effective_on))


def _add_dated(doc: Doc, key: str, since: datetime, version: int, value: str) -> None:
    rows = doc.setdefault(key, [])
    # Without a version a fact cannot be told from a redelivery: kept in folding order.
    if not version or not any(r.get("v") == version and utc(r["since"]) == since for r in rows):
        rows.append({"since": since, "v": version, "value": value})
        rows.sort(key=lambda r: (utc(r["since"]), r.get("v", 0)))


def apply_member_event(doc: Doc, event: Any, at: datetime | None = None, version: int = 0) -> None:
    """One of identity's facts about a member, folded into their roster row.

    `at` is the event's occurred_at and `version` its aggregate version; without
    them the fact counts as having always held (today's figures stay right).
    """
    when = utc(at) if at is not None else ALWAYS
    match event:
        case MemberRegistered():
            doc.update(
                full_name=event.full_name,
                branch_id=event.branch_id,
                status=event.status.value,
                registered_by=event.registered_by,
                approved=doc.get("approved", False),
                rejected=False,
                removed=False,
            )
            doc.setdefault("registered_at", when)
            _add_dated(doc, "branches", when, version, event.branch_id)
            _add_dated(doc, "statuses", when, version, event.status.value)
        case MemberRegistrationApproved():
            doc.update(approved=True, rejected=False, branch_id=event.branch_id)
            doc.setdefault("approved_at", when)
            if branch_at(doc, when) != event.branch_id:
                _add_dated(doc, "branches", when, version, event.branch_id)
        case MemberRegistrationRejected():
            doc.update(approved=False, rejected=True)
            doc.setdefault("rejected_at", when)
        case MemberProfileUpdated():
            if event.full_name:
                doc["full_name"] = event.full_name
        case MemberStatusChanged():
            doc.update(status=event.status.value, branch_id=event.branch_id)
            since = _effective(when, event.effective_on) if at is not None else when
            _add_dated(doc, "statuses", since, version, event.status.value)
        case MemberTransferred():
            doc["branch_id"] = event.to_branch_id
            since = _effective(when, event.effective_on) if at is not None else when
            _add_dated(doc, "branches", since, version, event.to_branch_id)
        case MemberRemoved():
            doc.update(removed=True, removed_reason=event.reason)
            doc.setdefault("removed_at", when)
        case RoleGranted():
            grant = {"role": event.role, "unit_id": event.unit_id}
            doc["roles"] = [r for r in doc.get("roles", []) if r != grant] + [grant]
        case RoleRevoked():
            grant = {"role": event.role, "unit_id": event.unit_id}
            doc["roles"] = [r for r in doc.get("roles", []) if r != grant]
    doc.setdefault("roles", [])


async def fold_members(
    members: AsyncCollection[Doc], items: list[Applied], session: AsyncClientSession
) -> tuple[dict[str, Doc | None], dict[str, Doc]]:
    """Apply a batch's member events to `members`: one read, one bulk write.

    Returns each touched member's row before and after, for projections that
    keep counts (how many must take part per branch) beside the roster.
    """
    events = [(env, ev) for env, ev in items if isinstance(ev, MEMBER_EVENTS)]
    if not events:
        return {}, {}
    ids = list(dict.fromkeys(str(ev.member_id) for _, ev in events))
    stored = {d["_id"]: d async for d in members.find({"_id": {"$in": ids}}, session=session)}
    # Deep copies: the dated lists inside a row change as events fold in, and `before`
    # must keep what the row held when the batch began.
    before: dict[str, Doc | None] = {
        i: copy.deepcopy(stored[i]) if i in stored else None for i in ids
    }
    after: dict[str, Doc] = {}
    for envelope, event in events:
        member_id = str(event.member_id)
        doc = after.setdefault(
            member_id, copy.deepcopy(stored.get(member_id) or {"_id": member_id})
        )
        if envelope.aggregate_version <= doc.get("version", 0):
            continue  # applied already: a redelivery changes nothing
        apply_member_event(doc, event, envelope.occurred_at, envelope.aggregate_version)
        doc["version"] = envelope.aggregate_version
    for doc in after.values():
        doc["expected"] = is_expected(doc)
    await members.bulk_write(
        [ReplaceOne({"_id": i}, doc, upsert=True) for i, doc in after.items()], session=session
    )
    return before, after
