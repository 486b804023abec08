"""The rules on a member's data, without I/O: declared on the shared input types, joined
in `validate_member`."""

from datetime import date
from typing import Any

import pytest
from pydantic import ValidationError

from sotay_events.catalogue.identity import Gender, MemberStatus
from sotay_identity.domain import (
    Member,
    MemberFields,
    RuleBroken,
    WrongState,
    member_doc,
    name_sort_key,
    problems_of,
    validate_member,
)
from sotay_platform.auth import Role
from sotay_platform.errors import Conflict, Forbidden, Invalid
from sotay_platform.inputs import citizen_id_problem

from .conftest import TODAY, member_input

BASE: dict[str, Any] = {
    "full_name": "Nguyễn Văn An",
    "birth_date": "15/08/1975",
    "gender": "Nam",
    "admitted_on": "03/02/2000",
    "official_on": "03/02/2001",
    "party_card_no": "01234567",
    "citizen_id": "001075001234",
    "phone": "0912345678",
}


def problems(**overrides: Any) -> list[dict[str, str]]:
    """Every problem a form with these values gets, whichever layer finds it."""
    try:
        fields = MemberFields.model_validate({**BASE, **overrides})
    except ValidationError as exc:
        return problems_of(exc)
    try:
        validate_member(fields, TODAY, phone_required=True)
    except RuleBroken as exc:
        assert isinstance(exc, Invalid)
        return exc.fields
    return []


def test_a_valid_member_passes() -> None:
    profile, personal = validate_member(member_input(), TODAY, phone_required=True)
    assert profile.status is MemberStatus.official
    assert profile.gender is Gender.male
    assert personal.birth_date == date(1975, 8, 15)
    assert personal.phone == "0912345678"


@pytest.mark.parametrize(
    ("overrides", "field", "words"),
    [
        ({"citizen_id": "12345"}, "citizen_id", "12 chữ số"),
        ({"citizen_id": "00107500123X"}, "citizen_id", "chữ số"),
        ({"citizen_id": ""}, "citizen_id", "bắt buộc"),
        ({"citizen_id": "099075001234"}, "citizen_id", "mã tỉnh"),
        ({"citizen_id": "001275001234"}, "citizen_id", "thế kỷ"),
        ({"citizen_id": "001175001234"}, "citizen_id", "giới tính"),
        ({"citizen_id": "001076001234"}, "citizen_id", "năm sinh"),
        ({"phone": "0212345678"}, "phone", "di động"),
        ({"phone": "091234567"}, "phone", "di động"),
        ({"phone": ""}, "phone", "bắt buộc"),
        ({"birth_date": "31/02/1975"}, "birth_date", "dd/mm/yyyy"),
        ({"birth_date": "2030-01-01"}, "birth_date", "trong khoảng"),
        ({"birth_date": "0001-01-01"}, "birth_date", "trong khoảng"),
        ({"admitted_on": "26/11/2026"}, "admitted_on", "tương lai"),
        ({"official_on": "26/11/2026"}, "official_on", "tương lai"),
        ({"admitted_on": "01/01/1990"}, "admitted_on", "18 tuổi"),
        ({"official_on": "01/01/2000"}, "official_on", "sau ngày vào Đảng"),
        ({"official_on": "03/02/2000"}, "official_on", "sau ngày vào Đảng"),
        ({"official_on": "", "status": "official"}, "official_on", "ngày chính thức"),
        ({"status": "probationary"}, "official_on", "dự bị"),
        ({"status": "probationary", "official_on": ""}, "party_card_no", "dự bị"),
        ({"status": "retired"}, "status", "chỉ nhận"),
        ({"party_card_no": "AB"}, "party_card_no", "chữ số"),
        ({"full_name": ""}, "full_name", "bắt buộc"),
        ({"full_name": "An"}, "full_name", "họ và tên"),
        ({"full_name": "Nguyễn V4n An"}, "full_name", "chữ cái"),
        ({"full_name": "Nguyễn Văn \ud800An"}, "full_name", "Unicode"),
        ({"full_name": "Nguyễn " + "A" * 200}, "full_name", "100"),
        ({"gender": "?"}, "gender", "chỉ nhận"),
        ({"admitted_on": ""}, "admitted_on", "bắt buộc"),
        ({"work_history": [{"content": "x"}] * 201}, "work_history", "200"),
    ],
)
def test_each_rule_names_its_field(overrides: dict[str, Any], field: str, words: str) -> None:
    found = problems(**overrides)
    assert field in [p["field"] for p in found], found
    message = next(p["message"] for p in found if p["field"] == field)
    assert words.lower() in message.lower()


def test_every_problem_is_listed_at_once() -> None:
    found = {p["field"] for p in problems(citizen_id="1", phone="1", full_name="An")}
    assert found >= {"citizen_id", "phone", "full_name"}
    with pytest.raises(RuleBroken) as exc:
        validate_member(
            MemberFields.model_validate({**BASE, "admitted_on": "01/01/1990", "gender": "Nữ"}),
            TODAY,
            phone_required=True,
        )
    assert "fields" in exc.value.body()


def test_messages_never_repeat_personal_values() -> None:
    text = str(problems(citizen_id="001076001234", phone="0212345678"))
    assert "001076001234" not in text and "0212345678" not in text


def test_digits_of_any_script_become_one_ascii_form() -> None:
    fields = MemberFields.model_validate(
        {
            **BASE,
            "citizen_id": "００１０７５００１２３４",  # fullwidth
            "phone": "+84 ٩١٢ ٣٤٥ ٦٧٨",  # Arabic-Indic
            "party_card_no": "０１.２３４.５６７",
            "birth_date": "5/3/1975",
        }
    )
    assert fields.citizen_id == "001075001234"
    assert fields.phone == "0912345678"
    assert fields.party_card_no == "01234567"
    assert fields.birth_date == date(1975, 3, 5)
    assert MemberFields.model_validate({"phone": "84912345678"}).phone == "0912345678"
    assert MemberFields.model_validate({"gender": "Nữ", "status": "dự bị"}).status is (
        MemberStatus.probationary
    )


def test_women_born_after_2000_have_code_3() -> None:
    assert citizen_id_problem("001300001234", date(2000, 5, 1), female=True) is None


def test_registration_lifecycle() -> None:
    profile, _ = validate_member(member_input(), TODAY, phone_required=True)
    member = Member.register("m1", profile, "CB1", "self", "m1")
    assert member.state == "pending" and member.grants() == []
    assert not member_doc(member)["on_list"]
    member.approve("sec")
    assert member.state == "approved" and member.account_active
    assert member_doc(member)["on_list"]
    assert [e.event_type for e in member.pending] == [
        "MemberRegistered",
        "MemberRegistrationApproved",
        "AccountActivated",
    ]
    with pytest.raises(WrongState):
        member.approve("sec")
    assert member.grants()[0].role is Role.member


def test_exempted_members_do_not_self_register() -> None:
    profile, _ = validate_member(member_input(status="exempted"), TODAY, phone_required=True)
    with pytest.raises(RuleBroken) as exc:
        Member.register("m1", profile, "CB1", "self", "m1")
    assert exc.value.field == "status"
    member = Member.register("m2", profile, "CB1", "secretary", "sec")
    assert member.state == "approved"
    assert member_doc(member)["on_list"]  # on the list, though not expected at meetings


def test_status_transitions() -> None:
    profile, _ = validate_member(
        member_input(status="probationary", official_on="", party_card_no=""),
        TODAY,
        phone_required=True,
    )
    member = Member.register("m1", profile, "CB1", "secretary", "sec")
    with pytest.raises(RuleBroken):
        member.change_status(MemberStatus.exempted, date(2026, 1, 1), None)
    member.change_status(MemberStatus.official, date(2001, 2, 3), None)
    assert member.status is MemberStatus.official and member.official_on == date(2001, 2, 3)
    with pytest.raises(Conflict):
        member.change_status(MemberStatus.official, date(2026, 1, 1), None)


def test_the_party_record_is_the_branchs_to_change() -> None:
    profile, _ = validate_member(member_input(), TODAY, phone_required=True)
    member = Member.register("m1", profile, "CB1", "secretary", "sec")
    member.mark_saved()
    moved = validate_member(member_input(admitted_on="04/02/2000"), TODAY, phone_required=True)
    with pytest.raises(Forbidden) as exc:
        member.update_profile(moved[0], [])
    assert exc.value.field == "admitted_on"
    assert not member.pending
    assert member.correct_party_record(moved[0], [], "sec", "Sai ngày trong hồ sơ giấy")
    (event,) = member.pending
    assert event.event_type == "MemberPartyRecordCorrected"
    assert member.admitted_on == date(2000, 2, 4)
    assert not member.correct_party_record(moved[0], [], "sec", "Không đổi gì")


def test_transfer_ends_branch_roles() -> None:
    profile, _ = validate_member(member_input(), TODAY, phone_required=True)
    member = Member.register("m1", profile, "CB1", "secretary", "sec")
    member.grant(Role.branch_secretary, "CB1", "admin")
    member.grant(Role.editor, "HN", "admin")
    member.transfer("CB2", TODAY, "admin")
    assert member.roles == {(Role.editor, "HN")}
    assert member.branch_id == "CB2"


def test_rebuild_equals_live_state() -> None:
    profile, _ = validate_member(member_input(), TODAY, phone_required=True)
    member = Member.register("m1", profile, "CB1", "secretary", "sec")
    member.grant(Role.branch_committee_member, "CB1", "sec")
    member.sign_in()
    rebuilt = Member.rebuild("m1", member.pending)
    assert member_doc(rebuilt) == member_doc(member)


def test_rosters_sort_by_given_name() -> None:
    names = ["Trần Thị Bình", "Nguyễn Văn An", "Lê Văn Đức"]
    assert sorted(names, key=name_sort_key) == ["Nguyễn Văn An", "Trần Thị Bình", "Lê Văn Đức"]
