"""Read models, fed from Kafka in batches (one transaction per batch), and their queries.

- `RosterProjection` (identity's events): who is a member, where, and whether
  they must study (the platform's one rule, `roster.counts(doc, Purpose.study)`:
  approved, official or probationary, not exempted, not removed, not a pending
  or rejected registration); and how many such members each branch has
  (`branch_headcount`). Rows keep identity's facts dated (`roster.apply_member_event`
  with each event's moment and version).
- `LearningTree`: the shared org-units projection, plus a count of tree facts
  applied in the same write, which tells the roll-up worker the tree changed.
- `LearningProjection` (learning's own events, plus identity's to follow
  transfers and status changes): the catalogue of campaigns, contests and
  banks; one `participation` row per (campaign, member) and one
  `contest_entries` row per (contest, member); and counters per (campaign,
  branch) and (contest, branch).

A member's row counts in exactly one branch's counters, their current one, and
only while they must take part: every batch recomputes each touched row's
contribution and applies the difference. The counters therefore equal the sum
of the rows' contributions whatever order the two topics interleave in, and a
rebuild equals the live model. Roll-ups from branch to province are the
roll-up worker's job (`rollup.py`); nothing here scans members at request time.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING, ReplaceOne, UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from sotay_events import DomainEvent
from sotay_events.catalogue import learning as learning_catalogue
from sotay_events.catalogue.learning import (
    ContestClosed,
    ContestEntryStarted,
    ContestEntrySubmitted,
    ContestOpened,
    MaterialStudied,
    QuestionAdded,
    QuestionBankCreated,
    QuestionRetired,
    QuizAttemptStarted,
    QuizAttemptSubmitted,
    ReflectionReviewed,
    ReflectionSubmitted,
    ResolutionStudied,
    StudyCampaignClosed,
    StudyCampaignDeadlineExtended,
    StudyCampaignLaunched,
    StudyStarted,
)
from sotay_events.consumer import Applied
from sotay_learning.handlers import MemberInfo
from sotay_platform.org_units import OrgUnits, OrgUnitsProjection
from sotay_platform.roster import (
    MEMBER_EVENT_TYPES,
    MEMBER_EVENTS,
    Purpose,
    apply_member_event,
    counted_branch,
    counts,
    fold_members,
)
from sotay_platform.tree import TREE_EVENTS

Doc = dict[str, Any]

MEMBERS = "members"
HEADCOUNT = "branch_headcount"
DIRTY_BRANCHES = "rollup_dirty_branches"

CAMPAIGNS = "campaigns"
CONTESTS = "contests"
BANKS = "question_banks"
PARTICIPATION = "participation"
ENTRIES = "contest_entries"
RESULT_MEMBERS = "results_members"
CAMPAIGN_COUNTS = "campaign_branch_counts"
CONTEST_COUNTS = "contest_branch_counts"
DIRTY = "rollup_dirty"
RESULTS = "results_units"  # written by the roll-up worker
TREE_CHANGES = "tree_changes"  # one document: how many tree facts were applied


def _published_by(module: Any) -> frozenset[str]:
    """The event types a catalogue module registers: its own concrete event classes."""
    found: set[str] = set()
    for value in vars(module).values():
        own = isinstance(value, type) and value.__module__ == module.__name__
        if own and issubclass(value, DomainEvent) and "event_type" in vars(value):
            found.add(str(vars(value)["event_type"]))
    return frozenset(found)


LEARNING_EVENT_TYPES = _published_by(learning_catalogue)


def _member_id(event: Any) -> str:
    return str(event.member_id)


class RosterProjection:
    """Learning's roster: identity's members, and per branch how many must take part."""

    name = "roster"
    collections = (MEMBERS, HEADCOUNT, DIRTY_BRANCHES)
    event_types = MEMBER_EVENT_TYPES

    async def create_indexes(self, db: AsyncDatabase[Doc]) -> None:
        await db[MEMBERS].create_index([("branch_id", ASCENDING)])

    async def apply_batch(
        self, db: AsyncDatabase[Doc], items: list[Applied], session: AsyncClientSession
    ) -> None:
        # fold_members' "before" shares its dated lists with "after" (a shallow copy) and
        # would see the change already: the rows as they were are read here.
        ids = list({str(event.member_id) for _, event in items if isinstance(event, MEMBER_EVENTS)})
        before = {
            d["_id"]: d async for d in db[MEMBERS].find({"_id": {"$in": ids}}, session=session)
        }
        _, after = await fold_members(db[MEMBERS], items, session)
        deltas: dict[str, int] = defaultdict(int)
        for member_id, doc in after.items():
            was, now = _counted_branch(before.get(member_id)), _counted_branch(doc)
            if was != now:
                if was:
                    deltas[was] -= 1
                if now:
                    deltas[now] += 1
        changed = {b: d for b, d in deltas.items() if d}
        if changed:
            await db[HEADCOUNT].bulk_write(
                [
                    UpdateOne({"_id": b}, {"$inc": {"eligible": d}}, upsert=True)
                    for b, d in changed.items()
                ],
                session=session,
            )
            await db[DIRTY_BRANCHES].bulk_write(
                [UpdateOne({"_id": b}, {"$inc": {"seq": 1}}, upsert=True) for b in changed],
                session=session,
            )


def _counted_branch(doc: Doc | None) -> str | None:
    """Where the member must study now (the one rule: `roster.counted_branch`)."""
    return counted_branch(doc, Purpose.study) if doc else None


class LearningTree(OrgUnitsProjection):
    """The shared tree projection, counting in the same write how many tree facts it applied,
    so the roll-up worker sees a move or a merge only once the tree shows it."""

    event_types = frozenset(e.event_type for e in TREE_EVENTS)
    collections = (*OrgUnitsProjection.collections, TREE_CHANGES)

    async def apply_batch(
        self, db: AsyncDatabase[Doc], items: list[Applied], session: AsyncClientSession
    ) -> None:
        await super().apply_batch(db, items, session)
        changes = sum(1 for _, event in items if isinstance(event, TREE_EVENTS))
        if changes:
            await db[TREE_CHANGES].update_one(
                {"_id": "tree"}, {"$inc": {"seq": changes}}, upsert=True, session=session
            )


# Learning's own events ------------------------------------------------------------------------

CAMPAIGN_COUNTERS = (
    "started",
    "finished",
    "passed",
    "studied",
    "scored",
    "score_sum",
    "reflections_submitted",
    "reflections_approved",
)
CONTEST_COUNTERS = ("participants", "entries", "scored", "score_sum")


def campaign_contribution(row: Doc, member: Doc | None) -> Doc | None:
    """What one member's participation adds to their branch's counters, if they must study."""
    branch = _counted_branch(member) if member is not None else row["branch_id"]
    if branch is None:
        return None
    scored = row.get("best_score") is not None
    return {
        "branch": branch,
        "started": 1,
        "finished": int(bool(row.get("finished"))),
        "passed": int(bool(row.get("passed"))),
        "studied": int(bool(row.get("studied"))),
        "scored": int(scored),
        "score_sum": float(row["best_score"]) if scored else 0.0,
        "reflections_submitted": int(bool(row.get("reflection_submitted"))),
        "reflections_approved": int(row.get("reflection") == "approved"),
    }


def contest_contribution(row: Doc, member: Doc | None) -> Doc | None:
    branch = _counted_branch(member) if member is not None else row["branch_id"]
    if branch is None:
        return None
    scored = row.get("best_score") is not None
    return {
        "branch": branch,
        "participants": 1,
        "entries": int(row.get("entries", 0)),
        "scored": int(scored),
        "score_sum": float(row["best_score"]) if scored else 0.0,
    }


class LearningProjection:
    """Catalogue, participation and per-branch counters, from learning's events (and identity's)."""

    name = "learning"
    collections = (
        CAMPAIGNS,
        CONTESTS,
        BANKS,
        PARTICIPATION,
        ENTRIES,
        RESULT_MEMBERS,
        CAMPAIGN_COUNTS,
        CONTEST_COUNTS,
        DIRTY,
    )
    event_types = LEARNING_EVENT_TYPES | MEMBER_EVENT_TYPES

    async def create_indexes(self, db: AsyncDatabase[Doc]) -> None:
        await create_indexes(db)

    async def apply_batch(
        self, db: AsyncDatabase[Doc], items: list[Applied], session: AsyncClientSession
    ) -> None:
        enrolment_ids: set[str] = set()
        entry_ids: set[str] = set()
        identity_members: set[str] = set()
        members_needed: set[str] = set()
        for envelope, event in items:
            if envelope.aggregate_type == "Enrolment":
                enrolment_ids.add(envelope.aggregate_id)
                members_needed.add(_member_id(event))
            elif envelope.aggregate_type == "ContestEntry":
                entry_ids.add(envelope.aggregate_id)
                members_needed.add(_member_id(event))
            elif isinstance(event, MEMBER_EVENTS):
                identity_members.add(_member_id(event))
        members_needed |= identity_members

        rows = await _load(db[PARTICIPATION], enrolment_ids, identity_members, session)
        entries = await _load(db[ENTRIES], entry_ids, identity_members, session)
        members = {
            d["_id"]: d
            async for d in db[RESULT_MEMBERS].find(
                {"_id": {"$in": list(members_needed)}}, session=session
            )
        }
        touched_members: set[str] = set()
        dirty: set[tuple[str, str]] = set()
        catalogue: dict[str, list[UpdateOne]] = defaultdict(list)

        for envelope, event in items:
            if isinstance(event, MEMBER_EVENTS):
                member = members.setdefault(_member_id(event), {"_id": _member_id(event)})
                apply_member_event(member, event, envelope.occurred_at, envelope.aggregate_version)
                member.pop("roles", None)
                touched_members.add(member["_id"])
            elif envelope.aggregate_type == "Enrolment":
                row = rows.setdefault(
                    envelope.aggregate_id,
                    {
                        "_id": envelope.aggregate_id,
                        "campaign_id": event.campaign_id,
                        "member_id": _member_id(event),
                        "contributed": None,
                    },
                )
                _apply_enrolment(row, envelope.occurred_at, envelope.org_path, event)
            elif envelope.aggregate_type == "ContestEntry":
                entry = entries.setdefault(
                    envelope.aggregate_id,
                    {
                        "_id": envelope.aggregate_id,
                        "contest_id": event.contest_id,
                        "member_id": _member_id(event),
                        "contributed": None,
                        "entries": 0,
                    },
                )
                _apply_entry(entry, envelope.occurred_at, envelope.org_path, event)
            else:
                target = _catalogue_write(catalogue, envelope, event)
                if target:
                    dirty.add(target)

        campaign_deltas = _settle(
            rows, members, campaign_contribution, "campaign_id", dirty, "campaign"
        )
        contest_deltas = _settle(
            entries, members, contest_contribution, "contest_id", dirty, "contest"
        )

        if rows:
            await db[PARTICIPATION].bulk_write(
                [ReplaceOne({"_id": i}, r, upsert=True) for i, r in rows.items()], session=session
            )
        if entries:
            await db[ENTRIES].bulk_write(
                [ReplaceOne({"_id": i}, e, upsert=True) for i, e in entries.items()],
                session=session,
            )
        if touched_members:
            await db[RESULT_MEMBERS].bulk_write(
                [ReplaceOne({"_id": i}, members[i], upsert=True) for i in touched_members],
                session=session,
            )
        for name, writes in catalogue.items():  # in event order: ordered bulk writes
            await db[name].bulk_write(writes, session=session)
        await _inc(db[CAMPAIGN_COUNTS], campaign_deltas, "campaign_id", session)
        await _inc(db[CONTEST_COUNTS], contest_deltas, "contest_id", session)
        if dirty:
            await db[DIRTY].bulk_write(
                [
                    UpdateOne(
                        {"_id": f"{kind}:{target}"},
                        {"$set": {"kind": kind, "target_id": target}, "$inc": {"seq": 1}},
                        upsert=True,
                    )
                    for kind, target in sorted(dirty)
                ],
                session=session,
            )


async def _load(
    collection: Any, ids: set[str], member_ids: set[str], session: AsyncClientSession
) -> dict[str, Doc]:
    if not ids and not member_ids:
        return {}
    query = {"$or": [{"_id": {"$in": list(ids)}}, {"member_id": {"$in": list(member_ids)}}]}
    return {d["_id"]: d async for d in collection.find(query, session=session)}


def _settle(
    rows: dict[str, Doc],
    members: dict[str, Doc],
    contribution: Any,
    key: str,
    dirty: set[tuple[str, str]],
    kind: str,
) -> dict[tuple[str, str], dict[str, float]]:
    """Recompute each touched row's contribution; return the counter deltas per (target, branch)."""
    deltas: dict[tuple[str, str], dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for row in rows.values():
        old = row.get("contributed")
        new = contribution(row, members.get(row["member_id"]))
        row["current_branch"] = new["branch"] if new else None
        if old == new:
            continue
        for sign, part in ((-1, old), (1, new)):
            if part:
                bucket = deltas[(row[key], part["branch"])]
                for name, value in part.items():
                    if name != "branch":
                        bucket[name] += sign * value
        row["contributed"] = new
        dirty.add((kind, row[key]))
    return deltas


async def _inc(
    collection: Any,
    deltas: dict[tuple[str, str], dict[str, float]],
    key: str,
    session: AsyncClientSession,
) -> None:
    writes = []
    for (target, branch), counters in sorted(deltas.items()):
        nonzero = {k: v for k, v in counters.items() if v}
        if nonzero:
            writes.append(
                UpdateOne(
                    {"_id": f"{target}:{branch}"},
                    {"$inc": nonzero, "$set": {key: target, "branch_id": branch}},
                    upsert=True,
                )
            )
    if writes:
        await collection.bulk_write(writes, session=session)


def _apply_enrolment(row: Doc, at: datetime, org_path: tuple[str, ...], event: Any) -> None:
    row["branch_id"] = event.unit_id
    row["branch_path"] = list(org_path)
    row["updated_at"] = at
    match event:
        case StudyStarted():
            row["started"] = True
            row.setdefault("started_at", at)
        case MaterialStudied():
            row["materials"] = sorted({*row.get("materials", []), event.material_id})
            if event.required_completed:
                row["finished"] = True
        case QuizAttemptStarted():
            row["attempts_started"] = max(row.get("attempts_started", 0), event.attempt)
        case QuizAttemptSubmitted():
            row["attempts"] = max(row.get("attempts", 0), event.attempt)
            best = row.get("best_score")
            row["best_score"] = event.score if best is None else max(best, event.score)
            row["passed"] = bool(row.get("passed")) or event.passed
        case ResolutionStudied():
            row.update(studied=True, finished=True, studied_at=at)
            if event.passed:
                row["passed"] = True
        case ReflectionSubmitted():
            number = event.submission or row.get("reflection_submission", 0) + 1
            row.update(
                reflection="submitted",
                reflection_submitted=True,
                reflection_at=at,
                reflection_submission=number,
            )
        case ReflectionReviewed():
            approved = event.approved if event.approved is not None else event.verdict == "đạt"
            row["reflection"] = "approved" if approved else "needs_revision"


def _apply_entry(entry: Doc, at: datetime, org_path: tuple[str, ...], event: Any) -> None:
    entry["branch_id"] = event.unit_id
    entry["branch_path"] = list(org_path)
    match event:
        case ContestEntryStarted():
            entry["started"] = max(entry.get("started", 0), event.attempt)
        case ContestEntrySubmitted():
            entry["entries"] = max(entry.get("entries", 0), event.attempt)
            key = (-event.score, event.duration_seconds, at)
            best = entry.get("best_score")
            if best is None or key < (-best, entry["best_duration"], entry["best_at"]):
                entry.update(
                    best_score=event.score, best_duration=event.duration_seconds, best_at=at
                )


def _catalogue_write(
    writes: dict[str, list[UpdateOne]], envelope: Any, event: Any
) -> tuple[str, str] | None:
    """The catalogue's update for one event, queued in `writes`; the target made dirty."""

    def queue(name: str, target: str, update: Doc, upsert: bool = True) -> None:
        writes[name].append(UpdateOne({"_id": target}, update, upsert=upsert))

    match event:
        case StudyCampaignLaunched():
            doc = {
                "unit_id": event.unit_id,
                "org_path": list(envelope.org_path),
                "title": event.title or event.resolution_title,
                "resolution_code": event.resolution_code,
                "resolution_title": event.resolution_title,
                "deadline": event.deadline,
                "materials": [m.model_dump(mode="json") for m in event.materials],
                "quiz": event.quiz.model_dump(mode="json") if event.quiz else None,
                "status": "open",
                "launched_at": envelope.occurred_at,
                "launched_by": envelope.actor,
            }
            queue(CAMPAIGNS, event.campaign_id, {"$set": doc})
            return ("campaign", event.campaign_id)
        case StudyCampaignDeadlineExtended():
            queue(CAMPAIGNS, event.campaign_id, {"$set": {"deadline": event.deadline}}, False)
        case StudyCampaignClosed():
            closed = {"status": "closed", "closed_at": envelope.occurred_at}
            queue(CAMPAIGNS, event.campaign_id, {"$set": closed})
            return ("campaign", event.campaign_id)
        case ContestOpened():
            doc = event.model_dump()
            doc.pop("contest_id")
            doc.update(
                org_path=list(envelope.org_path), status="open", opened_at=envelope.occurred_at
            )
            queue(CONTESTS, event.contest_id, {"$set": doc})
            return ("contest", event.contest_id)
        case ContestClosed():
            closed = {"status": "closed", "closed_at": envelope.occurred_at}
            queue(CONTESTS, event.contest_id, {"$set": closed})
            return ("contest", event.contest_id)
        case QuestionBankCreated():
            doc = {"unit_id": event.unit_id, "title": event.title}
            queue(BANKS, event.bank_id, {"$set": doc | {"org_path": list(envelope.org_path)}})
        case QuestionAdded():
            queue(BANKS, event.bank_id, {"$inc": {"questions": 1, f"kinds.{event.kind.value}": 1}})
        case QuestionRetired():
            queue(BANKS, event.bank_id, {"$inc": {"retired": 1}})
    return None


async def create_indexes(db: AsyncDatabase[Doc]) -> None:
    await db[MEMBERS].create_index([("branch_id", ASCENDING)])
    await db[PARTICIPATION].create_index([("member_id", ASCENDING)])
    await db[PARTICIPATION].create_index(
        [("campaign_id", ASCENDING), ("current_branch", ASCENDING), ("reflection", ASCENDING)]
    )
    await db[ENTRIES].create_index([("member_id", ASCENDING)])
    await db[ENTRIES].create_index(
        [
            ("contest_id", ASCENDING),
            ("best_score", DESCENDING),
            ("best_duration", ASCENDING),
            ("best_at", ASCENDING),
        ]
    )
    await db[CAMPAIGN_COUNTS].create_index([("campaign_id", ASCENDING)])
    await db[CONTEST_COUNTS].create_index([("contest_id", ASCENDING)])
    await db[CAMPAIGNS].create_index([("unit_id", ASCENDING), ("status", ASCENDING)])
    await db[CAMPAIGNS].create_index([("org_path", ASCENDING)])
    await db[CONTESTS].create_index([("unit_id", ASCENDING), ("status", ASCENDING)])
    await db[BANKS].create_index([("org_path", ASCENDING)])
    await db[RESULTS].create_index([("target_id", ASCENDING), ("parent_id", ASCENDING)])
    await db[RESULTS].create_index(
        [("target_id", ASCENDING), ("path", ASCENDING), ("level", ASCENDING)]
    )


# The directory: roster and tree, as handlers need them ---------------------------------------


class MongoDirectory:
    """Learning's own roster and tree, read for commands; merges followed by the shared tree."""

    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self.members = db[MEMBERS]
        self.units = OrgUnits(db)

    async def member(self, member_id: str) -> MemberInfo | None:
        doc = await self.members.find_one({"_id": member_id})
        if doc is None or not doc.get("branch_id"):
            return None
        return member_info(doc)

    async def path(self, unit_id: str) -> list[str]:
        resolved = await self.units.resolve(unit_id)
        return resolved.path if resolved else []

    async def with_merged(self, unit_ids: Iterable[str]) -> list[str]:
        """The units, and every unit that merged into one of them (at any depth)."""
        return await self.units.with_merged(list(unit_ids))


def member_info(doc: Doc) -> MemberInfo:
    return MemberInfo(
        member_id=doc["_id"],
        full_name=doc.get("full_name", ""),
        branch_id=doc.get("branch_id", ""),
        status=doc.get("status", ""),
        eligible=counts(doc, Purpose.study),
        approved=bool(doc.get("approved")),
        removed=bool(doc.get("removed")),
    )
