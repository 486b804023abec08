"""The org tree over time: one model, folded from org-tree's events, without I/O.

Every service asks this module where a unit stood, what it merged into and
what hangs under it, for a moment; nobody follows `merged_into` by hand.

**Which tree a figure follows.** A figure describes a moment: the live view
now, a day's or a month's figure the end of that day in Asia/Ho_Chi_Minh
(`end_of_day`), a frozen report its report day. It counts what had happened
by that moment (facts with occurred_at <= it), on the tree as it stood at
that moment: a fact counts in the units that were its unit's ancestors then,
a merged unit's facts count in the unit it had merged into by then, a unit
that did not exist yet (or had been dissolved) counts nowhere, and its row
shows "—". So the frozen report as of the 25th follows the tree of the 25th,
however late it is issued and whatever was created, moved or merged after;
the live view follows today's tree. A meeting held in a branch before the
branch moved counts under its new parent in any figure dated after the move.

The model: each unit keeps its dated parents (one interval per move), its
dated names, its creation, and its merge or dissolution (both final). An
index by parent holds every child with the interval it hung there, and an
index by successor every unit merged into another, so `children` and
`subtree` touch only what they return. Events of one unit arrive in version
order, units in any order: the model keeps facts, not derived paths, so the
result does not depend on the order, and a fact applied twice changes nothing.

`at=None` means "after every known fact" (the tree as it stands now).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from sotay_events.catalogue.org_tree import (
    UnitCreated,
    UnitDissolved,
    UnitMerged,
    UnitMoved,
    UnitRenamed,
)
from sotay_events.consumer import Applied

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
ACTIVE, MERGED, DISSOLVED = "active", "merged", "dissolved"
TREE_EVENTS = (UnitCreated, UnitRenamed, UnitMoved, UnitMerged, UnitDissolved)

Doc = dict[str, Any]


def end_of_day(day: date) -> datetime:
    """The moment a figure for `day` is taken: the last microsecond of that day in Vietnam."""
    start_next = datetime.combine(day + timedelta(days=1), time(), tzinfo=TZ)
    return (start_next - timedelta(microseconds=1)).astimezone(UTC)


def start_of_day(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=TZ).astimezone(UTC)


def utc(moment: datetime) -> datetime:
    """A stored moment as UTC-aware (a client without tz_aware returns naive UTC)."""
    if moment.tzinfo is UTC:
        return moment
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _by(moment: datetime | None, at: datetime | None) -> bool:
    """Had a fact of `moment` happened by `at`?"""
    return moment is not None and (at is None or moment <= at)


class Dated(NamedTuple):
    """A value that holds from `since` (the event's occurred_at) until the next one."""

    since: datetime
    version: int
    value: str | None


@dataclass
class UnitHistory:
    """Everything known about one unit, as facts with their moments."""

    id: str
    level: str = ""
    created_at: datetime | None = None
    names: list[Dated] = field(default_factory=list)
    parents: list[Dated] = field(default_factory=list)
    merged_into: str | None = None
    merged_at: datetime | None = None
    dissolved_at: datetime | None = None
    version: int = 0

    def apply(self, event: Any, at: datetime, version: int = 0) -> bool:
        """Fold one of the unit's events; False when it was already applied."""
        at = utc(at)
        if version and version <= self.version:
            return False
        self.version = max(self.version, version)
        match event:
            case UnitCreated():
                if self.created_at is not None:
                    return False
                self.created_at, self.level = at, event.level.value
                _add(self.names, Dated(at, version, event.name))
                _add(self.parents, Dated(at, version, event.parent_id))
            case UnitRenamed():
                return _add(self.names, Dated(at, version, event.name))
            case UnitMoved():
                return _add(self.parents, Dated(at, version, event.to_parent_id))
            case UnitMerged():
                if self.merged_at is not None:
                    return False
                self.merged_into, self.merged_at = event.into_unit_id, at
            case UnitDissolved():
                if self.dissolved_at is not None:
                    return False
                self.dissolved_at = at
            case _:
                return False
        return True

    def exists(self, at: datetime | None = None) -> bool:
        """Created by `at`, and neither merged nor dissolved by then."""
        return (
            _by(self.created_at, at)
            and not _by(self.merged_at, at)
            and not _by(self.dissolved_at, at)
        )

    def status(self, at: datetime | None = None) -> str:
        if _by(self.merged_at, at):
            return MERGED
        if _by(self.dissolved_at, at):
            return DISSOLVED
        return ACTIVE

    def parent_at(self, at: datetime | None = None) -> str | None:
        """The parent recorded on the unit itself (not yet resolved through merges)."""
        found = _value_at(self.parents, at)
        return found.value if found else None

    def name_at(self, at: datetime | None = None) -> str:
        found = _value_at(self.names, at) or (self.names[0] if self.names else None)
        return (found.value or "") if found else self.id

    def intervals(self) -> Iterator[tuple[str | None, datetime, datetime | None]]:
        """(parent, from, until) for each time the unit hung somewhere; until None: still."""
        for i, entry in enumerate(self.parents):
            until = self.parents[i + 1].since if i + 1 < len(self.parents) else None
            yield entry.value, entry.since, until

    def hangs_from(self) -> set[str]:
        """Every unit this one ever hung from or merged into: what its lineage grows from."""
        found = {p.value for p in self.parents if p.value}
        if self.merged_into:
            found.add(self.merged_into)
        return found

    # the stored shape (sotay_platform.org_units keeps it in MongoDB) ---------------------

    def to_doc(self) -> Doc:
        """The dated facts and, for current readers, how the unit stands now."""
        return {
            "name": self.name_at(),
            "level": self.level,
            "parent_id": self.parent_at(),
            "status": self.status(),
            "merged_into": self.merged_into,
            "version": self.version,
            "created_at": self.created_at,
            "names": [_dated_doc(d, "name") for d in self.names],
            "parents": [_dated_doc(d, "parent_id") for d in self.parents],
            "merged_at": self.merged_at,
            "dissolved_at": self.dissolved_at,
        }

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> UnitHistory:
        def moment(value: Any) -> datetime | None:
            return utc(value) if isinstance(value, datetime) else None

        def dated(rows: Any, key: str) -> list[Dated]:
            return sorted(
                Dated(utc(r["since"]), int(r.get("v", 0)), r.get(key)) for r in rows or []
            )

        return cls(
            id=str(doc["_id"]),
            level=str(doc.get("level") or ""),
            created_at=moment(doc.get("created_at")),
            names=dated(doc.get("names"), "name"),
            parents=dated(doc.get("parents"), "parent_id"),
            merged_into=doc.get("merged_into"),
            merged_at=moment(doc.get("merged_at")),
            dissolved_at=moment(doc.get("dissolved_at")),
            version=int(doc.get("version") or 0),
        )


def _dated_doc(entry: Dated, key: str) -> Doc:
    return {"since": entry.since, "v": entry.version, key: entry.value}


def _add(entries: list[Dated], entry: Dated) -> bool:
    if any(e.version == entry.version and e.since == entry.since for e in entries):
        return False
    bisect.insort(entries, entry)
    return True


def _value_at(entries: list[Dated], at: datetime | None) -> Dated | None:
    if not entries:
        return None
    if at is None:
        return entries[-1]
    found = None
    for entry in entries:
        if entry.since > at:
            break
        found = entry
    return found


class OrgTree:
    """The dated tree of the units it was given (a province, or the whole country).

    A unit outside what was loaded ends a path; a unit merged into one outside
    it counts elsewhere. `sotay_platform.org_units.OrgUnits.tree` loads everything
    that ever hung under a unit, and that unit's ancestors, in two indexed queries.
    """

    def __init__(self, units: Iterable[UnitHistory] = ()) -> None:
        self.units: dict[str, UnitHistory] = {}
        # parent -> child -> the intervals the child hung there
        self._children: dict[str, dict[str, list[tuple[datetime, datetime | None]]]] = {}
        self._merged_from: dict[str, set[str]] = {}
        for unit in units:
            self.add(unit)

    @classmethod
    def from_docs(cls, docs: Iterable[Mapping[str, Any]]) -> OrgTree:
        return cls(UnitHistory.from_doc(d) for d in docs)

    @classmethod
    def fold(cls, items: Iterable[Applied]) -> OrgTree:
        tree = cls()
        for envelope, event in items:
            tree.apply(event, envelope.occurred_at, envelope.aggregate_version)
        return tree

    def add(self, unit: UnitHistory) -> None:
        """Put (or put back) a unit's history and index it."""
        self._unindex(unit.id)
        self.units[unit.id] = unit
        for parent, since, until in unit.intervals():
            if parent:
                self._children.setdefault(parent, {}).setdefault(unit.id, []).append((since, until))
        if unit.merged_into:
            self._merged_from.setdefault(unit.merged_into, set()).add(unit.id)

    def _unindex(self, unit_id: str) -> None:
        old = self.units.get(unit_id)
        if old is None:
            return
        for parent in old.hangs_from():
            self._children.get(parent, {}).pop(unit_id, None)
            self._merged_from.get(parent, set()).discard(unit_id)

    def apply(self, event: Any, at: datetime, version: int = 0) -> bool:
        """Fold one of org-tree's events; False when it changed nothing."""
        if not isinstance(event, TREE_EVENTS):
            return False
        unit = self.units.get(event.unit_id) or UnitHistory(event.unit_id)
        changed = unit.apply(event, at, version)
        if changed:
            self.add(unit)
        return changed

    # queries -----------------------------------------------------------------------------

    def get(self, unit_id: str) -> UnitHistory | None:
        return self.units.get(unit_id)

    def exists(self, unit_id: str, at: datetime | None = None) -> bool:
        unit = self.units.get(unit_id)
        return unit is not None and unit.exists(at)

    def created_at(self, unit_id: str) -> datetime | None:
        unit = self.units.get(unit_id)
        return unit.created_at if unit else None

    def successor(self, unit_id: str, at: datetime | None = None) -> str:
        """The unit that carries `unit_id` on at `at`: itself, or where its merges led."""
        current, seen = unit_id, {unit_id}
        while True:
            unit = self.units.get(current)
            if unit is None or not unit.merged_into or not _by(unit.merged_at, at):
                return current
            if unit.merged_into in seen:
                return current
            current = unit.merged_into
            seen.add(current)

    def merged_into_it(self, unit_id: str, at: datetime | None = None) -> list[str]:
        """Every unit merged into `unit_id` by `at`, directly or through other merges."""
        if unit_id not in self._merged_from:
            return []
        found: list[str] = []
        frontier, seen = [unit_id], {unit_id}
        while frontier:
            current = frontier.pop()
            for other in sorted(self._merged_from.get(current, ())):
                if other not in seen and _by(self.units[other].merged_at, at):
                    seen.add(other)
                    found.append(other)
                    frontier.append(other)
        return sorted(found)

    def parent(self, unit_id: str, at: datetime | None = None) -> str | None:
        """The parent as the tree stood: a merged parent is replaced by its successor."""
        unit = self.units.get(unit_id)
        raw = unit.parent_at(at) if unit else None
        return self.successor(raw, at) if raw else None

    def path(self, unit_id: str, at: datetime | None = None) -> list[str]:
        """Root .. unit as the tree stood at `at`; [] for a unit not created by then.

        A merged or dissolved unit keeps the place it last had (its ancestors as
        they stood at `at`); the path stops above a unit this tree does not hold.
        """
        unit = self.units.get(unit_id)
        if unit is None or not _by(unit.created_at, at):
            return []
        chain = [unit_id]
        current = self.parent(unit_id, at)
        while current and current in self.units and current not in chain:
            chain.append(current)
            current = self.parent(current, at)
        return chain[::-1]

    def rollup_path(self, unit_id: str, at: datetime | None = None) -> list[str]:
        """Where `unit_id`'s facts count at `at`: its successor's path; [] if that is closed."""
        carrier = self.successor(unit_id, at)
        return self.path(carrier, at) if self.exists(carrier, at) else []

    def _children_of(self, holders: Iterable[str], at: datetime | None) -> list[str]:
        found: list[str] = []
        for holder in holders:
            for child, spans in self._children.get(holder, {}).items():
                for since, until in spans:
                    if (
                        until is None
                        if at is None
                        else since <= at and (until is None or at < until)
                    ):
                        if self.units[child].exists(at):
                            found.append(child)
                        break
        return sorted(set(found))

    def children(self, unit_id: str, at: datetime | None = None) -> list[str]:
        """The units directly under `unit_id` that existed at `at`, with those that
        hung from a unit merged into it (they sit under it since the merge)."""
        return self._children_of([unit_id, *self.merged_into_it(unit_id, at)], at)

    def subtree(self, unit_id: str, at: datetime | None = None) -> list[str]:
        """The unit and every unit under it that existed and was not dissolved at `at`,
        each followed by the units merged into it (their facts count there): tree order.
        [] when `unit_id` itself did not exist then (ask its `successor` first)."""
        if not self.exists(unit_id, at):
            return []
        out: list[str] = []
        stack = [unit_id]
        while stack:
            current = stack.pop()
            absorbed = self.merged_into_it(current, at)
            out.append(current)
            out.extend(absorbed)
            stack.extend(reversed(self._children_of([current, *absorbed], at)))
        return out

    def lineage(self, unit_id: str) -> set[str]:
        """The unit and every unit it ever hung from or merged into, transitively,
        within this tree: what `org_units` stores so a subtree loads by one index."""
        found, frontier = {unit_id}, [unit_id]
        while frontier:
            unit = self.units.get(frontier.pop())
            for other in unit.hangs_from() if unit else ():
                if other not in found:
                    found.add(other)
                    frontier.append(other)
        return found


__all__ = [
    "ACTIVE",
    "DISSOLVED",
    "MERGED",
    "TREE_EVENTS",
    "Dated",
    "OrgTree",
    "UnitHistory",
    "end_of_day",
    "start_of_day",
    "utc",
]
