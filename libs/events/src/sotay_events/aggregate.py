"""Aggregates as plain classes whose methods check a rule and record an event."""

from __future__ import annotations

from typing import ClassVar, Self

from sotay_events.catalogue import DomainEvent


class Aggregate:
    """State rebuilt from its own events; `record` is the only way it changes.

    Subclasses implement `apply` (no rules there: an event is a fact) and
    commands that check rules, then call `record`.
    """

    aggregate_type: ClassVar[str]

    def __init__(self, aggregate_id: str) -> None:
        self.id = aggregate_id
        self.version = 0
        self._pending: list[DomainEvent] = []

    def apply(self, event: DomainEvent) -> None:
        raise NotImplementedError

    def record(self, event: DomainEvent) -> None:
        self.apply(event)
        self.version += 1
        self._pending.append(event)

    @property
    def pending(self) -> list[DomainEvent]:
        return list(self._pending)

    @property
    def loaded_version(self) -> int:
        """The version the store held when this aggregate was loaded."""
        return self.version - len(self._pending)

    def mark_saved(self) -> None:
        self._pending.clear()

    @classmethod
    def rebuild(cls, aggregate_id: str, events: list[DomainEvent]) -> Self:
        aggregate = cls(aggregate_id)
        for event in events:
            aggregate.apply(event)
            aggregate.version += 1
        return aggregate
