"""Pure shaping of what the services answer into what a page shows. No I/O."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

VN = ZoneInfo("Asia/Ho_Chi_Minh")

ROLE_LABELS = {
    "member": "Đảng viên",
    "branch_committee_member": "Chi ủy viên",
    "branch_secretary": "Bí thư chi bộ",
    "committee_admin": "Quản trị cấp ủy",
    "province_admin": "Quản trị tỉnh",
    "editor": "Biên tập viên",
    "central_office": "Văn phòng Trung ương",
    "system_admin": "Quản trị hệ thống",
}

MEETING_STATUS = {
    "convened": "Đã triệu tập",
    "cancelled": "Đã hủy",
    "closed": "Đã kết thúc",
}

ABSENCE_STATUS = {
    "pending": "Chờ duyệt",
    "approved": "Đã được duyệt",
    "declined": "Không được duyệt",
}

REFLECTION_STATUS = {
    "submitted": "Đã nộp, chờ nhận xét",
    "approved": "Đạt",
    "needs_revision": "Chưa đạt, cần nộp lại",
}

MATERIAL_KINDS = {
    "text": "Bài đọc",
    "attachment": "Tài liệu đính kèm",
    "link": "Liên kết",
    "video": "Video",
}

CAMPAIGN_STATUS = {"open": "Đang học", "expired": "Đã hết hạn", "closed": "Đã đóng"}

# A registration's field whose value another member already holds (identity's `conflicts`).
CONFLICT_LABELS = {
    "phone": "số điện thoại",
    "citizen_id": "số định danh cá nhân",
    "party_card_no": "số thẻ đảng viên",
}

LEVEL_LABELS = {
    "central": "Trung ương",
    "province": "Đảng bộ tỉnh, thành phố",
    "commune": "Đảng bộ xã, phường, đặc khu",
    "grassroots_committee": "Đảng bộ cơ sở",
    "grassroots_branch": "Chi bộ cơ sở",
    "partial_committee": "Đảng bộ bộ phận",
    "branch": "Chi bộ trực thuộc",
}


def parse_time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str) and value:
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    else:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def vn_date(value: Any) -> str:
    moment = parse_time(value)
    return moment.astimezone(VN).strftime("%d/%m/%Y") if moment else ""


def vn_datetime(value: Any) -> str:
    moment = parse_time(value)
    return moment.astimezone(VN).strftime("%H:%M %d/%m/%Y") if moment else ""


def score(value: Any) -> str:
    if value is None:
        return "—"
    number = float(value)
    return f"{number:.0f}" if number.is_integer() else f"{number:.1f}".replace(".", ",")


def percent(value: Any) -> str:
    if value is None:
        return "—"
    return f"{float(value):.1f}".replace(".", ",") + "%"


def upcoming(invitations: Iterable[Mapping[str, Any]], now: datetime) -> list[Mapping[str, Any]]:
    """Invitations still to attend: not cancelled, not closed, not over; soonest first."""
    found = []
    for inv in invitations:
        ends = parse_time(inv.get("ends_at"))
        if inv.get("meeting_status") in ("cancelled", "closed") or (ends and ends < now):
            continue
        found.append(inv)
    return sorted(found, key=lambda i: parse_time(i.get("starts_at")) or now)


def checkin_open(meeting: Mapping[str, Any], now: datetime, minutes: int = 30) -> bool:
    """Whether to offer the check-in form: the meetings service's default window (from 30
    minutes before the start to 30 after the end). Only a display choice: the service decides."""
    starts, ends = parse_time(meeting.get("starts_at")), parse_time(meeting.get("ends_at"))
    if not starts or not ends or meeting.get("status", "convened") != "convened":
        return False
    slack = timedelta(minutes=minutes)
    return starts - slack <= now <= ends + slack


def campaigns_due(campaigns: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Open campaigns the member has not finished, the nearest deadline first."""
    due = [
        c
        for c in campaigns
        if c.get("status") == "open" and not (c.get("progress") or {}).get("studied")
    ]
    return sorted(due, key=lambda c: str(c.get("deadline") or ""))


def quiz_answers(form: Any) -> list[dict[str, Any]]:
    """The form's choices as learning's answers. The paper's question ids come back as the
    `question` fields, each question's chosen option ids as `q-<question_id>` (a multi-dict);
    learning checks that both are on the paper."""
    answers = []
    for qid in dict.fromkeys(form.getlist("question")):
        answers.append(
            {"question_id": str(qid), "option_ids": [str(o) for o in form.getlist(f"q-{qid}")]}
        )
    return answers


def role_label(grant: Mapping[str, str]) -> str:
    return f"{ROLE_LABELS.get(grant['role'], grant['role'])} — {grant['unit']}"


FILTERS = {
    "vn_date": vn_date,
    "vn_datetime": vn_datetime,
    "score": score,
    "percent": percent,
}
GLOBALS = {
    "ROLE_LABELS": ROLE_LABELS,
    "MEETING_STATUS": MEETING_STATUS,
    "ABSENCE_STATUS": ABSENCE_STATUS,
    "REFLECTION_STATUS": REFLECTION_STATUS,
    "MATERIAL_KINDS": MATERIAL_KINDS,
    "CAMPAIGN_STATUS": CAMPAIGN_STATUS,
    "CONFLICT_LABELS": CONFLICT_LABELS,
    "LEVEL_LABELS": LEVEL_LABELS,
    "role_label": role_label,
}
