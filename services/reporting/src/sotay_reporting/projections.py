"""The usage projection: every event of every service into per-unit counters.

One batch is one MongoDB transaction (the runner's): the states of the members,
meetings and enrolments the batch touches are read with one query each, the
events are applied in memory in order, and everything is written back with
one bulk write per collection. Counters are `$inc`s on the unit the event
names, so the result does not depend on how events of different aggregates
interleave: a rebuild from the event history equals the live model.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, ReplaceOne, UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from sotay_events.consumer import Applied
from sotay_reporting.figures import (
    Doc,
    Increments,
    apply_enrolment_event,
    apply_meeting_event,
    apply_member_event,
    flat_path,
    local_day,
    new_enrolment,
    new_meeting,
    new_member,
    safe_key,
)

STATS = "unit_stats"
MEMBERS = "usage_members"
MEETINGS = "usage_meetings"
ENROLMENTS = "usage_enrolments"
CAMPAIGNS = "usage_campaigns"
META = "usage_meta"

StateFn = Callable[[Doc, str, dict[str, Any], Any, Increments], Doc]


class UsageProjection:
    """Feeds `unit_stats` from identity, meetings, learning and any later service."""

    name = "usage"
    collections = (STATS, MEMBERS, MEETINGS, ENROLMENTS, CAMPAIGNS, META)

    def __init__(self, report_day: int = 25) -> None:
        self.report_day = report_day

    async def apply_batch(
        self, db: AsyncDatabase[Doc], items: list[Applied], session: AsyncClientSession
    ) -> None:
        inc = Increments(self.report_day)
        wanted: dict[str, set[str]] = {MEMBERS: set(), MEETINGS: set(), ENROLMENTS: set()}
        payloads = [event.model_dump() for _, event in items]
        for (envelope, _), payload in zip(items, payloads, strict=True):
            key = _state_key(envelope.aggregate_type, payload)
            if key:
                wanted[key[0]].add(key[1])
        states: dict[str, dict[str, Doc]] = {}
        for collection, ids in wanted.items():
            states[collection] = {}
            if ids:
                async for doc in db[collection].find(
                    {"_id": {"$in": sorted(ids)}}, session=session
                ):
                    states[collection][doc["_id"]] = doc
        existing = {name: set(found) for name, found in states.items()}
        touched: dict[str, set[str]] = {name: set() for name in wanted}
        campaigns: dict[str, Doc] = {}
        last_event: datetime | None = None

        for (envelope, event), payload in zip(items, payloads, strict=True):
            day = local_day(envelope.occurred_at)
            last_event = max(last_event or envelope.occurred_at, envelope.occurred_at)
            unit = payload.get("unit_id") or payload.get("branch_id")
            key = _state_key(envelope.aggregate_type, payload)
            if key:
                collection, state_id = key
                fresh, apply = _MACHINES[collection]
                state = states[collection].get(state_id) or fresh(state_id)
                state = apply(state, envelope.event_type, payload, day, inc)
                states[collection][state_id] = state
                touched[collection].add(state_id)
                if collection == MEETINGS:
                    unit = state.get("unit") or unit
            fields = _campaign_fields(event) if envelope.aggregate_type == "StudyCampaign" else {}
            if fields:
                campaigns.setdefault(payload["campaign_id"], {}).update(fields)
            if not unit and envelope.org_path:
                unit = envelope.org_path[-1]
            inc.event(unit, day, envelope.event_type)

        for collection, ids in touched.items():
            # New states are inserted in one batch (several times faster than upserts on
            # the embedded server); states that were read are replaced.
            new = [states[collection][i] for i in sorted(ids) if i not in existing[collection]]
            old = [i for i in sorted(ids) if i in existing[collection]]
            if new:
                await db[collection].insert_many(new, ordered=False, session=session)
            if old:
                await db[collection].bulk_write(
                    [ReplaceOne({"_id": i}, states[collection][i]) for i in old],
                    ordered=False,
                    session=session,
                )
        if campaigns:
            await db[CAMPAIGNS].bulk_write(
                [
                    UpdateOne({"_id": cid}, {"$set": fields}, upsert=True)
                    for cid, fields in campaigns.items()
                ],
                ordered=False,
                session=session,
            )
        increments = inc.nonzero()
        if increments:
            await db[STATS].bulk_write(
                [
                    UpdateOne(
                        {"_id": u},
                        {"$inc": {flat_path(k): n for k, n in paths.items()}},
                        upsert=True,
                    )
                    for u, paths in increments.items()
                ],
                ordered=False,
                session=session,
            )
        if last_event is not None:
            await db[META].update_one(
                {"_id": self.name},
                {"$max": {"last_event_at": last_event}},
                upsert=True,
                session=session,
            )


def _state_key(aggregate_type: str, payload: dict[str, Any]) -> tuple[str, str] | None:
    if aggregate_type == "Member" and payload.get("member_id"):
        return MEMBERS, str(payload["member_id"])
    if aggregate_type == "Meeting" and payload.get("meeting_id"):
        return MEETINGS, str(payload["meeting_id"])
    if aggregate_type == "Enrolment" and payload.get("campaign_id") and payload.get("member_id"):
        return ENROLMENTS, f"{payload['campaign_id']}|{payload['member_id']}"
    return None


_MACHINES: dict[str, tuple[Callable[[str], Doc], StateFn]] = {
    MEMBERS: (new_member, apply_member_event),
    MEETINGS: (new_meeting, apply_meeting_event),
    ENROLMENTS: (new_enrolment, apply_enrolment_event),
}


def _campaign_fields(event: Any) -> Doc:
    data = event.model_dump()
    if event.event_type == "StudyCampaignLaunched":
        return {
            "key": safe_key(data["campaign_id"]),
            "unit": data["unit_id"],
            "code": data["resolution_code"],
            "title": data.get("title") or data["resolution_title"],
            "deadline": data["deadline"],
            "has_quiz": data.get("has_quiz", False),
            "closed": False,
        }
    if event.event_type == "StudyCampaignDeadlineExtended":
        return {"deadline": data["deadline"], "key": safe_key(data["campaign_id"])}
    if event.event_type == "StudyCampaignClosed":
        return {"closed": True, "unit": data["unit_id"], "key": safe_key(data["campaign_id"])}
    return {}


async def create_indexes(db: AsyncDatabase[Doc]) -> None:
    await db[CAMPAIGNS].create_index([("unit", ASCENDING)])
