"""Queries on learning's read models: every one is an indexed lookup, none scans members."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.database import AsyncDatabase

from sotay_events import MongoEventStore
from sotay_learning.projections import (
    BANKS,
    CAMPAIGNS,
    CONTESTS,
    ENTRIES,
    MEMBERS,
    PARTICIPATION,
    RESULTS,
    MongoDirectory,
)
from sotay_learning.store import REFLECTIONS
from sotay_platform.org_units import COLLECTION as ORG_UNITS
from sotay_platform.roster import Purpose, counted_branch

Doc = dict[str, Any]


class Reads:
    def __init__(self, db: AsyncDatabase[Doc], store: MongoEventStore) -> None:
        self.db = db
        self.store = store
        self.directory = MongoDirectory(db)

    # Catalogue ----------------------------------------------------------------------------

    async def campaigns_concerning(self, branch_path: Sequence[str]) -> list[Doc]:
        units = await self.directory.with_merged(branch_path)
        return (
            await self.db[CAMPAIGNS]
            .find({"unit_id": {"$in": units}})
            .sort([("deadline", ASCENDING), ("_id", ASCENDING)])
            .to_list()
        )

    async def contests_concerning(self, branch_path: Sequence[str]) -> list[Doc]:
        units = await self.directory.with_merged(branch_path)
        return (
            await self.db[CONTESTS]
            .find({"unit_id": {"$in": units}})
            .sort([("ends_at", ASCENDING), ("_id", ASCENDING)])
            .to_list()
        )

    async def campaigns_of_unit(self, unit_id: str, path: Sequence[str]) -> list[Doc]:
        """Campaigns the unit takes part in (launched above it) and those launched within it."""
        above = await self.directory.with_merged(path)
        return (
            await self.db[CAMPAIGNS]
            .find({"$or": [{"unit_id": {"$in": above}}, {"org_path": unit_id}]})
            .sort([("deadline", DESCENDING), ("_id", ASCENDING)])
            .to_list()
        )

    async def banks_usable(self, path: Sequence[str]) -> list[Doc]:
        return await self.db[BANKS].find({"unit_id": {"$in": list(path)}}).sort("_id").to_list()

    async def participation(self, member_id: str, campaign_ids: Iterable[str]) -> dict[str, Doc]:
        ids = [f"{c}:{member_id}" for c in campaign_ids]
        return {
            d["campaign_id"]: d async for d in self.db[PARTICIPATION].find({"_id": {"$in": ids}})
        }

    async def entries(self, member_id: str, contest_ids: Iterable[str]) -> dict[str, Doc]:
        ids = [f"{c}:{member_id}" for c in contest_ids]
        return {d["contest_id"]: d async for d in self.db[ENTRIES].find({"_id": {"$in": ids}})}

    # Results -----------------------------------------------------------------------------

    async def result(self, target_id: str, unit_id: str) -> Doc | None:
        return await self.db[RESULTS].find_one({"_id": f"{target_id}:{unit_id}"})

    async def result_children(self, target_id: str, unit_id: str) -> list[Doc]:
        return (
            await self.db[RESULTS]
            .find({"target_id": target_id, "parent_id": unit_id})
            .sort("unit_id", ASCENDING)
            .to_list()
        )

    async def result_level(self, target_id: str, unit_id: str, level: str) -> list[Doc]:
        return (
            await self.db[RESULTS]
            .find({"target_id": target_id, "path": unit_id, "level": level})
            .to_list()
        )

    async def branch_members(self, campaign_id: str, branch_id: str) -> list[Doc]:
        """Everyone who must take part in a branch (a few hundred at most), with their progress."""
        listed = (
            await self.db[MEMBERS]
            .find({"branch_id": branch_id})
            .sort("full_name", ASCENDING)
            .to_list()
        )
        # The one rule of who must study, the same the counters and reporting use.
        members = [m for m in listed if counted_branch(m, Purpose.study) == branch_id]
        rows = await self.participation_by_members(campaign_id, [m["_id"] for m in members])
        return [m | {"participation": rows.get(m["_id"])} for m in members]

    async def participation_by_members(
        self, campaign_id: str, member_ids: Sequence[str]
    ) -> dict[str, Doc]:
        ids = [f"{campaign_id}:{m}" for m in member_ids]
        return {d["member_id"]: d async for d in self.db[PARTICIPATION].find({"_id": {"$in": ids}})}

    async def reflections(
        self, campaign_id: str, branch_id: str, status: str | None, limit: int
    ) -> list[Doc]:
        query: Doc = {"campaign_id": campaign_id, "current_branch": branch_id}
        query["reflection"] = (
            status if status else {"$in": ["submitted", "approved", "needs_revision"]}
        )
        rows = (
            await self.db[PARTICIPATION]
            .find(query)
            .sort("reflection_at", ASCENDING)
            .limit(limit)
            .to_list()
        )
        texts = await self.store.private_records(
            REFLECTIONS, [f"{r['_id']}:{r.get('reflection_submission', 1)}" for r in rows]
        )
        names = await self.names([r["member_id"] for r in rows])
        return [
            r
            | {
                "full_name": names.get(r["member_id"], ""),
                "text": texts.get(f"{r['_id']}:{r.get('reflection_submission', 1)}", {}),
            }
            for r in rows
        ]

    # Contests ----------------------------------------------------------------------------

    async def member_ranking(self, contest_id: str, unit_id: str | None, limit: int) -> list[Doc]:
        query: Doc = {
            "contest_id": contest_id,
            "best_score": {"$ne": None},
            "contributed": {"$ne": None},
        }
        if unit_id:
            query["branch_path"] = unit_id
        return (
            await self.db[ENTRIES]
            .find(query)
            .sort(
                [("best_score", DESCENDING), ("best_duration", ASCENDING), ("best_at", ASCENDING)]
            )
            .limit(limit)
            .to_list()
        )

    async def member_rank(self, contest_id: str, member_id: str) -> int | None:
        mine = await self.db[ENTRIES].find_one({"_id": f"{contest_id}:{member_id}"})
        if not mine or mine.get("best_score") is None or mine.get("contributed") is None:
            return None
        better = await self.db[ENTRIES].count_documents(
            {
                "contest_id": contest_id,
                "contributed": {"$ne": None},
                "$or": [
                    {"best_score": {"$gt": mine["best_score"]}},
                    {
                        "best_score": mine["best_score"],
                        "best_duration": {"$lt": mine["best_duration"]},
                    },
                    {
                        "best_score": mine["best_score"],
                        "best_duration": mine["best_duration"],
                        "best_at": {"$lt": mine["best_at"]},
                    },
                ],
            }
        )
        return better + 1

    # Names -------------------------------------------------------------------------------

    async def names(self, member_ids: Sequence[str]) -> dict[str, str]:
        return {
            d["_id"]: d.get("full_name", "")
            async for d in self.db[MEMBERS].find(
                {"_id": {"$in": list(member_ids)}}, {"full_name": 1}
            )
        }

    async def unit_names(self, unit_ids: Iterable[str]) -> dict[str, str]:
        return {
            d["_id"]: d.get("name", "")
            async for d in self.db[ORG_UNITS].find(
                {"_id": {"$in": list(dict.fromkeys(unit_ids))}}, {"name": 1}
            )
        }
