"""Facts published by reporting: the aggregate usage stream for the central office.

No personal data: figures per org unit and period only. Counts of members,
never a member's id, name or anything that points at one person.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from sotay_events import topics
from sotay_events.catalogue.base import DomainEvent, register


class UsageFigures(BaseModel):
    """The figures of one unit and its whole subtree, at one moment.

    A rate whose denominator is 0 is 0 here: `invited` 0 means no meeting was held
    ("Chưa họp"), not 0% attendance; `members_in_scope` or `branches` 0 means nothing
    to measure (and `meets_targets` is false).
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    members_on_list: int = Field(0, ge=0, description="đảng viên trong danh sách")
    members_in_scope: int = Field(
        0, ge=0, description="đảng viên đang sinh hoạt (không kể được miễn)"
    )
    registered: int = Field(0, ge=0, description="đã đăng ký tài khoản (đang sinh hoạt)")
    approved: int = Field(0, ge=0, description="đã được duyệt (đang sinh hoạt)")
    pending_approval: int = Field(0, ge=0, description="chờ duyệt đăng ký")
    active_7d: int = Field(0, ge=0, description="đăng nhập trong 7 ngày")
    active_30d: int = Field(0, ge=0, description="đăng nhập trong 30 ngày")
    active_in_month: int = Field(0, ge=0, description="đăng nhập ít nhất một lần trong tháng")
    branches: int = Field(0, ge=0, description="chi bộ đang hoạt động")
    branches_met: int = Field(
        0, ge=0, description="chi bộ đã sinh hoạt thường kỳ trên ứng dụng trong tháng"
    )
    meetings_held: int = Field(0, ge=0, description="cuộc họp đã kết thúc trên ứng dụng")
    invited: int = Field(0, ge=0)
    present: int = Field(0, ge=0)
    excused: int = Field(0, ge=0)
    absent_without_leave: int = Field(0, ge=0)
    study_started: int = Field(0, ge=0, description="lượt bắt đầu học tập nghị quyết")
    study_completed: int = Field(0, ge=0, description="lượt hoàn thành học tập nghị quyết")
    quiz_takers: int = Field(0, ge=0)
    quiz_passed: int = Field(0, ge=0)
    registered_rate: float = Field(0, ge=0, description="đã đăng ký / đang sinh hoạt, %")
    active_30d_rate: float = Field(0, ge=0, description="đăng nhập 30 ngày / đang sinh hoạt, %")
    branches_met_rate: float = Field(0, ge=0, description="chi bộ sinh hoạt trên ứng dụng, %")
    attendance_rate: float = Field(0, ge=0, description="có mặt / được mời, %")
    excused_rate: float = Field(0, ge=0, description="vắng có phép / được mời, %")
    unexcused_rate: float = Field(0, ge=0, description="vắng không phép / được mời, %")
    meets_targets: bool = Field(
        False,
        description="đạt cả ba mục tiêu 100% (đăng ký, sử dụng, chi bộ sinh hoạt); "
        "không bao giờ đạt khi không có gì để đo (0 đảng viên, 0 chi bộ)",
    )
    documents_published: int = Field(0, ge=0, description="tin, văn bản đã đăng trong tháng")
    feedback_received: int = Field(0, ge=0, description="góp ý, phản ánh nhận trong tháng")
    feedback_answered: int = Field(0, ge=0, description="góp ý đã trả lời trong tháng")
    feedback_answered_on_time: int = Field(0, ge=0, description="trả lời đúng hạn")
    feedback_overdue: int = Field(0, ge=0, description="góp ý quá hạn trả lời (theo hạn)")
    feedback_median_days: float | None = Field(
        None, ge=0, description="số ngày trả lời (trung vị) của góp ý trả lời trong tháng"
    )


@register
class UsageFiguresPublished(DomainEvent):
    """One unit's aggregate usage figures for one period, on the central usage stream.

    Keyed by unit id. A later message for the same unit and period supersedes
    an earlier one (compare `as_of`).
    """

    event_type = "UsageFiguresPublished"
    aggregate_type = "UsageFigures"
    topic = topics.USAGE_STREAM

    unit_id: str
    unit_name: str
    level: str = Field(description="OrgLevel of the unit")
    path: list[str] = Field(description="unit ids from the root down to this unit")
    period: str = Field(
        description="the calendar month, YYYY-MM", pattern=r"^\d{4}-\d{2}$", examples=["2026-11"]
    )
    period_kind: Literal["month_to_date", "monthly_report"] = "month_to_date"
    as_of: datetime = Field(description="the moment the figures describe (UTC)")
    figures: UsageFigures


class ReportRow(BaseModel):
    """One line of the per-unit table of a monthly report."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    unit_id: str
    unit_name: str
    level: str
    figures: UsageFigures


@register
class MonthlyReportIssued(DomainEvent):
    """A unit's monthly usage report as of the report day, frozen when issued."""

    event_type = "MonthlyReportIssued"
    aggregate_type = "MonthlyReport"
    topic = topics.REPORTING

    report_id: str = Field(description="<unit id>:<YYYY-MM>")
    unit_id: str
    unit_name: str
    level: str
    month: str = Field(pattern=r"^\d{4}-\d{2}$", examples=["2026-11"])
    as_of: datetime = Field(description="end of the report day, Asia/Ho_Chi_Minh, stored in UTC")
    report_day: date
    issued_at: datetime
    issued_by: str
    issued_as: str | None = Field(
        None,
        description="system_admin when the central office's system admin issued it on "
        "behalf of the unit's committee",
    )
    figures: UsageFigures
    rows: list[ReportRow] = Field(default_factory=list)
