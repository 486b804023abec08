"""One retried MongoDB transaction: what every write of several documents goes through.

The semantics are PyMongo's `with_transaction`: the whole callback runs again
on a `TransientTransactionError` (another transaction touched the same
documents, a primary stepped down), and only the commit is retried on an
`UnknownTransactionCommitResult` (the commit may or may not have happened;
committing again is safe). Unlike `with_transaction`, retries back off with
jitter and stop after a bounded time, so many replicas racing on one document
do not spin: a server that answers a write conflict at once (as SecantusDB
does) would otherwise turn contention into a retry storm.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from pymongo import AsyncMongoClient
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import PyMongoError

T = TypeVar("T")

TRANSIENT = "TransientTransactionError"
UNKNOWN_COMMIT = "UnknownTransactionCommitResult"


def is_transient(exc: BaseException) -> bool:
    """A write conflict or a failover: the same transaction may well succeed if run again."""
    return isinstance(exc, PyMongoError) and (
        exc.has_error_label(TRANSIENT) or getattr(exc, "code", None) == 112
    )


async def run_in_transaction(
    client: AsyncMongoClient[dict[str, Any]],
    callback: Callable[[AsyncClientSession], Awaitable[T]],
    *,
    timeout: float = 10.0,
) -> T:
    """Run `callback(session)` in a transaction until it commits, retrying what is transient."""
    deadline = time.monotonic() + timeout
    attempt = 0
    while True:
        attempt += 1
        async with client.start_session() as session:
            await session.start_transaction()
            try:
                result = await callback(session)
            except BaseException as exc:
                if session.in_transaction:
                    await session.abort_transaction()
                if is_transient(exc) and time.monotonic() < deadline:
                    await _backoff(attempt)
                    continue
                raise
            try:
                await _commit(session, deadline)
            except PyMongoError as exc:
                if is_transient(exc) and time.monotonic() < deadline:
                    await _backoff(attempt)
                    continue
                raise
            return result


async def _commit(session: AsyncClientSession, deadline: float) -> None:
    while True:
        try:
            await session.commit_transaction()
            return
        except PyMongoError as exc:
            if exc.has_error_label(UNKNOWN_COMMIT) and time.monotonic() < deadline:
                continue
            raise


async def _backoff(attempt: int) -> None:
    # Full jitter, capped: racers spread out instead of colliding again in step.
    await asyncio.sleep(random.uniform(0, min(0.2, 0.005 * 2**attempt)))
