from collections.abc import Callable
from datetime import date
from typing import Any

import pytest

from sotay_events.catalogue.org_tree import OrgLevel
from sotay_identity.domain import MemberFields
from sotay_identity.handlers import IdentityService
from sotay_identity.security import Lockout, MemoryCounters, Passwords, Revocations
from sotay_identity.storage import KeyHasher, MemoryStorage
from sotay_identity.tree import MemoryTree
from sotay_platform.auth import Grant, Principal, Role, TokenIssuer

TODAY = date(2026, 11, 25)


def member_input(**overrides: Any) -> MemberFields:
    values: dict[str, Any] = {
        "full_name": "Nguyễn Văn An",
        "birth_date": "15/08/1975",
        "gender": "Nam",
        "admitted_on": "03/02/2000",
        "official_on": "03/02/2001",
        "party_card_no": "01234567",
        "citizen_id": "001075001234",
        "phone": "0912345678",
    }
    values.update(overrides)
    return MemberFields.model_validate(values)


@pytest.fixture
def tree() -> MemoryTree:
    t = MemoryTree()
    t.add("TW", OrgLevel.central)
    t.add("HN", OrgLevel.province, "TW", "Đảng bộ Thành phố Hà Nội")
    t.add("HN.X", OrgLevel.commune, "HN", "Đảng bộ phường Ba Đình")
    t.add("CB1", OrgLevel.branch, "HN.X", "Chi bộ Khu phố 1")
    t.add("CB2", OrgLevel.branch, "HN.X", "Chi bộ Khu phố 2")
    t.add("HP", OrgLevel.province, "TW", "Đảng bộ Thành phố Hải Phòng")
    t.add("HP.X", OrgLevel.commune, "HP")
    t.add("HP.CB1", OrgLevel.branch, "HP.X")
    return t


@pytest.fixture
def service(tree: MemoryTree) -> IdentityService:
    counters = MemoryCounters()
    return IdentityService(
        MemoryStorage(),
        tree,
        KeyHasher("unit-test-key"),
        Passwords(time_cost=1, memory_kib=8192, parallelism=1),
        TokenIssuer.generate(),
        Lockout(counters, max_failures=3, window=60, lock_seconds=60),
        Revocations(counters, 600),
        today=lambda: TODAY,
    )


@pytest.fixture
def principal() -> Callable[..., Principal]:
    def make(
        role: Role, unit: str, member_id: str | None = None, subject: str = "tester"
    ) -> Principal:
        return Principal(subject, (Grant(role, unit),), member_id=member_id)

    return make
