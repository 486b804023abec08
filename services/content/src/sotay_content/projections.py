"""Content's read models, fed by its own events: pieces, search postings, libraries, reads.

One row per piece holds what every query needs: its state, its current
revision, the unit it targets and `terms`, the folded tokens of its title,
summary, body, document identification and attachments' text
(`sotay_platform.textsearch`).

Search does not lean on a multikey index over `terms`: SecantusDB (the
embedded MongoDB, a Python server) answers `$all` with a collection scan and
maintains a 100-entry multikey index at about a hundred documents a second.
Postings are kept beside the rows instead, the way a search engine keeps its
segments: `search_postings` documents {term, week, ids}, inserted (never
updated) for the terms a batch of events added to pieces first drafted in
that week; each entry names the piece with its target unit and kind, which
never change. A search reads, newest weeks first, the postings of its terms
(one indexed range query per window of weeks), intersects them, keeps the
entries the caller's audience and kind filter allow, and checks the newest of
those against their rows (published, filters, every term still there), which
also discards postings a later revision made stale.
The postings are a set per term whatever the batches were, which is what a
rebuild is compared on.

The text of an attachment is not in any event (it may be long, and events
travel): it is a private record written in the same transaction as
`PieceAttachmentAdded`, never changed afterwards, so reading it here keeps the
projection a function of the events.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import UTC, date, datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING, DeleteOne, ReplaceOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from sotay_content.domain import DRAFT, PUBLISHED, SCHEDULED, SUBMITTED, WITHDRAWN
from sotay_content.richtext import to_text
from sotay_events.catalogue.content import (
    PieceAttachmentAdded,
    PieceAttachmentRemoved,
    PieceContent,
    PieceDrafted,
    PieceDraftEdited,
    PiecePublished,
    PieceRead,
    PieceReturned,
    PieceRevised,
    PieceSaved,
    PieceScheduled,
    PieceSubmitted,
    PieceUnsaved,
    PieceWithdrawn,
)
from sotay_events.consumer import Applied
from sotay_platform.textsearch import compact, index_terms, query_terms, score_tokens, tokens

Doc = dict[str, Any]

PIECES = "pieces"
POSTINGS = "search_postings"
LIBRARY = "library"
READS = "reads"
ATTACHMENT_TEXTS = "attachment_texts"  # private records, written by the commands

PIECE_EVENTS = (
    PieceDrafted,
    PieceDraftEdited,
    PieceAttachmentAdded,
    PieceAttachmentRemoved,
    PieceSubmitted,
    PieceReturned,
    PieceScheduled,
    PiecePublished,
    PieceRevised,
    PieceWithdrawn,
)
EVENTS = (*PIECE_EVENTS, PieceRead, PieceSaved, PieceUnsaved)

# A search ranks at most this many rows: the newest that hold every query term.
SEARCH_CANDIDATES = 40
# Rows checked per round trip, and how far back the first round of postings reaches (weeks).
CHECK_BATCH = 40
FIRST_WINDOW_WEEKS = 8
EPOCH = datetime(2000, 1, 3, tzinfo=UTC)  # a Monday: weeks start on Mondays


def posting(piece_id: str, unit_id: str, kind: str) -> str:
    """A postings entry: the piece with what never changes about it (its audience and kind),
    so a search drops what the caller may not see before it fetches a single row."""
    return f"{piece_id}|{unit_id}|{kind}"


def week_of(moment: datetime) -> int:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - EPOCH).days // 7


def issuing_key(issuing_body: str) -> str:
    return " ".join(tokens(issuing_body))


def _content_fields(content: PieceContent) -> Doc:
    document = content.document
    fields: Doc = {
        "title": content.title,
        "summary": content.summary,
        "body": content.body,
        "document": document.model_dump(mode="json") if document else None,
        "code": compact(document.number_symbol) if document else None,
        "number": document.number_symbol.split("-", 1)[0] if document else None,
        "issuing_key": issuing_key(document.issuing_body) if document else None,
        "issued_on": document.issued_on.isoformat() if document else None,
    }
    return fields


def _terms(row: Doc, attachment_texts: dict[str, str]) -> list[str]:
    document = row.get("document") or {}
    return index_terms(
        row.get("title"),
        row.get("summary"),
        to_text(row.get("body") or ""),
        document.get("number_symbol"),
        document.get("issuing_body"),
        *(attachment_texts.get(a["attachment_id"], "") for a in row.get("attachments", [])),
    )


RANKED_FIELDS = (("title", 4.0), ("number_symbol", 4.0), ("summary", 2.0), ("issuing_body", 1.5))


def _rank_tokens(row: Doc) -> dict[str, list[str]]:
    """The ranked fields' tokens, folded once when written rather than at every search."""
    document = row.get("document") or {}
    return {name: tokens(row.get(name) or document.get(name) or "") for name, _ in RANKED_FIELDS}


def _apply_piece(row: Doc, envelope_time: datetime, event: Any) -> None:
    match event:
        case PieceDrafted():
            row.update(
                kind=event.kind.value,
                unit_id=event.unit_id,
                status=DRAFT,
                author_id=event.author_id,
                created_at=envelope_time,
                week=week_of(envelope_time),
                submitted_by=None,
                submitted_at=None,
                approved_by=None,
                publish_at=None,
                published_at=None,
                revision=0,
                attachments=[],
                withdrawn_reason=None,
                **_content_fields(event.content),
            )
        case PieceDraftEdited():
            row.update(_content_fields(event.content))
        case PieceAttachmentAdded():
            row["attachments"] = [
                *(
                    a
                    for a in row.get("attachments", [])
                    if a["attachment_id"] != event.attachment_id
                ),
                {
                    "attachment_id": event.attachment_id,
                    "file_name": event.file_name,
                    "media_type": event.media_type,
                    "size": event.size,
                },
            ]
        case PieceAttachmentRemoved():
            row["attachments"] = [
                a for a in row.get("attachments", []) if a["attachment_id"] != event.attachment_id
            ]
        case PieceSubmitted():
            row.update(
                status=SUBMITTED, submitted_by=event.submitted_by, submitted_at=envelope_time
            )
        case PieceReturned():
            row.update(status=DRAFT, submitted_by=None, submitted_at=None, return_note=event.note)
        case PieceScheduled():
            row.update(status=SCHEDULED, approved_by=event.approved_by, publish_at=event.publish_at)
        case PiecePublished():
            row.update(
                status=PUBLISHED,
                approved_by=event.approved_by,
                published_at=event.published_at,
                revision=event.revision,
            )
        case PieceRevised():
            row.update(
                revision=event.revision, revised_at=envelope_time, **_content_fields(event.content)
            )
        case PieceWithdrawn():
            row.update(status=WITHDRAWN, withdrawn_reason=event.reason, withdrawn_at=envelope_time)
    published = row.get("published_at")
    # The date a search's date range reads: a document's date of issue, else its publication day.
    row["dated"] = row.get("issued_on") or (
        published.date().isoformat() if isinstance(published, datetime) else None
    )
    row["updated_at"] = envelope_time


class ContentProjection:
    name = "content"
    collections = (PIECES, POSTINGS, LIBRARY, READS)
    event_types = frozenset(e.event_type for e in EVENTS)

    async def create_indexes(self, db: AsyncDatabase[Doc]) -> None:
        await create_indexes(db)

    async def apply_batch(
        self, db: AsyncDatabase[Doc], items: list[Applied], session: AsyncClientSession
    ) -> None:
        piece_items = [(e, ev) for e, ev in items if isinstance(ev, PIECE_EVENTS)]
        if piece_items:
            await self._pieces(db, piece_items, session)
        library: list[Any] = []
        reads: list[Any] = []
        for envelope, event in items:
            match event:
                case PieceSaved():
                    library.append(
                        ReplaceOne(
                            {"_id": f"{event.member_id}:{event.piece_id}"},
                            {
                                "member_id": event.member_id,
                                "piece_id": event.piece_id,
                                "saved_at": envelope.occurred_at,
                            },
                            upsert=True,
                        )
                    )
                case PieceUnsaved():
                    library.append(DeleteOne({"_id": f"{event.member_id}:{event.piece_id}"}))
                case PieceRead():
                    reads.append(
                        ReplaceOne(
                            {"_id": envelope.aggregate_id},
                            {
                                "piece_id": event.piece_id,
                                "member_id": event.member_id,
                                "read_at": envelope.occurred_at,
                            },
                            upsert=True,
                        )
                    )
        if library:
            await db[LIBRARY].bulk_write(library, session=session)
        if reads:
            await db[READS].bulk_write(reads, session=session)

    async def _pieces(
        self, db: AsyncDatabase[Doc], items: list[Applied], session: AsyncClientSession
    ) -> None:
        ids = list(dict.fromkeys(envelope.aggregate_id for envelope, _ in items))
        rows = {d["_id"]: d async for d in db[PIECES].find({"_id": {"$in": ids}}, session=session)}
        before = {i: set(row.get("terms", [])) for i, row in rows.items()}
        for envelope, event in items:
            row = rows.setdefault(envelope.aggregate_id, {"_id": envelope.aggregate_id})
            _apply_piece(row, envelope.occurred_at, event)
            row["unit_path"] = list(envelope.org_path)
            row["version"] = envelope.aggregate_version
        wanted = [a["attachment_id"] for row in rows.values() for a in row.get("attachments", [])]
        texts = {
            d["_id"]: d.get("text", "")
            async for d in db[ATTACHMENT_TEXTS].find({"_id": {"$in": wanted}}, session=session)
        }
        postings: dict[tuple[str, int], list[str]] = {}
        for piece_id, row in rows.items():
            row["terms"] = _terms(row, texts)
            row["rank_tokens"] = _rank_tokens(row)
            entry = posting(piece_id, row["unit_id"], row["kind"])
            for term in sorted(set(row["terms"]) - before.get(piece_id, set())):
                postings.setdefault((term, row["week"]), []).append(entry)
        # New rows are inserted, known ones replaced: an upsert costs SecantusDB a lookup more.
        fresh = [row for i, row in rows.items() if i not in before]
        known = [ReplaceOne({"_id": i}, row) for i, row in rows.items() if i in before]
        if fresh:
            await db[PIECES].insert_many(fresh, ordered=False, session=session)
        if known:
            await db[PIECES].bulk_write(known, ordered=False, session=session)
        if postings:
            await db[POSTINGS].insert_many(
                [{"term": t, "week": w, "ids": sorted(p)} for (t, w), p in postings.items()],
                ordered=False,
                session=session,
            )


async def create_indexes(db: AsyncDatabase[Doc]) -> None:
    pieces = db[PIECES]
    await db[POSTINGS].create_index([("term", ASCENDING), ("week", DESCENDING)])
    await pieces.create_index([("code", ASCENDING)], sparse=True)
    await pieces.create_index(
        [("status", ASCENDING), ("unit_id", ASCENDING), ("published_at", DESCENDING)]
    )
    # The board's queue and lists: a short multikey (a path is a handful of units).
    await pieces.create_index([("unit_path", ASCENDING), ("status", ASCENDING)])
    await db[LIBRARY].create_index([("member_id", ASCENDING), ("saved_at", DESCENDING)])
    await db[READS].create_index([("piece_id", ASCENDING)])


class SearchFilters:
    def __init__(
        self,
        kinds: Sequence[str] = (),
        issuing_body: str | None = None,
        date_from: date | None = None,
        date_to: date | None = None,
        unit_id: str | None = None,
    ) -> None:
        self.kinds = list(kinds)
        self.issuing_body = issuing_body
        self.date_from = date_from
        self.date_to = date_to
        self.unit_id = unit_id

    def query(self) -> Doc:
        query: Doc = {}
        if self.kinds:
            query["kind"] = {"$in": self.kinds}
        if self.issuing_body:
            query["issuing_key"] = issuing_key(self.issuing_body)
        dated: Doc = {}
        if self.date_from:
            dated["$gte"] = self.date_from.isoformat()
        if self.date_to:
            dated["$lte"] = self.date_to.isoformat()
        if dated:
            query["dated"] = dated
        return query


def _matches(row: Doc, query: Doc) -> bool:
    """`SearchFilters.query()` checked in Python, on a row already fetched."""
    for field, condition in query.items():
        value = row.get(field)
        if isinstance(condition, dict):
            if "$in" in condition and value not in condition["$in"]:
                return False
            if "$gte" in condition and (value is None or value < condition["$gte"]):
                return False
            if "$lte" in condition and (value is None or value > condition["$lte"]):
                return False
        elif value != condition:
            return False
    return True


def _timestamp(moment: Any) -> float:
    return moment.timestamp() if isinstance(moment, datetime) else 0.0


def rank(query: str, rows: Sequence[Doc]) -> list[tuple[Doc, float]]:
    """Exact number-and-symbol matches first, then a number alone, then by text score, newest first.

    Every row holds every term somewhere (body and attachments included); the
    score says how much of the query its title, code and summary carry.
    """
    terms = query_terms(query)
    wanted_code = compact(query)
    ranked = []
    for row in rows:
        if row.get("code") and row["code"] == wanted_code:
            tier = 0
        elif row.get("code") and row["code"] in wanted_code:
            tier = 1  # "nghị quyết 57-NQ/TW về ..." names the code among other words
        elif row.get("number") and row["number"] in terms:
            tier = 2
        else:
            tier = 3
        held = row.get("rank_tokens") or {}
        text_score = score_tokens(
            terms, [(held.get(name, []), weight) for name, weight in RANKED_FIELDS]
        )
        ranked.append((tier, -text_score, row))
    ranked.sort(key=lambda t: (t[0], t[1], -_timestamp(t[2].get("published_at"))))
    return [(row, -neg) for _, neg, row in ranked]


class ContentViews:
    """Queries on the read models."""

    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self.db = db
        self.pieces = db[PIECES]
        self.library = db[LIBRARY]
        self.reads = db[READS]

    async def create_indexes(self) -> None:
        await create_indexes(self.db)

    async def get(self, piece_id: str) -> Doc | None:
        row = await self.pieces.find_one({"_id": piece_id}, {"terms": 0})
        return row

    async def queue(self, unit_ids: Sequence[str], limit: int = 100) -> list[Doc]:
        """What awaits review under these units, oldest submission first (the board's order)."""
        cursor = (
            self.pieces.find(
                {"status": SUBMITTED, "unit_path": {"$in": list(unit_ids)}}, {"terms": 0}
            )
            .sort([("submitted_at", ASCENDING), ("_id", ASCENDING)])
            .limit(limit)
        )
        return await cursor.to_list()

    async def managed(
        self, unit_ids: Sequence[str], status: str | None = None, limit: int = 100
    ) -> list[Doc]:
        query: Doc = {"unit_path": {"$in": list(unit_ids)}}
        if status:
            query["status"] = status
        cursor = self.pieces.find(query, {"terms": 0, "body": 0}).sort("updated_at", DESCENDING)
        return await cursor.limit(limit).to_list()

    async def feed(
        self,
        targets: Sequence[str],
        kinds: Sequence[str] = (),
        before: datetime | None = None,
        limit: int = 20,
    ) -> list[Doc]:
        """Published pieces targeting these units, newest first."""
        query: Doc = {"status": PUBLISHED, "unit_id": {"$in": list(targets)}}
        if kinds:
            query["kind"] = {"$in": list(kinds)}
        if before:
            query["published_at"] = {"$lt": before}
        cursor = (
            self.pieces.find(query, {"terms": 0, "body": 0})
            .sort([("published_at", DESCENDING), ("_id", ASCENDING)])
            .limit(limit)
        )
        return await cursor.to_list()

    async def search(
        self, query: str, targets: Sequence[str], filters: SearchFilters, limit: int = 20
    ) -> list[tuple[Doc, float]]:
        """Published pieces for `targets` holding every term of `query`, best first."""
        terms = query_terms(query)
        if not terms:
            return []
        if filters.unit_id and filters.unit_id not in set(targets):
            return []
        audience = {filters.unit_id} if filters.unit_id else set(targets)
        wanted = set(terms)
        extra = filters.query()

        def keep(row: Doc) -> bool:
            return (
                row.get("status") == PUBLISHED
                and row.get("unit_id") in audience
                and wanted <= set(row.get("terms", ()))
                and _matches(row, extra)
            )

        code = compact(query)
        looks_like_code = any(c.isdigit() for c in code) and any(c.isalpha() for c in code)
        coded = (
            await self.pieces.find({"code": code}, {"body": 0}).to_list(50)
            if looks_like_code
            else []
        )
        exact = [
            row
            for row in coded
            if row.get("status") == PUBLISHED
            and row.get("unit_id") in audience
            and _matches(row, extra)
        ]
        found = {row["_id"]: row for row in exact}
        kinds = set(filters.kinds)
        async for entries in self._candidates(terms):
            candidates = []
            for entry in entries:
                piece_id, unit_id, kind = entry.split("|", 2)
                if unit_id in audience and (not kinds or kind in kinds):
                    candidates.append(piece_id)
            for start in range(0, len(candidates), CHECK_BATCH):
                chunk = [c for c in candidates[start : start + CHECK_BATCH] if c not in found]
                if not chunk:
                    continue
                async for row in self.pieces.find({"_id": {"$in": chunk}}, {"body": 0}):
                    if keep(row):
                        found[row["_id"]] = row
                if len(found) >= SEARCH_CANDIDATES:
                    break
            if len(found) >= SEARCH_CANDIDATES:
                break  # enough of the newest to rank
        for row in found.values():
            row.pop("terms", None)
            row.pop("rank_tokens", None)
        return rank(query, list(found.values()))[:limit]

    async def _candidates(self, terms: list[str]) -> AsyncIterator[list[str]]:
        """Postings entries holding every term, newest first, one window of weeks at a time."""
        postings = self.db[POSTINGS]
        by_term = postings.find({"term": terms[0]}, {"week": 1})
        newest = await by_term.sort("week", DESCENDING).to_list(1)
        if not newest:
            return
        high, window = newest[0]["week"], FIRST_WINDOW_WEEKS
        floor: int | None = None  # looked up only when the newest weeks were not enough
        while floor is None or high >= floor:
            low = high - window + 1 if floor is None else max(floor, high - window + 1)
            by_week: dict[int, dict[str, set[str]]] = {}
            async for doc in postings.find(
                {"term": {"$in": terms}, "week": {"$gte": low, "$lte": high}},
                {"_id": 0, "term": 1, "week": 1, "ids": 1},
            ):
                weekly = by_week.setdefault(doc["week"], {})
                weekly.setdefault(doc["term"], set()).update(doc["ids"])
            found: list[str] = []
            for week in sorted(by_week, reverse=True):
                sets = by_week[week]
                if len(sets) == len(terms):
                    found += sorted(set.intersection(*sets.values()), reverse=True)
            if found:
                yield found
            if floor is None:
                oldest = postings.find({"term": terms[0]}, {"week": 1}).sort("week", ASCENDING)
                floor = (await oldest.to_list(1))[0]["week"]
            high, window = low - 1, window * 2

    async def saved(self, member_id: str, limit: int = 500) -> list[tuple[Doc, Doc]]:
        """A member's library, newest first, with each piece as it stands (published only)."""
        entries = await (
            self.library.find({"member_id": member_id})
            .sort("saved_at", DESCENDING)
            .limit(limit)
            .to_list()
        )
        ids = [e["piece_id"] for e in entries]
        pieces = {
            d["_id"]: d
            async for d in self.pieces.find(
                {"_id": {"$in": ids}, "status": PUBLISHED}, {"terms": 0, "body": 0}
            )
        }
        return [(e, pieces[e["piece_id"]]) for e in entries if e["piece_id"] in pieces]

    async def read_ids(self, member_id: str, piece_ids: Sequence[str]) -> set[str]:
        ids = [f"{p}:{member_id}" for p in piece_ids]
        return {
            d["piece_id"] async for d in self.reads.find({"_id": {"$in": ids}}, {"piece_id": 1})
        }

    async def snapshot(self) -> dict[str, list[Doc]]:
        """Every row, in id order: what a rebuild is compared with."""
        snapshot = {
            name: await self.db[name].find({}).sort("_id", ASCENDING).to_list()
            for name in (PIECES, LIBRARY, READS)
        }
        postings: dict[str, set[str]] = {}
        async for doc in self.db[POSTINGS].find({}, {"_id": 0}):
            postings.setdefault(f"{doc['term']}|{doc['week']}", set()).update(doc["ids"])
        snapshot[POSTINGS] = [{"_id": k, "ids": sorted(v)} for k, v in sorted(postings.items())]
        return snapshot
