"""The org unit aggregate: every rule about the tree's shape lives here, without I/O."""

from __future__ import annotations

import re

from sotay_events import Aggregate, DomainEvent
from sotay_events.catalogue.org_tree import (
    AGGREGATE,
    ALLOWED_PARENTS,
    OrgLevel,
    UnitCreated,
    UnitDissolved,
    UnitMerged,
    UnitMoved,
    UnitRenamed,
)
from sotay_platform.errors import Invalid

CODE_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class RuleBroken(Invalid):
    """A command that the tree's rules refuse (422); `field` names the input at fault."""

    code = "rule_broken"


class OrgUnit(Aggregate):
    aggregate_type = AGGREGATE

    def __init__(self, aggregate_id: str) -> None:
        super().__init__(aggregate_id)
        self.name = ""
        self.level = OrgLevel.branch
        self.parent_id: str | None = None
        self.status = "active"
        self.merged_into: str | None = None

    @property
    def is_active(self) -> bool:
        return self.status == "active"

    def apply(self, event: DomainEvent) -> None:
        match event:
            case UnitCreated():
                self.name, self.level, self.parent_id = event.name, event.level, event.parent_id
            case UnitRenamed():
                self.name = event.name
            case UnitMoved():
                self.parent_id = event.to_parent_id
            case UnitMerged():
                self.status, self.merged_into = "merged", event.into_unit_id
            case UnitDissolved():
                self.status = "dissolved"

    # Commands. A parent is passed with its path (root .. parent), resolved through merges.

    @classmethod
    def create(cls, code: str, name: str, level: OrgLevel, parent: OrgUnit | None) -> OrgUnit:
        if not CODE_PATTERN.match(code):
            raise RuleBroken(
                "Mã đơn vị chỉ gồm chữ không dấu, số, dấu chấm, gạch ngang, tối đa 64 ký tự",
                field="code",
            )
        name = _clean_name(name)
        _check_parent(level, parent, field="parent_code")
        unit = cls(code)
        unit.record(
            UnitCreated(
                unit_id=code, name=name, level=level, parent_id=parent.id if parent else None
            )
        )
        return unit

    def rename(self, name: str) -> None:
        self._require_active()
        name = _clean_name(name)
        if name != self.name:
            self.record(UnitRenamed(unit_id=self.id, name=name, previous_name=self.name))

    def move(self, new_parent: OrgUnit, new_parent_path: list[str]) -> None:
        self._require_active()
        if self.id in new_parent_path:
            raise RuleBroken(
                f"Không thể chuyển {self.id} vào chính nó hoặc một đơn vị cấp dưới của nó",
                field="parent_code",
                code="cycle",
            )
        _check_parent(self.level, new_parent, field="parent_code")
        if new_parent.id != self.parent_id:
            self.record(
                UnitMoved(
                    unit_id=self.id, from_parent_id=self.parent_id, to_parent_id=new_parent.id
                )
            )

    def merge_into(self, target: OrgUnit, target_path: list[str]) -> None:
        self._require_active()
        if target.id == self.id or self.id in target_path:
            raise RuleBroken(
                "Không thể hợp nhất một đơn vị vào chính nó hoặc vào đơn vị cấp dưới của nó",
                field="into_code",
                code="cycle",
            )
        if not target.is_active:
            raise RuleBroken(
                f"Đơn vị {target.id} đã giải thể hoặc hợp nhất",
                field="into_code",
                code="closed_unit",
            )
        if target.level != self.level:
            raise RuleBroken(
                f"Chỉ hợp nhất các đơn vị cùng cấp ({self.level.label} ≠ {target.level.label})",
                field="into_code",
                code="level_mismatch",
            )
        self.record(UnitMerged(unit_id=self.id, into_unit_id=target.id))

    def dissolve(self, active_children: int, reason: str) -> None:
        self._require_active()
        if active_children:
            raise RuleBroken(
                f"Đơn vị còn {active_children} đơn vị trực thuộc đang hoạt động: "
                "cần chuyển hoặc giải thể trước",
                code="has_children",
            )
        self.record(UnitDissolved(unit_id=self.id, reason=reason.strip()))

    def _require_active(self) -> None:
        if not self.is_active:
            raise RuleBroken(f"Đơn vị {self.id} đã giải thể hoặc hợp nhất", code="closed_unit")


def _clean_name(name: str) -> str:
    name = " ".join(name.split())
    if not name:
        raise RuleBroken("Tên đơn vị không được để trống", field="name")
    if len(name) > 200:
        raise RuleBroken("Tên đơn vị dài quá 200 ký tự", field="name")
    return name


def _check_parent(level: OrgLevel, parent: OrgUnit | None, field: str) -> None:
    allowed = ALLOWED_PARENTS[level]
    if parent is None:
        if allowed:
            raise RuleBroken(f"{level.label} phải có đơn vị cấp trên", field=field)
        return
    if not parent.is_active:
        raise RuleBroken(
            f"Đơn vị cấp trên {parent.id} đã giải thể hoặc hợp nhất",
            field=field,
            code="closed_unit",
        )
    if parent.level not in allowed:
        raise RuleBroken(
            f"{level.label} không thể trực thuộc {parent.level.label}",
            field=field,
            code="bad_level",
        )
