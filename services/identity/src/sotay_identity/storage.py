"""Identity's persistence: member streams plus the private state that must never be published.

A command collects what it writes in a `UnitOfWork` and commits it at once:
the member's new events (the outbox the relay publishes), the members read
model row, and identity's private documents (personal records, password
hashes, unique-key claims). In MongoDB that is one multi-document
transaction, so nothing is ever half-written and a claim on a citizen ID, a
party card or a phone number is taken together with the events or not at all.

Collections (identity's own database):
  events            the event store and outbox (shared format, `sotay_events.store`)
  members           read model: each member's public state, written with its events
  personal_records  citizen ID, phone, birth date, work history, rewards, discipline
  accounts          argon2 password hashes
  unique_keys       one document per claimed key: `<kind>:<HMAC of the value>` -> member
  sessions          refresh-token sessions (hashes only)
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from opentelemetry import trace
from pymongo import ASCENDING, AsyncMongoClient, DeleteOne, ReplaceOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError, PyMongoError

from sotay_events import (
    CommandContext,
    ConcurrencyConflict,
    EventEnvelope,
    InMemoryEventStore,
    decode,
)
from sotay_events.store import from_document, make_envelopes, to_document
from sotay_identity.domain import Member, PersonalData, member_doc

tracer = trace.get_tracer("sotay_identity.storage")
Doc = dict[str, Any]
SIGNED_IN = "MemberSignedIn"
KEY_FIELDS = {"citizen_id": "citizen_id", "party_card": "party_card_no", "phone": "phone"}
KEY_MESSAGES = {
    "citizen_id": "Số định danh công dân này đã thuộc về một đảng viên khác",
    "party_card": "Số thẻ đảng viên này đã thuộc về một đảng viên khác",
    "phone": "Số điện thoại này đã được dùng cho tài khoản của một đảng viên khác",
}


class KeyTaken(Exception):
    """A unique key (citizen ID, party card, phone) already belongs to another member."""

    def __init__(self, kind: str, owner: str | None) -> None:
        super().__init__(KEY_MESSAGES[kind])
        self.kind = kind
        self.field = KEY_FIELDS[kind]
        self.owner = owner
        self.message = KEY_MESSAGES[kind]


class KeyHasher:
    """Unique keys are stored as keyed hashes: a 12-digit citizen ID's plain hash could be
    brute-forced, and key values show up in duplicate-key errors and logs."""

    def __init__(self, secret: str) -> None:
        self._secret = secret.encode()

    def key(self, kind: str, value: str) -> str:
        digest = hmac.new(self._secret, f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()
        return f"{kind}:{digest}"


@dataclass
class UnitOfWork:
    """Everything one command writes, committed together."""

    members: list[tuple[Member, CommandContext]] = field(default_factory=list)
    claims: dict[str, str] = field(default_factory=dict)  # key -> member id
    releases: list[tuple[str, str]] = field(default_factory=list)  # (key, member id)
    puts: dict[str, dict[str, Doc]] = field(default_factory=dict)
    deletes: dict[str, set[str]] = field(default_factory=dict)

    def save(self, member: Member, context: CommandContext) -> None:
        if not any(m is member for m, _ in self.members):
            self.members.append((member, context))

    def claim(self, key: str, member_id: str) -> None:
        self.claims[key] = member_id

    def release(self, key: str, member_id: str) -> None:
        self.claims.pop(key, None)
        self.releases.append((key, member_id))

    def put(self, collection: str, doc: Doc) -> None:
        self.puts.setdefault(collection, {})[doc["_id"]] = doc
        self.deletes.get(collection, set()).discard(doc["_id"])

    def delete(self, collection: str, doc_id: str) -> None:
        self.puts.get(collection, {}).pop(doc_id, None)
        self.deletes.setdefault(collection, set()).add(doc_id)

    def put_personal(self, member_id: str, personal: PersonalData) -> None:
        self.put("personal_records", personal.to_doc(member_id))

    @property
    def empty(self) -> bool:
        return not (
            any(m.pending for m, _ in self.members)
            or self.claims
            or self.releases
            or self.puts
            or self.deletes
        )


class Storage(Protocol):
    async def load_member(self, member_id: str) -> Member | None: ...
    async def member_row(self, member_id: str) -> Doc | None: ...
    async def members_in(
        self,
        branch_ids: Sequence[str],
        *,
        states: Sequence[str] = (),
        status: str | None = None,
        offset: int = 0,
        limit: int = 0,
    ) -> list[Doc]: ...
    async def count_in(self, branch_ids: Sequence[str], states: Sequence[str] = ()) -> int: ...
    async def personal(self, member_id: str) -> PersonalData | None: ...
    async def personal_many(self, member_ids: Sequence[str]) -> dict[str, PersonalData]: ...
    async def account(self, member_id: str) -> Doc | None: ...
    async def claim_owners(self, keys: Sequence[str]) -> dict[str, str]: ...
    async def session(self, session_id: str) -> Doc | None: ...
    async def rotate_session(self, session_id: str, old_hash: str, changes: Doc) -> bool: ...
    async def revoke_sessions(self, member_id: str, except_id: str | None = None) -> list[str]: ...
    async def revoke_session(self, session_id: str) -> None: ...
    async def commit(
        self, uow: UnitOfWork, session: AsyncClientSession | None = None
    ) -> list[EventEnvelope]: ...


def _match(doc: Doc, branch_ids: Sequence[str], states: Sequence[str], status: str | None) -> bool:
    return (
        doc["branch_id"] in branch_ids
        and (not states or doc["state"] in states)
        and (status is None or doc["status"] == status)
    )


class MongoStorage:
    def __init__(
        self,
        client: AsyncMongoClient[Doc],
        database: str,
        on_commit: Callable[[], None] = lambda: None,
    ) -> None:
        self.client = client
        self.db: AsyncDatabase[Doc] = client[database]
        self.events = self.db["events"]
        self.on_commit = on_commit

    async def create_indexes(self) -> None:
        await self.db.members.create_index(
            [("branch_id", ASCENDING), ("state", ASCENDING), ("sort_key", ASCENDING)]
        )
        await self.db.members.create_index([("party_card_no", ASCENDING)])
        await self.db.sessions.create_index([("member_id", ASCENDING)])
        await self.db.unique_keys.create_index([("member_id", ASCENDING)])

    async def load_member(self, member_id: str) -> Member | None:
        """Sign-ins change nothing in the aggregate: they are skipped, not read, so that a
        member's years of daily sign-ins never slow a command down."""
        stream = f"{Member.aggregate_type}-{member_id}"
        last = await self.events.find_one(
            {"stream_id": stream}, {"aggregate_version": 1}, sort=[("aggregate_version", -1)]
        )
        if last is None:
            return None
        cursor = self.events.find({"stream_id": stream, "event_type": {"$ne": SIGNED_IN}}).sort(
            "aggregate_version", ASCENDING
        )
        docs = [doc async for doc in cursor]
        member = Member.rebuild(member_id, [decode(from_document(d)) for d in docs])
        member.version = int(last["aggregate_version"])
        return member

    async def member_row(self, member_id: str) -> Doc | None:
        return await self.db.members.find_one({"_id": member_id})

    async def members_in(
        self,
        branch_ids: Sequence[str],
        *,
        states: Sequence[str] = (),
        status: str | None = None,
        offset: int = 0,
        limit: int = 0,
    ) -> list[Doc]:
        query: Doc = {"branch_id": {"$in": list(branch_ids)}}
        if states:
            query["state"] = {"$in": list(states)}
        if status:
            query["status"] = status
        cursor = self.db.members.find(query).sort([("sort_key", ASCENDING), ("_id", ASCENDING)])
        return await cursor.skip(offset).limit(limit).to_list()

    async def count_in(self, branch_ids: Sequence[str], states: Sequence[str] = ()) -> int:
        query: Doc = {"branch_id": {"$in": list(branch_ids)}}
        if states:
            query["state"] = {"$in": list(states)}
        return await self.db.members.count_documents(query)

    async def personal(self, member_id: str) -> PersonalData | None:
        doc = await self.db.personal_records.find_one({"_id": member_id})
        return PersonalData.of_doc(doc) if doc else None

    async def personal_many(self, member_ids: Sequence[str]) -> dict[str, PersonalData]:
        out: dict[str, PersonalData] = {}
        ids = list(member_ids)
        for start in range(0, len(ids), 5000):
            async for doc in self.db.personal_records.find(
                {"_id": {"$in": ids[start : start + 5000]}}
            ):
                out[doc["_id"]] = PersonalData.of_doc(doc)
        return out

    async def account(self, member_id: str) -> Doc | None:
        return await self.db.accounts.find_one({"_id": member_id})

    async def claim_owners(self, keys: Sequence[str]) -> dict[str, str]:
        out: dict[str, str] = {}
        ids = list(keys)
        for start in range(0, len(ids), 5000):
            async for doc in self.db.unique_keys.find({"_id": {"$in": ids[start : start + 5000]}}):
                out[doc["_id"]] = doc["member_id"]
        return out

    async def session(self, session_id: str) -> Doc | None:
        return await self.db.sessions.find_one({"_id": session_id})

    async def rotate_session(self, session_id: str, old_hash: str, changes: Doc) -> bool:
        result = await self.db.sessions.update_one(
            {"_id": session_id, "token_hash": old_hash, "revoked_at": None}, {"$set": changes}
        )
        return result.modified_count == 1

    async def revoke_sessions(self, member_id: str, except_id: str | None = None) -> list[str]:
        query: Doc = {"member_id": member_id, "revoked_at": None}
        if except_id:
            query["_id"] = {"$ne": except_id}
        ids = [d["_id"] async for d in self.db.sessions.find(query, {"_id": 1})]
        if ids:
            await self.db.sessions.update_many(
                {"_id": {"$in": ids}}, {"$set": {"revoked_at": datetime.now(UTC)}}
            )
        return ids

    async def revoke_session(self, session_id: str) -> None:
        await self.db.sessions.update_one(
            {"_id": session_id, "revoked_at": None}, {"$set": {"revoked_at": datetime.now(UTC)}}
        )

    async def commit(
        self, uow: UnitOfWork, session: AsyncClientSession | None = None
    ) -> list[EventEnvelope]:
        if uow.empty:
            return []
        with tracer.start_as_current_span(
            "identity.commit",
            attributes={
                "sotay.streams": len(uow.members),
                "sotay.event_count": sum(len(m.pending) for m, _ in uow.members),
            },
        ):
            if session is not None:
                envelopes = await self._write(uow, session)
            else:
                envelopes = await self._transaction(uow)
        for member, _ in uow.members:
            member.mark_saved()
        if envelopes:
            self.on_commit()
        return envelopes

    async def _transaction(self, uow: UnitOfWork) -> list[EventEnvelope]:
        for attempt in range(4):
            try:
                async with self.client.start_session() as session:
                    async with await session.start_transaction():
                        return await self._write(uow, session)
            except PyMongoError as exc:
                # Another transaction touched the same documents: run again; the second
                # time round the claim check or the stream version decides cleanly.
                if exc.has_error_label("TransientTransactionError") and attempt < 3:
                    await asyncio.sleep(0.02 * (attempt + 1))
                    continue
                raise
        raise AssertionError("unreachable")

    async def _write(self, uow: UnitOfWork, session: AsyncClientSession) -> list[EventEnvelope]:
        db = self.db
        if uow.claims:
            owners: dict[str, str] = {
                d["_id"]: d["member_id"]
                async for d in db.unique_keys.find(
                    {"_id": {"$in": list(uow.claims)}}, session=session
                )
            }
            for key, member_id in uow.claims.items():
                if owners.get(key, member_id) != member_id:
                    raise KeyTaken(key.split(":", 1)[0], owners[key])
            new = [{"_id": k, "member_id": m} for k, m in uow.claims.items() if k not in owners]
            if new:
                try:
                    await db.unique_keys.insert_many(new, session=session)
                except (DuplicateKeyError, BulkWriteError) as exc:
                    raise KeyTaken(new[0]["_id"].split(":", 1)[0], None) from exc
        for key, member_id in uow.releases:
            await db.unique_keys.delete_one({"_id": key, "member_id": member_id}, session=session)
        envelopes: list[EventEnvelope] = []
        docs: list[Doc] = []
        for member, context in uow.members:
            if not member.pending:
                continue
            batch = make_envelopes(
                Member.aggregate_type, member.id, member.loaded_version, member.pending, context
            )
            envelopes.extend(batch)
            docs.extend(to_document(e) for e in batch)
        if docs:
            try:
                await self.events.insert_many(docs, session=session)
            except (DuplicateKeyError, BulkWriteError) as exc:
                first = uow.members[0][0]
                raise ConcurrencyConflict(
                    f"{Member.aggregate_type}-{first.id}", first.loaded_version
                ) from exc
            await db.members.bulk_write(
                [
                    ReplaceOne({"_id": m.id}, member_doc(m), upsert=True)
                    for m, _ in uow.members
                    if m.pending
                ],
                session=session,
            )
        for collection in sorted(set(uow.puts) | set(uow.deletes)):
            writes: list[Any] = [
                ReplaceOne({"_id": doc_id}, doc, upsert=True)
                for doc_id, doc in uow.puts.get(collection, {}).items()
            ] + [DeleteOne({"_id": doc_id}) for doc_id in uow.deletes.get(collection, set())]
            if writes:
                await db[collection].bulk_write(writes, session=session)
        return envelopes

    async def rebuild_members(self) -> int:
        """Replay every member stream into the read model: the result equals the live one."""
        await self.db.members.delete_many({})
        ids = await self.events.distinct("aggregate_id", {"aggregate_type": Member.aggregate_type})
        rows = []
        for member_id in ids:
            member = await self.load_member(member_id)
            if member is not None:
                rows.append(member_doc(member))
        for start in range(0, len(rows), 1000):
            await self.db.members.insert_many(rows[start : start + 1000])
        return len(rows)


class MemoryStorage:
    """The same contract in memory, over an `InMemoryEventStore`, for unit tests."""

    def __init__(self, store: InMemoryEventStore | None = None) -> None:
        self.store = store or InMemoryEventStore()
        self.docs: dict[str, dict[str, Doc]] = {}
        self._lock = asyncio.Lock()

    def col(self, name: str) -> dict[str, Doc]:
        return self.docs.setdefault(name, {})

    async def load_member(self, member_id: str) -> Member | None:
        envelopes = await self.store.load(Member.aggregate_type, member_id)
        if not envelopes:
            return None
        return Member.rebuild(member_id, [decode(e) for e in envelopes])

    async def member_row(self, member_id: str) -> Doc | None:
        return self.col("members").get(member_id)

    async def members_in(
        self,
        branch_ids: Sequence[str],
        *,
        states: Sequence[str] = (),
        status: str | None = None,
        offset: int = 0,
        limit: int = 0,
    ) -> list[Doc]:
        rows = sorted(
            (d for d in self.col("members").values() if _match(d, branch_ids, states, status)),
            key=lambda d: (d["sort_key"], d["_id"]),
        )
        return rows[offset : offset + limit if limit else None]

    async def count_in(self, branch_ids: Sequence[str], states: Sequence[str] = ()) -> int:
        return len(await self.members_in(branch_ids, states=states))

    async def personal(self, member_id: str) -> PersonalData | None:
        doc = self.col("personal_records").get(member_id)
        return PersonalData.of_doc(doc) if doc else None

    async def personal_many(self, member_ids: Sequence[str]) -> dict[str, PersonalData]:
        return {i: p for i in member_ids if (p := await self.personal(i))}

    async def account(self, member_id: str) -> Doc | None:
        return self.col("accounts").get(member_id)

    async def claim_owners(self, keys: Sequence[str]) -> dict[str, str]:
        claims = self.col("unique_keys")
        return {k: claims[k]["member_id"] for k in keys if k in claims}

    async def session(self, session_id: str) -> Doc | None:
        doc = self.col("sessions").get(session_id)
        return dict(doc) if doc else None

    async def rotate_session(self, session_id: str, old_hash: str, changes: Doc) -> bool:
        doc = self.col("sessions").get(session_id)
        if not doc or doc["token_hash"] != old_hash or doc.get("revoked_at"):
            return False
        doc.update(changes)
        return True

    async def revoke_sessions(self, member_id: str, except_id: str | None = None) -> list[str]:
        ids = []
        for doc in self.col("sessions").values():
            if (
                doc["member_id"] == member_id
                and not doc.get("revoked_at")
                and doc["_id"] != except_id
            ):
                doc["revoked_at"] = datetime.now(UTC)
                ids.append(doc["_id"])
        return ids

    async def revoke_session(self, session_id: str) -> None:
        doc = self.col("sessions").get(session_id)
        if doc and not doc.get("revoked_at"):
            doc["revoked_at"] = datetime.now(UTC)

    async def commit(
        self, uow: UnitOfWork, session: AsyncClientSession | None = None
    ) -> list[EventEnvelope]:
        async with self._lock:
            claims = self.col("unique_keys")
            for key, member_id in uow.claims.items():
                if key in claims and claims[key]["member_id"] != member_id:
                    raise KeyTaken(key.split(":", 1)[0], claims[key]["member_id"])
            for member, _ in uow.members:
                stream = self.store.streams.get(f"{Member.aggregate_type}-{member.id}", [])
                if member.pending and len(stream) != member.loaded_version:
                    raise ConcurrencyConflict(member.id, member.loaded_version)
            for key, member_id in uow.claims.items():
                claims[key] = {"_id": key, "member_id": member_id}
            for key, member_id in uow.releases:
                if claims.get(key, {}).get("member_id") == member_id:
                    del claims[key]
            envelopes: list[EventEnvelope] = []
            for member, context in uow.members:
                if member.pending:
                    envelopes += await self.store.append(
                        Member.aggregate_type,
                        member.id,
                        member.loaded_version,
                        member.pending,
                        context,
                    )
                    self.col("members")[member.id] = member_doc(member)
                    member.mark_saved()
            for name, docs in uow.puts.items():
                self.col(name).update({k: dict(v) for k, v in docs.items()})
            for name, ids in uow.deletes.items():
                for doc_id in ids:
                    self.col(name).pop(doc_id, None)
            return envelopes
