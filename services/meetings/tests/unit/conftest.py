"""Meetings' service layer on an in-memory store, with the tree and roster as plain dicts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from sotay_events import GroupCommit, InMemoryEventStore
from sotay_events.catalogue.meetings import MeetingKind
from sotay_meetings.checkin import CheckinCodes, LocalMeetingCache, MemoryLedger
from sotay_meetings.handlers import MeetingsService
from sotay_platform.org_units import Resolved

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)  # 19:00 in Hà Nội


class Clock:
    def __init__(self, now: datetime = NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


class FakeUnits:
    """A small tree: TW > HN > X1 (commune) > CB1, CB2 (branches)."""

    def __init__(self) -> None:
        self.units = {
            "TW": ("central", ["TW"]),
            "HN": ("province", ["TW", "HN"]),
            "X1": ("commune", ["TW", "HN", "X1"]),
            "CB1": ("branch", ["TW", "HN", "X1", "CB1"]),
            "CB2": ("branch", ["TW", "HN", "X1", "CB2"]),
        }

    async def resolve(self, unit_id: str, at: datetime | None = None) -> Resolved | None:
        if unit_id not in self.units:
            return None
        level, path = self.units[unit_id]
        return Resolved(unit_id, unit_id, level, path, [unit_id])


@dataclass
class FakeRoster:
    branches: dict[str, list[str]] = field(default_factory=dict)
    committees: dict[str, list[str]] = field(default_factory=dict)

    async def expected(self, unit_ids: Sequence[str], kind: MeetingKind, at: datetime) -> list[str]:
        source = self.committees if kind is MeetingKind.committee else self.branches
        return [m for u in unit_ids for m in source.get(u, [])]


class CountingStore(InMemoryEventStore):
    def __init__(self) -> None:
        super().__init__()
        self.loads: list[str] = []

    async def load(self, aggregate_type: str, aggregate_id: str):  # type: ignore[no-untyped-def]
        self.loads.append(aggregate_type)
        return await super().load(aggregate_type, aggregate_id)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store() -> CountingStore:
    return CountingStore()


@pytest.fixture
def roster() -> FakeRoster:
    return FakeRoster(
        branches={"CB1": ["m0", *[f"m{i}" for i in range(1, 6)]], "CB2": ["x0", "x1"]},
        committees={"CB1": ["m0", "m1"]},
    )


@pytest.fixture
def codes() -> CheckinCodes:
    return CheckinCodes(b"unit-test-secret", step_seconds=60)


@pytest.fixture
def service(
    store: CountingStore, roster: FakeRoster, clock: Clock, codes: CheckinCodes
) -> MeetingsService:
    return MeetingsService(
        store,
        units=FakeUnits(),
        roster=roster,
        cache=LocalMeetingCache(),
        hot_path=GroupCommit(store),
        ledger=MemoryLedger(store),
        codes=codes,
        clock=clock,
    )
