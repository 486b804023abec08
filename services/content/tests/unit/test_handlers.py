"""Commands through the unit of work on the in-memory store: scope, four eyes, nothing half-written."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from sotay_content.access import EDITOR, EDITORIAL_REVIEWER
from sotay_content.domain import PUBLISHED, SCHEDULED, DeclaredClassification, DocumentDraft
from sotay_content.files import CHUNKS, FILES
from sotay_content.handlers import SCHEDULE, ContentService, Draft
from sotay_content.projections import ATTACHMENT_TEXTS
from sotay_events import GroupCommit, InMemoryEventStore
from sotay_events.catalogue.content import PieceKind
from sotay_platform.attachments import ClassifiedRefused, build_docx, build_pdf
from sotay_platform.auth import Grant, Principal, Role
from sotay_platform.errors import Forbidden, Invalid, NotFound

#        QNG (province)
#       /            \
#    XA1 (commune)   XA2 (commune)
#    /     \             \
#  CB1     CB2           CB3
PARENTS = {"QNG": None, "XA1": "QNG", "XA2": "QNG", "CB1": "XA1", "CB2": "XA1", "CB3": "XA2"}


class DictTree:
    """The tree the way `Audience` answers it, from a dict: units, moves and merges."""

    def __init__(self, parents: dict[str, str | None]) -> None:
        self.parents = dict(parents)
        self.merged: dict[str, str] = {}

    async def current(self, unit_id: str) -> dict[str, Any] | None:
        while unit_id in self.merged:
            unit_id = self.merged[unit_id]
        if unit_id not in self.parents:
            return None
        return {"_id": unit_id, "path": self._path(unit_id), "status": "active"}

    def _path(self, unit_id: str) -> list[str]:
        chain: list[str] = []
        current: str | None = unit_id
        while current:
            current = self.merged.get(current, current)
            chain.append(current)
            current = self.parents.get(current)
        return chain[::-1]

    async def path(self, unit_id: str) -> list[str]:
        doc = await self.current(unit_id)
        return doc["path"] if doc else [unit_id]

    async def above(self, unit_ids: Sequence[str]) -> list[str]:
        found: list[str] = []
        for unit_id in unit_ids:
            found += [unit_id, *await self.path(unit_id)]
        found += [u for u, into in self.merged.items() if into in found]
        return list(dict.fromkeys(found))


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 12, 1, 1, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def store() -> InMemoryEventStore:
    return InMemoryEventStore()


@pytest.fixture
def tree() -> DictTree:
    return DictTree(PARENTS)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def service(store: InMemoryEventStore, tree: DictTree, clock: Clock) -> ContentService:
    return ContentService(store, tree=tree, readings=GroupCommit(store), clock=clock)


def who(subject: str, *grants: tuple[Role, str], member: bool = False) -> Principal:
    return Principal(
        subject=subject,
        grants=tuple(Grant(role, unit) for role, unit in grants),
        member_id=subject if member else None,
    )


EDITOR_QNG = who("editor-1", (EDITOR, "QNG"))
REVIEWER_QNG = who("reviewer-1", (EDITORIAL_REVIEWER, "QNG"))
REVIEWER_XA2 = who("reviewer-2", (EDITORIAL_REVIEWER, "XA2"))
MEMBER_CB1 = who("m1", (Role.member, "CB1"), member=True)
MEMBER_CB3 = who("m3", (Role.member, "CB3"), member=True)

NQ57 = Draft(
    title="Nghị quyết số 57-NQ/TW về đột phá phát triển khoa học, công nghệ",
    summary="Bộ Chính trị ban hành ngày 22/12/2024",
    body="<p>Khoa học, công nghệ là đột phá quan trọng hàng đầu</p>",
    document=DocumentDraft(
        number_symbol="57-NQ/TW",
        issuing_body="Bộ Chính trị",
        issued_on=date(2024, 12, 22),
        classification=DeclaredClassification.public,
    ),
)


def written(store: InMemoryEventStore) -> tuple[int, int]:
    """(events, private records): what a refused command must leave unchanged."""
    return len(store.all_events()), sum(len(c) for c in store.private.values())


async def published(service: ContentService, unit: str = "QNG") -> str:
    piece, _ = await service.draft(EDITOR_QNG, kind=PieceKind.resolution, unit_id=unit, draft=NQ57)
    await service.submit(EDITOR_QNG, piece.id)
    await service.approve(REVIEWER_QNG, piece.id)
    return piece.id


async def test_an_editor_drafts_only_in_their_subtree(service: ContentService) -> None:
    piece, created = await service.draft(
        EDITOR_QNG, kind=PieceKind.resolution, unit_id="XA1", draft=NQ57
    )
    assert created and piece.unit_id == "XA1"
    editor_xa2 = who("editor-2", (EDITOR, "XA2"))
    with pytest.raises(Forbidden):
        await service.draft(editor_xa2, kind=PieceKind.news, unit_id="XA1", draft=Draft("Tin"))
    with pytest.raises(Forbidden):
        await service.draft(MEMBER_CB1, kind=PieceKind.news, unit_id="CB1", draft=Draft("Tin"))
    with pytest.raises(NotFound):
        await service.draft(EDITOR_QNG, kind=PieceKind.news, unit_id="NOWHERE", draft=Draft("Tin"))


async def test_a_retried_draft_with_its_id_drafts_once(
    service: ContentService, store: InMemoryEventStore
) -> None:
    first, created = await service.draft(
        EDITOR_QNG, kind=PieceKind.resolution, unit_id="QNG", draft=NQ57, piece_id="nq57"
    )
    again, created_again = await service.draft(
        EDITOR_QNG, kind=PieceKind.resolution, unit_id="QNG", draft=NQ57, piece_id="nq57"
    )
    assert (created, created_again) == (True, False)
    assert first.id == again.id == "nq57"
    assert len(store.all_events()) == 1


async def test_a_reviewer_of_the_same_committee_publishes_never_their_own(
    service: ContentService,
) -> None:
    piece, _ = await service.draft(EDITOR_QNG, kind=PieceKind.resolution, unit_id="QNG", draft=NQ57)
    await service.submit(EDITOR_QNG, piece.id)
    with pytest.raises(Forbidden):
        await service.approve(REVIEWER_XA2, piece.id)  # below the target: not its board
    with pytest.raises(Forbidden):
        await service.approve(who("editor-2", (EDITOR, "QNG")), piece.id)  # editors do not review
    both = who("editor-1", (EDITOR, "QNG"), (EDITORIAL_REVIEWER, "QNG"))
    with pytest.raises(Forbidden) as own:
        await service.approve(both, piece.id)
    assert own.value.code == "own_piece"
    assert (await service.approve(REVIEWER_QNG, piece.id)).status == PUBLISHED


async def test_a_classified_draft_writes_nothing(
    service: ContentService, store: InMemoryEventStore
) -> None:
    secret = Draft(
        title="Kế hoạch",
        document=DocumentDraft(
            number_symbol="12-KH/TU",
            issuing_body="Tỉnh ủy",
            issued_on=date(2026, 1, 5),
            classification=DeclaredClassification.top_secret,
        ),
    )
    with pytest.raises(ClassifiedRefused):
        await service.draft(EDITOR_QNG, kind=PieceKind.guidance, unit_id="QNG", draft=secret)
    stamped = Draft(title="Kế hoạch", body="<p>TỐI MẬT</p><p>Nội dung</p>")
    with pytest.raises(ClassifiedRefused):
        await service.draft(EDITOR_QNG, kind=PieceKind.news, unit_id="QNG", draft=stamped)
    assert written(store) == (0, 0)


async def test_an_attachment_lands_with_its_event_and_a_classified_one_writes_nothing(
    service: ContentService, store: InMemoryEventStore
) -> None:
    piece, _ = await service.draft(EDITOR_QNG, kind=PieceKind.resolution, unit_id="QNG", draft=NQ57)
    before = written(store)
    with pytest.raises(ClassifiedRefused):
        await service.attach(
            EDITOR_QNG, piece.id, "ke-hoach.docx", build_docx(["x"], header=["MẬT"])
        )
    with pytest.raises(Invalid):
        await service.attach(EDITOR_QNG, piece.id, "virus.pdf", b"MZ\x90\x00")
    assert written(store) == before

    data = build_pdf(["NGHỊ QUYẾT", "Về đột phá phát triển khoa học"])
    _, info, created = await service.attach(EDITOR_QNG, piece.id, "../../nq57", data)
    assert created and info.file_name == "nq57.pdf" and info.media_type == "application/pdf"
    assert store.private[FILES][info.attachment_id]["length"] == len(data)
    chunks = [c for c in store.private[CHUNKS].values() if c["files_id"] == info.attachment_id]
    assert b"".join(bytes(c["data"]) for c in sorted(chunks, key=lambda c: c["n"])) == data
    assert "đột phá" in store.private[ATTACHMENT_TEXTS][info.attachment_id]["text"]
    _, same, again = await service.attach(EDITOR_QNG, piece.id, "nq57.pdf", data)
    assert (same.attachment_id, again) == (info.attachment_id, False)


async def test_members_see_what_targets_their_branch_or_above(
    service: ContentService, tree: DictTree
) -> None:
    for_xa1, _ = await service.draft(
        EDITOR_QNG, kind=PieceKind.news, unit_id="XA1", draft=Draft("Tin xã 1")
    )
    await service.submit(EDITOR_QNG, for_xa1.id)
    await service.approve(REVIEWER_QNG, for_xa1.id)
    piece = await service.piece(for_xa1.id)
    assert await service.visible(MEMBER_CB1, piece)
    assert not await service.visible(MEMBER_CB3, piece)
    tree.parents["CB3"] = "XA1"  # CB3 moves under XA1
    assert await service.visible(MEMBER_CB3, piece)
    tree.parents["CB3"] = "XA2"
    tree.merged["XA1"] = "XA2"  # XA1 merged into XA2: what targeted XA1 reaches XA2's branches
    assert await service.visible(MEMBER_CB3, piece)


async def test_a_member_reads_once_and_only_what_they_may_see(
    service: ContentService, store: InMemoryEventStore
) -> None:
    piece_id = await published(service, unit="XA1")
    _, first = await service.read(MEMBER_CB1, piece_id)
    _, second = await service.read(MEMBER_CB1, piece_id)
    assert (first, second) == (True, False)
    reads = [e for e in store.all_events() if e.event_type == "PieceRead"]
    assert len(reads) == 1
    assert reads[0].payload == {
        "piece_id": piece_id,
        "member_id": "m1",
        "unit_id": "XA1",
        "kind": "resolution",
        "branch_id": "CB1",
    }
    with pytest.raises(NotFound):
        await service.read(MEMBER_CB3, piece_id)
    with pytest.raises(Forbidden):
        await service.read(EDITOR_QNG, piece_id)  # no member behind the account


async def test_the_library_keeps_what_a_member_saved(service: ContentService) -> None:
    piece_id = await published(service)
    assert await service.save(MEMBER_CB1, piece_id)
    assert not await service.save(MEMBER_CB1, piece_id)
    assert await service.unsave(MEMBER_CB1, piece_id)
    assert not await service.unsave(MEMBER_CB1, piece_id)
    draft, _ = await service.draft(
        EDITOR_QNG, kind=PieceKind.news, unit_id="QNG", draft=Draft("Nháp")
    )
    with pytest.raises(NotFound):
        await service.save(MEMBER_CB1, draft.id)


async def test_scheduling_writes_the_schedule_row_and_the_scheduler_publishes_once(
    service: ContentService, store: InMemoryEventStore, clock: Clock
) -> None:
    piece, _ = await service.draft(
        EDITOR_QNG, kind=PieceKind.news, unit_id="QNG", draft=Draft("Tin")
    )
    await service.submit(EDITOR_QNG, piece.id)
    at = clock.now + timedelta(hours=1)
    assert (await service.approve(REVIEWER_QNG, piece.id, publish_at=at)).status == SCHEDULED
    assert store.rows[SCHEDULE][piece.id]["publish_at"] == at
    assert not await service.publish_due(piece.id)
    assert piece.id in store.rows[SCHEDULE]  # not due yet: kept for a later round
    clock.now = at
    assert await service.publish_due(piece.id)
    assert not await service.publish_due(piece.id)
    assert piece.id not in store.rows[SCHEDULE]
    assert (await service.piece(piece.id)).status == PUBLISHED


async def test_withdrawing_a_scheduled_piece_clears_its_schedule(
    service: ContentService, store: InMemoryEventStore, clock: Clock
) -> None:
    piece, _ = await service.draft(
        EDITOR_QNG, kind=PieceKind.news, unit_id="QNG", draft=Draft("Tin")
    )
    await service.submit(EDITOR_QNG, piece.id)
    await service.approve(REVIEWER_QNG, piece.id, publish_at=clock.now + timedelta(hours=1))
    await service.withdraw(REVIEWER_QNG, piece.id, "Hoãn")
    assert piece.id not in store.rows[SCHEDULE]
    clock.now += timedelta(hours=2)
    assert not await service.publish_due(piece.id)


async def test_replicas_racing_to_publish_a_scheduled_piece_publish_it_once(
    store: InMemoryEventStore, tree: DictTree, clock: Clock
) -> None:
    import asyncio

    first = ContentService(store, tree=tree, clock=clock)
    second = ContentService(store, tree=tree, clock=clock)
    piece, _ = await first.draft(EDITOR_QNG, kind=PieceKind.news, unit_id="QNG", draft=Draft("Tin"))
    await first.submit(EDITOR_QNG, piece.id)
    await first.approve(REVIEWER_QNG, piece.id, publish_at=clock.now + timedelta(minutes=5))
    clock.now += timedelta(minutes=5)
    results = await asyncio.gather(*(s.publish_due(piece.id) for s in [first, second] * 3))
    assert results.count(True) == 1
    assert [e.event_type for e in store.all_events()].count("PiecePublished") == 1
