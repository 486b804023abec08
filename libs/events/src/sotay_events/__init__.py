"""Sổ tay's event contract and event-sourcing runtime."""

from sotay_events.aggregate import Aggregate
from sotay_events.catalogue import CATALOGUE, DomainEvent, UnknownEvent
from sotay_events.envelope import EventEnvelope, new_event_id
from sotay_events.store import (
    CommandContext,
    ConcurrencyConflict,
    EventStore,
    InMemoryEventStore,
    MongoEventStore,
    PrivateRecord,
    Repository,
    decode,
)

__all__ = [
    "CATALOGUE",
    "Aggregate",
    "CommandContext",
    "ConcurrencyConflict",
    "DomainEvent",
    "EventEnvelope",
    "EventStore",
    "InMemoryEventStore",
    "MongoEventStore",
    "PrivateRecord",
    "Repository",
    "UnknownEvent",
    "decode",
    "new_event_id",
]
