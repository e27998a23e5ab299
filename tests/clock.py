"""The one injectable clock for tests: `app.clock.now()`, the app's only clock, reads
`app.extensions["clock"]`, so time moves only when a test says so."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

_MISSING = object()


class Clock:
    """A settable clock: calling it returns `now`; `advance` moves it forward."""

    def __init__(self, start: datetime | None = None):
        # Whole seconds, so block edges are exact.
        self.now = start or datetime.now(timezone.utc).replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float = 0, **kw) -> datetime:
        self.now = self.now + timedelta(seconds=seconds, **kw)
        return self.now

    def at(self, moment: datetime) -> datetime:
        self.now = moment
        return moment


def install_clock(application, clock) -> object:
    """Put `clock` on `application`; returns what was there (or _MISSING) for restore_clock."""
    previous = application.extensions.get("clock", _MISSING)
    application.extensions["clock"] = clock
    return previous


def restore_clock(application, previous) -> None:
    if previous is _MISSING:
        application.extensions.pop("clock", None)
    else:
        application.extensions["clock"] = previous


@pytest.fixture()
def clock(app):
    """A Clock installed on the session app (also the live server's); always removed afterwards."""
    c = Clock()
    previous = install_clock(app, c)
    try:
        yield c
    finally:
        restore_clock(app, previous)
