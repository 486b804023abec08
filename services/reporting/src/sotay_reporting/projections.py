"""The usage projection: every fact into dated counters, rolled up per ancestor as it lands.

One projection reads the tree and every fact, so a batch sees one tree: its
tree events are applied first (the shared `OrgUnitsProjection` writes
`org_units` in the same transaction), and the roll-ups of the units under
what changed are placed anew; then the batch's facts are recorded at their
units (`unit_own`) and placed on those units' ancestors of the time
(`unit_rollups`), see `figures`. One batch costs a handful of reads (the
states and tree documents it needs, `$in` queries in slices) and one bulk write
per collection, whatever its size.
"""

from __future__ import annotations

import asyncio
import math
import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, InsertOne, ReplaceOne, UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from sotay_events.catalogue import CATALOGUE
from sotay_events.catalogue.content import PiecePublished, PieceRead, PieceWithdrawn
from sotay_events.catalogue.feedback import (
    FeedbackAnswered,
    FeedbackEscalated,
    FeedbackSubmitted,
)
from sotay_events.catalogue.identity import AccountActivated, MemberSignedIn
from sotay_events.catalogue.learning import (
    MaterialStudied,
    QuizAttemptSubmitted,
    ReflectionSubmitted,
    ResolutionStudied,
    StudyCampaignClosed,
    StudyCampaignDeadlineExtended,
    StudyCampaignLaunched,
    StudyStarted,
)
from sotay_events.catalogue.meetings import MeetingClosed, MeetingKind
from sotay_events.catalogue.org_tree import UnitCreated, UnitDissolved, UnitMerged
from sotay_events.consumer import Applied
from sotay_platform.org_units import COLLECTION as ORG_UNITS
from sotay_platform.org_units import OrgUnitsProjection
from sotay_platform.org_units import create_indexes as create_tree_indexes
from sotay_platform.roster import MEMBER_EVENTS, apply_member_event
from sotay_platform.tree import TREE_EVENTS, OrgTree, utc
from sotay_reporting.figures import (
    BRANCH_LEVELS,
    Doc,
    Placer,
    Tally,
    campaign_figure,
    diff,
    flow_key,
    level_key,
    local_day,
    member_counters,
    met_flags,
    month_period,
    period_month,
    period_of,
    plain_number,
    read_figure,
    replace_tree,
    safe_key,
    sign_in_flows,
)
from sotay_reporting.labels import EVENT_LABELS

ROLLUPS = "unit_rollups"
# What the facts naming a unit add, before placement: what a tree change places anew.
# Kept apart so that the roll-ups a dashboard reads stay small.
OWN = "unit_own"
MEMBERS = "usage_members"
ENROLMENTS = "usage_enrolments"
FEEDBACK = "usage_feedback"
CAMPAIGNS = "usage_campaigns"
PIECES = "usage_pieces"
META = "usage_meta"

ENROLMENT_EVENTS = (
    StudyStarted,
    MaterialStudied,
    ReflectionSubmitted,
    QuizAttemptSubmitted,
    ResolutionStudied,
)
CAMPAIGN_EVENTS = (StudyCampaignLaunched, StudyCampaignDeadlineExtended, StudyCampaignClosed)
FEEDBACK_EVENTS = (FeedbackSubmitted, FeedbackAnswered, FeedbackEscalated)
PIECE_EVENTS = (PiecePublished, PieceWithdrawn, PieceRead)
READ_TYPES = frozenset(
    e.event_type
    for e in (
        *TREE_EVENTS,
        *MEMBER_EVENTS,
        AccountActivated,
        MemberSignedIn,
        MeetingClosed,
        *ENROLMENT_EVENTS,
        *CAMPAIGN_EVENTS,
        *FEEDBACK_EVENTS,
        *PIECE_EVENTS,
    )
)
# The activity table counts these too; nothing else is decoded.
EVENT_TYPES = READ_TYPES | (frozenset(EVENT_LABELS) & frozenset(CATALOGUE.event_types()))


class UsageProjection:
    name = "usage"
    collections = (
        ORG_UNITS,
        OWN,
        ROLLUPS,
        MEMBERS,
        ENROLMENTS,
        FEEDBACK,
        CAMPAIGNS,
        PIECES,
        META,
    )
    event_types = EVENT_TYPES

    def __init__(self, report_day: int = 25) -> None:
        self.report_day = report_day
        self.tree = OrgUnitsProjection()

    async def create_indexes(self, db: AsyncDatabase[Doc]) -> None:
        await create_indexes(db)

    async def apply_batch(
        self, db: AsyncDatabase[Doc], items: list[Applied], session: AsyncClientSession
    ) -> None:
        rollups = Tally()
        own = Tally()
        tree_items = [(e, ev) for e, ev in items if isinstance(ev, TREE_EVENTS)]
        facts = [(e, ev) for e, ev in items if not isinstance(ev, TREE_EVENTS)]
        if tree_items:
            await self._tree_changes(db, tree_items, session, own, rollups)
        writes = await self._facts(db, facts, session, own)
        if own.by_unit:
            tree = await load_tree(db, sorted(own.by_unit), session)
            placer = Placer(tree, self.report_day)
            for unit, counters in own.by_unit.items():
                placer.place(unit, counters, rollups)
        await _inc(db, OWN, own, session)
        await _inc(db, ROLLUPS, rollups, session)
        for collection, ops in writes.items():
            if ops:
                await db[collection].bulk_write(ops, ordered=False, session=session)
        last = max((e.occurred_at for e, _ in items), default=None)
        if last is not None:
            update: Doc = {
                "$max": {"last_event_at": last},
                "$setOnInsert": {"tree_epoch": uuid.uuid4().hex},
            }
            if tree_items:  # in the same commit as the tree: readers key their cache by it
                update["$inc"] = {"tree_version": 1}
            await db[META].update_one({"_id": self.name}, update, upsert=True, session=session)

    async def _tree_changes(
        self,
        db: AsyncDatabase[Doc],
        items: list[Applied],
        session: AsyncClientSession,
        own: Tally,
        rollups: Tally,
    ) -> None:
        """Apply the tree events; every unit under what changed is placed anew."""
        changed = sorted({ev.unit_id for _, ev in items})
        affected = set(changed) | await _under(db, changed, session)
        old = await load_tree(db, sorted(affected), session)
        await self.tree.apply_batch(db, items, session)
        affected |= await _under(db, changed, session)
        new = await load_tree(db, sorted(affected), session)
        owns = {d["_id"]: own_of(d) for d in await find_in(db[OWN], "_id", affected, session)}
        replace_tree(owns, Placer(old, self.report_day), Placer(new, self.report_day), rollups)
        births = Tally()  # a branch-level unit counts as a branch from creation to its end
        for envelope, event in items:
            history = new.get(event.unit_id)
            if history is None or history.level not in BRANCH_LEVELS:
                continue
            p = period_of(envelope.occurred_at, self.report_day)
            if isinstance(event, UnitCreated):
                births.add(event.unit_id, level_key("branches", p), 1)
            elif isinstance(event, UnitMerged | UnitDissolved):
                births.add(event.unit_id, level_key("branches", p), -1)
        placer = Placer(new, self.report_day)
        for unit, counters in births.by_unit.items():
            placer.place(unit, counters, rollups)
        await _inc(db, OWN, births, session)  # placed already: recorded, not placed again

    async def _facts(
        self, db: AsyncDatabase[Doc], items: list[Applied], session: AsyncClientSession, own: Tally
    ) -> dict[str, list[Any]]:
        rd = self.report_day
        member_ids = {
            str(getattr(ev, "member_id", ""))
            for _, ev in items
            if isinstance(ev, (*MEMBER_EVENTS, AccountActivated, MemberSignedIn))
        }
        enrolment_ids = {
            f"{ev.campaign_id}|{ev.member_id}"
            for _, ev in items
            if isinstance(ev, ENROLMENT_EVENTS)
        }
        feedback_ids = {ev.feedback_id for _, ev in items if isinstance(ev, FEEDBACK_EVENTS)}
        members = await _states(db, MEMBERS, member_ids, session)
        enrolments = await _states(db, ENROLMENTS, enrolment_ids, session)
        feedback = await _states(db, FEEDBACK, feedback_ids, session)
        loaded = {MEMBERS: set(members), ENROLMENTS: set(enrolments), FEEDBACK: set(feedback)}
        regular_units = {
            ev.unit_id
            for _, ev in items
            if isinstance(ev, MeetingClosed) and ev.kind == MeetingKind.regular
        }
        regular_own = {
            d["_id"]: own_of(d) for d in await find_in(db[OWN], "_id", regular_units, session)
        }
        before: dict[str, Any] = {
            m: member_counters(members[m], rd) for m in member_ids if m in members
        }
        campaigns: dict[str, Doc] = {}
        pieces: dict[str, Doc] = {}
        regular: dict[tuple[str, str], list[float]] = {}  # (unit, month) -> added in a, b

        for envelope, event in items:
            at = envelope.occurred_at
            p = period_of(at, rd)
            unit = _unit_of(envelope, event)
            if event.event_type in EVENT_LABELS:
                own.add(unit, flow_key(f"e:{event.event_type}", p))
            match event:
                case _ if isinstance(event, (*MEMBER_EVENTS, AccountActivated, MemberSignedIn)):
                    member_id = str(getattr(event, "member_id", ""))
                    doc = members.setdefault(member_id, {"_id": member_id})
                    apply_member_event(doc, event, at, envelope.aggregate_version)
                    if isinstance(event, AccountActivated | MemberSignedIn):
                        uses = doc.get("uses_at")
                        if uses is None or utc(uses) > at:
                            doc["uses_at"] = at
                    if isinstance(event, MemberSignedIn):
                        day = local_day(at).isoformat()
                        if not doc.get("last_seen") or day > doc["last_seen"]:
                            doc["last_seen"] = day
                        sign_in_flows(doc, at, rd, own)
                case MeetingClosed():
                    for name, n in (
                        ("meetings", 1),
                        ("invited", event.invited),
                        ("present", event.present),
                        ("excused", event.excused),
                        ("absent", event.absent_without_leave),
                    ):
                        own.add(event.unit_id, flow_key(name, p), n)
                    if event.kind == MeetingKind.regular:
                        own.add(event.unit_id, flow_key("regular", p))
                        added = regular.setdefault((event.unit_id, period_month(p)), [0, 0])
                        added[p % 2] += 1
                case _ if isinstance(event, ENROLMENT_EVENTS):
                    key = f"{event.campaign_id}|{event.member_id}"
                    state = enrolments.setdefault(key, {"_id": key})
                    _enrol(state, event, event.unit_id, safe_key(event.campaign_id), p, own)
                case _ if isinstance(event, CAMPAIGN_EVENTS):
                    campaigns.setdefault(event.campaign_id, {}).update(_campaign(event, at))
                case PiecePublished():
                    own.add(event.unit_id, flow_key("published", p))
                    pieces.setdefault(event.piece_id, {}).update(
                        key=safe_key(event.piece_id),
                        unit=event.unit_id,
                        kind=event.kind.value,
                        title=event.title,
                        number=event.number_symbol,
                        published_at=at,
                        withdrawn=False,
                    )
                case PieceWithdrawn():
                    pieces.setdefault(event.piece_id, {}).update(withdrawn=True)
                case PieceRead():
                    reader_unit = event.branch_id or event.unit_id
                    own.add(reader_unit, level_key(read_figure(safe_key(event.piece_id)), p))
                case _ if isinstance(event, FEEDBACK_EVENTS):
                    state = feedback.setdefault(event.feedback_id, {"_id": event.feedback_id})
                    _feedback(state, event, rd, own)
                case _:
                    pass

        for m in member_ids:
            diff(before.get(m, {}), member_counters(members[m], rd), own)
        for (unit, month), (added_a, added_b) in regular.items():
            a, b = month_period(month, 0), month_period(month, 1)
            stored = regular_own.get(unit) or {}
            old_a = float(stored.get(flow_key("regular", a), 0))
            old_b = float(stored.get(flow_key("regular", b), 0))
            old_flags = met_flags(old_a, old_b)
            new_flags = met_flags(old_a + added_a, old_b + added_b)
            for q, old_flag, new_flag in zip((a, b), old_flags, new_flags, strict=True):
                own.add(unit, flow_key("met", q), new_flag - old_flag)
        writes: dict[str, list[Any]] = {
            MEMBERS: _replace_or_insert(members, loaded[MEMBERS]),
            ENROLMENTS: _replace_or_insert(enrolments, loaded[ENROLMENTS]),
            FEEDBACK: _replace_or_insert(feedback, loaded[FEEDBACK]),
            CAMPAIGNS: [
                UpdateOne({"_id": i}, {"$set": f}, upsert=True) for i, f in campaigns.items()
            ],
            PIECES: [UpdateOne({"_id": i}, {"$set": f}, upsert=True) for i, f in pieces.items()],
        }
        return writes


def own_of(doc: Doc) -> dict[str, float]:
    return {k: v for k, v in doc.items() if k != "_id" and v}


def _replace_or_insert(states: dict[str, Doc], stored: set[str]) -> list[Any]:
    """New states in one insert (several times faster than upserts on the embedded server)."""
    ops: list[Any] = [ReplaceOne({"_id": i}, d) for i, d in states.items() if i in stored]
    ops += [InsertOne(d) for i, d in states.items() if i not in stored]
    return ops


def _unit_of(envelope: Any, event: Any) -> str | None:
    for name in ("branch_id", "unit_id", "to_unit_id"):
        value = getattr(event, name, None)
        if isinstance(value, str) and value:
            return value
    return envelope.org_path[-1] if envelope.org_path else None


def _enrol(state: Doc, event: Any, unit: str, key: str, p: int, own: Tally) -> None:
    def mark(flag: str) -> None:
        if not state.get(flag):
            state[flag] = True
            own.add(unit, level_key(campaign_figure(key, flag), p))

    mark("s")
    if isinstance(event, QuizAttemptSubmitted):
        mark("t")
        if event.passed:
            mark("p")
    elif isinstance(event, ResolutionStudied):
        if not state.get("c"):
            own.add(unit, flow_key("studied", p))
        mark("c")
        if event.passed is not None:
            mark("t")
        if event.passed:
            mark("p")


def _campaign(event: Any, at: datetime) -> Doc:
    if isinstance(event, StudyCampaignLaunched):
        return {
            "key": safe_key(event.campaign_id),
            "unit": event.unit_id,
            "code": event.resolution_code,
            "title": event.title or event.resolution_title,
            "deadline": event.deadline,
            "has_quiz": event.has_quiz,
            "launched_at": at,
            "closed": False,
        }
    if isinstance(event, StudyCampaignDeadlineExtended):
        return {"deadline": event.deadline}
    return {"closed": True, "closed_at": at}


def _feedback(state: Doc, event: Any, report_day: int, own: Tally) -> None:
    unit = event.branch_id

    def overdue(deadline: datetime) -> None:
        if not state.get("overdue"):
            state["overdue"] = True
            own.add(unit, flow_key("fb_overdue", period_of(deadline, report_day)))

    if isinstance(event, FeedbackSubmitted):
        if not state.get("received"):
            state["received"] = True
            own.add(unit, flow_key("fb_received", period_of(event.submitted_at, report_day)))
    elif isinstance(event, FeedbackEscalated):
        if event.reason == "overdue":
            overdue(event.missed_deadline or event.received_at)
    elif isinstance(event, FeedbackAnswered) and not state.get("answered"):
        state["answered"] = True
        p = period_of(event.answered_at, report_day)
        own.add(unit, flow_key("fb_answered", p))
        if event.on_time:
            own.add(unit, flow_key("fb_on_time", p))
        else:
            overdue(event.deadline)
        waited = (utc(event.answered_at) - utc(event.submitted_at)).total_seconds() / 86400
        own.add(unit, flow_key(f"fb_days_{min(90, max(0, math.ceil(waited)))}", p))


async def _states(
    db: AsyncDatabase[Doc], collection: str, ids: set[str], session: AsyncClientSession
) -> dict[str, Doc]:
    return {d["_id"]: d for d in await find_in(db[collection], "_id", ids, session)}


async def _under(
    db: AsyncDatabase[Doc], unit_ids: list[str], session: AsyncClientSession
) -> set[str]:
    return {
        d["_id"] for d in await find_in(db[ORG_UNITS], "lineage", unit_ids, session, {"_id": 1})
    }


async def load_tree(
    db: AsyncDatabase[Doc], unit_ids: list[str], session: AsyncClientSession | None = None
) -> OrgTree:
    """The dated tree of the units and everything they ever hung from or merged into."""
    units = db[ORG_UNITS]
    docs = {d["_id"]: d for d in await find_in(units, "_id", unit_ids, session)}
    lineage = {u for d in docs.values() for u in d.get("lineage") or []} - set(docs)
    docs.update({d["_id"]: d for d in await find_in(units, "_id", lineage, session)})
    return OrgTree.from_docs(docs.values())


# SecantusDB checks each document it finds against every value of an `$in`: long lists go
# in slices (concurrently outside a transaction), which keeps a batch of thousands linear.
IN_SLICE = 200


async def find_in(
    collection: AsyncCollection[Doc],
    field: str,
    values: Iterable[str],
    session: AsyncClientSession | None = None,
    projection: Doc | None = None,
    size: int = IN_SLICE,
) -> list[Doc]:
    """The documents whose `field` is one of `values`, in slices of `size`."""
    wanted = sorted(set(values))
    slices = [wanted[i : i + size] for i in range(0, len(wanted), size)]

    async def one(part: list[str]) -> list[Doc]:
        query = collection.find({field: {"$in": part}}, projection, session=session)
        return [d async for d in query]

    if session is not None:  # one session runs one operation at a time
        return [d for part in slices for d in await one(part)]
    return [d for found in await asyncio.gather(*map(one, slices)) for d in found]


async def _inc(
    db: AsyncDatabase[Doc], collection: str, tally: Tally, session: AsyncClientSession
) -> None:
    """Add a batch's counters: read the documents, add, write each back whole.

    In the batch's transaction, so a replica applying another batch to the same
    document meets a write conflict and runs its batch again. Not `$inc`: the embedded
    server's cost of an `$inc` grows with the fields it changes times the document's
    size, a replacement's with the size once. A counter back at 0 is dropped."""
    counters = tally.nonzero()
    if not counters:
        return
    stored = {d["_id"]: d for d in await find_in(db[collection], "_id", counters, session)}
    ops: list[Any] = []
    for unit, keys in counters.items():
        doc = stored.get(unit)
        if doc is None:
            ops.append(InsertOne({"_id": unit, **keys}))
            continue
        for key, n in keys.items():
            total = plain_number(doc.get(key, 0) + n)
            if total:
                doc[key] = total
            else:
                doc.pop(key, None)
        ops.append(ReplaceOne({"_id": unit}, doc))
    await db[collection].bulk_write(ops, ordered=False, session=session)


async def create_indexes(db: AsyncDatabase[Doc]) -> None:
    await create_tree_indexes(db)
    # children of a unit as the tree stood at any date, and campaigns / pieces by unit
    await db[ORG_UNITS].create_index([("parents.parent_id", ASCENDING)])
    await db[CAMPAIGNS].create_index([("unit", ASCENDING)])
    await db[PIECES].create_index([("unit", ASCENDING)])
