"""Sổ tay's event contract and event-sourcing runtime."""

from sotay_events.aggregate import Aggregate
from sotay_events.catalogue import CATALOGUE, DomainEvent, UnknownEvent
from sotay_events.envelope import EventEnvelope, new_event_id
from sotay_events.store import (
    CommandContext,
    EventStore,
    InMemoryEventStore,
    MongoEventStore,
    decode,
)
from sotay_events.uow import (
    ClaimTaken,
    ConcurrencyConflict,
    EventTooLarge,
    GroupCommit,
    PrivateRecord,
    UnitOfWork,
    retry_on_conflict,
)

__all__ = [
    "CATALOGUE",
    "Aggregate",
    "ClaimTaken",
    "CommandContext",
    "ConcurrencyConflict",
    "DomainEvent",
    "EventEnvelope",
    "EventStore",
    "EventTooLarge",
    "GroupCommit",
    "InMemoryEventStore",
    "MongoEventStore",
    "PrivateRecord",
    "UnitOfWork",
    "UnknownEvent",
    "decode",
    "new_event_id",
    "retry_on_conflict",
]
