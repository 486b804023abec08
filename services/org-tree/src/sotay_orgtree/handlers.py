"""One method per command: load, authorize against the unit's path, decide, commit.

Every command persists through one unit of work. Beside the unit's stream it
writes the `children` row of each parent it touches: the active children of
that unit, a versioned row written in the same commit. A dissolve decides
"no active children" from that row, not from a lagging projection, and
because a create or move under the unit writes the same row with its
version, of a dissolve and a concurrent create exactly one commits; the
other runs again on fresh state.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from sotay_events import CommandContext, EventStore, UnitOfWork, retry_on_conflict
from sotay_events.catalogue.org_tree import OrgLevel
from sotay_orgtree.domain import OrgUnit, RuleBroken
from sotay_platform.auth import ADMIN_ROLES, Principal
from sotay_platform.errors import Conflict, NotFound

CHILDREN = "children"


class Children:
    """The `children` rows a command read, so it writes them back at the version it read."""

    def __init__(self, uow: UnitOfWork, store: EventStore) -> None:
        self.uow = uow
        self.store = store
        self.rows: dict[str, dict[str, Any]] = {}

    async def of(self, unit_id: str) -> dict[str, Any]:
        if unit_id not in self.rows:
            found = await self.store.read_row(CHILDREN, unit_id)
            self.rows[unit_id] = found or {"_id": unit_id, "active": [], "_v": 0}
        return self.rows[unit_id]

    async def add(self, parent_id: str, child_id: str) -> None:
        row = await self.of(parent_id)
        row["active"] = sorted({*row["active"], child_id})

    async def remove(self, parent_id: str | None, child_id: str) -> None:
        if parent_id:
            row = await self.of(parent_id)
            row["active"] = [c for c in row["active"] if c != child_id]

    def write(self) -> None:
        for row in self.rows.values():
            self.uow.row(
                CHILDREN,
                {"_id": row["_id"], "active": row["active"]},
                expected_version=row.get("_v", 0),
            )


class OrgTreeService:
    def __init__(self, store: EventStore) -> None:
        self.store = store

    async def load(self, uow: UnitOfWork, code: str, field: str = "code") -> OrgUnit:
        unit = await uow.get(OrgUnit, code)
        if unit is None:
            raise NotFound(f"Không tìm thấy đơn vị có mã {code}", field=field)
        return unit

    async def path_of(self, unit: OrgUnit, uow: UnitOfWork | None = None) -> list[str]:
        """Root .. unit, walking the aggregates themselves (never a stale read model)."""
        uow = uow or self.store.unit_of_work()
        chain = [unit.id]
        current = unit.parent_id
        while current and current not in chain:
            parent = await uow.get(OrgUnit, current)
            if parent is None:
                break
            if parent.merged_into:
                current = parent.merged_into
                continue
            chain.append(parent.id)
            current = parent.parent_id
        return chain[::-1]

    @staticmethod
    async def _commit(
        uow: UnitOfWork, principal: Principal, path: list[str], correlation_id: str | None
    ) -> None:
        context = CommandContext(actor=principal.subject, org_path=tuple(path))
        if correlation_id:
            context = replace(context, correlation_id=correlation_id)
        await uow.commit(context)

    @retry_on_conflict()
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
        uow = self.store.unit_of_work()
        parent = await self.load(uow, parent_code, "parent_code") if parent_code else None
        parent_path = await self.path_of(parent, uow) if parent else []
        principal.require(ADMIN_ROLES, parent_path)
        existing = await uow.get(OrgUnit, code)
        if existing is not None:
            if (existing.name, existing.level, existing.parent_id) == (
                " ".join(name.split()),
                level,
                parent_code,
            ):
                return existing, False
            visible = principal.covers(ADMIN_ROLES, await self.path_of(existing, uow))
            raise Conflict(
                f"Mã đơn vị {code} đã được dùng"
                + (f" cho {existing.name}" if visible else " cho một đơn vị khác"),
                field="code",
                code="duplicate_code",
            )
        unit = OrgUnit.create(code, name, level, parent)
        uow.add(unit)
        children = Children(uow, self.store)
        if parent is not None:
            await children.add(parent.id, code)
        children.write()
        await self._commit(uow, principal, [*parent_path, code], correlation_id)
        return unit, True

    @retry_on_conflict()
    async def rename_unit(self, principal: Principal, code: str, name: str) -> OrgUnit:
        uow = self.store.unit_of_work()
        unit = await self.load(uow, code)
        path = await self.path_of(unit, uow)
        principal.require(ADMIN_ROLES, path)
        unit.rename(name)
        await self._commit(uow, principal, path, None)
        return unit

    @retry_on_conflict()
    async def move_unit(self, principal: Principal, code: str, parent_code: str) -> OrgUnit:
        uow = self.store.unit_of_work()
        unit = await self.load(uow, code)
        path = await self.path_of(unit, uow)
        parent = await self.load(uow, parent_code, "parent_code")
        parent_path = await self.path_of(parent, uow)
        principal.require(ADMIN_ROLES, path)
        principal.require(ADMIN_ROLES, parent_path)
        old_parent = unit.parent_id
        unit.move(parent, parent_path)
        children = Children(uow, self.store)
        await children.remove(old_parent, code)
        await children.add(parent.id, code)
        children.write()
        await self._commit(uow, principal, [*parent_path, unit.id], None)
        return unit

    @retry_on_conflict()
    async def merge_unit(self, principal: Principal, code: str, into_code: str) -> OrgUnit:
        uow = self.store.unit_of_work()
        unit = await self.load(uow, code)
        path = await self.path_of(unit, uow)
        target = await self.load(uow, into_code, "into_code")
        target_path = await self.path_of(target, uow)
        principal.require(ADMIN_ROLES, path)
        principal.require(ADMIN_ROLES, target_path)
        unit.merge_into(target, target_path)
        # What stood under the merged unit now stands under the unit it merged into.
        children = Children(uow, self.store)
        moved = list((await children.of(code))["active"])
        await children.remove(unit.parent_id, code)
        for child in moved:
            await children.remove(code, child)
            await children.add(target.id, child)
        children.write()
        await self._commit(uow, principal, path, None)
        return unit

    @retry_on_conflict()
    async def dissolve_unit(self, principal: Principal, code: str, reason: str) -> OrgUnit:
        uow = self.store.unit_of_work()
        unit = await self.load(uow, code)
        path = await self.path_of(unit, uow)
        principal.require(ADMIN_ROLES, path)
        children = Children(uow, self.store)
        unit.dissolve(len((await children.of(code))["active"]), reason)
        await children.remove(unit.parent_id, code)
        children.write()
        await self._commit(uow, principal, path, None)
        return unit


__all__ = ["OrgTreeService", "RuleBroken"]
