"""Bulk onboarding of an existing member list, and the reconciliation report (seed 004).

Both read the same CSV (UTF-8) or Excel (.xlsx) layout, one member a row:
họ và tên, ngày sinh, giới tính, ngày vào Đảng, ngày chính thức, số thẻ đảng
viên, mã chi bộ, số định danh công dân, số điện thoại, trạng thái (English
column names work too). Messages never repeat a citizen ID or phone number.

An import commits many rows per transaction (batch writes), each row through
the same rules as the API; a row already imported with the same data is
reported unchanged, so a file can be sent again.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date
from typing import Any

from pydantic import TypeAdapter, ValidationError

from sotay_events import ClaimTaken
from sotay_events.catalogue.identity import Gender, MemberStatus
from sotay_identity.domain import (
    FIELD_LABELS,
    GENDER_LABELS,
    MANAGERS,
    PERSONAL_READERS,
    STATUS_LABELS,
    Member,
    MemberFields,
    PersonalData,
    Problems,
    Profile,
    RuleBroken,
    format_date,
    problems_of,
    validate_member,
)
from sotay_identity.handlers import IdentityService
from sotay_identity.storage import CLAIMS, KEY_FIELDS, KEY_MESSAGES, PERSONAL, kind_of
from sotay_platform.auth import Principal
from sotay_platform.errors import NotFound
from sotay_platform.inputs import Code, fold
from sotay_platform.roster import Purpose, counts
from sotay_platform.uploads import Column, Row

BATCH = 200

_ALIASES: dict[str, set[str]] = {
    "full_name": {"ho va ten", "ho ten", "full name", "name", "ten dang vien"},
    "birth_date": {"ngay sinh", "ngay thang nam sinh", "birth date", "date of birth"},
    "gender": {"gioi tinh", "gender"},
    "admitted_on": {"ngay vao dang", "ngay ket nap", "admitted on", "ngay ket nap dang"},
    "official_on": {"ngay chinh thuc", "official on", "ngay cong nhan chinh thuc"},
    "party_card_no": {"so the dang vien", "so the", "the dang vien", "party card no", "party card"},
    "branch_id": {"ma chi bo", "chi bo", "branch", "branch id", "ma don vi", "chi bo sinh hoat"},
    "citizen_id": {
        "so dinh danh",
        "so dinh danh ca nhan",
        "so dinh danh cong dan",
        "cccd",
        "so cccd",
        "citizen id",
    },
    "phone": {"so dien thoai", "dien thoai", "sdt", "phone"},
    "status": {"trang thai", "loai dang vien", "status"},
}
REQUIRED = ("full_name", "birth_date", "admitted_on", "citizen_id")
# Excel keeps a citizen ID or a phone typed as a number without its leading zeros.
_ZERO_PAD = {"citizen_id": 12, "phone": 10}
COLUMNS = [
    Column(
        name,
        FIELD_LABELS[name],
        aliases,
        required=name in REQUIRED,
        zero_pad=_ZERO_PAD.get(name),
    )
    for name, aliases in _ALIASES.items()
]
_MEMBER_COLUMNS = [c.name for c in COLUMNS if c.name in MemberFields.model_fields]
_CODE: TypeAdapter[str] = TypeAdapter(Code)


def _fields(row: Row) -> MemberFields:
    """A row through the same declarations as the API; RuleBroken naming every cell."""
    try:
        return MemberFields.model_validate({c: row.get(c, "") for c in _MEMBER_COLUMNS})
    except ValidationError as exc:
        items = problems_of(exc)
        raise RuleBroken(items[0]["message"], items[0]["field"], "invalid", items) from None


def _branch(row: Row, unit_id: str) -> str:
    cell = row.get("branch_id") or unit_id
    try:
        return _CODE.validate_python(cell)
    except ValidationError:
        raise RuleBroken("Mã chi bộ không hợp lệ", field="branch_id") from None


@dataclass
class RowResult:
    row: int
    status: str  # created | unchanged | rejected
    member_id: str | None = None
    full_name: str = ""
    message: str = ""
    field: str | None = None


@dataclass
class ImportReport:
    unit_id: str
    created: int = 0
    unchanged: int = 0
    rejected: int = 0
    rows: list[RowResult] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Ready:
    index: int
    number: int
    branch_id: str
    path: list[str]
    profile: Profile
    personal: PersonalData
    keys: dict[str, str]


async def _unit(service: IdentityService, unit_id: str) -> dict[str, Any]:
    unit = await service.tree.get(unit_id)
    if unit is None:
        raise NotFound(f"Không tìm thấy đơn vị có mã {unit_id}", field="unit_id")
    return unit


async def import_members(
    service: IdentityService, principal: Principal, unit_id: str, rows: list[Row]
) -> ImportReport:
    """Onboard a unit's list: members are created approved (registered_by "import"), with
    no account; the secretary later sets a temporary password for each who will sign in."""
    unit = await _unit(service, unit_id)
    principal.require(MANAGERS, unit["path"])
    report = ImportReport(unit_id)
    results: dict[int, RowResult] = {}
    ready: list[_Ready] = []
    branch_paths: dict[str, list[str]] = {}
    seen_keys: dict[str, int] = {}
    today = service.today()
    for i, row in enumerate(rows):
        number = row.number
        name = (row.get("full_name") or "")[:100]
        try:
            problems = Problems()
            branch_id = _branch(row, unit_id)
            if branch_id not in branch_paths:
                branch_paths[branch_id] = await service.check_branch(branch_id, Problems())
            path = branch_paths[branch_id]
            if not path:
                await service.check_branch(branch_id, problems)
            elif unit_id not in path:
                problems.add("branch_id", f"Chi bộ {branch_id} không thuộc đơn vị {unit_id}")
            profile, personal = validate_member(
                _fields(row), today, phone_required=False, problems=problems
            )
            keys = service.claims_of("", profile, personal, with_phone=False)
            for key in keys:
                if key in seen_keys:
                    field = KEY_FIELDS[kind_of(key)]
                    raise RuleBroken(
                        f"Trùng {FIELD_LABELS[field].lower()} với dòng {seen_keys[key]} trong tệp",
                        field=field,
                    )
            for key in keys:
                seen_keys[key] = number
            ready.append(_Ready(i, number, branch_id, path, profile, personal, keys))
        except RuleBroken as exc:
            results[i] = RowResult(number, "rejected", None, name, exc.message, exc.field)
    for start in range(0, len(ready), BATCH):
        batch = ready[start : start + BATCH]
        results.update(await _import_batch(service, principal, batch, unit["path"]))
    for i in sorted(results):
        result = results[i]
        report.rows.append(result)
        setattr(report, result.status, getattr(report, result.status) + 1)
    return report


async def _import_batch(
    service: IdentityService, principal: Principal, batch: list[_Ready], unit_path: list[str]
) -> dict[int, RowResult]:
    results: dict[int, RowResult] = {}
    owners = await service.storage.claim_owners([k for r in batch for k in r.keys])
    fresh: list[_Ready] = []
    for item in batch:
        taken = {owners[k] for k in item.keys if k in owners}
        if not taken:
            fresh.append(item)
            continue
        results[item.index] = await _already_there(service, item, taken, owners)
    if not fresh:
        return results
    uow = service.storage.unit_of_work()
    created: dict[int, Member] = {}
    for item in fresh:
        member_id = service.new_id()
        member = Member.register(
            member_id, item.profile, item.branch_id, "import", principal.subject
        )
        service.stage(uow, member, service._context(principal, item.path))
        for key in item.keys:
            uow.claim(CLAIMS, key, member_id)
        uow.private(PERSONAL, item.personal.to_doc(member_id))
        created[item.index] = member
    try:
        await uow.commit(service._context(principal, list(unit_path)))
    except ClaimTaken:
        if len(fresh) == 1:
            raise
        # Someone claimed a key meanwhile: row by row, so each row gets its own answer.
        for item in fresh:
            results.update(await _import_batch(service, principal, [item], unit_path))
        return results
    for item in fresh:
        member = created[item.index]
        results[item.index] = RowResult(item.number, "created", member.id, member.full_name)
    return results


async def _already_there(
    service: IdentityService, item: _Ready, taken: set[str], owners: dict[str, str]
) -> RowResult:
    number, name = item.number, item.profile.full_name
    if len(taken) == 1:
        owner = next(iter(taken))
        row = await service.storage.member_row(owner)
        personal = await service.storage.personal(owner)
        if (
            row is not None
            and personal is not None
            and row["full_name"] == item.profile.full_name
            and row["branch_id"] == item.branch_id
            and personal.citizen_id == item.personal.citizen_id
            and personal.birth_date == item.personal.birth_date
            and (row.get("party_card_no") or None) == item.profile.party_card_no
        ):
            return RowResult(number, "unchanged", owner, name)
    kind = kind_of(next(k for k in item.keys if k in owners))
    return RowResult(
        number,
        "rejected",
        None,
        name,
        f"{KEY_MESSAGES[kind]}; dùng đối chiếu danh sách để xem khác biệt",
        KEY_FIELDS[kind],
    )


# --- reconciliation -------------------------------------------------------------


def _mask(value: str | None) -> str | None:
    return f"***{value[-4:]}" if value else None


COMPARED = (
    "full_name",
    "birth_date",
    "gender",
    "admitted_on",
    "official_on",
    "party_card_no",
    "branch_id",
    "status",
    "citizen_id",
    "phone",
)


def _shown(name: str, value: Any) -> Any:
    if isinstance(value, date):
        return format_date(value)
    if isinstance(value, Gender):
        return GENDER_LABELS[value]
    if isinstance(value, MemberStatus):
        return STATUS_LABELS[value]
    if name in ("citizen_id", "phone"):
        return _mask(value)
    return value


async def reconcile(
    service: IdentityService, principal: Principal, unit_id: str, rows: list[Row]
) -> dict[str, Any]:
    """The official list against the platform, for a unit and everything under it:
    members on the list but not in the platform, in the platform but not on the list,
    and the fields that differ. Citizen IDs and phones are shown masked."""
    unit = await _unit(service, unit_id)
    principal.require(PERSONAL_READERS, unit["path"])
    branches = await service.tree.branches_under(unit_id)
    members = await service.storage.members_in(branches, states=("approved", "pending"))
    personal = await service.storage.personal_many([m["_id"] for m in members])
    by_citizen = {service.keys.key("citizen_id", p.citizen_id): mid for mid, p in personal.items()}
    by_card = {m["party_card_no"]: m["_id"] for m in members if m.get("party_card_no")}
    by_name = {
        (fold(m["full_name"]), personal[m["_id"]].birth_date): m["_id"]
        for m in members
        if m["_id"] in personal
    }
    rows_by_id = {m["_id"]: m for m in members}
    matched: set[str] = set()
    missing: list[dict[str, Any]] = []
    differences: list[dict[str, Any]] = []
    invalid: list[dict[str, Any]] = []
    today = service.today()
    for row in rows:
        number = row.number
        try:
            branch_id = _branch(row, unit_id)
            profile, data = validate_member(_fields(row), today, phone_required=False)
        except RuleBroken as exc:
            invalid.append({"row": number, "field": exc.field, "message": exc.message})
            continue
        member_id = (
            by_citizen.get(service.keys.key("citizen_id", data.citizen_id))
            or (by_card.get(profile.party_card_no) if profile.party_card_no else None)
            or by_name.get((fold(profile.full_name), data.birth_date))
        )
        if member_id is None or member_id in matched:
            missing.append(
                {
                    "row": number,
                    "full_name": profile.full_name,
                    "party_card_no": profile.party_card_no,
                    "branch_id": branch_id,
                }
            )
            continue
        matched.add(member_id)
        member = rows_by_id[member_id]
        mine = personal.get(member_id)
        platform = {
            "full_name": member["full_name"],
            "birth_date": mine.birth_date if mine else None,
            "gender": Gender(member["gender"]),
            "admitted_on": date.fromisoformat(member["admitted_on"]),
            "official_on": date.fromisoformat(member["official_on"])
            if member.get("official_on")
            else None,
            "party_card_no": member.get("party_card_no"),
            "branch_id": member["branch_id"],
            "status": MemberStatus(member["status"]),
            "citizen_id": mine.citizen_id if mine else None,
            "phone": mine.phone if mine else None,
        }
        listed = {
            "full_name": profile.full_name,
            "birth_date": data.birth_date,
            "gender": profile.gender,
            "admitted_on": profile.admitted_on,
            "official_on": profile.official_on,
            "party_card_no": profile.party_card_no,
            "branch_id": branch_id,
            "status": profile.status,
            "citizen_id": data.citizen_id,
            "phone": data.phone,
        }
        diffs = [
            {
                "field": name,
                "label": FIELD_LABELS[name],
                "list_value": _shown(name, listed[name]),
                "platform_value": _shown(name, platform[name]),
            }
            for name in COMPARED
            if listed[name] != platform[name] and not (name == "phone" and not listed[name])
        ]
        if member["state"] == "pending":
            diffs.append(
                {
                    "field": "state",
                    "label": "Tình trạng",
                    "list_value": "Trong danh sách",
                    "platform_value": "Chờ chi bộ phê duyệt",
                }
            )
        if diffs:
            differences.append(
                {
                    "row": number,
                    "member_id": member_id,
                    "full_name": profile.full_name,
                    "fields": diffs,
                }
            )
    not_on_list = [
        {
            "member_id": m["_id"],
            "full_name": m["full_name"],
            "party_card_no": m.get("party_card_no"),
            "branch_id": m["branch_id"],
            "state": m["state"],
        }
        for m in members
        if m["_id"] not in matched
    ]
    # Who is on the list: the shared rule (sotay_platform.roster), as things stand today.
    approved = [m for m in members if counts(m, Purpose.on_list)]
    return {
        "unit_id": unit_id,
        "unit_name": unit.get("name"),
        "as_of": format_date(today),
        "list_rows": len(rows),
        "platform_members": len(approved),
        "matched": len(matched),
        "missing_in_platform": missing,
        "not_on_list": not_on_list,
        "differences": differences,
        "invalid_rows": invalid,
        "accounts_not_activated": sum(1 for m in approved if not m["account_active"]),
    }
