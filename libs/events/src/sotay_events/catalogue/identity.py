"""Facts about members and accounts, published by identity.

Personal data (citizen ID, phone, date of birth) never travels in these
events: it stays in identity's own store. Every member event carries the
member's branch so that consumers can keep rosters without asking identity.
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import Literal

from pydantic import Field

from sotay_events import topics
from sotay_events.catalogue.base import DomainEvent, register


class MemberStatus(StrEnum):
    official = "official"
    probationary = "probationary"
    exempted = "exempted"  # exempted from party work and meetings


class Gender(StrEnum):
    male = "male"
    female = "female"
    other = "other"


class _MemberEvent(DomainEvent):
    aggregate_type = "Member"
    topic = topics.IDENTITY


@register
class MemberRegistered(_MemberEvent):
    """A member's registration was recorded, by themselves, their secretary or an import.

    A self-registration awaits approval; one made by a secretary or an import is
    approved in the same command (MemberRegistrationApproved follows at once).
    """

    event_type = "MemberRegistered"

    member_id: str
    full_name: str
    gender: Gender
    branch_id: str
    status: MemberStatus
    admitted_on: date
    official_on: date | None = None
    party_card_no: str | None = None
    registered_by: Literal["self", "secretary", "import"] = "self"


@register
class MemberRegistrationApproved(_MemberEvent):
    event_type = "MemberRegistrationApproved"

    member_id: str
    branch_id: str
    approved_by: str


@register
class MemberRegistrationRejected(_MemberEvent):
    event_type = "MemberRegistrationRejected"

    member_id: str
    branch_id: str
    rejected_by: str
    reason: str


@register
class AccountActivated(_MemberEvent):
    """The member's account can sign in (after approval, or when a secretary set a password)."""

    event_type = "AccountActivated"

    member_id: str
    branch_id: str


@register
class MemberSignedIn(_MemberEvent):
    """A sign-in: what usage figures count as activity. No device, address or phone."""

    event_type = "MemberSignedIn"

    member_id: str
    branch_id: str


@register
class MemberProfileUpdated(_MemberEvent):
    """Public profile fields that changed; personal fields are never listed here."""

    event_type = "MemberProfileUpdated"

    member_id: str
    branch_id: str
    full_name: str | None = None
    gender: Gender | None = None
    admitted_on: date | None = None
    official_on: date | None = None
    party_card_no: str | None = None
    personal_fields: list[str] = Field(
        default_factory=list,
        description="names (never values) of personal fields that changed too, e.g. phone, "
        "citizen_id, birth_date, work_history: an audit trail without the data",
    )


@register
class MemberPartyRecordCorrected(_MemberEvent):
    """The branch corrected what it keeps on a member's party record (admission date, date
    made official, party card number, citizen ID): never the member's own edit.

    Public fields that changed carry their new value; a corrected citizen ID is only named
    in `personal_fields`, never given.
    """

    event_type = "MemberPartyRecordCorrected"

    member_id: str
    branch_id: str
    admitted_on: date | None = None
    official_on: date | None = None
    party_card_no: str | None = None
    personal_fields: list[str] = Field(
        default_factory=list, description="names (never values) of personal fields corrected"
    )
    corrected_by: str
    reason: str


@register
class MemberStatusChanged(_MemberEvent):
    """Probationary made official, or exempted from party work, or back."""

    event_type = "MemberStatusChanged"

    member_id: str
    branch_id: str
    status: MemberStatus
    previous_status: MemberStatus
    effective_on: date


@register
class MemberTransferred(_MemberEvent):
    """Chuyển sinh hoạt đảng: the member now belongs to another branch."""

    event_type = "MemberTransferred"

    member_id: str
    from_branch_id: str
    to_branch_id: str
    effective_on: date


@register
class MemberRemoved(_MemberEvent):
    """The member left the party's rolls (deceased, struck off, expelled, left)."""

    event_type = "MemberRemoved"

    member_id: str
    branch_id: str
    reason: Literal["deceased", "struck_off", "expelled", "left", "error"] = "left"


@register
class RoleGranted(_MemberEvent):
    event_type = "RoleGranted"

    member_id: str
    role: str
    unit_id: str = Field(description="root of the subtree the role covers")
    granted_by: str


@register
class RoleRevoked(_MemberEvent):
    event_type = "RoleRevoked"

    member_id: str
    role: str
    unit_id: str
    revoked_by: str


@register
class AccountPasswordReset(_MemberEvent):
    """A secretary or admin set a temporary password; the member must change it at sign-in.

    No password, hash or contact detail: only who did it, for the audit trail.
    """

    event_type = "AccountPasswordReset"

    member_id: str
    branch_id: str
    reset_by: str
