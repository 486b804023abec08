"""The path of the issue's "done when": register, approve, sign in, own profile, offline checks."""

import asyncio
import logging

import httpx
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from sotay_events.catalogue.org_tree import UnitMerged
from sotay_platform.auth import Role, TokenVerifier
from sotay_platform.settings import AuthSettings
from sotay_platform.testing import eventually

from .conftest import PASSWORD, World, bearer, person

pytestmark = pytest.mark.asyncio(loop_scope="session")


class Collected(logging.Handler):
    """Every log line, at every level (`make test` runs without pytest's logging plugin)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


async def test_register_approve_sign_in_and_keep_own_profile(
    world: World, span_exporter: InMemorySpanExporter
) -> None:
    logs = Collected()
    root = logging.getLogger()
    saved_level = root.level
    root.addHandler(logs)
    root.setLevel(logging.DEBUG)
    try:
        await _the_whole_path(world, span_exporter, logs)
    finally:
        root.removeHandler(logs)
        root.setLevel(saved_level)
    assert logs.lines  # the handler did see the service's logging


async def _the_whole_path(
    world: World, span_exporter: InMemorySpanExporter, logs: Collected
) -> None:
    client = world.client
    _, secretary = await world.secretary("CB1")
    me = person(gender="Nữ", year=1980)
    r = await client.post(
        "/registrations", json={**me, "branch_id": world.u("CB1"), "password": PASSWORD}
    )
    assert r.status_code == 201, r.text
    member_id = r.json()["member_id"]
    assert r.json()["state"] == "pending"

    r = await client.post("/auth/login", json={"phone": me["phone"], "password": PASSWORD})
    assert r.status_code == 403 and r.json()["error"] == "pending_approval"

    r = await client.get("/registrations", params={"unit_id": world.u("CB1")}, headers=secretary)
    assert [m["member_id"] for m in r.json()["items"]] == [member_id]
    r = await client.post(f"/registrations/{member_id}/approve", headers=secretary)
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "approved" and r.json()["account_active"]

    tokens = await world.login(me["phone"])
    r = await client.get("/me", headers=bearer(tokens))
    assert r.status_code == 200, r.text
    mine = r.json()
    assert mine["personal"]["citizen_id"] == me["citizen_id"]
    assert mine["personal"]["birth_date"] == me["birth_date"]
    assert mine["official_on"] == "03/02/2006"
    assert mine["gender_label"] == "Nữ"
    assert mine["status_label"] == "Đảng viên chính thức"

    r = await client.patch(
        "/me",
        json={
            "full_name": "Phạm Thị Dung Hòa",
            "work_history": [
                {"content": "Giáo viên Trường THCS Ba Đình", "from_date": "01/09/2003"}
            ],
        },
        headers=bearer(tokens),
    )
    assert r.status_code == 200, r.text
    assert r.json()["full_name"] == "Phạm Thị Dung Hòa"
    assert r.json()["personal"]["records"]["work_history"][0]["from_date"] == "01/09/2003"
    r = await client.patch("/me", json={"status": "exempted"}, headers=bearer(tokens))
    assert r.status_code == 422 and r.json()["field"] == "status"
    r = await client.patch(
        "/me", json={"rewards": [{"content": "Huy hiệu"}]}, headers=bearer(tokens)
    )
    assert r.status_code == 403 and r.json()["field"] == "rewards"

    # Another component verifies the token offline, with nothing but the published JWKS.
    jwks = (await client.get("/.well-known/jwks.json")).json()
    verifier = TokenVerifier(AuthSettings(), jwks)
    principal = verifier.verify(tokens["access_token"])
    assert principal.member_id == member_id
    principal.require([Role.member], await world.app.state.service.tree.scope_path(world.u("CB1")))
    assert not principal.covers([Role.member], [world.u("TW"), world.u("HN"), world.u("CB2")])

    # Everything identity published left through the outbox, and none of it is personal.
    storage = world.app.state.storage

    async def all_published() -> bool:
        return (
            await storage.events.count_documents({"aggregate_id": member_id, "published": False})
            == 0
        )

    await eventually(all_published, timeout=60)  # the relay takes its lease first
    events = (
        await storage.events.find({"aggregate_id": member_id}).sort("aggregate_version").to_list()
    )
    assert [e["event_type"] for e in events] == [
        "MemberRegistered",
        "MemberRegistrationApproved",
        "AccountActivated",
        "MemberSignedIn",
        "MemberProfileUpdated",
    ]
    assert events[-1]["payload"]["personal_fields"] == ["work_history"]
    day, month, year = me["birth_date"].split("/")
    secrets = [me["citizen_id"], me["phone"], f"{year}-{month}-{day}", me["birth_date"], PASSWORD]
    for text in (
        str(events),
        str([s.attributes for s in span_exporter.get_finished_spans()]),
        "\n".join(logs.lines),
    ):
        for secret in secrets:
            assert secret not in text


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"citizen_id": "12345"}, "citizen_id"),
        ({"citizen_id": "001075"}, "citizen_id"),
        ({"phone": "0212345678"}, "phone"),
        ({"birth_date": "01/01/2090"}, "birth_date"),
        ({"birth_date": "30/02/1975"}, "birth_date"),
        ({"admitted_on": "01/01/2090"}, "admitted_on"),
        ({"admitted_on": "01/01/1980"}, "admitted_on"),
        ({"official_on": "01/01/1999"}, "official_on"),
        ({"official_on": "01/01/2090"}, "official_on"),
        ({"full_name": ""}, "full_name"),
        ({"gender": "x"}, "gender"),
        ({"password": "short"}, "password"),
        ({"password": "chichuchu"}, "password"),
        ({"status": "exempted"}, "status"),
        ({"branch_id": "NOPE"}, "branch_id"),
        ({"branch_id": "HN.X"}, "branch_id"),
        ({"branch_id": None}, "branch_id"),
        ({"unexpected": "x"}, "unexpected"),
    ],
)
async def test_each_registration_rule_is_refused_naming_the_field(
    module_world: World, change: dict[str, str | None], field: str
) -> None:
    world = module_world
    body: dict[str, str | None] = {**person(), "branch_id": world.u("CB1"), "password": PASSWORD}
    if change.get("branch_id") == "HN.X":
        change = {"branch_id": world.u("HN.X")}
    body.update(change)
    r = await world.client.post("/registrations", json=body)
    assert r.status_code == 422, r.text
    assert r.json()["field"] == field
    assert r.json()["message"]


async def test_the_same_citizen_id_or_party_card_never_belongs_to_two(world: World) -> None:
    """Two anonymous registrations of one person get the same answer; the keys go to one,
    and the secretary sees the conflict on the other when reviewing it."""
    data = person()
    body = {**data, "branch_id": world.u("CB1"), "password": PASSWORD}
    other = {**body, "phone": person()["phone"]}
    results = await asyncio.gather(
        world.client.post("/registrations", json=body),
        world.client.post("/registrations", json=other),
    )
    assert [r.status_code for r in results] == [201, 201]
    assert results[0].json()["message"] == results[1].json()["message"]
    secretary = world.headers(Role.branch_secretary, "CB1")
    r = await world.client.get(
        "/registrations", params={"unit_id": world.u("CB1")}, headers=secretary
    )
    conflicts = {m["member_id"]: m["conflicts"] for m in r.json()["items"]}
    assert sorted(map(sorted, conflicts.values())) == [[], ["citizen_id", "party_card_no"]]
    loser = next(m for m, found in conflicts.items() if found)
    r = await world.client.post(f"/registrations/{loser}/approve", headers=secretary)
    assert r.status_code == 409 and r.json()["field"] in ("citizen_id", "party_card_no")
    assert "thuộc về một đảng viên khác" in r.json()["message"]


async def test_an_anonymous_registration_never_tells_who_is_a_member(world: World) -> None:
    """A member's phone or citizen ID, even typed in fullwidth digits, gets the neutral
    answer; a secretary recording the same person is told (409), in their scope."""
    _, member = await world.member("CB1")
    neutral = (
        await world.client.post(
            "/registrations", json={**person(), "branch_id": world.u("CB2"), "password": PASSWORD}
        )
    ).json()
    fullwidth = member["citizen_id"].translate({ord(d): 0xFF10 + int(d) for d in "0123456789"})
    for change in ({"phone": member["phone"]}, {"citizen_id": fullwidth}):
        body = {**person(), **change, "branch_id": world.u("CB2"), "password": PASSWORD}
        if "citizen_id" in change:
            body["birth_date"], body["gender"] = member["birth_date"], member["gender"]
        r = await world.client.post("/registrations", json=body)
        assert r.status_code == 201, r.text
        assert {k: v for k, v in r.json().items() if k != "member_id"} == {
            k: v for k, v in neutral.items() if k != "member_id"
        }
        pending = (
            await world.client.get(
                f"/members/{r.json()['member_id']}",
                headers=world.headers(Role.branch_secretary, "CB2"),
            )
        ).json()
        assert pending["conflicts"] == list(
            {"phone": ["phone"], "citizen_id": ["citizen_id"]}[next(iter(change))]
        )
    r = await world.client.post(
        "/members",
        json={**person(), "citizen_id": fullwidth, "birth_date": member["birth_date"]},
        headers=world.admin,
    )
    assert r.status_code == 422  # the branch is missing: the fields come first
    body = {
        **person(),
        "citizen_id": fullwidth,
        "birth_date": member["birth_date"],
        "branch_id": world.u("CB1"),
    }
    r = await world.client.post("/members", json=body, headers=world.admin)
    assert r.status_code == 409 and r.json()["field"] == "citizen_id"


async def test_transfer_and_merge_move_members_and_their_events(world: World) -> None:
    client = world.client
    moved, _ = await world.member("CB1")
    commune = world.headers(Role.committee_admin, "HN.X")
    r = await client.post(
        f"/members/{moved}/transfer", json={"to_branch_id": world.u("HP.CB1")}, headers=commune
    )
    assert r.status_code == 403  # the target is outside the commune
    r = await client.post(
        f"/members/{moved}/transfer", json={"to_branch_id": world.u("CB2")}, headers=commune
    )
    assert r.status_code == 200, r.text
    assert r.json()["branch_id"] == world.u("CB2")

    # org-tree merges CB2 into CB1: identity moves CB2's members by itself.
    await world.publish(merge_cb2_into_cb1(world), version=2)
    service = world.app.state.service

    async def followed() -> bool:
        row = await service.storage.member_row(moved)
        return row["branch_id"] == world.u("CB1")

    await eventually(followed, timeout=60)
    events = await world.app.state.storage.events.find(
        {"aggregate_id": moved, "event_type": "MemberTransferred"}
    ).to_list()
    assert [e["payload"]["to_branch_id"] for e in events] == [world.u("CB2"), world.u("CB1")]
    assert events[-1]["actor"] == "system:org-tree-merge"


def merge_cb2_into_cb1(world: World) -> UnitMerged:
    return UnitMerged(unit_id=world.u("CB2"), into_unit_id=world.u("CB1"))


async def test_reading_a_member_needs_a_role_over_them(world: World) -> None:
    member_id, data = await world.member("CB1")
    _, fellow = await world.member("CB1")
    tokens = await world.login(fellow["phone"])
    r = await world.client.get(f"/members/{member_id}", headers=bearer(tokens))
    assert r.status_code == 403  # a fellow member sees neither the profile nor personal data
    committee = world.headers(Role.branch_committee_member, "CB1")
    r = await world.client.get(f"/members/{member_id}", headers=committee)
    assert r.status_code == 200 and "personal" not in r.json()
    secretary = world.headers(Role.branch_secretary, "CB1")
    r = await world.client.get(f"/members/{member_id}", headers=secretary)
    assert r.json()["personal"]["citizen_id"] == data["citizen_id"]
    r = await world.client.get(
        "/members",
        params={"unit_id": world.u("HN")},
        headers=world.headers(Role.central_office, "TW"),
    )
    assert r.status_code == 403


async def test_health(client: httpx.AsyncClient) -> None:
    r = await client.get("/health/ready")
    assert r.status_code == 200, r.text


async def test_the_members_read_model_rebuilds_to_the_live_one(world: World) -> None:
    member_id, _ = await world.member("CB1")
    await world.client.post(
        f"/members/{member_id}/roles",
        json={"role": "branch_committee_member", "unit_id": world.u("CB1")},
        headers=world.admin,
    )
    storage = world.app.state.storage
    live = await storage.db.members.find({}).sort("_id").to_list()
    assert await storage.rebuild_members() == len(live)
    assert await storage.db.members.find({}).sort("_id").to_list() == live


async def test_the_party_record_changes_only_through_the_secretary(world: World) -> None:
    member_id, data = await world.member("CB1")
    tokens = await world.login(data["phone"])
    unchanged = {"party_card_no": data["party_card_no"], "citizen_id": data["citizen_id"]}
    r = await world.client.patch("/me", json=unchanged, headers=bearer(tokens))
    assert r.status_code == 200, r.text  # a form sends them back as they are
    for change in ({"admitted_on": "04/02/2000"}, {"citizen_id": person()["citizen_id"]}):
        r = await world.client.patch("/me", json=change, headers=bearer(tokens))
        assert r.status_code == 403 and r.json()["field"] in change, r.text
    r = await world.client.post(
        f"/members/{member_id}/party-record",
        json={"party_card_no": "70000001", "reason": "Cấp lại thẻ"},
        headers=bearer(tokens),
    )
    assert r.status_code == 403
    r = await world.client.post(
        f"/members/{member_id}/party-record",
        json={"party_card_no": "70000001", "reason": "Cấp lại thẻ"},
        headers=world.headers(Role.branch_secretary, "CB1"),
    )
    assert r.status_code == 200 and r.json()["party_card_no"] == "70000001", r.text
    event = await world.app.state.storage.events.find_one(
        {"aggregate_id": member_id, "event_type": "MemberPartyRecordCorrected"}
    )
    assert event["payload"]["reason"] == "Cấp lại thẻ"
    assert event["payload"]["corrected_by"] == "tester"
