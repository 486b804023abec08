"""A member roster folded from identity's events: the rule of who is expected.

Meetings (who is invited) and learning (who must study) keep their own roster
from identity's events, in their own databases; the fold and the rule are the
same, so they live here.
"""

from __future__ import annotations

from typing import Any

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


def is_expected(doc: Doc) -> bool:
    """Expected at branch meetings and in study campaigns: approved, still on the rolls,
    official or probationary (those exempted from party work are not)."""
    return (
        bool(doc.get("approved"))
        and not doc.get("rejected")
        and not doc.get("removed")
        and doc.get("status") in EXPECTED_STATUSES
        and bool(doc.get("branch_id"))
    )


def apply_member_event(doc: Doc, event: Any) -> None:
    """One of identity's facts about a member, folded into their roster row."""
    match event:
        case MemberRegistered():
            doc.update(
                full_name=event.full_name,
                branch_id=event.branch_id,
                status=event.status.value,
                approved=doc.get("approved", False),
                rejected=False,
                removed=False,
            )
        case MemberRegistrationApproved():
            doc.update(approved=True, rejected=False, branch_id=event.branch_id)
        case MemberRegistrationRejected():
            doc.update(approved=False, rejected=True)
        case MemberProfileUpdated():
            if event.full_name:
                doc["full_name"] = event.full_name
        case MemberStatusChanged():
            doc.update(status=event.status.value, branch_id=event.branch_id)
        case MemberTransferred():
            doc["branch_id"] = event.to_branch_id
        case MemberRemoved():
            doc.update(removed=True, removed_reason=event.reason)
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
    before: dict[str, Doc | None] = {i: dict(stored[i]) if i in stored else None for i in ids}
    after: dict[str, Doc] = {}
    for envelope, event in events:
        member_id = str(event.member_id)
        doc = after.setdefault(member_id, dict(stored.get(member_id) or {"_id": member_id}))
        apply_member_event(doc, event)
        doc["version"] = envelope.aggregate_version
    for doc in after.values():
        doc["expected"] = is_expected(doc)
    await members.bulk_write(
        [ReplaceOne({"_id": i}, doc, upsert=True) for i, doc in after.items()], session=session
    )
    return before, after
