"""One function per command: load, authorize against the unit's path, decide, append."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace

from sotay_events import CommandContext, EventStore, Repository
from sotay_events.catalogue.org_tree import OrgLevel
from sotay_orgtree.domain import OrgUnit, RuleBroken
from sotay_platform.auth import ADMIN_ROLES, Principal
from sotay_platform.errors import Conflict, NotFound

ChildCounter = Callable[[str], Awaitable[int]]


class OrgTreeService:
    def __init__(self, store: EventStore, on_saved: Callable[[], None] = lambda: None) -> None:
        self.units = Repository(store, OrgUnit)
        self.on_saved = on_saved

    async def load(self, code: str, field: str = "code") -> OrgUnit:
        unit = await self.units.get(code)
        if unit is None:
            raise NotFound(f"Không tìm thấy đơn vị có mã {code}", field=field)
        return unit

    async def path_of(self, unit: OrgUnit) -> list[str]:
        """Root .. unit, walking the aggregates themselves (never a stale read model)."""
        chain = [unit.id]
        current = unit.parent_id
        while current and current not in chain:
            parent = await self.units.get(current)
            if parent is None:
                break
            if parent.merged_into:
                current = parent.merged_into
                continue
            chain.append(parent.id)
            current = parent.parent_id
        return chain[::-1]

    async def _save(
        self, unit: OrgUnit, principal: Principal, path: list[str], correlation_id: str | None
    ) -> None:
        context = CommandContext(actor=principal.subject, org_path=tuple(path))
        if correlation_id:
            context = replace(context, correlation_id=correlation_id)
        await self.units.save(unit, context)
        self.on_saved()

    async def create_unit(
        self,
        principal: Principal,
        code: str,
        name: str,
        level: OrgLevel,
        parent_code: str | None,
        correlation_id: str | None = None,
    ) -> tuple[OrgUnit, bool]:
        """Returns the unit and whether it was created now; the same request twice creates once."""
        parent = await self.load(parent_code, "parent_code") if parent_code else None
        parent_path = await self.path_of(parent) if parent else []
        principal.require(ADMIN_ROLES, parent_path)
        existing = await self.units.get(code)
        if existing is not None:
            if (existing.name, existing.level, existing.parent_id) == (
                " ".join(name.split()),
                level,
                parent_code,
            ):
                return existing, False
            raise Conflict(
                f"Mã đơn vị {code} đã được dùng cho {existing.name}",
                field="code",
                code="duplicate_code",
            )
        unit = OrgUnit.create(code, name, level, parent)
        await self._save(unit, principal, [*parent_path, code], correlation_id)
        return unit, True

    async def rename_unit(self, principal: Principal, code: str, name: str) -> OrgUnit:
        unit = await self.load(code)
        path = await self.path_of(unit)
        principal.require(ADMIN_ROLES, path)
        unit.rename(name)
        await self._save(unit, principal, path, None)
        return unit

    async def move_unit(self, principal: Principal, code: str, parent_code: str) -> OrgUnit:
        unit = await self.load(code)
        path = await self.path_of(unit)
        parent = await self.load(parent_code, "parent_code")
        parent_path = await self.path_of(parent)
        principal.require(ADMIN_ROLES, path)
        principal.require(ADMIN_ROLES, parent_path)
        unit.move(parent, parent_path)
        await self._save(unit, principal, [*parent_path, unit.id], None)
        return unit

    async def merge_unit(self, principal: Principal, code: str, into_code: str) -> OrgUnit:
        unit = await self.load(code)
        path = await self.path_of(unit)
        target = await self.load(into_code, "into_code")
        target_path = await self.path_of(target)
        principal.require(ADMIN_ROLES, path)
        principal.require(ADMIN_ROLES, target_path)
        unit.merge_into(target, target_path)
        await self._save(unit, principal, path, None)
        return unit

    async def dissolve_unit(
        self, principal: Principal, code: str, reason: str, count_children: ChildCounter
    ) -> OrgUnit:
        unit = await self.load(code)
        path = await self.path_of(unit)
        principal.require(ADMIN_ROLES, path)
        unit.dissolve(await count_children(code), reason)
        await self._save(unit, principal, path, None)
        return unit


__all__ = ["OrgTreeService", "RuleBroken"]
