"""Facts about members and accounts, published by identity.

Personal data (citizen ID, phone, date of birth) never travels in these
events: it stays in identity's own store.
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import Literal

from sotay_events import topics
from sotay_events.catalogue.base import DomainEvent, register


class MemberStatus(StrEnum):
    official = "official"
    probationary = "probationary"
    exempted = "exempted"


class Gender(StrEnum):
    male = "male"
    female = "female"
    other = "other"


class _MemberEvent(DomainEvent):
    aggregate_type = "Member"
    topic = topics.IDENTITY


@register
class MemberRegistered(_MemberEvent):
    """A member's registration was recorded, by themselves or by their secretary."""

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
