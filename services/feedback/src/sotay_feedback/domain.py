"""Feedback's rules, without I/O: routing tables, who answers, and a submission's life.

A submission goes to the member's branch, or to the committee that manages the
branch directly; there the committee's routing table names the body that
answers its subject. Each hop (routed, forwarded, escalated, reopened) gives
the holder a deadline in working days, set per kind by the committee the body
belongs to (the nearest table up the tree, else the defaults below).

Life: received → assigned → answered → closed; withdrawn by the member before
an answer. "Not resolved" reopens it once at the same body, then sends it to
the superior committee. A deadline passed unanswered escalates it there too.
Times are aware datetimes in UTC, always passed in.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from sotay_events import Aggregate, DomainEvent
from sotay_events.catalogue.feedback import (
    FeedbackAnswered,
    FeedbackAssigned,
    FeedbackBody,
    FeedbackClosed,
    FeedbackEscalated,
    FeedbackForwarded,
    FeedbackInformationAdded,
    FeedbackKind,
    FeedbackReminded,
    FeedbackReopened,
    FeedbackRouted,
    FeedbackSubject,
    FeedbackSubmitted,
    FeedbackWithdrawn,
    QaEntryPublished,
    RoutingTableSet,
)
from sotay_feedback.calendar import deadline_after
from sotay_platform.errors import ServiceError

KIND_LABELS = {
    FeedbackKind.comment: "Góp ý",
    FeedbackKind.report: "Phản ánh",
    FeedbackKind.proposal: "Đề xuất",
    FeedbackKind.petition: "Kiến nghị",
    FeedbackKind.question: "Hỏi đáp",
}
SUBJECT_LABELS = {
    FeedbackSubject.organisation: "Tổ chức, đảng viên",
    FeedbackSubject.propaganda: "Tư tưởng, tuyên truyền",
    FeedbackSubject.inspection: "Kiểm tra, kỷ luật",
    FeedbackSubject.branch_work: "Công tác của chi bộ",
    FeedbackSubject.app: "Sử dụng ứng dụng",
    FeedbackSubject.other: "Nội dung khác",
}
BODY_LABELS = {
    FeedbackBody.organisation_department: "Ban Tổ chức",
    FeedbackBody.propaganda_department: "Ban Tuyên giáo",
    FeedbackBody.inspection_committee: "Ủy ban Kiểm tra",
    FeedbackBody.office: "Văn phòng",
    FeedbackBody.branch: "Chi bộ",
}

RECEIVED, ASSIGNED, ANSWERED, CLOSED, WITHDRAWN = (
    "received",
    "assigned",
    "answered",
    "closed",
    "withdrawn",
)
STATE_LABELS = {
    RECEIVED: "Đã tiếp nhận",
    ASSIGNED: "Đã phân công",
    ANSWERED: "Đã trả lời",
    CLOSED: "Đã kết thúc",
    WITHDRAWN: "Đã rút lại",
}
OPEN = frozenset({RECEIVED, ASSIGNED})
MAX_DEADLINE_DAYS = 90
MAX_REOPENS = 1

Visibility = Literal["private", "public"]


class FeedbackError(ServiceError):
    """A command the rules refuse (422); `field` names the input at fault."""

    status_code = 422
    code = "rule_broken"


class WrongState(FeedbackError):
    """Not possible in the submission's present state (409)."""

    status_code = 409
    code = "wrong_state"


# Routing tables.


@dataclass(frozen=True)
class Rules:
    routes: Mapping[FeedbackSubject, FeedbackBody]
    deadline_days: Mapping[FeedbackKind, int]
    reminder_days: int

    def deadline(self, kind: FeedbackKind, received_at: datetime) -> tuple[datetime, datetime]:
        return deadline_after(received_at, self.deadline_days[kind], self.reminder_days)


DEFAULT_RULES = Rules(
    routes={
        FeedbackSubject.organisation: FeedbackBody.organisation_department,
        FeedbackSubject.propaganda: FeedbackBody.propaganda_department,
        FeedbackSubject.inspection: FeedbackBody.inspection_committee,
        FeedbackSubject.branch_work: FeedbackBody.branch,
        FeedbackSubject.app: FeedbackBody.office,
        FeedbackSubject.other: FeedbackBody.office,
    },
    deadline_days={
        FeedbackKind.comment: 10,
        FeedbackKind.report: 10,
        FeedbackKind.proposal: 15,
        FeedbackKind.petition: 15,
        FeedbackKind.question: 7,
    },
    reminder_days=2,
)


class RoutingTable(Aggregate):
    """One committee's table; its id is the committee's unit id."""

    aggregate_type = "RoutingTable"

    def __init__(self, aggregate_id: str) -> None:
        super().__init__(aggregate_id)
        self.rules: Rules | None = None

    def apply(self, event: DomainEvent) -> None:
        if isinstance(event, RoutingTableSet):
            self.rules = Rules(dict(event.routes), dict(event.deadline_days), event.reminder_days)

    def set(
        self,
        *,
        routes: Mapping[FeedbackSubject, FeedbackBody],
        deadline_days: Mapping[FeedbackKind, int],
        reminder_days: int,
        set_by: str,
    ) -> bool:
        """What is not given keeps its present value (or the default); False if nothing changed."""
        base = self.rules or DEFAULT_RULES
        merged_days = {**base.deadline_days, **deadline_days}
        for kind, days in merged_days.items():
            if not 1 <= days <= MAX_DEADLINE_DAYS:
                raise FeedbackError(
                    f"Thời hạn trả lời ({KIND_LABELS[kind]}) phải từ 1 đến "
                    f"{MAX_DEADLINE_DAYS} ngày làm việc",
                    field=f"deadline_days.{kind.value}",
                )
        if not 0 <= reminder_days < min(merged_days.values()):
            raise FeedbackError(
                "Số ngày nhắc trước hạn phải nhỏ hơn thời hạn trả lời ngắn nhất",
                field="reminder_days",
            )
        rules = Rules({**base.routes, **routes}, merged_days, reminder_days)
        if rules == self.rules:
            return False
        self.record(
            RoutingTableSet(
                unit_id=self.id,
                routes=dict(rules.routes),
                deadline_days=dict(rules.deadline_days),
                reminder_days=rules.reminder_days,
                set_by=set_by,
            )
        )
        return True


def nearest_rules(committee_path: Sequence[str], tables: Mapping[str, Rules]) -> Rules | None:
    """The table of the committee at the end of `committee_path`, else of the nearest above it."""
    for unit_id in reversed(committee_path):
        if unit_id in tables:
            return tables[unit_id]
    return None


def rules_for(committee_path: Sequence[str], tables: Mapping[str, Rules]) -> Rules:
    return nearest_rules(committee_path, tables) or DEFAULT_RULES


@dataclass(frozen=True)
class Holder:
    """A body that holds a submission: the unit it belongs to (with its path) and which body."""

    path: tuple[str, ...]  # root .. unit
    body: FeedbackBody

    @property
    def unit_id(self) -> str:
        return self.path[-1]

    @property
    def committee_path(self) -> tuple[str, ...]:
        """The committee whose table sets this holder's deadlines: a branch's is its manager's."""
        return self.path[:-1] if self.body is FeedbackBody.branch else self.path


def first_holder(
    addressed_to: Literal["branch", "committee"],
    subject: FeedbackSubject,
    branch_path: Sequence[str],
    tables: Mapping[str, Rules],
) -> tuple[Holder, Literal["routing_table", "default", "addressed"]]:
    branch = tuple(branch_path)
    if addressed_to == "branch":
        return Holder(branch, FeedbackBody.branch), "addressed"
    if len(branch) < 2:
        raise FeedbackError("Chi bộ không có cấp ủy quản lý trực tiếp", field="addressed_to")
    committee = branch[:-1]
    found = nearest_rules(committee, tables)
    body = (found or DEFAULT_RULES).routes[subject]
    routed_by: Literal["routing_table", "default"] = "routing_table" if found else "default"
    if body is FeedbackBody.branch:
        return Holder(branch, body), routed_by
    return Holder(committee, body), routed_by


def superior_of(
    holder: Holder, subject: FeedbackSubject, tables: Mapping[str, Rules]
) -> Holder | None:
    """Where it goes up a level: the unit above the holder's, by that committee's table."""
    above = holder.path[:-1]
    if not above:
        return None
    body = rules_for(above, tables).routes[subject]
    # Sent up, it stays up: a superior never hands it back to a branch this way.
    return Holder(above, FeedbackBody.office if body is FeedbackBody.branch else body)


def forward_target(
    holder: Holder,
    branch_path: Sequence[str],
    to_body: FeedbackBody | None,
    up: bool,
    subject: FeedbackSubject,
    tables: Mapping[str, Rules],
) -> Holder:
    if up:
        above = superior_of(holder, subject, tables)
        if above is None:
            raise FeedbackError("Không có cấp trên để chuyển lên", field="up")
        if to_body is None:
            return above
        if to_body is FeedbackBody.branch:
            raise FeedbackError("Cấp trên không có bộ phận «Chi bộ»", field="to_body")
        return Holder(above.path, to_body)
    if to_body is None:
        raise FeedbackError("Cần chọn bộ phận nhận chuyển", field="to_body")
    if to_body is FeedbackBody.branch:
        target = Holder(tuple(branch_path), to_body)
    elif holder.body is FeedbackBody.branch:
        target = Holder(holder.path[:-1], to_body)  # from the branch to its committee's body
    else:
        target = Holder(holder.path, to_body)
    if target == holder:
        raise FeedbackError("Không thể chuyển cho chính bộ phận đang xử lý", field="to_body")
    return target


# A submission.


@dataclass
class Hop:
    unit_id: str
    body: FeedbackBody
    number: int
    received_at: datetime
    deadline: datetime
    remind_at: datetime
    reminded: bool = False


@dataclass
class Answer:
    visibility: Visibility
    answered_at: datetime
    on_time: bool


class Feedback(Aggregate):
    aggregate_type = "Feedback"

    def __init__(self, aggregate_id: str) -> None:
        super().__init__(aggregate_id)
        self.kind = FeedbackKind.comment
        self.subject = FeedbackSubject.other
        self.branch_id = ""
        self.addressed_to: Literal["branch", "committee"] = "branch"
        self.to_unit_id = ""
        self.submitted_at = datetime.min
        self.public_allowed = True
        self.attachments = 0  # files the member attached, as added information
        self.state = RECEIVED
        self.hop: Hop | None = None
        self.hops: list[tuple[str, FeedbackBody]] = []  # every (unit, body) that held it
        self.assignee: str | None = None
        self.answer: Answer | None = None
        self.reopens = 0
        self.additions = 0
        self.escalations: list[str] = []

    # State: events are facts, no rules here.

    def apply(self, event: DomainEvent) -> None:
        match event:
            case FeedbackSubmitted():
                self.kind, self.subject, self.branch_id = event.kind, event.subject, event.branch_id
                self.addressed_to, self.to_unit_id = event.addressed_to, event.to_unit_id
                self.submitted_at, self.public_allowed = event.submitted_at, event.public_allowed
            case FeedbackRouted() | FeedbackForwarded() | FeedbackEscalated() | FeedbackReopened():
                self._take(event)
                if isinstance(event, FeedbackEscalated):
                    self.escalations.append(event.reason)
                if isinstance(event, FeedbackReopened):
                    self.reopens += 1
            case FeedbackAssigned():
                self.state, self.assignee = ASSIGNED, event.assignee
            case FeedbackReminded():
                if self.hop is not None:
                    self.hop.reminded = True
            case FeedbackInformationAdded():
                self.additions = event.additions
                self.attachments += event.attachments
            case FeedbackAnswered():
                self.state = ANSWERED
                self.answer = Answer(event.visibility, event.answered_at, event.on_time)
            case FeedbackClosed():
                self.state = CLOSED
            case FeedbackWithdrawn():
                self.state = WITHDRAWN

    def _take(
        self, event: FeedbackRouted | FeedbackForwarded | FeedbackEscalated | FeedbackReopened
    ) -> None:
        self.hop = Hop(
            event.unit_id, event.body, event.hop, event.received_at, event.deadline, event.remind_at
        )
        self.hops.append((event.unit_id, event.body))
        self.state = RECEIVED
        self.assignee = None
        self.answer = None

    # Reading.

    @property
    def current(self) -> Hop:
        """Who holds it now; the unit as recorded (handlers resolve moves and merges)."""
        if self.hop is None:
            raise WrongState("Góp ý chưa được chuyển tới bộ phận xử lý", field="feedback_id")
        return self.hop

    @property
    def is_open(self) -> bool:
        return self.state in OPEN

    def overdue(self, now: datetime) -> bool:
        return self.is_open and self.hop is not None and now >= self.hop.deadline

    def reminder_due(self, now: datetime) -> bool:
        hop = self.hop
        return (
            self.is_open
            and hop is not None
            and not hop.reminded
            and hop.remind_at <= now < hop.deadline
        )

    @property
    def can_reopen(self) -> bool:
        return self.reopens < MAX_REOPENS

    # Commands.

    @classmethod
    def submit(
        cls,
        feedback_id: str,
        *,
        kind: FeedbackKind,
        subject: FeedbackSubject,
        branch_id: str,
        addressed_to: Literal["branch", "committee"],
        to_unit_id: str,
        public_allowed: bool,
        now: datetime,
    ) -> Feedback:
        feedback = cls(feedback_id)
        feedback.record(
            FeedbackSubmitted(
                feedback_id=feedback_id,
                branch_id=branch_id,
                kind=kind,
                subject=subject,
                addressed_to=addressed_to,
                to_unit_id=to_unit_id,
                submitted_at=now,
                public_allowed=public_allowed,
            )
        )
        return feedback

    def _where(self) -> dict[str, Any]:
        """What every event about the feedback where it now stands carries."""
        holder = self.current
        return {
            "feedback_id": self.id,
            "branch_id": self.branch_id,
            "kind": self.kind,
            "unit_id": holder.unit_id,
            "body": holder.body,
        }

    def _hop_fields(
        self, unit_id: str, body: FeedbackBody, rules: Rules, now: datetime
    ) -> dict[str, Any]:
        deadline, remind_at = rules.deadline(self.kind, now)
        return {
            "feedback_id": self.id,
            "branch_id": self.branch_id,
            "kind": self.kind,
            "unit_id": unit_id,
            "body": body,
            "hop": (self.hop.number if self.hop else 0) + 1,
            "received_at": now,
            "deadline": deadline,
            "remind_at": remind_at,
        }

    def route(
        self,
        holder: Holder,
        routed_by: Literal["routing_table", "default", "addressed"],
        rules: Rules,
        now: datetime,
    ) -> None:
        if self.hop is not None:
            raise WrongState("Góp ý đã được chuyển tới bộ phận xử lý", field="feedback_id")
        fields = self._hop_fields(holder.unit_id, holder.body, rules, now)
        self.record(FeedbackRouted(**fields, routed_by=routed_by))

    def _require_open(self, action: str) -> None:
        if not self.is_open:
            raise WrongState(
                f"Không thể {action}: góp ý đang ở trạng thái «{STATE_LABELS[self.state]}»",
                field="feedback_id",
            )

    def forward(
        self, target: Holder, rules: Rules, *, reason: str, up: bool, by: str, now: datetime
    ) -> None:
        self._require_open("chuyển")
        reason = " ".join(reason.split())
        if not reason:
            raise FeedbackError("Cần nêu lý do chuyển", field="reason")
        current = self.current
        self.record(
            FeedbackForwarded(
                **self._hop_fields(target.unit_id, target.body, rules, now),
                from_unit_id=current.unit_id,
                from_body=current.body,
                up=up,
                reason=reason,
                forwarded_by=by,
            )
        )

    def assign(self, assignee: str, *, by: str, now: datetime) -> bool:
        self._require_open("phân công")
        if self.assignee == assignee:
            return False
        self.record(
            FeedbackAssigned(
                **self._where(),
                assignee=assignee,
                assigned_by=by,
                assigned_at=now,
            )
        )
        return True

    def answer_it(
        self,
        visibility: Visibility,
        *,
        by: str,
        now: datetime,
        question: str = "",
        answer: str = "",
    ) -> FeedbackAnswered:
        """Answers; a public answer also publishes the anonymised entry in the holder's Q&A."""
        self._require_open("trả lời")
        if visibility == "public":
            if not self.public_allowed:
                raise FeedbackError(
                    "Đảng viên không đồng ý công khai nội dung này: chỉ trả lời riêng",
                    field="visibility",
                )
            if not question.strip() or not answer.strip():
                raise FeedbackError(
                    "Trả lời công khai cần nội dung câu hỏi (đã ẩn danh) và câu trả lời",
                    field="question" if not question.strip() else "text",
                )
        hop = self.current
        answered = FeedbackAnswered(
            feedback_id=self.id,
            branch_id=self.branch_id,
            kind=self.kind,
            subject=self.subject,
            unit_id=hop.unit_id,
            body=hop.body,
            visibility=visibility,
            submitted_at=self.submitted_at,
            received_at=hop.received_at,
            answered_at=now,
            deadline=hop.deadline,
            on_time=now <= hop.deadline,
            answered_by=by,
        )
        self.record(answered)
        if visibility == "public":
            self.record(
                QaEntryPublished(
                    feedback_id=self.id,
                    branch_id=self.branch_id,
                    kind=self.kind,
                    subject=self.subject,
                    unit_id=hop.unit_id,
                    body=hop.body,
                    question=question.strip(),
                    answer=answer.strip(),
                    published_at=now,
                )
            )
        return answered

    def close(self, closed_by: Literal["member", "body"], now: datetime) -> bool:
        if self.state == CLOSED:
            return False
        if self.state != ANSWERED:
            raise WrongState("Chỉ kết thúc được góp ý đã được trả lời", field="feedback_id")
        self.record(
            FeedbackClosed(
                **self._where(),
                closed_at=now,
                closed_by=closed_by,
            )
        )
        return True

    def add_information(self, now: datetime, attachments: int = 0) -> None:
        """More text, or files (`attachments` of them), from the member while it is open."""
        self._require_open("bổ sung thông tin")
        self.record(
            FeedbackInformationAdded(
                **self._where(),
                added_at=now,
                additions=self.additions + 1,
                attachments=attachments,
            )
        )

    def withdraw(self, now: datetime) -> bool:
        if self.state == WITHDRAWN:
            return False
        self._require_open("rút lại")
        self.record(
            FeedbackWithdrawn(
                **self._where(),
                withdrawn_at=now,
            )
        )
        return True

    def reopen(self, rules: Rules, now: datetime) -> None:
        """The answer did not resolve it: the same body again, once."""
        if self.state != ANSWERED:
            raise WrongState("Chỉ phản hồi được góp ý đã được trả lời", field="feedback_id")
        if not self.can_reopen:
            raise WrongState("Góp ý đã được mở lại một lần", field="feedback_id")
        hop = self.current
        self.record(FeedbackReopened(**self._hop_fields(hop.unit_id, hop.body, rules, now)))

    def escalate(
        self,
        target: Holder,
        rules: Rules,
        reason: Literal["overdue", "not_resolved"],
        now: datetime,
    ) -> None:
        if reason == "overdue" and not self.overdue(now):
            raise WrongState("Góp ý chưa quá hạn", field="feedback_id")
        if reason == "not_resolved" and self.state != ANSWERED:
            raise WrongState("Chỉ phản hồi được góp ý đã được trả lời", field="feedback_id")
        current = self.current
        self.record(
            FeedbackEscalated(
                **self._hop_fields(target.unit_id, target.body, rules, now),
                from_unit_id=current.unit_id,
                from_body=current.body,
                reason=reason,
                missed_deadline=current.deadline if reason == "overdue" else None,
            )
        )

    def remind(self, now: datetime) -> bool:
        if not self.reminder_due(now):
            return False
        hop = self.current
        self.record(
            FeedbackReminded(
                **self._where(),
                hop=hop.number,
                deadline=hop.deadline,
                reminded_at=now,
            )
        )
        return True


@dataclass(frozen=True)
class Unit:
    """A unit as the tree stands now (a merged unit resolved to its successor)."""

    id: str
    path: tuple[str, ...]
    level: str
    absorbed: tuple[str, ...] = field(default=())
