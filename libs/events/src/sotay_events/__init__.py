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
from sotay_events.uow import (
    ClaimTaken,
    EventTooLarge,
    GroupCommit,
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
    "Repository",
    "UnitOfWork",
    "UnknownEvent",
    "decode",
    "new_event_id",
    "retry_on_conflict",
]
