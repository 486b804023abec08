"""Identity's reads, over what its commands wrote through the shared unit of work.

A command persists through `store.unit_of_work()` (`sotay_events.uow`): the
member's new events (the outbox the relay publishes), the `members` read-model
row, identity's private documents (personal records, password hashes,
sessions) and the unique-key claims land in one retried transaction, or not
at all. So a claim on a citizen ID, a party card or a phone number is taken
together with the events or not at all, and personal data never travels.

Collections (identity's own database):
  events            the event store and outbox (shared format, `sotay_events.store`)
  members           read model: each member's public state, written with its events
  personal_records  citizen ID, phone, birth date, work history, rewards, discipline
  accounts          argon2 password hashes
  unique_keys       one claim per key: `<kind>:<HMAC of the value>` -> owner (member id)
  sessions          refresh-token sessions (hashes only)

An erased personal record or closed account is replaced by `{_id, erased: true}`:
nothing personal is left, in the same commit as the event that says why.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from pymongo import ASCENDING, ReplaceOne
from pymongo.asynchronous.database import AsyncDatabase

from sotay_events import ClaimTaken, InMemoryEventStore, MongoEventStore, UnitOfWork, decode
from sotay_events.store import from_document
from sotay_identity.domain import Member, PersonalData, member_doc
from sotay_platform.errors import Conflict

Doc = dict[str, Any]
SIGNED_IN = "MemberSignedIn"
MEMBERS = "members"
PERSONAL = "personal_records"
ACCOUNTS = "accounts"
CLAIMS = "unique_keys"
SESSIONS = "sessions"
KEY_FIELDS = {"citizen_id": "citizen_id", "party_card": "party_card_no", "phone": "phone"}
KEY_MESSAGES = {
    "citizen_id": "Số định danh công dân này đã thuộc về một đảng viên khác",
    "party_card": "Số thẻ đảng viên này đã thuộc về một đảng viên khác",
    "phone": "Số điện thoại này đã được dùng cho tài khoản của một đảng viên khác",
}


def kind_of(key: str) -> str:
    return key.split(":", 1)[0]


def key_conflict(exc: ClaimTaken) -> Conflict:
    """A taken claim, for a caller allowed to know it (never an anonymous one)."""
    kind = kind_of(exc.key)
    return Conflict(KEY_MESSAGES[kind], field=KEY_FIELDS[kind], code="duplicate")


class KeyHasher:
    """Unique keys are stored as keyed hashes: a 12-digit citizen ID's plain hash could be
    brute-forced, and key values show up in duplicate-key errors and logs."""

    def __init__(self, secret: str) -> None:
        self._secret = secret.encode()

    def key(self, kind: str, value: str) -> str:
        digest = hmac.new(self._secret, f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()
        return f"{kind}:{digest}"


class Storage(Protocol):
    def unit_of_work(self) -> UnitOfWork: ...
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
    async def count_in(
        self, branch_ids: Sequence[str], states: Sequence[str] = (), status: str | None = None
    ) -> int: ...
    async def role_holders(self, unit_id: str, limit: int) -> list[Doc]: ...
    async def personal(self, member_id: str) -> PersonalData | None: ...
    async def personal_many(self, member_ids: Sequence[str]) -> dict[str, PersonalData]: ...
    async def account(self, member_id: str) -> Doc | None: ...
    async def claim_owners(self, keys: Sequence[str]) -> dict[str, str]: ...
    async def session(self, session_id: str) -> Doc | None: ...
    async def rotate_session(self, session_id: str, old_hash: str, changes: Doc) -> bool: ...
    async def revoke_sessions(self, member_id: str, except_id: str | None = None) -> list[str]: ...
    async def revoke_session(self, session_id: str) -> None: ...


def _query(branch_ids: Sequence[str], states: Sequence[str], status: str | None) -> Doc:
    query: Doc = {"branch_id": {"$in": list(branch_ids)}}
    if states:
        query["state"] = {"$in": list(states)}
    if status:
        query["status"] = status
    return query


def _match(doc: Doc, branch_ids: Sequence[str], states: Sequence[str], status: str | None) -> bool:
    return (
        doc["branch_id"] in branch_ids
        and (not states or doc["state"] in states)
        and (status is None or doc["status"] == status)
    )


def _account(doc: Doc | None) -> Doc | None:
    return doc if doc and doc.get("password_hash") else None


class MongoStorage:
    def __init__(self, store: MongoEventStore) -> None:
        self.store = store
        self.db: AsyncDatabase[Doc] = store.db
        self.events = store.events

    def unit_of_work(self) -> UnitOfWork:
        return self.store.unit_of_work()

    async def create_indexes(self) -> None:
        await self.db[MEMBERS].create_index(
            [("branch_id", ASCENDING), ("state", ASCENDING), ("sort_key", ASCENDING)]
        )
        await self.db[MEMBERS].create_index([("party_card_no", ASCENDING)])
        await self.db[MEMBERS].create_index([("roles.unit_id", ASCENDING)])
        await self.db[SESSIONS].create_index([("member_id", ASCENDING)])
        await self.db[CLAIMS].create_index([("owner", ASCENDING)])

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
        return await self.db[MEMBERS].find_one({"_id": member_id})

    async def members_in(
        self,
        branch_ids: Sequence[str],
        *,
        states: Sequence[str] = (),
        status: str | None = None,
        offset: int = 0,
        limit: int = 0,
    ) -> list[Doc]:
        cursor = (
            self.db[MEMBERS]
            .find(_query(branch_ids, states, status))
            .sort([("sort_key", ASCENDING), ("_id", ASCENDING)])
        )
        return await cursor.skip(offset).limit(limit).to_list()

    async def count_in(
        self, branch_ids: Sequence[str], states: Sequence[str] = (), status: str | None = None
    ) -> int:
        return await self.db[MEMBERS].count_documents(_query(branch_ids, states, status))

    async def role_holders(self, unit_id: str, limit: int) -> list[Doc]:
        cursor = (
            self.db[MEMBERS]
            .find({"roles.unit_id": unit_id})
            .sort([("sort_key", ASCENDING), ("_id", ASCENDING)])
        )
        return await cursor.limit(limit).to_list()

    async def personal(self, member_id: str) -> PersonalData | None:
        doc = await self.db[PERSONAL].find_one({"_id": member_id})
        return PersonalData.of_doc(doc) if doc else None

    async def personal_many(self, member_ids: Sequence[str]) -> dict[str, PersonalData]:
        out: dict[str, PersonalData] = {}
        ids = list(member_ids)
        for start in range(0, len(ids), 5000):
            async for doc in self.db[PERSONAL].find({"_id": {"$in": ids[start : start + 5000]}}):
                if personal := PersonalData.of_doc(doc):
                    out[doc["_id"]] = personal
        return out

    async def account(self, member_id: str) -> Doc | None:
        return _account(await self.db[ACCOUNTS].find_one({"_id": member_id}))

    async def claim_owners(self, keys: Sequence[str]) -> dict[str, str]:
        out: dict[str, str] = {}
        ids = list(keys)
        for start in range(0, len(ids), 5000):
            async for doc in self.db[CLAIMS].find({"_id": {"$in": ids[start : start + 5000]}}):
                out[doc["_id"]] = doc["owner"]
        return out

    # Sessions: a refresh token is spent by a compare-and-set on its one document (the
    # token's hash must still be the stored one), which no event accompanies.

    async def session(self, session_id: str) -> Doc | None:
        return await self.db[SESSIONS].find_one({"_id": session_id})

    async def rotate_session(self, session_id: str, old_hash: str, changes: Doc) -> bool:
        result = await self.db[SESSIONS].update_one(
            {"_id": session_id, "token_hash": old_hash, "revoked_at": None}, {"$set": changes}
        )
        return result.modified_count == 1

    async def revoke_sessions(self, member_id: str, except_id: str | None = None) -> list[str]:
        query: Doc = {"member_id": member_id, "revoked_at": None}
        if except_id:
            query["_id"] = {"$ne": except_id}
        ids = [d["_id"] async for d in self.db[SESSIONS].find(query, {"_id": 1})]
        if ids:
            await self.db[SESSIONS].update_many(
                {"_id": {"$in": ids}}, {"$set": {"revoked_at": datetime.now(UTC)}}
            )
        return ids

    async def revoke_session(self, session_id: str) -> None:
        await self.db[SESSIONS].update_one(
            {"_id": session_id, "revoked_at": None}, {"$set": {"revoked_at": datetime.now(UTC)}}
        )

    async def rebuild_members(self, batch: int = 1000) -> int:
        """Replay every member stream into the read model: the result equals the live one."""
        await self.db[MEMBERS].delete_many({})
        ids = await self.events.distinct("aggregate_id", {"aggregate_type": Member.aggregate_type})
        rows: list[ReplaceOne[Doc]] = []
        count = 0
        for member_id in ids:
            member = await self.load_member(member_id)
            if member is None:
                continue
            rows.append(ReplaceOne({"_id": member.id}, member_doc(member), upsert=True))
            count += 1
            if len(rows) >= batch:
                await self.db[MEMBERS].bulk_write(rows)
                rows = []
        if rows:
            await self.db[MEMBERS].bulk_write(rows)
        return count


class MemoryStorage:
    """The same reads over an `InMemoryEventStore`'s rows, private records and claims."""

    def __init__(self, store: InMemoryEventStore | None = None) -> None:
        self.store = store or InMemoryEventStore()

    def unit_of_work(self) -> UnitOfWork:
        return self.store.unit_of_work()

    def _private(self, name: str) -> dict[str, Doc]:
        return self.store.private.setdefault(name, {})

    def _rows(self) -> dict[Any, Doc]:
        return self.store.rows.setdefault(MEMBERS, {})

    async def load_member(self, member_id: str) -> Member | None:
        envelopes = await self.store.load(Member.aggregate_type, member_id)
        if not envelopes:
            return None
        return Member.rebuild(member_id, [decode(e) for e in envelopes])

    async def member_row(self, member_id: str) -> Doc | None:
        row = self._rows().get(member_id)
        return dict(row) if row else None

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
            (d for d in self._rows().values() if _match(d, branch_ids, states, status)),
            key=lambda d: (d["sort_key"], d["_id"]),
        )
        return rows[offset : offset + limit if limit else None]

    async def count_in(
        self, branch_ids: Sequence[str], states: Sequence[str] = (), status: str | None = None
    ) -> int:
        return len(await self.members_in(branch_ids, states=states, status=status))

    async def role_holders(self, unit_id: str, limit: int) -> list[Doc]:
        rows = sorted(
            (d for d in self._rows().values() if any(r["unit_id"] == unit_id for r in d["roles"])),
            key=lambda d: (d["sort_key"], d["_id"]),
        )
        return rows[:limit]

    async def personal(self, member_id: str) -> PersonalData | None:
        doc = self._private(PERSONAL).get(member_id)
        return PersonalData.of_doc(doc) if doc else None

    async def personal_many(self, member_ids: Sequence[str]) -> dict[str, PersonalData]:
        return {i: p for i in member_ids if (p := await self.personal(i))}

    async def account(self, member_id: str) -> Doc | None:
        return _account(self._private(ACCOUNTS).get(member_id))

    async def claim_owners(self, keys: Sequence[str]) -> dict[str, str]:
        claims = self.store.claims.get(CLAIMS, {})
        return {k: claims[k] for k in keys if k in claims}

    async def session(self, session_id: str) -> Doc | None:
        doc = self._private(SESSIONS).get(session_id)
        return dict(doc) if doc else None

    async def rotate_session(self, session_id: str, old_hash: str, changes: Doc) -> bool:
        doc = self._private(SESSIONS).get(session_id)
        if not doc or doc["token_hash"] != old_hash or doc.get("revoked_at"):
            return False
        doc.update(changes)
        return True

    async def revoke_sessions(self, member_id: str, except_id: str | None = None) -> list[str]:
        ids = []
        for doc in self._private(SESSIONS).values():
            if (
                doc["member_id"] == member_id
                and not doc.get("revoked_at")
                and doc["_id"] != except_id
            ):
                doc["revoked_at"] = datetime.now(UTC)
                ids.append(doc["_id"])
        return ids

    async def revoke_session(self, session_id: str) -> None:
        doc = self._private(SESSIONS).get(session_id)
        if doc and not doc.get("revoked_at"):
            doc["revoked_at"] = datetime.now(UTC)
