"""The member aggregate and every rule about a member's data, without I/O.

Public profile fields travel in events; personal data (citizen ID, phone,
birth date, personal records) is validated here but kept out of every event:
see `PersonalData` and README.md.

What a field may hold is declared once, on the shared input types
(`sotay_platform.inputs`): `MemberFields` is read from a request body and from
every row of an imported file alike. What is left here are the rules that
join fields (dates in order, a citizen ID that matches the birth year and
gender, a probationary member without a card) and the aggregate.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, model_validator
from pydantic_core import PydanticCustomError

from sotay_events import Aggregate, DomainEvent
from sotay_events.catalogue.identity import (
    AccountActivated,
    AccountPasswordReset,
    Gender,
    MemberPartyRecordCorrected,
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
from sotay_platform.errors import Conflict, Forbidden, Invalid, NotFound
from sotay_platform.inputs import (
    CitizenId,
    Items,
    PartyCardNo,
    PastDate,
    Phone,
    Text,
    citizen_id_problem,
    fold,
)
from sotay_platform.roster import Purpose, counts

# Who may act on a member: the branch secretary (or deputy) and admins above.
MANAGERS = frozenset({Role.branch_secretary}) | ADMIN_ROLES
# Who may see a member's personal data (citizen ID, phone, birth date, records).
PERSONAL_READERS = MANAGERS
# Who may list a unit's members (public fields only).
ROSTER_READERS = MANAGERS | {Role.branch_committee_member}
# Who may see who holds a role at a unit (to hand work to a colleague): an officer over it.
OFFICE_READERS = frozenset(Role) - {Role.member}

GENDER_LABELS = {Gender.male: "Nam", Gender.female: "Nữ", Gender.other: "Khác"}
STATUS_LABELS = {
    MemberStatus.official: "Đảng viên chính thức",
    MemberStatus.probationary: "Đảng viên dự bị",
    MemberStatus.exempted: "Được miễn công tác và sinh hoạt đảng",
}
State = Literal["pending", "approved", "rejected", "removed"]
STATE_LABELS: dict[str, str] = {
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
RemovalReason = Literal["deceased", "struck_off", "expelled", "left", "error"]
# What the branch keeps on a member's party record: changed only by the secretary.
BRANCH_KEPT = ("admitted_on", "official_on", "party_card_no", "citizen_id")


class RuleBroken(Invalid):
    """A command the rules refuse (422); `field` names the input at fault, `fields` all."""

    code = "rule_broken"

    def __init__(
        self,
        message: str,
        field: str | None = None,
        code: str = "rule_broken",
        fields: list[dict[str, str]] | None = None,
    ) -> None:
        super().__init__(message, field, code)
        self.fields = fields or ([{"field": field, "message": message}] if field else [])

    def body(self) -> dict[str, Any]:
        body = super().body()
        if len(self.fields) > 1:
            body["fields"] = self.fields
        return body


class WrongState(Conflict):
    code = "wrong_state"


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


def format_date(value: date | None) -> str | None:
    return value.strftime("%d/%m/%Y") if value else None


# --- values: declared on the shared input types ------------------------------------

_GENDERS = {
    "male": Gender.male,
    "nam": Gender.male,
    "female": Gender.female,
    "nu": Gender.female,
    "other": Gender.other,
    "khac": Gender.other,
}
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


def _label(table: dict[str, Any]) -> Any:
    """People type the Vietnamese label ("Nữ", "dự bị"); the enum value is what is kept."""

    def to_value(value: Any) -> Any:
        if isinstance(value, str) and len(value) <= 100:
            return table.get(fold(value), value)
        return value

    return to_value


def _full_name(name: str) -> str:
    if len(name.split()) < 2:
        raise PydanticCustomError("sotay_full_name", "Họ và tên cần có cả họ và tên")
    if not all(c.isalpha() or c in " '-." for c in name):
        raise PydanticCustomError("sotay_full_name", "Họ và tên chỉ gồm chữ cái và dấu cách")
    return name


FullName = Annotated[str, Text(100), AfterValidator(_full_name)]
GenderIn = Annotated[Gender, BeforeValidator(_label(_GENDERS))]
StatusIn = Annotated[MemberStatus, BeforeValidator(_label(_STATUSES))]
Reason = Annotated[str, Text(500)]


class _Fields(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _empty_is_absent(cls, data: Any) -> Any:
        # A form's or a spreadsheet's empty cell means "not given".
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if not (isinstance(v, str) and not v.strip())}
        return data


class RecordIn(_Fields):
    """One line of a personal record: work history, a reward or a disciplinary measure."""

    content: Annotated[str, Text(1000)]
    from_date: PastDate | None = None
    to_date: PastDate | None = None


Records = Annotated[list[RecordIn], Items(200)]


class OwnFields(_Fields):
    """What is the member's own to keep up to date."""

    full_name: FullName | None = None
    birth_date: PastDate | None = None
    gender: GenderIn | None = None
    phone: Phone | None = None
    work_history: Records | None = None


class PartyRecordFields(_Fields):
    """What the branch keeps on the party record: changed by the branch secretary only."""

    admitted_on: PastDate | None = None
    official_on: PastDate | None = None
    party_card_no: PartyCardNo | None = None
    citizen_id: CitizenId | None = None


class MemberFields(OwnFields, PartyRecordFields):
    """A member's fields as a form or a file row gives them; the rules joining them are
    `validate_member`'s. Dates: dd/mm/yyyy or yyyy-mm-dd."""

    status: StatusIn | None = None
    rewards: Records | None = None
    discipline: Records | None = None

    @classmethod
    def of(cls, sent: BaseModel) -> MemberFields:
        """The member fields of a request body, remembering which were sent."""
        names = sent.model_fields_set & set(cls.model_fields)
        return cls.model_construct(names, **{n: getattr(sent, n) for n in names})


def problems_of(error: Any) -> list[dict[str, str]]:
    """A pydantic ValidationError as the platform's {field, message} list, in Vietnamese."""
    from sotay_platform.errors import vietnamese

    return [
        {"field": ".".join(str(p) for p in e["loc"]) or "file", "message": vietnamese(e)}
        for e in error.errors()
    ]


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
    if birth_date is None:
        problems.add("birth_date", "Ngày sinh là bắt buộc")
    if admitted_on is None:
        problems.add("admitted_on", "Ngày vào Đảng là bắt buộc")
    if birth_date and admitted_on and admitted_on < _add_years(birth_date, 18):
        problems.add("admitted_on", "Ngày vào Đảng phải khi đã đủ 18 tuổi")
    if admitted_on and official_on and official_on <= admitted_on:
        problems.add("official_on", "Ngày chính thức phải sau ngày vào Đảng")
    if status in (MemberStatus.official, MemberStatus.exempted) and official_on is None:
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
    """One line of a personal record, as kept."""

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
    def of_doc(cls, doc: dict[str, Any]) -> PersonalData | None:
        """None for an erased record (a rejected registration, a record made in error)."""
        if not doc.get("citizen_id"):
            return None
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


def erased(member_id: str) -> dict[str, Any]:
    """What replaces a personal record or an account that must go: nothing personal left."""
    return {"_id": member_id, "erased": True}


def _records(
    kind: str, entries: list[RecordIn] | None, today: date, problems: Problems
) -> tuple[RecordEntry, ...]:
    out: list[RecordEntry] = []
    for i, entry in enumerate(entries or ()):
        where = f"{kind}.{i}"
        for name in ("from_date", "to_date"):
            value = getattr(entry, name)
            if value and value > today:
                problems.add(
                    f"{where}.{name}", f"{RECORD_LABELS[kind]}: ngày không được ở tương lai"
                )
        if entry.from_date and entry.to_date and entry.to_date < entry.from_date:
            problems.add(
                f"{where}.to_date", f"{RECORD_LABELS[kind]}: ngày kết thúc trước ngày bắt đầu"
            )
        out.append(RecordEntry(entry.content, entry.from_date, entry.to_date))
    return tuple(out)


def validate_member(
    raw: MemberFields,
    today: date,
    *,
    phone_required: bool,
    problems: Problems | None = None,
) -> tuple[Profile, PersonalData]:
    """The rules joining a member's fields, all at once; raises RuleBroken listing each."""
    problems = problems or Problems()
    if raw.full_name is None:
        problems.add("full_name", "Họ và tên là bắt buộc")
    if raw.gender is None:
        problems.add("gender", "Giới tính là bắt buộc: Nam, Nữ hoặc Khác")
    status = raw.status
    if status is None:
        status = MemberStatus.official if raw.official_on else MemberStatus.probationary
    check_dates(raw.birth_date, raw.admitted_on, raw.official_on, status, today, problems)
    if raw.citizen_id is None:
        problems.add("citizen_id", "Số định danh công dân là bắt buộc")
    elif raw.birth_date is not None and raw.gender is not None:
        female = None if raw.gender is Gender.other else raw.gender is Gender.female
        if problem := citizen_id_problem(raw.citizen_id, raw.birth_date, female):
            problems.add("citizen_id", problem)
    if raw.phone is None and phone_required:
        problems.add("phone", "Số điện thoại là bắt buộc")
    if raw.party_card_no and status is MemberStatus.probationary:
        problems.add("party_card_no", "Đảng viên dự bị chưa được cấp thẻ đảng viên")
    records = {k: _records(k, getattr(raw, k), today, problems) for k in RECORD_KINDS}
    problems.raise_if_any()
    assert raw.full_name and raw.gender and raw.admitted_on and raw.birth_date
    assert raw.citizen_id
    return (
        Profile(
            raw.full_name, raw.gender, status, raw.admitted_on, raw.official_on, raw.party_card_no
        ),
        PersonalData(raw.citizen_id, raw.birth_date, raw.phone, **records),
    )


def fields_of(profile: Profile, personal: PersonalData) -> MemberFields:
    """A member as kept, as fields: what an edit starts from."""
    records: dict[str, Any] = {
        k: [
            RecordIn.model_construct(content=e.content, from_date=e.from_date, to_date=e.to_date)
            for e in getattr(personal, k)
        ]
        for k in RECORD_KINDS
    }
    return MemberFields.model_construct(
        full_name=profile.full_name,
        birth_date=personal.birth_date,
        gender=profile.gender,
        admitted_on=profile.admitted_on,
        official_on=profile.official_on,
        party_card_no=profile.party_card_no,
        citizen_id=personal.citizen_id,
        phone=personal.phone,
        status=profile.status,
        **records,
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
    Role.editorial_reviewer: frozenset(
        {Role.committee_admin, Role.province_admin, Role.system_admin}
    ),
    Role.organisation_department: frozenset(
        {Role.committee_admin, Role.province_admin, Role.system_admin}
    ),
    Role.propaganda_department: frozenset(
        {Role.committee_admin, Role.province_admin, Role.system_admin}
    ),
    Role.inspection_committee: frozenset(
        {Role.committee_admin, Role.province_admin, Role.system_admin}
    ),
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
    Role.editorial_reviewer: frozenset(OrgLevel),
    # A committee's departments answer feedback (feedback's routing); branches have none.
    Role.organisation_department: frozenset(OrgLevel) - _BRANCHES,
    Role.propaganda_department: frozenset(OrgLevel) - _BRANCHES,
    Role.inspection_committee: frozenset(OrgLevel) - _BRANCHES,
}
BRANCH_ROLES = frozenset({Role.branch_secretary, Role.branch_committee_member})
ROLE_LABELS = {
    Role.member: "Đảng viên",
    Role.branch_committee_member: "Chi ủy viên",
    Role.branch_secretary: "Bí thư, phó bí thư chi bộ",
    Role.committee_admin: "Quản trị cấp ủy cơ sở",
    Role.province_admin: "Quản trị cấp tỉnh",
    Role.editor: "Ban Biên tập",
    Role.editorial_reviewer: "Ban Biên tập (duyệt bài)",
    Role.organisation_department: "Ban Tổ chức",
    Role.propaganda_department: "Ban Tuyên giáo",
    Role.inspection_committee: "Ủy ban Kiểm tra",
    Role.central_office: "Văn phòng Trung ương (chỉ xem)",
    Role.system_admin: "Quản trị hệ thống",
}


def parse_role(value: Role | str) -> Role:
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
            case MemberPartyRecordCorrected():
                for name in ("admitted_on", "official_on", "party_card_no"):
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
            raise WrongState(
                f"Hồ sơ đảng viên đang ở trạng thái: {STATE_LABELS[self.state].lower()}"
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
        if not reason:
            raise RuleBroken("Cần nêu lý do từ chối", field="reason")
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
        """The member's own edits (name, gender; personal fields by name): what the branch
        keeps on the party record changes only through `correct_party_record`."""
        self._require_state("pending", "approved")
        if profile.status is not self.status:
            raise RuleBroken("Trạng thái đảng viên thay đổi bằng chức năng riêng", field="status")
        current = self.profile
        for name in BRANCH_KEPT[:3]:
            if getattr(profile, name) != getattr(current, name):
                raise Forbidden(
                    f"{FIELD_LABELS[name]} do chi bộ cập nhật: đề nghị bí thư chi bộ điều chỉnh",
                    field=name,
                    code="branch_kept",
                )
        changes = {
            name: getattr(profile, name)
            for name in ("full_name", "gender")
            if getattr(profile, name) != getattr(current, name)
        }
        if changes or personal_fields:
            self.record(
                MemberProfileUpdated(
                    member_id=self.id,
                    branch_id=self.branch_id,
                    personal_fields=sorted(personal_fields),
                    **changes,
                )
            )

    def correct_party_record(
        self, profile: Profile, personal_fields: list[str], actor: str, reason: str
    ) -> bool:
        """The branch corrects the admission date, the date made official, the party card
        number or the citizen ID (named in `personal_fields`); False when nothing changed."""
        self._require_state("pending", "approved")
        current = self.profile
        changes = {
            name: getattr(profile, name)
            for name in BRANCH_KEPT[:3]
            if getattr(profile, name) != getattr(current, name)
        }
        if changes.get("official_on", 0) is None or changes.get("party_card_no", 0) is None:
            raise RuleBroken(
                "Không thể xóa ngày chính thức hoặc số thẻ đảng viên đã có",
                field="official_on" if "official_on" in changes else "party_card_no",
            )
        if not changes and not personal_fields:
            return False
        self.record(
            MemberPartyRecordCorrected(
                member_id=self.id,
                branch_id=self.branch_id,
                personal_fields=sorted(personal_fields),
                corrected_by=actor,
                reason=reason,
                **changes,
            )
        )
        return True

    def change_status(
        self, status: MemberStatus, effective_on: date, official_on: date | None
    ) -> None:
        self._require_state("approved")
        if status is self.status:
            raise Conflict(
                f"Đảng viên đã ở trạng thái {STATUS_LABELS[status].lower()}",
                field="status",
                code="unchanged",
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

    def remove(self, reason: RemovalReason, actor: str) -> None:
        self._require_state("approved")
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
            raise NotFound(
                "Đảng viên không giữ vai trò này ở đơn vị này", field="role", code="not_held"
            )
        self.record(
            RoleRevoked(member_id=self.id, role=role.value, unit_id=unit_id, revoked_by=actor)
        )


def member_doc(member: Member) -> dict[str, Any]:
    """The members read model row: the aggregate's public state, written with its events."""
    doc: dict[str, Any] = {
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
    # The shared rule of who is on the list (sotay_platform.roster), on today's flags.
    doc.update(
        approved=member.state in ("approved", "removed"),
        rejected=member.state == "rejected",
        removed=member.state == "removed",
    )
    doc["on_list"] = counts(doc, Purpose.on_list)
    return doc


def name_sort_key(full_name: str) -> str:
    """Vietnamese rosters sort by given name (the last word), then the whole name."""
    folded = fold(full_name)
    words = folded.split()
    return f"{words[-1] if words else ''} {folded}"
