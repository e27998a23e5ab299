"""The app's one clock: every reader of "now" in Python asks `now()`.

Tests move time by putting a callable in `app.extensions["clock"]` (the `clock`
fixture, tests/clock.py), so metering and the dashboards' "today" are tested in
milliseconds, never by sleeping. Timestamps the database writes itself
(`func.now()` defaults) do not follow it.
"""
from __future__ import annotations

from datetime import datetime, timezone

from flask import current_app


def now() -> datetime:
    """Now (UTC, aware): the app's injected clock if a test installed one. Needs an app context."""
    injected = current_app.extensions.get("clock")
    return injected() if injected else datetime.now(timezone.utc)
