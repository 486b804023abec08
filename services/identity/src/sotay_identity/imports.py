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

import csv
import io
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from typing import Any

from openpyxl import load_workbook

from sotay_events.catalogue.identity import Gender, MemberStatus
from sotay_identity.domain import (
    FIELD_LABELS,
    GENDER_LABELS,
    MANAGERS,
    PERSONAL_READERS,
    STATUS_LABELS,
    Member,
    MemberInput,
    PersonalData,
    Problems,
    Profile,
    RuleBroken,
    fold,
    format_date,
    validate_member,
)
from sotay_identity.handlers import IdentityService
from sotay_identity.storage import KeyTaken, UnitOfWork
from sotay_platform.auth import Principal
from sotay_platform.errors import Invalid, NotFound, ServiceError

MAX_ROWS = 50_000
BATCH = 200

HEADERS: dict[str, set[str]] = {
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


def _cell(column: str | None, value: Any) -> str:
    """Excel turns dates into datetimes and numbers lose their leading zeros: undo both."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int):
        text = str(value)
        if column == "citizen_id" and len(text) < 12:
            return text.zfill(12)
        if column == "phone" and len(text) == 9:
            return "0" + text
        return text
    return str(value).strip()


def read_table(filename: str, content: bytes) -> list[dict[str, str]]:
    lower = filename.lower()
    raw: list[list[Any]]
    if lower.endswith((".xlsx", ".xlsm")):
        try:
            workbook = load_workbook(io.BytesIO(content), read_only=True, data_only=True)
        except Exception:
            raise Invalid("Không đọc được tệp Excel", field="file") from None
        raw = [list(row) for row in workbook.worksheets[0].iter_rows(values_only=True)]
    elif lower.endswith(".csv"):
        try:
            text = content.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise Invalid("Tệp CSV phải mã hóa UTF-8", field="file") from None
        raw = [list(row) for row in csv.reader(io.StringIO(text))]
    else:
        raise Invalid("Chỉ nhận tệp .csv hoặc .xlsx", field="file")
    raw = [row for row in raw if any(v not in (None, "") for v in row)]
    if not raw:
        raise Invalid("Tệp không có dữ liệu", field="file")
    columns: list[str | None] = []
    for header in raw[0]:
        folded = fold(str(header or ""))
        columns.append(next((n for n, aliases in HEADERS.items() if folded in aliases), None))
    missing = [FIELD_LABELS[n] for n in REQUIRED if n not in columns]
    if missing:
        raise Invalid(f"Thiếu cột bắt buộc: {', '.join(missing)}", field="file")
    if len(raw) - 1 > MAX_ROWS:
        raise Invalid(f"Tệp có hơn {MAX_ROWS} dòng", field="file")
    return [
        {col: _cell(col, v) for col, v in zip(columns, row, strict=False) if col} for row in raw[1:]
    ]


def _input(row: dict[str, str]) -> MemberInput:
    return MemberInput(
        full_name=row.get("full_name"),
        birth_date=row.get("birth_date"),
        gender=row.get("gender"),
        admitted_on=row.get("admitted_on"),
        official_on=row.get("official_on"),
        party_card_no=row.get("party_card_no"),
        citizen_id=row.get("citizen_id"),
        phone=row.get("phone"),
        status=row.get("status"),
    )


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
    service: IdentityService, principal: Principal, unit_id: str, rows: list[dict[str, str]]
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
        number = i + 2
        name = " ".join((row.get("full_name") or "").split())
        try:
            problems = Problems()
            branch_id = row.get("branch_id") or unit_id
            if branch_id not in branch_paths:
                branch_paths[branch_id] = await service.check_branch(branch_id, Problems())
            path = branch_paths[branch_id]
            if not path:
                await service.check_branch(branch_id, problems)
            elif unit_id not in path:
                problems.add("branch_id", f"Chi bộ {branch_id} không thuộc đơn vị {unit_id}")
            profile, personal = validate_member(
                _input(row), today, phone_required=False, problems=problems
            )
            keys = service.claims_of("", profile, personal, with_phone=False)
            for key in keys:
                if key in seen_keys:
                    kind = key.split(":", 1)[0]
                    raise RuleBroken(
                        f"Trùng {FIELD_LABELS.get(_FIELD[kind], kind).lower()} "
                        f"với dòng {seen_keys[key]} trong tệp",
                        field=_FIELD[kind],
                    )
            for key in keys:
                seen_keys[key] = number
            ready.append(_Ready(i, branch_id, path, profile, personal, keys))
        except RuleBroken as exc:
            results[i] = RowResult(number, "rejected", None, name, exc.message, exc.field)
    for start in range(0, len(ready), BATCH):
        batch = ready[start : start + BATCH]
        results.update(await _import_batch(service, principal, batch))
    for i in sorted(results):
        result = results[i]
        report.rows.append(result)
        setattr(report, result.status, getattr(report, result.status) + 1)
    return report


_FIELD = {"citizen_id": "citizen_id", "party_card": "party_card_no", "phone": "phone"}


async def _import_batch(
    service: IdentityService, principal: Principal, batch: list[_Ready]
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
    uow = UnitOfWork()
    created: dict[int, Member] = {}
    for item in fresh:
        member_id = service.new_id()
        member = Member.register(
            member_id, item.profile, item.branch_id, "import", principal.subject
        )
        uow.save(member, service._context(principal, item.path))
        for key in item.keys:
            uow.claim(key, member_id)
        uow.put_personal(member_id, item.personal)
        created[item.index] = member
    try:
        await service.storage.commit(uow)
    except (KeyTaken, ServiceError):
        # Someone claimed a key meanwhile: row by row, so each row gets its own answer.
        for item in fresh:
            results.update(await _import_batch(service, principal, [item]))
        return results
    for item in fresh:
        member = created[item.index]
        results[item.index] = RowResult(item.index + 2, "created", member.id, member.full_name)
    return results


async def _already_there(
    service: IdentityService, item: _Ready, taken: set[str], owners: dict[str, str]
) -> RowResult:
    number, name = item.index + 2, item.profile.full_name
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
    kind = next(k for k in item.keys if k in owners).split(":", 1)[0]
    message = KeyTaken(kind, None).message
    return RowResult(
        number,
        "rejected",
        None,
        name,
        f"{message}; dùng đối chiếu danh sách để xem khác biệt",
        _FIELD[kind],
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
    service: IdentityService, principal: Principal, unit_id: str, rows: list[dict[str, str]]
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
    for i, row in enumerate(rows):
        number = i + 2
        try:
            problems = Problems()
            profile, data = validate_member(
                _input(row), today, phone_required=False, problems=problems
            )
        except RuleBroken as exc:
            invalid.append({"row": number, "field": exc.field, "message": exc.message})
            continue
        branch_id = row.get("branch_id") or unit_id
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
    approved = [m for m in members if m["state"] == "approved"]
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
