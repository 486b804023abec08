"""Feedback's service layer on an in-memory store, with the tree as a plain dict."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from sotay_events import InMemoryEventStore
from sotay_feedback.domain import Unit
from sotay_feedback.handlers import FeedbackService
from sotay_platform.auth import Grant, Principal, Role

NOW = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)  # Tuesday 09:00 in Hà Nội


class Clock:
    def __init__(self, now: datetime = NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


class FakeUnits:
    """TW > HN > X1 (commune) > CB1, CB2; TW > HN > X2 > CB3 (a unit's depth is its level).

    `merge` and `move` edit it."""

    def __init__(self) -> None:
        self.paths = {
            "TW": ("TW",),
            "HN": ("TW", "HN"),
            "X1": ("TW", "HN", "X1"),
            "X2": ("TW", "HN", "X2"),
            "CB1": ("TW", "HN", "X1", "CB1"),
            "CB2": ("TW", "HN", "X1", "CB2"),
            "CB3": ("TW", "HN", "X2", "CB3"),
        }
        self.merged: dict[str, str] = {}

    async def resolve(self, unit_id: str) -> Unit | None:
        while unit_id in self.merged:
            unit_id = self.merged[unit_id]
        path = self.paths.get(unit_id)
        if path is None:
            return None
        absorbed = (unit_id, *[u for u, into in self.merged.items() if into == unit_id])
        level = {1: "central", 2: "province", 3: "commune"}.get(len(path), "branch")
        return Unit(unit_id, path, level, absorbed)

    def move(self, unit_id: str, parent: str) -> None:
        self.paths[unit_id] = (*self.paths[parent], unit_id)

    def merge(self, unit_id: str, into: str) -> None:
        self.merged[unit_id] = into
        del self.paths[unit_id]


def member(member_id: str, branch: str = "CB1") -> Principal:
    return Principal(f"u-{member_id}", (Grant(Role.member, branch),), member_id=member_id)


def official(role: Role, unit: str, subject: str = "official") -> Principal:
    return Principal(subject, (Grant(role, unit),))


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store() -> InMemoryEventStore:
    return InMemoryEventStore()


@pytest.fixture
def units() -> FakeUnits:
    return FakeUnits()


@pytest.fixture
def service(store: InMemoryEventStore, units: FakeUnits, clock: Clock) -> FeedbackService:
    return FeedbackService(store, units=units, clock=clock)
