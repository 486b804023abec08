"""Reporting for the browser tests, its report clock 28 days ahead.

A monthly report is issued once its report day (the 25th) is over, for the units that
existed that day; the tests create their units today. Twenty-eight days on is past the
25th of this month whatever today is, so this month's report can be issued and
downloaded. Only the report service's clock moves: figures and dashboards keep real time.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi import FastAPI

from sotay_reporting.main import create_app as reporting_app

AHEAD = timedelta(days=28)


def create_app() -> FastAPI:
    app = reporting_app()
    app.state.reports.clock = lambda: datetime.now(UTC) + AHEAD
    return app
