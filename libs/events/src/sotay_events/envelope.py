"""The event envelope: what every event carries, whatever its payload."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from uuid6 import uuid7

SYSTEM_ACTOR = "system"


def new_event_id() -> str:
    """A UUIDv7: unique and sortable by creation time."""
    return str(uuid7())


def utc_now() -> datetime:
    return datetime.now(UTC)


class EventEnvelope(BaseModel):
    """One recorded fact, as stored in an event store and published on Kafka.

    `org_path` is the chain of org unit ids from the root to the unit the event
    concerns; its second element is the province, which keys partitioning.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_id: str = Field(default_factory=new_event_id)
    event_type: str
    schema_version: int = Field(ge=1)
    aggregate_type: str
    aggregate_id: str
    aggregate_version: int = Field(ge=1)
    occurred_at: datetime = Field(default_factory=utc_now)
    org_path: tuple[str, ...] = ()
    actor: str = SYSTEM_ACTOR
    correlation_id: str = Field(default_factory=new_event_id)
    causation_id: str | None = None
    trace_context: dict[str, str] = Field(default_factory=dict)
    payload: dict[str, Any] = Field(default_factory=dict)

    @field_validator("occurred_at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("occurred_at must carry a time zone")
        return value.astimezone(UTC)

    @property
    def stream_id(self) -> str:
        return f"{self.aggregate_type}-{self.aggregate_id}"

    @property
    def province(self) -> str | None:
        return self.org_path[1] if len(self.org_path) > 1 else None

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> EventEnvelope:
        return cls.model_validate_json(raw)
