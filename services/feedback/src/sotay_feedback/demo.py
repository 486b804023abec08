"""Demo data for `make run`: routing tables and a few submissions, through the handlers.

`load_demo(service)` is idempotent (fixed ids; a submission is answered or
forwarded only while it is open), so running it twice changes nothing. It
needs the demo tree (deploy/demo/org-tree.csv) in feedback's copy of the tree.
`python -m sotay_feedback.demo` runs it against the service's database while
the service runs: its relay publishes what the demo committed.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from pymongo import AsyncMongoClient

from sotay_events import MongoEventStore
from sotay_events.catalogue.feedback import FeedbackBody, FeedbackKind, FeedbackSubject
from sotay_feedback.handlers import FeedbackService
from sotay_feedback.settings import FeedbackSettings
from sotay_feedback.units import UnitDirectory
from sotay_platform.auth import Grant, Principal, Role

PROVINCE, COMMUNE = "QNG", "QNG.BSON"
BRANCHES = ("QNG.BSON.AH", "QNG.BSON.PT")


def _member(member_id: str, branch: str) -> Principal:
    return Principal(f"demo-{member_id}", (Grant(Role.member, branch),), member_id=member_id)


async def load_demo(service: FeedbackService) -> list[str]:
    """Sets QNG's and QNG.BSON's tables and sends four submissions; returns their ids."""
    province = Principal("demo-vp-qng", (Grant(Role.province_admin, PROVINCE),))
    commune = Principal("demo-vp-bson", (Grant(Role.committee_admin, COMMUNE),))
    await service.set_routing_table(
        province,
        PROVINCE,
        routes={FeedbackSubject.app: FeedbackBody.office},
        deadline_days={FeedbackKind.petition: 20},
        reminder_days=3,
    )
    await service.set_routing_table(
        commune,
        COMMUNE,
        routes={FeedbackSubject.branch_work: FeedbackBody.branch},
        deadline_days={FeedbackKind.question: 5},
        reminder_days=1,
    )
    an, binh = _member("demo-an", BRANCHES[0]), _member("demo-binh", BRANCHES[1])
    sent = [
        (
            an,
            "demo-feedback-0001",
            FeedbackKind.question,
            FeedbackSubject.organisation,
            "Thủ tục chuyển sinh hoạt đảng tạm thời",
            "Đảng viên đi làm ăn xa cần chuyển sinh hoạt đảng tạm thời thì làm thủ tục gì?",
        ),
        (
            binh,
            "demo-feedback-0002",
            FeedbackKind.proposal,
            FeedbackSubject.propaganda,
            "Đề xuất bản tin sinh hoạt chi bộ hằng tháng",
            "Đề nghị Ban Tuyên giáo gửi bản tin định hướng nội dung sinh hoạt chi bộ mỗi tháng.",
        ),
        (
            an,
            "demo-feedback-0003",
            FeedbackKind.report,
            FeedbackSubject.app,
            "Không nhận được thông báo mời họp",
            "Ứng dụng không báo thông báo mời họp trên điện thoại của tôi.",
        ),
        (
            binh,
            "demo-feedback-0004",
            FeedbackKind.petition,
            FeedbackSubject.inspection,
            "Kiến nghị làm rõ việc chấp hành Điều lệ",
            "Kiến nghị Ủy ban Kiểm tra xem xét việc chấp hành quy định sinh hoạt.",
        ),
    ]
    ids = []
    for who, feedback_id, kind, subject, title, text in sent:
        feedback, _ = await service.submit(
            who,
            kind=kind,
            subject=subject,
            addressed_to="committee",
            title=title,
            text=text,
            feedback_id=feedback_id,
        )
        ids.append(feedback.id)
    first = await service.load(service.store.unit_of_work(), ids[0])
    if first.feedback.is_open:
        await service.answer(
            commune,
            ids[0],
            visibility="public",
            question="Thủ tục chuyển sinh hoạt đảng tạm thời khi đi làm ăn xa?",
            text="Đảng viên làm đơn gửi chi bộ; chi ủy giới thiệu sinh hoạt tạm thời tới "
            "tổ chức đảng nơi đến theo Hướng dẫn 06-HD/TW.",
        )
    third = await service.load(service.store.unit_of_work(), ids[2])
    if third.feedback.is_open and third.feedback.current.unit_id == COMMUNE:
        await service.forward(
            commune,
            ids[2],
            to_body=None,
            up=True,
            reason="Lỗi ứng dụng: chuyển Văn phòng Tỉnh ủy theo dõi với đơn vị kỹ thuật",
        )
    return ids


async def _main() -> int:
    settings = FeedbackSettings()
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongo_url, tz_aware=True)
    try:
        units = UnitDirectory(client[settings.database])
        for _ in range(120):  # the demo tree reaches feedback through Kafka
            if all([await units.resolve(b) for b in BRANCHES]):
                break
            await asyncio.sleep(0.5)
        else:
            print("cây tổ chức mẫu chưa có trong feedback", file=sys.stderr)
            return 1
        store = MongoEventStore(client, settings.database)
        ids = await load_demo(FeedbackService(store, units=units))
        print(f"góp ý mẫu: {len(ids)} ý kiến, 2 bảng phân công")
        return 0
    finally:
        await client.close()


if __name__ == "__main__":
    sys.exit(asyncio.run(_main()))
