"""The rules on a member's data, without I/O."""

from datetime import date

import pytest

from sotay_events.catalogue.identity import Gender, MemberStatus
from sotay_identity.domain import (
    Member,
    Problems,
    RuleBroken,
    clean_citizen_id,
    clean_phone,
    member_doc,
    name_sort_key,
    parse_date,
    validate_member,
)
from sotay_platform.auth import Role

from .conftest import TODAY, member_input


def fields_of(exc: pytest.ExceptionInfo[RuleBroken]) -> list[str]:
    return [f["field"] for f in exc.value.fields]


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
        ({"citizen_id": "00107500123X"}, "citizen_id", "12 chữ số"),
        ({"citizen_id": ""}, "citizen_id", "bắt buộc"),
        ({"citizen_id": "099075001234"}, "citizen_id", "mã tỉnh"),
        ({"citizen_id": "001275001234"}, "citizen_id", "thế kỷ"),
        ({"citizen_id": "001175001234"}, "citizen_id", "giới tính"),
        ({"citizen_id": "001076001234"}, "citizen_id", "năm sinh"),
        ({"phone": "0212345678"}, "phone", "di động"),
        ({"phone": "091234567"}, "phone", "di động"),
        ({"phone": ""}, "phone", "bắt buộc"),
        ({"birth_date": "31/02/1975"}, "birth_date", "dd/mm/yyyy"),
        ({"birth_date": "2030-01-01"}, "birth_date", "tương lai"),
        ({"admitted_on": "01/01/2027"}, "admitted_on", "tương lai"),
        ({"official_on": "01/01/2027"}, "official_on", "tương lai"),
        ({"admitted_on": "01/01/1990"}, "admitted_on", "18 tuổi"),
        ({"official_on": "01/01/2000"}, "official_on", "sau ngày vào Đảng"),
        ({"official_on": "03/02/2000"}, "official_on", "sau ngày vào Đảng"),
        ({"official_on": "", "status": "official"}, "official_on", "ngày chính thức"),
        ({"status": "probationary"}, "official_on", "dự bị"),
        ({"status": "probationary", "official_on": ""}, "party_card_no", "dự bị"),
        ({"status": "retired"}, "status", "Trạng thái"),
        ({"party_card_no": "AB"}, "party_card_no", "chữ số"),
        ({"full_name": ""}, "full_name", "bắt buộc"),
        ({"full_name": "An"}, "full_name", "họ và tên"),
        ({"full_name": "Nguyễn V4n An"}, "full_name", "chữ cái"),
        ({"gender": "?"}, "gender", "Giới tính"),
        ({"admitted_on": ""}, "admitted_on", "bắt buộc"),
    ],
)
def test_each_rule_names_its_field(overrides: dict[str, str], field: str, words: str) -> None:
    with pytest.raises(RuleBroken) as exc:
        validate_member(member_input(**overrides), TODAY, phone_required=True)
    assert field in fields_of(exc)
    message = next(f["message"] for f in exc.value.fields if f["field"] == field)
    assert words.lower() in message.lower()
    assert exc.value.status_code == 422


def test_every_problem_is_listed_at_once() -> None:
    with pytest.raises(RuleBroken) as exc:
        validate_member(
            member_input(citizen_id="1", phone="1", full_name=""), TODAY, phone_required=True
        )
    assert set(fields_of(exc)) >= {"citizen_id", "phone", "full_name"}
    assert "fields" in exc.value.body()


def test_messages_never_repeat_personal_values() -> None:
    with pytest.raises(RuleBroken) as exc:
        validate_member(
            member_input(citizen_id="001076001234", phone="0212345678"), TODAY, phone_required=True
        )
    text = str(exc.value.body())
    assert "001076001234" not in text and "0212345678" not in text


def test_dates_and_phones_normalise() -> None:
    p = Problems()
    assert parse_date("5/3/2001", "x", p) == date(2001, 3, 5)
    assert parse_date("2001-03-05", "x", p) == date(2001, 3, 5)
    assert clean_phone("+84 912 345 678", p) == "0912345678"
    assert clean_phone("84912345678", p) == "0912345678"
    assert clean_citizen_id("001 075 001 234", date(1975, 1, 1), Gender.male, p) == "001075001234"
    assert not p.items


def test_women_born_after_2000_have_code_3() -> None:
    p = Problems()
    clean_citizen_id("001300001234", date(2000, 5, 1), Gender.female, p)
    assert not p.items


def test_registration_lifecycle() -> None:
    profile, _ = validate_member(member_input(), TODAY, phone_required=True)
    member = Member.register("m1", profile, "CB1", "self", "m1")
    assert member.state == "pending" and member.grants() == []
    member.approve("sec")
    assert member.state == "approved" and member.account_active
    assert [e.event_type for e in member.pending] == [
        "MemberRegistered",
        "MemberRegistrationApproved",
        "AccountActivated",
    ]
    with pytest.raises(RuleBroken) as exc:
        member.approve("sec")
    assert exc.value.status_code == 409
    assert member.grants()[0].role is Role.member


def test_exempted_members_do_not_self_register() -> None:
    profile, _ = validate_member(member_input(status="exempted"), TODAY, phone_required=True)
    with pytest.raises(RuleBroken) as exc:
        Member.register("m1", profile, "CB1", "self", "m1")
    assert exc.value.field == "status"
    assert Member.register("m2", profile, "CB1", "secretary", "sec").state == "approved"


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
    with pytest.raises(RuleBroken) as exc:
        member.change_status(MemberStatus.official, date(2026, 1, 1), None)
    assert exc.value.status_code == 409


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
