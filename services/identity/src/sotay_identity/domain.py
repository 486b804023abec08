"""The member aggregate and every rule about a member's data, without I/O.

Public profile fields travel in events; personal data (citizen ID, phone,
birth date, personal records) is validated here but kept out of every event:
see `PersonalData` and README.md.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

from sotay_events import Aggregate, DomainEvent
from sotay_events.catalogue.identity import (
    AccountActivated,
    AccountPasswordReset,
    Gender,
    MemberProfileUpdated,
    MemberRegistered,
    MemberRegistrationApproved,
    MemberRegistrationRejected,
    MemberRemoved,
    MemberSignedIn,
    MemberStatus,
    MemberStatusChanged,
    MemberTransferred,
    RoleGranted,
    RoleRevoked,
)
from sotay_events.catalogue.org_tree import OrgLevel
from sotay_platform.auth import ADMIN_ROLES, Grant, Role
from sotay_platform.errors import ServiceError

VIETNAM = ZoneInfo("Asia/Ho_Chi_Minh")

# Who may act on a member: the branch secretary (or deputy) and admins above.
MANAGERS = frozenset({Role.branch_secretary}) | ADMIN_ROLES
# Who may see a member's personal data (citizen ID, phone, birth date, records).
PERSONAL_READERS = MANAGERS
# Who may list a unit's members (public fields only).
ROSTER_READERS = MANAGERS | {Role.branch_committee_member}

GENDER_LABELS = {Gender.male: "Nam", Gender.female: "Nữ", Gender.other: "Khác"}
STATUS_LABELS = {
    MemberStatus.official: "Đảng viên chính thức",
    MemberStatus.probationary: "Đảng viên dự bị",
    MemberStatus.exempted: "Được miễn công tác và sinh hoạt đảng",
}
STATE_LABELS = {
    "pending": "Chờ chi bộ phê duyệt",
    "approved": "Đã phê duyệt",
    "rejected": "Đã bị từ chối",
    "removed": "Đã ra khỏi danh sách",
}
FIELD_LABELS = {
    "full_name": "Họ và tên",
    "birth_date": "Ngày sinh",
    "gender": "Giới tính",
    "admitted_on": "Ngày vào Đảng",
    "official_on": "Ngày chính thức",
    "party_card_no": "Số thẻ đảng viên",
    "branch_id": "Chi bộ",
    "citizen_id": "Số định danh công dân",
    "phone": "Số điện thoại",
    "status": "Trạng thái",
    "password": "Mật khẩu",
}
REMOVAL_REASONS = ("deceased", "struck_off", "expelled", "left", "error")

State = Literal["pending", "approved", "rejected", "removed"]


class RuleBroken(ServiceError):
    """A command the rules refuse; `field` names the input at fault, `fields` all of them."""

    status_code = 422
    code = "rule_broken"

    def __init__(
        self,
        message: str,
        field: str | None = None,
        code: str = "rule_broken",
        status_code: int = 422,
        fields: list[dict[str, str]] | None = None,
    ) -> None:
        super().__init__(message, field, code, status_code)
        self.fields = fields or ([{"field": field, "message": message}] if field else [])

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"error": self.code, "message": self.message}
        if self.field:
            body["field"] = self.field
        if len(self.fields) > 1:
            body["fields"] = self.fields
        return body


class Problems:
    """Collects every field's problem so a form shows them all at once."""

    def __init__(self) -> None:
        self.items: list[dict[str, str]] = []

    def add(self, field: str, message: str) -> None:
        if not any(i["field"] == field for i in self.items):
            self.items.append({"field": field, "message": message})

    def has(self, field: str) -> bool:
        return any(i["field"] == field for i in self.items)

    def raise_if_any(self) -> None:
        if self.items:
            first = self.items[0]
            raise RuleBroken(first["message"], first["field"], "invalid", fields=self.items)


def today_in_vietnam() -> date:
    return datetime.now(VIETNAM).date()


def format_date(value: date | None) -> str | None:
    return value.strftime("%d/%m/%Y") if value else None


# --- values -----------------------------------------------------------------

_DMY = re.compile(r"^(\d{1,2})[/.-](\d{1,2})[/.-](\d{4})$")
_ISO = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")


def parse_date(value: str | date | None, field: str, problems: Problems) -> date | None:
    """dd/mm/yyyy (also with - or .) or yyyy-mm-dd; empty is None."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    text = str(value).strip()
    if not text:
        return None
    try:
        if m := _DMY.match(text):
            return date(int(m[3]), int(m[2]), int(m[1]))
        if m := _ISO.match(text[:10]):
            return date(int(m[1]), int(m[2]), int(m[3]))
    except ValueError:
        pass
    problems.add(field, f"{FIELD_LABELS.get(field, field)} không hợp lệ: cần dạng dd/mm/yyyy")
    return None


def clean_full_name(value: str | None, problems: Problems) -> str:
    name = unicodedata.normalize("NFC", " ".join((value or "").split()))
    if not name:
        problems.add("full_name", "Họ và tên là bắt buộc")
    elif len(name) > 100:
        problems.add("full_name", "Họ và tên dài quá 100 ký tự")
    elif len(name.split()) < 2:
        problems.add("full_name", "Họ và tên cần có cả họ và tên")
    elif not all(c.isalpha() or c in " '-." for c in name):
        problems.add("full_name", "Họ và tên chỉ gồm chữ cái và dấu cách")
    return name


_GENDERS = {
    "male": Gender.male,
    "nam": Gender.male,
    "female": Gender.female,
    "nu": Gender.female,
    "other": Gender.other,
    "khac": Gender.other,
}


def fold(text: str) -> str:
    """Lower case, no diacritics, single spaces: how labels and headers are matched."""
    text = unicodedata.normalize("NFD", text.replace("đ", "d").replace("Đ", "D"))
    text = "".join(c for c in text if unicodedata.category(c) != "Mn")
    return " ".join(text.lower().replace("_", " ").split())


def parse_gender(value: str | Gender | None, problems: Problems) -> Gender | None:
    if isinstance(value, Gender):
        return value
    gender = _GENDERS.get(fold(value or ""))
    if gender is None:
        problems.add(
            "gender",
            "Giới tính là bắt buộc: Nam, Nữ hoặc Khác" if not value else "Giới tính không hợp lệ",
        )
    return gender


_STATUSES = {
    "official": MemberStatus.official,
    "chinh thuc": MemberStatus.official,
    "dang vien chinh thuc": MemberStatus.official,
    "probationary": MemberStatus.probationary,
    "du bi": MemberStatus.probationary,
    "dang vien du bi": MemberStatus.probationary,
    "exempted": MemberStatus.exempted,
    "mien sinh hoat": MemberStatus.exempted,
    "mien cong tac va sinh hoat dang": MemberStatus.exempted,
    "duoc mien cong tac va sinh hoat dang": MemberStatus.exempted,
}


def parse_status(value: str | MemberStatus | None, problems: Problems) -> MemberStatus | None:
    if value is None or isinstance(value, MemberStatus):
        return value
    if not str(value).strip():
        return None
    status = _STATUSES.get(fold(str(value)))
    if status is None:
        problems.add("status", "Trạng thái phải là chính thức, dự bị hoặc được miễn sinh hoạt")
    return status


def clean_citizen_id(
    value: str | None, birth_date: date | None, gender: Gender | None, problems: Problems
) -> str:
    """The 12-digit number of Circular 59/2021/TT-BCA: province (001-096), gender and
    century digit, the last two digits of the birth year, then six digits."""
    digits = re.sub(r"[\s.]", "", value or "")
    if not digits:
        problems.add("citizen_id", "Số định danh công dân là bắt buộc")
        return digits
    if not re.fullmatch(r"\d{12}", digits):
        problems.add("citizen_id", "Số định danh công dân phải gồm đúng 12 chữ số")
        return digits
    if not 1 <= int(digits[:3]) <= 96:
        problems.add("citizen_id", "Số định danh công dân có mã tỉnh (3 số đầu) không hợp lệ")
        return digits
    if birth_date is not None:
        century = (birth_date.year // 100) - 19  # 1900s -> 0, 2000s -> 1 ...
        code = int(digits[3])
        if not 0 <= century <= 4 or code // 2 != century:
            problems.add("citizen_id", "Số định danh công dân không khớp với thế kỷ của năm sinh")
        elif gender in (Gender.male, Gender.female) and code % 2 != (gender is Gender.female):
            problems.add("citizen_id", "Số định danh công dân không khớp với giới tính")
        elif digits[4:6] != f"{birth_date.year % 100:02d}":
            problems.add("citizen_id", "Số định danh công dân không khớp với năm sinh")
    return digits


_MOBILE = re.compile(r"^0[35789]\d{8}$")


def clean_phone(value: str | None, problems: Problems, required: bool = True) -> str | None:
    """A Vietnamese mobile number, kept as 0xxxxxxxxx (10 digits)."""
    text = re.sub(r"[\s.()-]", "", value or "")
    if not text:
        if required:
            problems.add("phone", "Số điện thoại là bắt buộc")
        return None
    if text.startswith("+84"):
        text = "0" + text[3:]
    elif text.startswith("84") and len(text) == 11:
        text = "0" + text[2:]
    if not _MOBILE.match(text):
        problems.add(
            "phone",
            "Số điện thoại phải là số di động Việt Nam gồm 10 chữ số, bắt đầu bằng 03, 05, 07, 08 hoặc 09",
        )
        return None
    return text


def clean_party_card(
    value: str | None, status: MemberStatus | None, problems: Problems
) -> str | None:
    card = re.sub(r"\s", "", value or "")
    if not card:
        return None
    if not re.fullmatch(r"[0-9][0-9.\-/]{3,19}", card):
        problems.add(
            "party_card_no", "Số thẻ đảng viên chỉ gồm chữ số (có thể có dấu chấm), 4 đến 20 ký tự"
        )
    elif status is MemberStatus.probationary:
        problems.add("party_card_no", "Đảng viên dự bị chưa được cấp thẻ đảng viên")
    return card


def check_password(password: str | None, problems: Problems, phone: str | None = None) -> str:
    password = password or ""
    if len(password) < 8:
        problems.add("password", "Mật khẩu cần ít nhất 8 ký tự")
    elif len(password) > 128:
        problems.add("password", "Mật khẩu dài quá 128 ký tự")
    elif not (any(c.isalpha() for c in password) and any(c.isdigit() for c in password)):
        problems.add("password", "Mật khẩu cần có cả chữ và số")
    elif phone and phone in password:
        problems.add("password", "Mật khẩu không được chứa số điện thoại")
    return password


def _add_years(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29/02
        return day.replace(year=day.year + years, day=28)


def check_dates(
    birth_date: date | None,
    admitted_on: date | None,
    official_on: date | None,
    status: MemberStatus | None,
    today: date,
    problems: Problems,
) -> None:
    for name, value in (
        ("birth_date", birth_date),
        ("admitted_on", admitted_on),
        ("official_on", official_on),
    ):
        if value is not None and value > today:
            problems.add(name, f"{FIELD_LABELS[name]} không được ở tương lai")
    if birth_date is None and not problems.has("birth_date"):
        problems.add("birth_date", "Ngày sinh là bắt buộc")
    elif birth_date is not None and birth_date.year < 1900:
        problems.add("birth_date", "Ngày sinh không hợp lệ (trước năm 1900)")
    if admitted_on is None and not problems.has("admitted_on"):
        problems.add("admitted_on", "Ngày vào Đảng là bắt buộc")
    if birth_date and admitted_on and admitted_on < _add_years(birth_date, 18):
        problems.add("admitted_on", "Ngày vào Đảng phải khi đã đủ 18 tuổi")
    if admitted_on and official_on and official_on <= admitted_on:
        problems.add("official_on", "Ngày chính thức phải sau ngày vào Đảng")
    if (
        status in (MemberStatus.official, MemberStatus.exempted)
        and official_on is None
        and not problems.has("official_on")
    ):
        problems.add("official_on", "Đảng viên chính thức cần có ngày chính thức")
    if status is MemberStatus.probationary and official_on is not None:
        problems.add("official_on", "Đảng viên dự bị chưa có ngày chính thức")


@dataclass(frozen=True)
class Profile:
    """What the rest of the platform may know about a member: it travels in events."""

    full_name: str
    gender: Gender
    status: MemberStatus
    admitted_on: date
    official_on: date | None = None
    party_card_no: str | None = None


@dataclass(frozen=True)
class RecordEntry:
    """One line of a personal record: work history, a reward or a disciplinary measure."""

    content: str
    from_date: date | None = None
    to_date: date | None = None

    def to_doc(self) -> dict[str, Any]:
        return {
            "content": self.content,
            "from_date": self.from_date.isoformat() if self.from_date else None,
            "to_date": self.to_date.isoformat() if self.to_date else None,
        }

    @classmethod
    def of_doc(cls, doc: dict[str, Any]) -> RecordEntry:
        return cls(
            doc["content"],
            date.fromisoformat(doc["from_date"]) if doc.get("from_date") else None,
            date.fromisoformat(doc["to_date"]) if doc.get("to_date") else None,
        )

    def view(self) -> dict[str, Any]:
        return {
            "content": self.content,
            "from_date": format_date(self.from_date),
            "to_date": format_date(self.to_date),
        }


RECORD_KINDS = ("work_history", "rewards", "discipline")
RECORD_LABELS = {
    "work_history": "Quá trình công tác",
    "rewards": "Khen thưởng",
    "discipline": "Kỷ luật",
}


@dataclass(frozen=True)
class PersonalData:
    """Personal data: shown to the member and to managers whose scope covers them, never
    published, logged or traced. Stored in identity's `personal_records` collection."""

    citizen_id: str
    birth_date: date
    phone: str | None = None
    work_history: tuple[RecordEntry, ...] = ()
    rewards: tuple[RecordEntry, ...] = ()
    discipline: tuple[RecordEntry, ...] = ()

    def to_doc(self, member_id: str) -> dict[str, Any]:
        return {
            "_id": member_id,
            "citizen_id": self.citizen_id,
            "birth_date": self.birth_date.isoformat(),
            "phone": self.phone,
            **{kind: [e.to_doc() for e in getattr(self, kind)] for kind in RECORD_KINDS},
        }

    @classmethod
    def of_doc(cls, doc: dict[str, Any]) -> PersonalData:
        return cls(
            citizen_id=doc["citizen_id"],
            birth_date=date.fromisoformat(doc["birth_date"]),
            phone=doc.get("phone"),
            **{
                kind: tuple(RecordEntry.of_doc(e) for e in doc.get(kind) or ())
                for kind in RECORD_KINDS
            },
        )

    def view(self) -> dict[str, Any]:
        return {
            "citizen_id": self.citizen_id,
            "birth_date": format_date(self.birth_date),
            "phone": self.phone,
            "records": {kind: [e.view() for e in getattr(self, kind)] for kind in RECORD_KINDS},
        }


def clean_records(
    kind: str, entries: Iterable[dict[str, Any]] | None, today: date, problems: Problems
) -> tuple[RecordEntry, ...]:
    out: list[RecordEntry] = []
    for i, raw in enumerate(entries or ()):
        where = f"{kind}.{i}"
        content = " ".join(str(raw.get("content") or "").split())
        if not content:
            problems.add(f"{where}.content", f"{RECORD_LABELS[kind]}: nội dung là bắt buộc")
        elif len(content) > 1000:
            problems.add(f"{where}.content", f"{RECORD_LABELS[kind]}: nội dung dài quá 1000 ký tự")
        start = parse_date(raw.get("from_date"), f"{where}.from_date", problems)
        end = parse_date(raw.get("to_date"), f"{where}.to_date", problems)
        for name, value in (("from_date", start), ("to_date", end)):
            if value and value > today:
                problems.add(
                    f"{where}.{name}", f"{RECORD_LABELS[kind]}: ngày không được ở tương lai"
                )
        if start and end and end < start:
            problems.add(
                f"{where}.to_date", f"{RECORD_LABELS[kind]}: ngày kết thúc trước ngày bắt đầu"
            )
        out.append(RecordEntry(content, start, end))
    if len(out) > 200:
        problems.add(kind, f"{RECORD_LABELS[kind]}: tối đa 200 dòng")
    return tuple(out)


@dataclass
class MemberInput:
    """Raw fields of a member as a form or a file row gives them (strings, maybe empty)."""

    full_name: str | None = None
    birth_date: str | date | None = None
    gender: str | Gender | None = None
    admitted_on: str | date | None = None
    official_on: str | date | None = None
    party_card_no: str | None = None
    citizen_id: str | None = None
    phone: str | None = None
    status: str | MemberStatus | None = None
    records: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


def validate_member(
    raw: MemberInput,
    today: date,
    *,
    phone_required: bool,
    problems: Problems | None = None,
) -> tuple[Profile, PersonalData]:
    """Every rule on a member's data at once; raises RuleBroken listing each field at fault."""
    problems = problems or Problems()
    full_name = clean_full_name(raw.full_name, problems)
    gender = parse_gender(raw.gender, problems)
    birth_date = parse_date(raw.birth_date, "birth_date", problems)
    admitted_on = parse_date(raw.admitted_on, "admitted_on", problems)
    official_on = parse_date(raw.official_on, "official_on", problems)
    status = parse_status(raw.status, problems)
    if status is None and not problems.has("status"):
        status = MemberStatus.official if official_on else MemberStatus.probationary
    check_dates(birth_date, admitted_on, official_on, status, today, problems)
    citizen_id = clean_citizen_id(raw.citizen_id, birth_date, gender, problems)
    phone = clean_phone(raw.phone, problems, required=phone_required)
    card = clean_party_card(raw.party_card_no, status, problems)
    records = {k: clean_records(k, raw.records.get(k), today, problems) for k in RECORD_KINDS}
    problems.raise_if_any()
    assert gender and status and admitted_on and birth_date
    return (
        Profile(full_name, gender, status, admitted_on, official_on, card),
        PersonalData(citizen_id, birth_date, phone, **records),
    )


def member_input_of(profile: Profile, personal: PersonalData) -> MemberInput:
    return MemberInput(
        full_name=profile.full_name,
        birth_date=personal.birth_date,
        gender=profile.gender,
        admitted_on=profile.admitted_on,
        official_on=profile.official_on,
        party_card_no=profile.party_card_no,
        citizen_id=personal.citizen_id,
        phone=personal.phone,
        status=profile.status,
        records={k: [e.to_doc() for e in getattr(personal, k)] for k in RECORD_KINDS},
    )


# --- roles ------------------------------------------------------------------

# Which roles may grant (and revoke) a role; the grant must sit inside the granter's subtree.
GRANTORS: dict[Role, frozenset[Role]] = {
    Role.branch_committee_member: frozenset(
        {Role.branch_secretary, Role.committee_admin, Role.province_admin, Role.system_admin}
    ),
    Role.branch_secretary: frozenset(
        {Role.committee_admin, Role.province_admin, Role.system_admin}
    ),
    Role.committee_admin: frozenset({Role.committee_admin, Role.province_admin, Role.system_admin}),
    Role.editor: frozenset({Role.committee_admin, Role.province_admin, Role.system_admin}),
    Role.province_admin: frozenset({Role.province_admin, Role.system_admin}),
    Role.central_office: frozenset({Role.system_admin}),
    Role.system_admin: frozenset({Role.system_admin}),
}
_BRANCHES = frozenset(level for level in OrgLevel if level.holds_members)
# At which level of unit each role's subtree may be rooted.
ROLE_LEVELS: dict[Role, frozenset[OrgLevel]] = {
    Role.branch_committee_member: _BRANCHES,
    Role.branch_secretary: _BRANCHES,
    Role.committee_admin: frozenset(
        {
            OrgLevel.commune,
            OrgLevel.grassroots_committee,
            OrgLevel.grassroots_branch,
            OrgLevel.partial_committee,
        }
    ),
    Role.province_admin: frozenset({OrgLevel.province}),
    Role.central_office: frozenset({OrgLevel.central}),
    Role.system_admin: frozenset({OrgLevel.central}),
    Role.editor: frozenset(OrgLevel),
}
BRANCH_ROLES = frozenset({Role.branch_secretary, Role.branch_committee_member})
ROLE_LABELS = {
    Role.member: "Đảng viên",
    Role.branch_committee_member: "Chi ủy viên",
    Role.branch_secretary: "Bí thư, phó bí thư chi bộ",
    Role.committee_admin: "Quản trị cấp ủy cơ sở",
    Role.province_admin: "Quản trị cấp tỉnh",
    Role.editor: "Ban Biên tập",
    Role.central_office: "Văn phòng Trung ương (chỉ xem)",
    Role.system_admin: "Quản trị hệ thống",
}


def parse_role(value: str) -> Role:
    try:
        role = Role(value)
    except ValueError:
        raise RuleBroken(f"Vai trò không hợp lệ: {value}", field="role") from None
    if role is Role.member:
        raise RuleBroken(
            "Vai trò đảng viên gắn với chi bộ sinh hoạt, không cấp riêng", field="role"
        )
    return role


# --- the aggregate ------------------------------------------------------------


class Member(Aggregate):
    aggregate_type = "Member"

    def __init__(self, aggregate_id: str) -> None:
        super().__init__(aggregate_id)
        self.state: State = "pending"
        self.full_name = ""
        self.gender = Gender.other
        self.branch_id = ""
        self.status = MemberStatus.probationary
        self.admitted_on = date.min
        self.official_on: date | None = None
        self.party_card_no: str | None = None
        self.registered_by = "self"
        self.account_active = False
        self.roles: set[tuple[Role, str]] = set()
        self.removed_reason: str | None = None

    # state -----------------------------------------------------------------

    def apply(self, event: DomainEvent) -> None:
        match event:
            case MemberRegistered():
                self.full_name, self.gender = event.full_name, event.gender
                self.branch_id, self.status = event.branch_id, event.status
                self.admitted_on, self.official_on = event.admitted_on, event.official_on
                self.party_card_no, self.registered_by = event.party_card_no, event.registered_by
            case MemberRegistrationApproved():
                self.state = "approved"
            case MemberRegistrationRejected():
                self.state = "rejected"
            case AccountActivated():
                self.account_active = True
            case MemberProfileUpdated():
                for name in ("full_name", "gender", "admitted_on", "official_on", "party_card_no"):
                    value = getattr(event, name)
                    if value is not None:
                        setattr(self, name, value)
            case MemberStatusChanged():
                self.status = event.status
            case MemberTransferred():
                self.branch_id = event.to_branch_id
            case MemberRemoved():
                self.state, self.removed_reason = "removed", event.reason
                self.account_active = False
            case RoleGranted():
                self.roles.add((Role(event.role), event.unit_id))
            case RoleRevoked():
                self.roles.discard((Role(event.role), event.unit_id))
            case MemberSignedIn() | AccountPasswordReset():
                pass

    @property
    def profile(self) -> Profile:
        return Profile(
            self.full_name,
            self.gender,
            self.status,
            self.admitted_on,
            self.official_on,
            self.party_card_no,
        )

    @property
    def is_active(self) -> bool:
        return self.state == "approved"

    def grants(self) -> list[Grant]:
        """What an access token carries: membership of the branch, then the roles held."""
        if not self.is_active:
            return []
        return [Grant(Role.member, self.branch_id)] + [
            Grant(role, unit) for role, unit in sorted(self.roles)
        ]

    # commands --------------------------------------------------------------

    @classmethod
    def register(
        cls,
        member_id: str,
        profile: Profile,
        branch_id: str,
        registered_by: Literal["self", "secretary", "import"],
        actor: str,
        activate: bool = False,
    ) -> Member:
        if registered_by == "self" and profile.status is MemberStatus.exempted:
            raise RuleBroken(
                "Đảng viên được miễn công tác và sinh hoạt đảng không thuộc đối tượng tự đăng ký; "
                "đề nghị bí thư chi bộ tạo hồ sơ",
                field="status",
            )
        member = cls(member_id)
        member.record(
            MemberRegistered(
                member_id=member_id,
                full_name=profile.full_name,
                gender=profile.gender,
                branch_id=branch_id,
                status=profile.status,
                admitted_on=profile.admitted_on,
                official_on=profile.official_on,
                party_card_no=profile.party_card_no,
                registered_by=registered_by,
            )
        )
        if registered_by != "self":
            member.record(
                MemberRegistrationApproved(
                    member_id=member_id, branch_id=branch_id, approved_by=actor
                )
            )
            if activate:
                member.record(AccountActivated(member_id=member_id, branch_id=branch_id))
        return member

    def _require_state(self, *states: State) -> None:
        if self.state not in states:
            raise RuleBroken(
                f"Hồ sơ đảng viên đang ở trạng thái: {STATE_LABELS[self.state].lower()}",
                code="wrong_state",
                status_code=409,
            )

    def approve(self, actor: str) -> None:
        self._require_state("pending")
        self.record(
            MemberRegistrationApproved(
                member_id=self.id, branch_id=self.branch_id, approved_by=actor
            )
        )
        # A self-registration set its password: the account can sign in at once.
        self.record(AccountActivated(member_id=self.id, branch_id=self.branch_id))

    def reject(self, actor: str, reason: str) -> None:
        self._require_state("pending")
        reason = " ".join(reason.split())
        if not reason:
            raise RuleBroken("Cần nêu lý do từ chối", field="reason")
        if len(reason) > 500:
            raise RuleBroken("Lý do từ chối dài quá 500 ký tự", field="reason")
        self.record(
            MemberRegistrationRejected(
                member_id=self.id, branch_id=self.branch_id, rejected_by=actor, reason=reason
            )
        )

    def activate_account(self) -> None:
        self._require_state("approved")
        if not self.account_active:
            self.record(AccountActivated(member_id=self.id, branch_id=self.branch_id))

    def reset_password(self, actor: str) -> None:
        self._require_state("approved")
        self.record(
            AccountPasswordReset(member_id=self.id, branch_id=self.branch_id, reset_by=actor)
        )
        self.activate_account()

    def sign_in(self) -> None:
        self.record(MemberSignedIn(member_id=self.id, branch_id=self.branch_id))

    def update_profile(self, profile: Profile, personal_fields: list[str]) -> None:
        """Record what changed; status changes have their own command."""
        self._require_state("pending", "approved")
        if profile.status is not self.status:
            raise RuleBroken("Trạng thái đảng viên thay đổi bằng chức năng riêng", field="status")
        current = self.profile
        changes = {
            name: getattr(profile, name)
            for name in ("full_name", "gender", "admitted_on", "official_on", "party_card_no")
            if getattr(profile, name) != getattr(current, name)
        }
        if changes.get("official_on", 0) is None or changes.get("party_card_no", 0) is None:
            raise RuleBroken(
                "Không thể xóa ngày chính thức hoặc số thẻ đảng viên đã có",
                field="official_on" if "official_on" in changes else "party_card_no",
            )
        if changes or personal_fields:
            self.record(
                MemberProfileUpdated(
                    member_id=self.id,
                    branch_id=self.branch_id,
                    personal_fields=sorted(personal_fields),
                    **changes,
                )
            )

    def change_status(
        self, status: MemberStatus, effective_on: date, official_on: date | None
    ) -> None:
        self._require_state("approved")
        if status is self.status:
            raise RuleBroken(
                f"Đảng viên đã ở trạng thái {STATUS_LABELS[status].lower()}",
                field="status",
                code="unchanged",
                status_code=409,
            )
        allowed = {
            (MemberStatus.probationary, MemberStatus.official),
            (MemberStatus.official, MemberStatus.exempted),
            (MemberStatus.exempted, MemberStatus.official),
        }
        if (self.status, status) not in allowed:
            raise RuleBroken(
                f"Không thể chuyển từ {STATUS_LABELS[self.status].lower()} "
                f"sang {STATUS_LABELS[status].lower()}",
                field="status",
            )
        if effective_on <= self.admitted_on:
            raise RuleBroken("Ngày hiệu lực phải sau ngày vào Đảng", field="effective_on")
        if status is MemberStatus.official and self.status is MemberStatus.probationary:
            official_on = official_on or effective_on
            if official_on <= self.admitted_on:
                raise RuleBroken("Ngày chính thức phải sau ngày vào Đảng", field="official_on")
            self.record(
                MemberProfileUpdated(
                    member_id=self.id, branch_id=self.branch_id, official_on=official_on
                )
            )
        self.record(
            MemberStatusChanged(
                member_id=self.id,
                branch_id=self.branch_id,
                status=status,
                previous_status=self.status,
                effective_on=effective_on,
            )
        )

    def transfer(self, to_branch_id: str, effective_on: date, actor: str) -> None:
        """Chuyển sinh hoạt đảng; roles tied to the old branch end with it."""
        self._require_state("pending", "approved")
        if to_branch_id == self.branch_id:
            raise RuleBroken("Đảng viên đang sinh hoạt ở chi bộ này", field="to_branch_id")
        old = self.branch_id
        for role, unit in sorted(self.roles):
            if role in BRANCH_ROLES and unit == old:
                self.record(
                    RoleRevoked(member_id=self.id, role=role.value, unit_id=unit, revoked_by=actor)
                )
        self.record(
            MemberTransferred(
                member_id=self.id,
                from_branch_id=old,
                to_branch_id=to_branch_id,
                effective_on=effective_on,
            )
        )

    def remove(self, reason: str, actor: str) -> None:
        self._require_state("approved")
        if reason not in REMOVAL_REASONS:
            raise RuleBroken(
                "Lý do phải là một trong: deceased, struck_off, expelled, left, error",
                field="reason",
            )
        for role, unit in sorted(self.roles):
            self.record(
                RoleRevoked(member_id=self.id, role=role.value, unit_id=unit, revoked_by=actor)
            )
        self.record(MemberRemoved(member_id=self.id, branch_id=self.branch_id, reason=reason))

    def grant(self, role: Role, unit_id: str, actor: str) -> bool:
        self._require_state("approved")
        if (role, unit_id) in self.roles:
            return False
        if role in BRANCH_ROLES and unit_id != self.branch_id:
            raise RuleBroken(
                "Vai trò của chi bộ chỉ cấp cho đảng viên sinh hoạt tại chi bộ đó", field="unit_id"
            )
        self.record(
            RoleGranted(member_id=self.id, role=role.value, unit_id=unit_id, granted_by=actor)
        )
        return True

    def revoke(self, role: Role, unit_id: str, actor: str) -> None:
        if (role, unit_id) not in self.roles:
            raise RuleBroken(
                "Đảng viên không giữ vai trò này ở đơn vị này",
                field="role",
                code="not_held",
                status_code=404,
            )
        self.record(
            RoleRevoked(member_id=self.id, role=role.value, unit_id=unit_id, revoked_by=actor)
        )


def member_doc(member: Member) -> dict[str, Any]:
    """The members read model row: the aggregate's public state, written with its events."""
    return {
        "_id": member.id,
        "full_name": member.full_name,
        "sort_key": name_sort_key(member.full_name),
        "gender": member.gender.value,
        "branch_id": member.branch_id,
        "status": member.status.value,
        "state": member.state,
        "registered_by": member.registered_by,
        "admitted_on": member.admitted_on.isoformat(),
        "official_on": member.official_on.isoformat() if member.official_on else None,
        "party_card_no": member.party_card_no,
        "account_active": member.account_active,
        "roles": [{"role": r.value, "unit_id": u} for r, u in sorted(member.roles)],
        "removed_reason": member.removed_reason,
        "version": member.version,
    }


def name_sort_key(full_name: str) -> str:
    """Vietnamese rosters sort by given name (the last word), then the whole name."""
    folded = fold(full_name)
    words = folded.split()
    return f"{words[-1] if words else ''} {folded}"
