"""The check-in hot path: rotating codes, the meeting cache, and group-committed new streams.

A check-in must cost the same in a meeting of 5 and of 300, and 200 members
checking in within one second must all succeed at once. So:

- the code is derived, not stored: HMAC(secret, meeting id, time step), shown
  by the secretary as digits and as a QR image; checking it needs no lookup,
  and the secret never travels in an event;
- what a check-in needs to know about the meeting (window, status, unit, open
  polls) sits in Redis next to the invitee set, written through by every
  meeting command and refilled from the event store on a miss, so the hot path
  makes one Redis round trip and never replays the meeting's history;
- each check-in is the first event of its own stream (`Attendance`
  `<meeting>:<member>`, expected version 0), committed through `GroupCommit`:
  concurrent ones are written together in one unordered `insert_many`, and a
  duplicate fails on the store's unique (stream, version) index alone. The
  close writes `AttendanceClosed` into the stream of every invitee not present,
  so the same index refuses a check-in that arrives after the close counted.
  A poll's close does the same with `VoteClosed` in every non-voter's vote stream.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import logging
import secrets
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import segno
from pymongo import ASCENDING
from redis.asyncio import Redis

from sotay_events import InMemoryEventStore, MongoEventStore
from sotay_meetings.domain import Meeting

log = logging.getLogger(__name__)


# Codes.


@dataclass(frozen=True)
class IssuedCode:
    code: str
    valid_from: datetime
    valid_until: datetime
    payload: str  # what the QR image carries


class CheckinCodes:
    """Short numeric codes that change every `step` seconds; the previous one is still accepted."""

    def __init__(
        self,
        secret: bytes,
        *,
        digits: int = 6,
        step_seconds: int = 60,
        link_base: str = "https://sotaydangvien.vn/diem-danh",
    ) -> None:
        self.secret = secret or secrets.token_bytes(32)
        self.digits = digits
        self.step = step_seconds
        self.link_base = link_base.rstrip("/")

    def _code(self, meeting_id: str, counter: int) -> str:
        mac = hmac.new(self.secret, f"{meeting_id}:{counter}".encode(), hashlib.sha256).digest()
        offset = mac[-1] & 0x0F  # dynamic truncation, as in HOTP (RFC 4226)
        number = int.from_bytes(mac[offset : offset + 4], "big") & 0x7FFFFFFF
        return str(number % 10**self.digits).zfill(self.digits)

    def issue(self, meeting_id: str, now: datetime) -> IssuedCode:
        counter = int(now.timestamp()) // self.step
        code = self._code(meeting_id, counter)
        start = datetime.fromtimestamp(counter * self.step, UTC)
        return IssuedCode(
            code=code,
            valid_from=start,
            valid_until=start + timedelta(seconds=2 * self.step),
            payload=f"{self.link_base}?m={meeting_id}&c={code}",
        )

    def verify(self, meeting_id: str, code: str, now: datetime) -> bool:
        code = code.strip()
        if len(code) != self.digits or not code.isdigit():
            return False
        counter = int(now.timestamp()) // self.step
        return any(
            hmac.compare_digest(self._code(meeting_id, c), code) for c in (counter, counter - 1)
        )


def qr_svg(payload: str) -> bytes:
    out = io.BytesIO()
    segno.make(payload, error="m").save(out, kind="svg", scale=8, border=2)
    return out.getvalue()


def qr_png(payload: str) -> bytes:
    out = io.BytesIO()
    segno.make(payload, error="m").save(out, kind="png", scale=10, border=2)
    return out.getvalue()


def qr_data_uri(payload: str) -> str:
    return "data:image/svg+xml;base64," + base64.b64encode(qr_svg(payload)).decode()


# The meeting cache.


@dataclass
class HotMeeting:
    """What the check-in and vote paths need to know about a meeting, and nothing more."""

    meeting_id: str
    unit_id: str
    kind: str
    org_path: list[str]
    status: str
    starts_at: datetime
    ends_at: datetime
    version: int
    open_polls: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def of(cls, meeting: Meeting, org_path: Sequence[str]) -> HotMeeting:
        return cls(
            meeting_id=meeting.id,
            unit_id=meeting.unit_id,
            kind=meeting.kind.value,
            org_path=list(org_path),
            status=meeting.status,
            starts_at=meeting.starts_at,
            ends_at=meeting.ends_at,
            version=meeting.version,
            open_polls=meeting.open_polls,
        )

    def to_json(self) -> str:
        data = asdict(self)
        data["starts_at"] = self.starts_at.isoformat()
        data["ends_at"] = self.ends_at.isoformat()
        return json.dumps(data, ensure_ascii=False)

    @classmethod
    def from_json(cls, raw: str | bytes) -> HotMeeting:
        data = json.loads(raw)
        data["starts_at"] = datetime.fromisoformat(data["starts_at"])
        data["ends_at"] = datetime.fromisoformat(data["ends_at"])
        return cls(**data)


class MeetingCache(Protocol):
    async def get(self, meeting_id: str, member_id: str | None) -> tuple[HotMeeting | None, bool]:
        """The meeting's hot state and whether `member_id` is invited (one round trip)."""
        ...

    async def put(self, hot: HotMeeting, invitees: Sequence[str], now: datetime) -> None: ...

    async def count_wrong_code(self, meeting_id: str, member_id: str) -> int: ...

    async def wrong_codes(self, meeting_id: str, member_id: str) -> int: ...


# Writes only if what is cached is older: a reader refilling the cache from an old load
# never overwrites what a later command wrote.
_PUT_IF_NEWER = """
local current = redis.call('HGET', KEYS[1], 'v')
if current and tonumber(current) >= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'v', ARGV[1], 'd', ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('DEL', KEYS[2])
for i = 4, #ARGV, 500 do
  redis.call('SADD', KEYS[2], unpack(ARGV, i, math.min(i + 499, #ARGV)))
end
redis.call('EXPIRE', KEYS[2], ARGV[3])
return 1
"""


# One round trip, one command: the meeting's hot state and whether the member is invited.
_GET = """
local hot = redis.call('HGET', KEYS[1], 'd')
if not hot then return {false, 0} end
return {hot, redis.call('SISMEMBER', KEYS[2], ARGV[1])}
"""


def _ttl(hot: HotMeeting, now: datetime) -> int:
    """Kept until two days after the end; a miss later is refilled from the store."""
    return max(3600, int((hot.ends_at + timedelta(days=2) - now).total_seconds()))


class RedisMeetingCache:
    def __init__(self, redis: Redis, prefix: str = "sotay:meetings") -> None:
        self.redis = redis
        self.prefix = prefix
        self._put = redis.register_script(_PUT_IF_NEWER)
        self._get = redis.register_script(_GET)

    def _keys(self, meeting_id: str) -> tuple[str, str]:
        return f"{self.prefix}:{{{meeting_id}}}:hot", f"{self.prefix}:{{{meeting_id}}}:invited"

    async def get(self, meeting_id: str, member_id: str | None) -> tuple[HotMeeting | None, bool]:
        raw, invited = await self._get(keys=list(self._keys(meeting_id)), args=[member_id or ""])
        if raw is None:
            return None, False
        return HotMeeting.from_json(raw), bool(invited)

    async def put(self, hot: HotMeeting, invitees: Sequence[str], now: datetime) -> None:
        hot_key, invited_key = self._keys(hot.meeting_id)
        await self._put(
            keys=[hot_key, invited_key],
            args=[hot.version, hot.to_json(), _ttl(hot, now), *invitees],
        )

    async def count_wrong_code(self, meeting_id: str, member_id: str) -> int:
        key = f"{self.prefix}:{{{meeting_id}}}:wrong:{member_id}"
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.incr(key)
            pipe.expire(key, 900)
            count, _ = await pipe.execute()
        return int(count)

    async def wrong_codes(self, meeting_id: str, member_id: str) -> int:
        value = await self.redis.get(f"{self.prefix}:{{{meeting_id}}}:wrong:{member_id}")
        return int(value or 0)


class LocalMeetingCache:
    """The same contract in memory, for unit tests."""

    def __init__(self) -> None:
        self.hot: dict[str, HotMeeting] = {}
        self.invited: dict[str, set[str]] = {}
        self.wrong: dict[tuple[str, str], int] = {}

    async def get(self, meeting_id: str, member_id: str | None) -> tuple[HotMeeting | None, bool]:
        hot = self.hot.get(meeting_id)
        return hot, bool(hot and member_id in self.invited.get(meeting_id, set()))

    async def put(self, hot: HotMeeting, invitees: Sequence[str], now: datetime) -> None:
        current = self.hot.get(hot.meeting_id)
        if current is None or current.version < hot.version:
            self.hot[hot.meeting_id] = hot
            self.invited[hot.meeting_id] = set(invitees)

    async def count_wrong_code(self, meeting_id: str, member_id: str) -> int:
        self.wrong[(meeting_id, member_id)] = self.wrong.get((meeting_id, member_id), 0) + 1
        return self.wrong[(meeting_id, member_id)]

    async def wrong_codes(self, meeting_id: str, member_id: str) -> int:
        return self.wrong.get((meeting_id, member_id), 0)


# What happened, read from the event store itself (never a lagging projection).


PRESENT = "AttendanceRecorded"
VOTED = "VoteRecorded"


class Ledger(Protocol):
    async def present(self, meeting_id: str) -> set[str]: ...

    async def is_present(self, meeting_id: str, member_id: str) -> bool: ...

    async def votes(self, meeting_id: str, poll_id: str) -> dict[str, str]: ...


class MongoLedger:
    """Attendance and votes of a meeting, by an index on the events' meeting id."""

    def __init__(self, store: MongoEventStore) -> None:
        self.events = store.events

    async def create_indexes(self) -> None:
        await self.events.create_index(
            [("payload.meeting_id", ASCENDING), ("aggregate_type", ASCENDING)],
            name="meeting_facts",
        )

    async def present(self, meeting_id: str) -> set[str]:
        cursor = self.events.find(
            {
                "payload.meeting_id": meeting_id,
                "aggregate_type": "Attendance",
                "event_type": PRESENT,
            },
            {"payload.member_id": 1},
        )
        return {doc["payload"]["member_id"] async for doc in cursor}

    async def is_present(self, meeting_id: str, member_id: str) -> bool:
        stream = f"Attendance-{meeting_id}:{member_id}"
        found = await self.events.find_one({"stream_id": stream}, {"event_type": 1})
        return found is not None and found["event_type"] == PRESENT

    async def votes(self, meeting_id: str, poll_id: str) -> dict[str, str]:
        cursor = self.events.find(
            {
                "payload.meeting_id": meeting_id,
                "aggregate_type": "Vote",
                "event_type": VOTED,
                "payload.poll_id": poll_id,
            },
            {"payload": 1},
        )
        return {doc["payload"]["member_id"]: doc["payload"]["option"] async for doc in cursor}


class MemoryLedger:
    """The same queries over an `InMemoryEventStore`."""

    def __init__(self, store: InMemoryEventStore) -> None:
        self.store = store

    def _facts(self, aggregate_type: str, meeting_id: str) -> list[dict[str, Any]]:
        return [
            e.payload
            for stream in self.store.streams.values()
            for e in stream
            if e.aggregate_type == aggregate_type and e.payload.get("meeting_id") == meeting_id
        ]

    async def present(self, meeting_id: str) -> set[str]:
        return {p["member_id"] for p in self._facts("Attendance", meeting_id) if "method" in p}

    async def is_present(self, meeting_id: str, member_id: str) -> bool:
        stream = self.store.streams.get(f"Attendance-{meeting_id}:{member_id}", [])
        return any(e.event_type == PRESENT for e in stream)

    async def votes(self, meeting_id: str, poll_id: str) -> dict[str, str]:
        return {
            p["member_id"]: p["option"]
            for p in self._facts("Vote", meeting_id)
            if p["poll_id"] == poll_id and "option" in p
        }


Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)
