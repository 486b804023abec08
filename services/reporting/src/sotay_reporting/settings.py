from __future__ import annotations

from pydantic import Field

from sotay_platform.settings import ServiceSettings


class ReportingSettings(ServiceSettings):
    service_name: str = "reporting"
    database: str = "sotay_reporting"
    # The day of the month the usage report is due (seed 004: the 25th). Figures are
    # bucketed around it: changing it takes a rebuild of the usage projection.
    report_day: int = Field(25, ge=1, le=28)
    # Days the report service's clock runs ahead of real time: 0 in every cluster; the web
    # front's browser tests set it so this month's report can be issued on units made today.
    report_clock_ahead_days: int = Field(0, ge=0, le=60)
    # Seconds a computed roll-up is served from memory (0: always fresh).
    cache_seconds: float = 5.0
    # Usage stream: publish every N seconds (0: only on request) for units of these levels.
    usage_publish_interval: float = 3600.0
    usage_levels: list[str] = Field(default_factory=lambda: ["central", "province", "commune"])
    # Units whose monthly report is issued automatically once the report day is over.
    auto_report_units: list[str] = Field(default_factory=list)
    auto_report_check_interval: float = 300.0
