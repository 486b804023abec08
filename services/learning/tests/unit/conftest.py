"""Unit-test helpers: an in-memory directory (roster + tree) and a settable clock."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from sotay_learning.handlers import MemberInfo

# TW ─ T (province) ─ X1 (commune) ─ CB1, CB2 (branches)
#                   └ X2 (commune) ─ CB3
#    └ T2 (another province) ─ X9 ─ CB9
PATHS = {
    "TW": ["TW"],
    "T": ["TW", "T"],
    "X1": ["TW", "T", "X1"],
    "X2": ["TW", "T", "X2"],
    "CB1": ["TW", "T", "X1", "CB1"],
    "CB2": ["TW", "T", "X1", "CB2"],
    "CB3": ["TW", "T", "X2", "CB3"],
    "T2": ["TW", "T2"],
    "X9": ["TW", "T2", "X9"],
    "CB9": ["TW", "T2", "X9", "CB9"],
}


@dataclass
class FakeDirectory:
    members: dict[str, MemberInfo] = field(default_factory=dict)
    paths: dict[str, list[str]] = field(default_factory=lambda: dict(PATHS))

    def add(self, member_id: str, branch: str, status: str = "official") -> MemberInfo:
        info = MemberInfo(member_id, f"Đồng chí {member_id}", branch, status, status != "exempted")
        self.members[member_id] = info
        return info

    async def member(self, member_id: str) -> MemberInfo | None:
        return self.members.get(member_id)

    async def path(self, unit_id: str) -> list[str]:
        return list(self.paths.get(unit_id, []))


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 2, 2, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> None:
        self.now += timedelta(**kwargs)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def directory() -> FakeDirectory:
    return FakeDirectory()
