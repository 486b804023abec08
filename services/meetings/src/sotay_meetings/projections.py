"""Read models: the roster (from identity) and meetings' own views.

- `RosterProjection`: every member meetings needs to know, from identity's events only:
  branch, status, approval, removal and roles, each with its moment
  (`sotay_platform.roster`); who must attend is `roster.counts(doc, Purpose.attend, at)`.
  No personal data arrives, none is kept.
- The tree is the shared `OrgUnitsProjection`, asked through `OrgUnits` (today's
  paths for scope checks, the dated `OrgTree` for figures).
- `MeetingViewsProjection`: from meetings' own events, in one consumer and one
  transaction per batch: each member's invitations (the inbox), a summary per meeting,
  and attendance figures per branch and member, by month and year. The figures are
  kept per branch (the meeting's unit), never per path: a unit's figure for a month
  sums the branches of its subtree as the tree stood at the end of that month
  (`sotay_platform.tree`), so a move or a merge never leaves two numbers for one month.

Events of different aggregates arrive in any order (a check-in travels on its own
key); every write is an upsert on a stable id or an increment applied once per
version (the runner's tracking), so the result does not depend on the order and a
rebuild equals the live model. A batch's effects are folded into one bulk write per
collection.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING, UpdateMany, UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from sotay_events.catalogue.meetings import (
    AbsenceApproved,
    AbsenceDeclined,
    AbsenceRequested,
    AttendanceRecorded,
    BranchReportAcknowledged,
    BranchReportSubmitted,
    MeetingCancelled,
    MeetingClosed,
    MeetingConvened,
    MeetingGraded,
    MeetingKind,
    MeetingRescheduled,
    MinutesRecorded,
    PollClosed,
    PollOpened,
)
from sotay_events.consumer import Applied
from sotay_meetings.display import month_key
from sotay_platform.roster import MEMBER_EVENT_TYPES, Purpose, counted_branch, counts, fold_members

Doc = dict[str, Any]

ROSTER = "roster"
INVITATIONS = "invitations"
MEETINGS = "meeting_summaries"
BRANCH_MONTHS = "branch_months"
MEMBER_MONTHS = "member_months"
MEMBER_YEARS = "member_years"

COMMITTEE_ROLES = ["branch_secretary", "branch_committee_member", "committee_admin"]
# The Party Charter's rule: absent without leave from this many branch meetings in a year.
AWOL_FLAG_THRESHOLD = 3
SET_FIELDS = ("units", "missed_meetings")


# The roster.


class RosterProjection:
    name = "roster"
    collections = (ROSTER,)

    event_types = MEMBER_EVENT_TYPES

    async def apply_batch(
        self, db: AsyncDatabase[Doc], items: list[Applied], session: AsyncClientSession
    ) -> None:
        await fold_members(db[ROSTER], items, session)


class Roster:
    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self.members = db[ROSTER]

    async def create_indexes(self) -> None:
        await self.members.create_index([("branch_id", ASCENDING)])
        await self.members.create_index([("branches.value", ASCENDING)])
        await self.members.create_index([("roles.unit_id", ASCENDING)])

    async def expected(self, unit_ids: Sequence[str], kind: MeetingKind, at: datetime) -> list[str]:
        """Who must attend at `at` (`roster.counts(doc, Purpose.attend, at)`): at a branch
        meeting, those who count in one of `unit_ids` then; at a committee meeting, those
        who count anywhere and hold a committee role on one of them."""
        units = list(unit_ids)
        if kind is MeetingKind.committee:
            query: Doc = {
                "roles": {
                    "$elemMatch": {"unit_id": {"$in": units}, "role": {"$in": COMMITTEE_ROLES}}
                }
            }
            docs = await self.members.find(query).to_list()
            return sorted(d["_id"] for d in docs if counts(d, Purpose.attend, at))
        # Anyone who ever belonged to the units: a transfer holds from its effective day.
        query = {"$or": [{"branches.value": {"$in": units}}, {"branch_id": {"$in": units}}]}
        docs = await self.members.find(query).to_list()
        return sorted(d["_id"] for d in docs if counted_branch(d, Purpose.attend, at) in units)

    async def listing(self, unit_ids: Sequence[str]) -> list[Doc]:
        cursor = self.members.find(
            {"branch_id": {"$in": list(unit_ids)}, "removed": {"$ne": True}}
        ).sort("full_name", 1)
        return await cursor.to_list()

    async def get(self, member_id: str) -> Doc | None:
        return await self.members.find_one({"_id": member_id})

    async def names(self, member_ids: Sequence[str]) -> dict[str, str]:
        cursor = self.members.find({"_id": {"$in": list(member_ids)}}, {"full_name": 1})
        return {doc["_id"]: doc.get("full_name", "") async for doc in cursor}


# Meetings' own views.


VIEW_EVENTS = (
    MeetingConvened,
    MeetingRescheduled,
    MeetingCancelled,
    AbsenceRequested,
    AbsenceApproved,
    AbsenceDeclined,
    AttendanceRecorded,
    PollOpened,
    PollClosed,
    MinutesRecorded,
    MeetingClosed,
    MeetingGraded,
    BranchReportSubmitted,
    BranchReportAcknowledged,
)


class Counters:
    """A batch's increments, folded per document: one update each, whatever the batch holds."""

    def __init__(self) -> None:
        self.docs: dict[str, dict[str, Doc]] = {}

    def add(
        self,
        collection: str,
        doc_id: str,
        fields: Doc,
        inc: dict[str, int],
        sets: dict[str, list[str]] | None = None,
    ) -> None:
        doc = self.docs.setdefault(collection, {}).setdefault(
            doc_id, {"set": {}, "inc": {}, "add": {}}
        )
        doc["set"].update(fields)
        for key, value in inc.items():
            doc["inc"][key] = doc["inc"].get(key, 0) + value
        for key, values in (sets or {}).items():
            held = doc["add"].setdefault(key, [])
            held.extend(v for v in dict.fromkeys(values) if v not in held)

    def writes(self, collection: str) -> list[UpdateOne]:
        out = []
        for doc_id, doc in self.docs.get(collection, {}).items():
            update: Doc = {"$set": doc["set"], "$inc": doc["inc"]}
            if doc["add"]:
                update["$addToSet"] = {k: {"$each": v} for k, v in doc["add"].items()}
            out.append(UpdateOne({"_id": doc_id}, update, upsert=True))
        return out


class MeetingViewsProjection:
    name = "meeting_views"
    collections = (INVITATIONS, MEETINGS, BRANCH_MONTHS, MEMBER_MONTHS, MEMBER_YEARS)
    event_types = frozenset(e.event_type for e in VIEW_EVENTS)

    async def create_indexes(self, db: AsyncDatabase[Doc]) -> None:
        await MeetingViews(db).create_indexes()

    async def apply_batch(
        self, db: AsyncDatabase[Doc], items: list[Applied], session: AsyncClientSession
    ) -> None:
        invitations: list[UpdateOne | UpdateMany] = []
        meetings: list[UpdateOne] = []
        counters = Counters()
        starts = {e.meeting_id: e.starts_at for _, e in items if isinstance(e, MeetingConvened)}
        # An older producer's MeetingClosed has no start: the summary (or this batch) knows it.
        unknown = [
            e.meeting_id
            for _, e in items
            if isinstance(e, MeetingClosed) and e.starts_at is None and e.meeting_id not in starts
        ]
        if unknown:
            async for doc in db[MEETINGS].find(
                {"_id": {"$in": unknown}}, {"starts_at": 1}, session=session
            ):
                starts[doc["_id"]] = doc.get("starts_at")
        for envelope, event in items:
            at = envelope.occurred_at
            match event:
                case MeetingConvened():
                    common = {
                        "meeting_id": event.meeting_id,
                        "unit_id": event.unit_id,
                        "kind": event.kind.value,
                        "title": event.title,
                        "starts_at": event.starts_at,
                        "ends_at": event.ends_at,
                        "location": event.location,
                        "online_url": event.online_url,
                        "agenda": event.agenda,
                        "document_ids": event.document_ids,
                        "meeting_status": "convened",
                        "invited_at": at,
                    }
                    invitations.extend(
                        UpdateOne(
                            {"_id": f"{event.meeting_id}:{m}"},
                            {"$set": {**common, "member_id": m}},
                            upsert=True,
                        )
                        for m in event.invitee_ids
                    )
                    meetings.append(
                        UpdateOne(
                            {"_id": event.meeting_id},
                            {
                                "$set": {
                                    "unit_id": event.unit_id,
                                    "org_path": list(envelope.org_path),
                                    "kind": event.kind.value,
                                    "title": event.title,
                                    "starts_at": event.starts_at,
                                    "ends_at": event.ends_at,
                                    "location": event.location,
                                    "online_url": event.online_url,
                                    "status": "convened",
                                    "invited": len(event.invitee_ids),
                                    "convened_at": at,
                                }
                            },
                            upsert=True,
                        )
                    )
                case MeetingRescheduled():
                    times = {
                        "starts_at": event.starts_at,
                        "ends_at": event.ends_at,
                        "location": event.location,
                        "online_url": event.online_url,
                    }
                    notice = {"kind": "rescheduled", "at": at, "reason": event.reason, **times}
                    invitations.append(
                        UpdateMany(
                            {"meeting_id": event.meeting_id},
                            {"$set": times, "$push": {"notices": notice}},
                        )
                    )
                    meetings.append(UpdateOne({"_id": event.meeting_id}, {"$set": times}))
                case MeetingCancelled():
                    notice = {"kind": "cancelled", "at": at, "reason": event.reason}
                    invitations.append(
                        UpdateMany(
                            {"meeting_id": event.meeting_id},
                            {"$set": {"meeting_status": "cancelled"}, "$push": {"notices": notice}},
                        )
                    )
                    meetings.append(
                        UpdateOne(
                            {"_id": event.meeting_id},
                            {"$set": {"status": "cancelled", "cancel_reason": event.reason}},
                        )
                    )
                case AbsenceRequested():
                    invitations.append(
                        UpdateOne(
                            {"_id": f"{event.meeting_id}:{event.member_id}"},
                            {
                                "$set": {
                                    "absence": {
                                        "status": "pending",
                                        "reason": event.reason,
                                        "late": event.late,
                                        "requested_at": at,
                                    }
                                }
                            },
                            upsert=True,
                        )
                    )
                    meetings.append(
                        UpdateOne({"_id": event.meeting_id}, {"$inc": {"absence_requests": 1}})
                    )
                case AbsenceApproved() | AbsenceDeclined():
                    status = "approved" if isinstance(event, AbsenceApproved) else "declined"
                    invitations.append(
                        UpdateOne(
                            {"_id": f"{event.meeting_id}:{event.member_id}"},
                            {"$set": {"absence.status": status, "absence.decided_at": at}},
                            upsert=True,
                        )
                    )
                case AttendanceRecorded():
                    invitations.append(
                        UpdateOne(
                            {"_id": f"{event.meeting_id}:{event.member_id}"},
                            {
                                "$set": {
                                    "meeting_id": event.meeting_id,
                                    "member_id": event.member_id,
                                    "checked_in_at": at,
                                    "check_in_method": event.method,
                                }
                            },
                            upsert=True,
                        )
                    )
                case PollOpened():
                    meetings.append(UpdateOne({"_id": event.meeting_id}, {"$inc": {"polls": 1}}))
                case PollClosed():
                    meetings.append(
                        UpdateOne(
                            {"_id": event.meeting_id},
                            {"$set": {f"poll_results.{event.poll_id}": event.tally}},
                        )
                    )
                case MinutesRecorded():
                    meetings.append(
                        UpdateOne(
                            {"_id": event.meeting_id},
                            {"$set": {"minutes_recorded_at": at, "conclusions": event.conclusions}},
                        )
                    )
                case MeetingClosed():
                    invitations.append(
                        UpdateMany(
                            {"meeting_id": event.meeting_id},
                            {"$set": {"meeting_status": "closed"}},
                        )
                    )
                    for outcome, ids in (
                        ("present", event.present_ids),
                        ("excused", event.excused_ids),
                        ("absent_without_leave", event.absent_without_leave_ids),
                    ):
                        invitations.extend(
                            UpdateOne(
                                {"_id": f"{event.meeting_id}:{m}"},
                                {"$set": {"outcome": outcome, "member_id": m}},
                                upsert=True,
                            )
                            for m in ids
                        )
                    meetings.append(
                        UpdateOne(
                            {"_id": event.meeting_id},
                            {
                                "$set": {
                                    "status": "closed",
                                    "closed_at": at,
                                    "invited": event.invited,
                                    "present": event.present,
                                    "excused": event.excused,
                                    "absent_without_leave": event.absent_without_leave,
                                }
                            },
                            upsert=True,
                        )
                    )
                    starts_at = event.starts_at or starts.get(event.meeting_id)
                    if starts_at is not None:
                        _count(counters, event, starts_at)
                case MeetingGraded():
                    meetings.append(
                        UpdateOne({"_id": event.meeting_id}, {"$set": {"grade": event.grade}})
                    )
                case BranchReportSubmitted():
                    meetings.append(
                        UpdateOne(
                            {"_id": event.meeting_id},
                            {
                                "$set": {
                                    "report": {
                                        "status": "submitted",
                                        "to_unit_id": event.to_unit_id,
                                        "submitted_at": at,
                                        "summary": event.summary,
                                    }
                                }
                            },
                        )
                    )
                case BranchReportAcknowledged():
                    meetings.append(
                        UpdateOne(
                            {"_id": event.meeting_id},
                            {
                                "$set": {
                                    "report.status": "acknowledged",
                                    "report.acknowledged_at": at,
                                    "report.acknowledged_by_unit": event.by_unit_id,
                                    "report.acknowledged_on_behalf_of": event.on_behalf_of,
                                }
                            },
                        )
                    )
        if invitations:
            await db[INVITATIONS].bulk_write(invitations, ordered=True, session=session)
        if meetings:
            await db[MEETINGS].bulk_write(meetings, ordered=True, session=session)
        for collection in (BRANCH_MONTHS, MEMBER_MONTHS, MEMBER_YEARS):
            writes = counters.writes(collection)
            if writes:
                await db[collection].bulk_write(writes, ordered=False, session=session)


def _count(counters: Counters, event: MeetingClosed, starts_at: datetime) -> None:
    """A closed meeting's figures, added to its branch's and each member's month and year.

    Kept per branch, not per path: which branches a unit's figure sums is the tree's
    answer for the figure's date, asked when the figure is read."""
    year, month = month_key(starts_at)
    period = f"{year:04d}-{month:02d}"
    branch_meeting = event.kind is not MeetingKind.committee
    counters.add(
        BRANCH_MONTHS,
        f"{event.unit_id}:{period}",
        {"unit_id": event.unit_id, "year": year, "month": month},
        {
            "meetings": 1,
            f"by_kind.{event.kind.value}": 1,
            "invited": event.invited,
            "present": event.present,
            "excused": event.excused,
            "absent_without_leave": event.absent_without_leave,
        },
    )
    for outcome, ids in (
        ("present", event.present_ids),
        ("excused", event.excused_ids),
        ("absent_without_leave", event.absent_without_leave_ids),
    ):
        for member_id in ids:
            inc = {"invited": 1, outcome: 1}
            counters.add(
                MEMBER_MONTHS,
                f"{member_id}:{period}",
                {"member_id": member_id, "year": year, "month": month},
                inc,
            )
            sets = {"units": [event.unit_id]}
            if outcome == "absent_without_leave" and branch_meeting:
                inc = {**inc, "absent_without_leave_branch": 1}
                sets["missed_meetings"] = [event.meeting_id]
            counters.add(
                MEMBER_YEARS,
                f"{member_id}:{year:04d}",
                {"member_id": member_id, "year": year},
                inc,
                sets,
            )


class MeetingViews:
    """Queries on the views above."""

    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self.db = db
        self.invitations = db[INVITATIONS]
        self.meetings = db[MEETINGS]

    async def create_indexes(self) -> None:
        await self.invitations.create_index([("member_id", ASCENDING), ("starts_at", DESCENDING)])
        await self.invitations.create_index([("meeting_id", ASCENDING)])
        await self.meetings.create_index([("unit_id", ASCENDING), ("starts_at", DESCENDING)])
        await self.meetings.create_index([("report.to_unit_id", ASCENDING)])
        await self.db[BRANCH_MONTHS].create_index([("unit_id", ASCENDING), ("year", ASCENDING)])
        await self.db[MEMBER_MONTHS].create_index([("member_id", ASCENDING), ("year", ASCENDING)])
        await self.db[MEMBER_YEARS].create_index(
            [("units", ASCENDING), ("year", ASCENDING), ("absent_without_leave_branch", ASCENDING)]
        )

    async def inbox(
        self, member_id: str, since: datetime | None = None, limit: int = 50
    ) -> list[Doc]:
        query: Doc = {"member_id": member_id, "starts_at": {"$exists": True}}
        if since is not None:
            query["starts_at"] = {"$gte": since}
        cursor = self.invitations.find(query).sort("starts_at", DESCENDING).limit(limit)
        return await cursor.to_list()

    async def meetings_of(
        self, unit_ids: Sequence[str], year: int | None, limit: int = 200
    ) -> list[Doc]:
        query: Doc = {"unit_id": {"$in": list(unit_ids)}}
        cursor = self.meetings.find(query).sort("starts_at", DESCENDING).limit(limit)
        found = await cursor.to_list()
        if year is not None:
            found = [m for m in found if month_key(m["starts_at"])[0] == year]
        return found

    async def reports_to(
        self, unit_ids: Sequence[str], status: str | None, limit: int = 200
    ) -> list[Doc]:
        query: Doc = {"report.to_unit_id": {"$in": list(unit_ids)}}
        if status:
            query["report.status"] = status
        cursor = self.meetings.find(query).sort("starts_at", DESCENDING).limit(limit)
        return await cursor.to_list()

    async def branch_months(self, unit_ids: Sequence[str], year: int) -> list[Doc]:
        """The year's figures of these branches, one document per branch and month."""
        cursor = self.db[BRANCH_MONTHS].find({"unit_id": {"$in": list(unit_ids)}, "year": year})
        return await cursor.to_list()

    async def member_months(self, member_id: str, year: int) -> list[Doc]:
        cursor = (
            self.db[MEMBER_MONTHS]
            .find({"member_id": member_id, "year": year})
            .sort("month", ASCENDING)
        )
        return await cursor.to_list()

    async def member_year(self, member_id: str, year: int) -> Doc | None:
        return await self.db[MEMBER_YEARS].find_one({"_id": f"{member_id}:{year:04d}"})

    async def flagged(self, unit_ids: Sequence[str], year: int) -> list[Doc]:
        """Members absent without leave from enough branch meetings of these units."""
        cursor = (
            self.db[MEMBER_YEARS]
            .find(
                {
                    "units": {"$in": list(unit_ids)},
                    "year": year,
                    "absent_without_leave_branch": {"$gte": AWOL_FLAG_THRESHOLD},
                }
            )
            .sort("absent_without_leave_branch", DESCENDING)
        )
        return await cursor.to_list()

    async def snapshot(self) -> dict[str, list[Doc]]:
        """Every document of every view, in id order: what a rebuild is compared with.

        `scope` and `missed_meetings` are sets (kept with $addToSet, so their order is
        the order events arrived in across partitions): they are compared sorted.
        """
        found: dict[str, list[Doc]] = {}
        for name in MeetingViewsProjection.collections:
            docs = await self.db[name].find({}).sort("_id", ASCENDING).to_list()
            for doc in docs:
                for key in SET_FIELDS:
                    if isinstance(doc.get(key), list):
                        doc[key] = sorted(doc[key])
            found[name] = docs
        return found
