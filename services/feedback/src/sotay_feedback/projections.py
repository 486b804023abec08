"""Read models from feedback's own events: the bodies' queues and the committees' Q&A.

- `QueueProjection`: one row per submission: who holds it, its state, deadline
  and counters; no text, no author (the events carry neither). Queries: what
  awaits a body, by deadline (overdue first), and counts per state.
- `QaProjection`: the published Q&A entries, with their folded search terms
  (`sotay_platform.textsearch`), so "hoi dap dang vien" finds "hỏi đáp đảng viên".

Both are pure functions of the events, upserts on the submission's id, so a
rebuild from the store equals the live model.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING, UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from sotay_events.catalogue.feedback import (
    FeedbackAnswered,
    FeedbackAssigned,
    FeedbackBody,
    FeedbackClosed,
    FeedbackEscalated,
    FeedbackForwarded,
    FeedbackInformationAdded,
    FeedbackReminded,
    FeedbackReopened,
    FeedbackRouted,
    FeedbackSubmitted,
    FeedbackWithdrawn,
    QaEntryPublished,
)
from sotay_events.consumer import Applied
from sotay_feedback.domain import ANSWERED, ASSIGNED, CLOSED, OPEN, RECEIVED, WITHDRAWN
from sotay_feedback.handlers import VAULT
from sotay_platform.textsearch import index_terms, query_terms, score

Doc = dict[str, Any]

QUEUE = "feedback_queue"
QA = "qa_entries"
STATES = (RECEIVED, ASSIGNED, ANSWERED, CLOSED, WITHDRAWN)


class QueueProjection:
    name = "feedback_queue"
    collections = (QUEUE,)
    event_types = frozenset(
        {
            "FeedbackSubmitted",
            "FeedbackRouted",
            "FeedbackForwarded",
            "FeedbackEscalated",
            "FeedbackReopened",
            "FeedbackAssigned",
            "FeedbackReminded",
            "FeedbackInformationAdded",
            "FeedbackAnswered",
            "FeedbackClosed",
            "FeedbackWithdrawn",
        }
    )

    async def create_indexes(self, db: AsyncDatabase[Doc]) -> None:
        await db[QUEUE].create_index(
            [
                ("unit_id", ASCENDING),
                ("body", ASCENDING),
                ("state", ASCENDING),
                ("deadline", ASCENDING),
            ]
        )
        await db[QUEUE].create_index([("branch_id", ASCENDING)])

    async def apply_batch(
        self, db: AsyncDatabase[Doc], items: list[Applied], session: AsyncClientSession
    ) -> None:
        writes: list[UpdateOne] = []
        for envelope, event in items:
            update: Doc = {}
            match event:
                case FeedbackSubmitted():
                    update = {
                        "$set": {
                            "kind": event.kind.value,
                            "subject": event.subject.value,
                            "branch_id": event.branch_id,
                            "org_path": list(envelope.org_path),
                            "addressed_to": event.addressed_to,
                            "submitted_at": event.submitted_at,
                        }
                    }
                case (
                    FeedbackRouted()
                    | FeedbackForwarded()
                    | FeedbackEscalated()
                    | FeedbackReopened()
                ):
                    update = {
                        "$set": {
                            "kind": event.kind.value,
                            "branch_id": event.branch_id,
                            "unit_id": event.unit_id,
                            "body": event.body.value,
                            "hop": event.hop,
                            "state": RECEIVED,
                            "received_at": event.received_at,
                            "deadline": event.deadline,
                            "remind_at": event.remind_at,
                            "reminded": False,
                            "assignee": None,
                        }
                    }
                    if isinstance(event, FeedbackEscalated):
                        update["$inc"] = {f"escalated_{event.reason}": 1}
                    elif isinstance(event, FeedbackReopened):
                        update["$inc"] = {"reopened": 1}
                    elif isinstance(event, FeedbackForwarded):
                        update["$inc"] = {"forwarded": 1}
                case FeedbackAssigned():
                    update = {"$set": {"state": ASSIGNED, "assignee": event.assignee}}
                case FeedbackReminded():
                    update = {"$set": {"reminded": True}}
                case FeedbackInformationAdded():
                    update = {
                        "$set": {"additions": event.additions, "last_added_at": event.added_at},
                        "$inc": {"attachments": event.attachments},
                    }
                case FeedbackAnswered():
                    update = {
                        "$set": {
                            "state": ANSWERED,
                            "answered_at": event.answered_at,
                            "on_time": event.on_time,
                            "visibility": event.visibility,
                        }
                    }
                case FeedbackClosed():
                    update = {"$set": {"state": CLOSED, "closed_at": event.closed_at}}
                case FeedbackWithdrawn():
                    update = {"$set": {"state": WITHDRAWN, "withdrawn_at": event.withdrawn_at}}
            if update:
                writes.append(UpdateOne({"_id": envelope.aggregate_id}, update, upsert=True))
        if writes:
            await db[QUEUE].bulk_write(writes, session=session)


class QaProjection:
    name = "feedback_qa"
    collections = (QA,)
    event_types = frozenset({"QaEntryPublished"})

    async def create_indexes(self, db: AsyncDatabase[Doc]) -> None:
        await db[QA].create_index([("unit_id", ASCENDING), ("published_at", DESCENDING)])
        await db[QA].create_index([("terms", ASCENDING)])

    async def apply_batch(
        self, db: AsyncDatabase[Doc], items: list[Applied], session: AsyncClientSession
    ) -> None:
        writes = [
            UpdateOne(
                {"_id": event.feedback_id},
                {
                    "$set": {
                        "unit_id": event.unit_id,
                        "body": event.body.value,
                        "kind": event.kind.value,
                        "subject": event.subject.value,
                        "question": event.question,
                        "answer": event.answer,
                        "published_at": event.published_at,
                        "terms": index_terms(event.question, event.answer),
                    }
                },
                upsert=True,
            )
            for _, event in items
            if isinstance(event, QaEntryPublished)
        ]
        if writes:
            await db[QA].bulk_write(writes, session=session)


class Views:
    """Queries on the two read models."""

    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self.db = db
        self.queue = db[QUEUE]
        self.qa = db[QA]

    async def create_indexes(self) -> None:
        await QueueProjection().create_indexes(self.db)
        await QaProjection().create_indexes(self.db)
        await self.db[VAULT].create_index([("member_id", ASCENDING), ("submitted_at", DESCENDING)])

    async def awaiting(
        self,
        unit_ids: Sequence[str],
        body: FeedbackBody,
        states: Sequence[str] = tuple(OPEN),
        limit: int = 100,
    ) -> list[Doc]:
        """What the body holds in `states`, by deadline: what is overdue comes first."""
        cursor = (
            self.queue.find(
                {
                    "unit_id": {"$in": list(unit_ids)},
                    "body": body.value,
                    "state": {"$in": list(states)},
                }
            )
            .sort([("deadline", ASCENDING), ("_id", ASCENDING)])
            .limit(limit)
        )
        return await cursor.to_list()

    async def counts(self, unit_ids: Sequence[str], body: FeedbackBody) -> dict[str, int]:
        found = {state: 0 for state in STATES}
        pipeline: list[Doc] = [
            {"$match": {"unit_id": {"$in": list(unit_ids)}, "body": body.value}},
            {"$group": {"_id": "$state", "n": {"$sum": 1}}},
        ]
        async for row in await self.queue.aggregate(pipeline):
            found[row["_id"]] = row["n"]
        return found

    async def overdue_count(
        self, unit_ids: Sequence[str], body: FeedbackBody, now: datetime
    ) -> int:
        return await self.queue.count_documents(
            {
                "unit_id": {"$in": list(unit_ids)},
                "body": body.value,
                "state": {"$in": list(OPEN)},
                "deadline": {"$lt": now},
            }
        )

    async def search_qa(self, unit_ids: Sequence[str], query: str, limit: int = 20) -> list[Doc]:
        """Entries of the Q&A of `unit_ids`, all of the query's folded terms present, best first."""
        terms = query_terms(query)
        match: Doc = {"unit_id": {"$in": list(unit_ids)}}
        if terms:
            match["terms"] = {"$all": terms}
        cursor = self.qa.find(match).sort("published_at", DESCENDING).limit(500 if terms else limit)
        found = await cursor.to_list()
        if terms:
            found.sort(
                key=lambda d: score(terms, [(d["question"], 2.0), (d["answer"], 1.0)]),
                reverse=True,
            )
        return found[:limit]

    async def submissions_of(self, member_id: str, limit: int = 50) -> list[Doc]:
        """A member's own submissions, newest first, from the private records."""
        cursor = self.db[VAULT].find({"member_id": member_id}).sort("submitted_at", DESCENDING)
        return await cursor.limit(limit).to_list()

    async def snapshot(self) -> dict[str, list[Doc]]:
        return {
            name: await self.db[name].find({}).sort("_id", ASCENDING).to_list()
            for name in (QUEUE, QA)
        }
