"""The unit of work: the one way a command persists.

A handler reads: load, decide, commit.

    uow = store.unit_of_work()
    meeting = await uow.get(Meeting, meeting_id)      # tracked for the commit
    meeting.close(...)                                 # records events
    uow.row("meeting_views", {...})                    # the service's own read model, same commit
    await uow.commit(CommandContext(actor=..., org_path=...))

Everything a unit of work holds (the pending events of every tracked
aggregate, each appended with the version it was loaded at; private records;
read-model rows; unique claims) lands in one transaction, retried on
transient errors and unknown commit results, or not at all. A stream that
moved since it was loaded raises `ConcurrencyConflict`; a claim held by
another owner raises `ClaimTaken`. Domain errors are plain exceptions here:
the API layer maps them to HTTP.

Hot paths where each fact starts a stream of its own (a check-in, a vote) use
`GroupCommit`: the same interface, but concurrent commits are written
together in one unordered insert.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ParamSpec, Protocol, TypeVar

from sotay_events.aggregate import Aggregate
from sotay_events.catalogue import DomainEvent
from sotay_events.envelope import EventEnvelope

log = logging.getLogger(__name__)

A = TypeVar("A", bound=Aggregate)
P = ParamSpec("P")
T = TypeVar("T")

# Kafka refuses messages over `message.max.bytes` (1 MiB by default) and a relay
# stuck on one would stall its partition: an event is refused long before that.
MAX_EVENT_BYTES = 256 * 1024


class ConcurrencyConflict(Exception):
    """Another writer appended to the stream since it was loaded."""

    def __init__(self, stream_id: str, expected_version: int) -> None:
        super().__init__(f"stream {stream_id} moved past version {expected_version}")
        self.stream_id = stream_id
        self.expected_version = expected_version


class ClaimTaken(Exception):
    """A unique key (a citizen ID's hash, a unit code) already belongs to another owner."""

    def __init__(self, collection: str, key: str, holder: str | None) -> None:
        super().__init__(f"{collection}: {key} is held")
        self.collection = collection
        self.key = key
        self.holder = holder


class EventTooLarge(ValueError):
    """An event would outgrow what the broker accepts."""

    def __init__(self, event_type: str, size: int) -> None:
        super().__init__(f"{event_type} is {size} bytes, over {MAX_EVENT_BYTES}")
        self.event_type = event_type
        self.size = size


@dataclass(frozen=True)
class PrivateRecord:
    """A document that lands with a command's events but never travels with them.

    Answer keys, reflection texts, a member's citizen ID: written to
    `collection` (replacing a document with the same _id) in the command's
    transaction; the relay publishes only events.
    """

    collection: str
    doc: dict[str, Any]


@dataclass(frozen=True)
class StreamWrite:
    aggregate_type: str
    aggregate_id: str
    expected_version: int
    events: Sequence[DomainEvent]
    context: Any = None  # a CommandContext overriding the commit's own

    @property
    def stream_id(self) -> str:
        return f"{self.aggregate_type}-{self.aggregate_id}"


@dataclass(frozen=True)
class RowWrite:
    """A read-model row: replaced (upserted) by _id, or deleted when `doc` is None.

    With `expected_version`, the row is versioned like a stream (its `_v`
    field): written only if it is still at that version (0: not there yet),
    else the commit raises `ConcurrencyConflict`, so a decision read from a
    row cannot be overtaken by a concurrent command that wrote it.
    """

    collection: str
    row_id: Any
    doc: dict[str, Any] | None
    expected_version: int | None = None


@dataclass(frozen=True)
class Claim:
    collection: str
    key: str
    owner: str


@dataclass
class Changes:
    """What one commit writes."""

    streams: list[StreamWrite] = field(default_factory=list)
    private: list[PrivateRecord] = field(default_factory=list)
    rows: list[RowWrite] = field(default_factory=list)
    claims: list[Claim] = field(default_factory=list)
    releases: list[Claim] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (
            any(s.events for s in self.streams)
            or self.private
            or self.rows
            or self.claims
            or self.releases
        )

    @property
    def only_events(self) -> bool:
        return not (self.private or self.rows or self.claims or self.releases)


class Committer(Protocol):
    async def load(self, aggregate_type: str, aggregate_id: str) -> list[EventEnvelope]: ...

    async def commit(self, changes: Changes, context: Any) -> list[EventEnvelope]: ...


class UnitOfWork:
    """Collects one command's writes; `commit` makes them all happen, or none."""

    def __init__(self, committer: Committer) -> None:
        self._committer = committer
        self._aggregates: dict[str, tuple[Aggregate, Any]] = {}
        self._changes = Changes()

    async def get(self, aggregate_class: type[A], aggregate_id: str) -> A | None:
        """The aggregate as its stream holds it (None when there is no stream); tracked."""
        from sotay_events.store import decode

        envelopes = await self._committer.load(aggregate_class.aggregate_type, aggregate_id)
        if not envelopes:
            return None
        aggregate = aggregate_class.rebuild(aggregate_id, [decode(e) for e in envelopes])
        self.add(aggregate)
        return aggregate

    def add(self, aggregate: Aggregate, context: Any = None) -> None:
        """Track an aggregate (a new one, or one loaded elsewhere); its pending events commit."""
        key = f"{aggregate.aggregate_type}-{aggregate.id}"
        self._aggregates[key] = (aggregate, context)

    def private(self, collection: str, doc: dict[str, Any]) -> None:
        self._changes.private.append(PrivateRecord(collection, doc))

    def delete_private(self, collection: str, record_id: Any) -> None:
        """Erase a private record in the same commit (a member's personal data, on request)."""
        self._changes.rows.append(RowWrite(collection, record_id, None))

    def row(
        self, collection: str, doc: dict[str, Any], *, expected_version: int | None = None
    ) -> None:
        if expected_version is not None:
            doc = {**doc, "_v": expected_version + 1}
        self._changes.rows.append(RowWrite(collection, doc["_id"], doc, expected_version))

    def delete_row(self, collection: str, row_id: Any) -> None:
        self._changes.rows.append(RowWrite(collection, row_id, None))

    def claim(self, collection: str, key: str, owner: str) -> None:
        self._changes.claims.append(Claim(collection, key, owner))

    def release(self, collection: str, key: str, owner: str) -> None:
        self._changes.releases.append(Claim(collection, key, owner))

    async def commit(self, context: Any) -> list[EventEnvelope]:
        changes = self._changes
        changes.streams = [
            StreamWrite(
                aggregate.aggregate_type,
                aggregate.id,
                aggregate.loaded_version,
                aggregate.pending,
                own_context,
            )
            for aggregate, own_context in self._aggregates.values()
            if aggregate.pending
        ]
        if changes.empty:
            return []
        envelopes = await self._committer.commit(changes, context)
        for aggregate, _ in self._aggregates.values():
            aggregate.mark_saved()
        self._changes = Changes()
        return envelopes


def retry_on_conflict(
    attempts: int = 3,
) -> Callable[[Callable[P, Awaitable[T]]], Callable[P, Awaitable[T]]]:
    """Run a load-decide-commit function again on fresh state when its stream moved."""

    def decorate(command: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
        @functools.wraps(command)
        async def run(*args: P.args, **kwargs: P.kwargs) -> T:
            for attempt in range(attempts):
                try:
                    return await command(*args, **kwargs)
                except ConcurrencyConflict:
                    if attempt == attempts - 1:
                        raise
            raise AssertionError("unreachable")

        return run

    return decorate


class StreamStarts(Protocol):
    async def load(self, aggregate_type: str, aggregate_id: str) -> list[EventEnvelope]: ...

    async def commit(self, changes: Changes, context: Any) -> list[EventEnvelope]: ...

    async def start_streams(self, envelopes: Sequence[EventEnvelope]) -> list[bool]: ...


@dataclass
class _Queued:
    envelope: EventEnvelope
    done: asyncio.Future[bool]


class GroupCommit:
    """The unit of work for hot paths: concurrent single-event stream starts share one write.

    A commit whose changes are exactly one new stream of one event (a check-in,
    a vote) waits for the current flush and is written with every other such
    commit in one unordered insert, where the unique (stream, version) index
    answers each on its own: a stream that already existed raises
    `ConcurrencyConflict` for that commit only. Anything else commits directly.
    """

    def __init__(self, store: StreamStarts, *, max_batch: int = 500, flushers: int = 2) -> None:
        self.store = store
        self.max_batch = max_batch
        self._queue: list[_Queued] = []
        self._flushing = asyncio.Semaphore(flushers)

    def unit_of_work(self) -> UnitOfWork:
        return UnitOfWork(self)

    async def load(self, aggregate_type: str, aggregate_id: str) -> list[EventEnvelope]:
        return await self.store.load(aggregate_type, aggregate_id)

    async def commit(self, changes: Changes, context: Any) -> list[EventEnvelope]:
        from sotay_events.store import make_envelopes

        streams = [s for s in changes.streams if s.events]
        if not (
            changes.only_events
            and len(streams) == 1
            and streams[0].expected_version == 0
            and len(streams[0].events) == 1
        ):
            return await self.store.commit(changes, context)
        write = streams[0]
        (envelope,) = make_envelopes(
            write.aggregate_type, write.aggregate_id, 0, write.events, write.context or context
        )
        if (size := len(envelope.to_bytes())) > MAX_EVENT_BYTES:
            raise EventTooLarge(envelope.event_type, size)
        queued = _Queued(envelope, asyncio.get_running_loop().create_future())
        self._queue.append(queued)
        async with self._flushing:
            if self._queue:
                batch, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch :]
                await self._write(batch)
        if not await queued.done:
            raise ConcurrencyConflict(write.stream_id, 0)
        return [envelope]

    async def _write(self, batch: list[_Queued]) -> None:
        try:
            started = await self.store.start_streams([q.envelope for q in batch])
        except BaseException as exc:
            for q in batch:
                if not q.done.done():
                    q.done.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        for q, ok in zip(batch, started, strict=True):
            q.done.set_result(ok)
