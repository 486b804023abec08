"""Facts about the party organisation tree, published by org-tree."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import Field

from sotay_events import topics
from sotay_events.catalogue.base import DomainEvent, register, upcaster


class OrgLevel(StrEnum):
    central = "central"
    province = "province"
    commune = "commune"
    grassroots_committee = "grassroots_committee"
    grassroots_branch = "grassroots_branch"
    partial_committee = "partial_committee"
    branch = "branch"

    @property
    def label(self) -> str:
        return LEVEL_LABELS[self]

    @property
    def holds_members(self) -> bool:
        """Every member belongs to a branch: a branch under a committee or a grassroots branch."""
        return self in (OrgLevel.branch, OrgLevel.grassroots_branch)


LEVEL_LABELS: dict[OrgLevel, str] = {
    OrgLevel.central: "Trung ương",
    OrgLevel.province: "Đảng bộ tỉnh, thành phố",
    OrgLevel.commune: "Đảng bộ xã, phường, đặc khu",
    OrgLevel.grassroots_committee: "Đảng bộ cơ sở",
    OrgLevel.grassroots_branch: "Chi bộ cơ sở",
    OrgLevel.partial_committee: "Đảng bộ bộ phận",
    OrgLevel.branch: "Chi bộ trực thuộc",
}

# Which level may sit directly under which: a commune's village branches sit
# under the commune committee, which is itself a grassroots committee.
ALLOWED_PARENTS: dict[OrgLevel, frozenset[OrgLevel]] = {
    OrgLevel.central: frozenset(),
    OrgLevel.province: frozenset({OrgLevel.central}),
    OrgLevel.commune: frozenset({OrgLevel.province}),
    OrgLevel.grassroots_committee: frozenset({OrgLevel.province, OrgLevel.commune}),
    OrgLevel.grassroots_branch: frozenset({OrgLevel.province, OrgLevel.commune}),
    OrgLevel.partial_committee: frozenset({OrgLevel.grassroots_committee}),
    OrgLevel.branch: frozenset(
        {OrgLevel.commune, OrgLevel.grassroots_committee, OrgLevel.partial_committee}
    ),
}

AGGREGATE = "OrgUnit"


class _OrgUnitEvent(DomainEvent):
    aggregate_type = AGGREGATE
    topic = topics.ORG_TREE


@register
class UnitCreatedV1(_OrgUnitEvent):
    """v1 carried the level as its Vietnamese label, which consumers had to parse."""

    event_type = "UnitCreated"
    schema_version = 1

    unit_id: str
    name: str
    level_label: str = Field(examples=["Chi bộ trực thuộc"])
    parent_id: str | None = None


@register
class UnitCreated(_OrgUnitEvent):
    event_type = "UnitCreated"
    schema_version = 2

    unit_id: str = Field(description="The unit's code, unique for all time")
    name: str
    level: OrgLevel
    parent_id: str | None = None


@upcaster("UnitCreated", 1)
def _unit_created_v1_to_v2(payload: dict[str, Any]) -> dict[str, Any]:
    by_label = {label: level.value for level, label in LEVEL_LABELS.items()}
    label = payload.pop("level_label")
    if label not in by_label:
        raise ValueError(f"UnitCreated v1 with an unknown level label: {label!r}")
    payload["level"] = by_label[label]
    return payload


@register
class UnitRenamed(_OrgUnitEvent):
    event_type = "UnitRenamed"

    unit_id: str
    name: str
    previous_name: str


@register
class UnitMoved(_OrgUnitEvent):
    event_type = "UnitMoved"

    unit_id: str
    from_parent_id: str | None
    to_parent_id: str


@register
class UnitMerged(_OrgUnitEvent):
    """The unit closed and everything under it now sits under `into_unit_id`."""

    event_type = "UnitMerged"

    unit_id: str
    into_unit_id: str


@register
class UnitDissolved(_OrgUnitEvent):
    event_type = "UnitDissolved"

    unit_id: str
    reason: str = ""
