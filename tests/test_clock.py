"""app.clock: the one "now" that metering and the dashboards read, and that tests move."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from app import clock as app_clock
from app.dashboard import rollups


def test_now_is_real_utc_time_when_no_clock_is_installed(ctx):
    before = datetime.now(timezone.utc)
    now = app_clock.now()
    assert now.tzinfo is not None and now.utcoffset() == timedelta(0)
    assert before <= now <= datetime.now(timezone.utc)


def test_now_and_the_dashboards_today_follow_the_installed_clock(ctx, clock):
    clock.at(datetime(2031, 12, 31, 23, 59, 59, tzinfo=timezone.utc))
    assert app_clock.now() == clock.now
    assert rollups.today().isoformat() == "2031-12-31"
    clock.advance(1)
    assert rollups.today().isoformat() == "2032-01-01"
