"""Read models: the roster (from identity), the tree (from org-tree), and meetings' own views.

- `RosterProjection`: every member meetings needs to know, from identity's events only:
  branch, status, approval, removal and roles. No personal data arrives, none is kept.
- `UnitDirectory`: queries on the service's copy of the tree (`OrgUnitsProjection`),
  following merges: a merged branch's members are expected at its successor's meetings.
- `MeetingViewsProjection`: from meetings' own events, in one consumer and one
  transaction per batch: each member's invitations (the inbox), a summary per meeting,
  and attendance statistics per meeting, member and branch, by month and year.

Events of different aggregates arrive in any order (a check-in travels on its own
key); every write is an upsert on a stable id, so the result does not depend on the
order and a rebuild equals the live model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
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
from sotay_platform.org_units import ACTIVE, MERGED, OrgUnits
from sotay_platform.roster import MEMBER_EVENT_TYPES, fold_members

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
SET_FIELDS = ("scope", "missed_meetings")


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
        await self.members.create_index([("roles.unit_id", ASCENDING)])

    def _expected(self, unit_ids: Sequence[str], kind: MeetingKind) -> Doc:
        query: Doc = {"expected": True}
        if kind is MeetingKind.committee:
            query["roles"] = {
                "$elemMatch": {"unit_id": {"$in": list(unit_ids)}, "role": {"$in": COMMITTEE_ROLES}}
            }
        else:
            query["branch_id"] = {"$in": list(unit_ids)}
        return query

    async def expected(self, unit_ids: Sequence[str], kind: MeetingKind) -> list[str]:
        """Who must attend: approved, official or probationary (not exempted), in the unit."""
        cursor = self.members.find(self._expected(unit_ids, kind), {"_id": 1}).sort("_id", 1)
        return [doc["_id"] async for doc in cursor]

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


# The tree, through merges.


@dataclass(frozen=True)
class ResolvedUnit:
    """A unit as it stands now: a merged unit resolves to its successor."""

    id: str
    name: str
    level: str
    path: list[str]  # root .. unit
    absorbed: list[str]  # the unit and every unit merged into it, however deep

    @property
    def parent_id(self) -> str | None:
        return self.path[-2] if len(self.path) > 1 else None


class UnitDirectory:
    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self.units = OrgUnits(db)

    async def resolve(self, unit_id: str) -> ResolvedUnit | None:
        doc = await self.units.get(unit_id)
        seen: set[str] = set()
        while doc is not None and doc.get("status") == MERGED and doc.get("merged_into"):
            if doc["_id"] in seen:
                break
            seen.add(doc["_id"])
            doc = await self.units.get(doc["merged_into"])
        if doc is None or doc.get("status") != ACTIVE:
            return None
        absorbed = [doc["_id"]]
        frontier = [doc["_id"]]
        while frontier:
            found = [
                d["_id"]
                async for d in self.units.units.find({"merged_into": {"$in": frontier}}, {"_id": 1})
                if d["_id"] not in absorbed
            ]
            absorbed.extend(found)
            frontier = found
        return ResolvedUnit(
            id=doc["_id"],
            name=doc.get("name", ""),
            level=doc.get("level", ""),
            path=list(doc.get("path") or [doc["_id"]]),
            absorbed=absorbed,
        )

    async def path(self, unit_id: str) -> list[str]:
        resolved = await self.resolve(unit_id)
        if resolved is not None:
            return resolved.path
        return await self.units.path(unit_id)


# Meetings' own views.


class MeetingViewsProjection:
    name = "meeting_views"
    collections = (INVITATIONS, MEETINGS, BRANCH_MONTHS, MEMBER_MONTHS, MEMBER_YEARS)

    async def apply_batch(
        self, db: AsyncDatabase[Doc], items: list[Applied], session: AsyncClientSession
    ) -> None:
        invitations: list[UpdateOne | UpdateMany] = []
        meetings: list[UpdateOne] = []
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
                    await self._count(db, envelope.org_path, event, session)
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
                                }
                            },
                        )
                    )
        if invitations:
            await db[INVITATIONS].bulk_write(invitations, ordered=True, session=session)
        if meetings:
            await db[MEETINGS].bulk_write(meetings, ordered=True, session=session)

    async def _count(
        self,
        db: AsyncDatabase[Doc],
        org_path: Sequence[str],
        event: MeetingClosed,
        session: AsyncClientSession,
    ) -> None:
        """A closed meeting's figures, added to its branch's and each member's month and year."""
        starts_at = event.starts_at
        if starts_at is None:  # an older producer: the summary knows the start
            summary = await db[MEETINGS].find_one({"_id": event.meeting_id}, session=session)
            starts_at = summary["starts_at"] if summary else None
        if starts_at is None:
            return
        year, month = month_key(starts_at)
        period = f"{year:04d}-{month:02d}"
        scope = list(org_path) or [event.unit_id]
        branch_meeting = event.kind is not MeetingKind.committee
        await db[BRANCH_MONTHS].update_one(
            {"_id": f"{event.unit_id}:{period}"},
            {
                "$set": {"unit_id": event.unit_id, "year": year, "month": month, "scope": scope},
                "$inc": {
                    "meetings": 1,
                    f"by_kind.{event.kind.value}": 1,
                    "invited": event.invited,
                    "present": event.present,
                    "excused": event.excused,
                    "absent_without_leave": event.absent_without_leave,
                },
            },
            upsert=True,
            session=session,
        )
        writes_month: list[UpdateOne] = []
        writes_year: list[UpdateOne] = []
        for outcome, ids in (
            ("present", event.present_ids),
            ("excused", event.excused_ids),
            ("absent_without_leave", event.absent_without_leave_ids),
        ):
            for member_id in ids:
                inc = {"invited": 1, outcome: 1}
                writes_month.append(
                    UpdateOne(
                        {"_id": f"{member_id}:{period}"},
                        {
                            "$set": {"member_id": member_id, "year": year, "month": month},
                            "$inc": inc,
                        },
                        upsert=True,
                    )
                )
                year_update: Doc = {
                    "$set": {"member_id": member_id, "year": year},
                    "$inc": dict(inc),
                    "$addToSet": {"scope": {"$each": scope}},
                }
                if outcome == "absent_without_leave" and branch_meeting:
                    year_update["$inc"]["absent_without_leave_branch"] = 1
                    year_update["$addToSet"]["missed_meetings"] = event.meeting_id
                writes_year.append(
                    UpdateOne({"_id": f"{member_id}:{year:04d}"}, year_update, upsert=True)
                )
        if writes_month:
            await db[MEMBER_MONTHS].bulk_write(writes_month, ordered=False, session=session)
            await db[MEMBER_YEARS].bulk_write(writes_year, ordered=False, session=session)


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
        await self.db[BRANCH_MONTHS].create_index([("scope", ASCENDING), ("year", ASCENDING)])
        await self.db[MEMBER_MONTHS].create_index([("member_id", ASCENDING), ("year", ASCENDING)])
        await self.db[MEMBER_YEARS].create_index(
            [("scope", ASCENDING), ("year", ASCENDING), ("absent_without_leave_branch", ASCENDING)]
        )

    async def inbox(
        self, member_id: str, since: datetime | None = None, limit: int = 50
    ) -> list[Doc]:
        query: Doc = {"member_id": member_id, "starts_at": {"$exists": True}}
        if since is not None:
            query["starts_at"] = {"$gte": since}
        cursor = self.invitations.find(query).sort("starts_at", DESCENDING).limit(limit)
        return await cursor.to_list()

    async def meetings_of(self, unit_id: str, year: int | None, limit: int = 200) -> list[Doc]:
        query: Doc = {"unit_id": unit_id}
        cursor = self.meetings.find(query).sort("starts_at", DESCENDING).limit(limit)
        found = await cursor.to_list()
        if year is not None:
            found = [m for m in found if month_key(m["starts_at"])[0] == year]
        return found

    async def reports_to(self, unit_id: str, status: str | None, limit: int = 200) -> list[Doc]:
        query: Doc = {"report.to_unit_id": unit_id}
        if status:
            query["report.status"] = status
        cursor = self.meetings.find(query).sort("starts_at", DESCENDING).limit(limit)
        return await cursor.to_list()

    async def unit_months(self, unit_id: str, year: int) -> list[Doc]:
        """Every branch-month in the unit's subtree (as it stood when each meeting closed)."""
        cursor = self.db[BRANCH_MONTHS].find({"scope": unit_id, "year": year})
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

    async def flagged(self, unit_id: str, year: int) -> list[Doc]:
        cursor = (
            self.db[MEMBER_YEARS]
            .find(
                {
                    "scope": unit_id,
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
