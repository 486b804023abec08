"""Base class of every event payload and the registry of versions and upcasters."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]


class DomainEvent(BaseModel):
    """A fact's payload. Subclasses name the fact in the past tense.

    Unknown fields are ignored so that a consumer keeps reading when a producer
    adds an optional field within the same schema version.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    event_type: ClassVar[str]
    schema_version: ClassVar[int] = 1
    aggregate_type: ClassVar[str]
    topic: ClassVar[str]


class UnknownEvent(LookupError):
    """An event type or schema version this code has no model for."""


class EventCatalogue:
    """Every (event type, schema version) this code knows, and how to upcast."""

    def __init__(self) -> None:
        self._models: dict[tuple[str, int], type[DomainEvent]] = {}
        self._upcasters: dict[tuple[str, int], Upcaster] = {}

    def register(self, model: type[DomainEvent]) -> type[DomainEvent]:
        key = (model.event_type, model.schema_version)
        if key in self._models and self._models[key] is not model:
            raise ValueError(f"{key} registered twice")
        self._models[key] = model
        return model

    def upcaster(self, event_type: str, from_version: int) -> Callable[[Upcaster], Upcaster]:
        def wrap(fn: Upcaster) -> Upcaster:
            self._upcasters[(event_type, from_version)] = fn
            return fn

        return wrap

    def latest_version(self, event_type: str) -> int:
        versions = [v for (t, v) in self._models if t == event_type]
        if not versions:
            raise UnknownEvent(f"unknown event type {event_type!r}")
        return max(versions)

    def model(self, event_type: str, version: int | None = None) -> type[DomainEvent]:
        version = version or self.latest_version(event_type)
        try:
            return self._models[(event_type, version)]
        except KeyError:
            raise UnknownEvent(f"unknown schema version {event_type} v{version}") from None

    def upcast(self, event_type: str, version: int, payload: dict[str, Any]) -> dict[str, Any]:
        """Bring a payload of `version` up to the latest version of its type."""
        latest = self.latest_version(event_type)
        if version > latest:
            raise UnknownEvent(f"{event_type} v{version} is newer than this code (v{latest})")
        while version < latest:
            step = self._upcasters.get((event_type, version))
            if step is None:
                raise UnknownEvent(f"no upcaster for {event_type} v{version}")
            payload = step(dict(payload))
            version += 1
        return payload

    def decode(self, event_type: str, version: int, payload: dict[str, Any]) -> DomainEvent:
        model = self.model(event_type)
        return model.model_validate(self.upcast(event_type, version, payload))

    def models(self) -> list[type[DomainEvent]]:
        return [self._models[k] for k in sorted(self._models)]

    def event_types(self) -> list[str]:
        return sorted({t for t, _ in self._models})

    def has_upcaster(self, event_type: str, from_version: int) -> bool:
        return (event_type, from_version) in self._upcasters


CATALOGUE = EventCatalogue()
register = CATALOGUE.register
upcaster = CATALOGUE.upcaster
