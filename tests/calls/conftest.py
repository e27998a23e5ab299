"""Fixtures for the pay-per-minute call tests: an injectable clock and call factories.

Real PostgreSQL and Redis; time is the only thing faked, through the app's own
hook (`app.extensions["clock"]`, read by app.clock.now), so no test
ever sleeps through a 30-second block.
"""
from __future__ import annotations

from types import SimpleNamespace

import pytest
from sqlalchemy import text

from app.calls import service
from app.extensions import db



def _close_open_calls(application) -> None:
    """End every call left open, so no test's meter() bills another test's calls."""
    with application.app_context():
        db.session.execute(text(
            "UPDATE calls SET status = CASE WHEN status = 'requested' THEN 'expired' ELSE 'ended' END, "
            "end_reason = CASE WHEN status = 'requested' THEN NULL ELSE 'ended_by_fan' END, "
            "active_since = NULL, paused_by = NULL, ended_at = coalesce(ended_at, now()) "
            "WHERE status IN ('requested', 'active', 'paused')"))
        db.session.commit()
        db.session.remove()


@pytest.fixture()
def no_open_calls(app):
    """Tests that meter assert exact totals: start and finish with no open call anywhere."""
    _close_open_calls(app)
    yield
    _close_open_calls(app)


@pytest.fixture()
def make_call(ctx, make_fan, make_creator):
    """make_call(rate=60, balance=1000, present=True, accept=True) → (fan, creator, call_id).

    The creator opens calls at `rate`; a fresh fan funded with `balance` requests one;
    with `present` both call pages report presence before the creator accepts (so
    billing runs continuously); with `accept` the creator accepts at the current clock.
    """
    def _make(rate=60, balance=1000, present=True, accept=True):
        creator = make_creator()
        service.update_settings(creator, rate, True)
        fan = make_fan(balance=balance)
        call_id = service.init_call(fan, creator.id).id
        if present:
            service.presence_changed(call_id, "fan", True)
            service.presence_changed(call_id, "creator", True)
        if accept:
            service.accept(creator, call_id)
        return fan, creator, call_id
    return _make


def close_calls_of(user_ids: list[int]) -> None:
    """End these users' open calls, so no later test's meter bills them."""
    db.session.rollback()
    db.session.execute(text(
        "UPDATE calls SET status = CASE WHEN status = 'requested' THEN 'expired' ELSE 'ended' END, "
        "end_reason = CASE WHEN status = 'requested' THEN NULL ELSE 'ended_by_fan' END, "
        "active_since = NULL, paused_by = NULL, ended_at = coalesce(ended_at, now()) "
        "WHERE status IN ('requested', 'active', 'paused') AND (fan_id = ANY(:ids) OR creator_id = ANY(:ids))"),
        {"ids": user_ids})
    db.session.commit()


@pytest.fixture()
def call_scene(ctx, make_fan, make_creator):
    """call_scene(rate=60, balance=1000, accept=False) → fan, creator (taking calls at
    `rate`) and, unless rate is None, a call the fan requested (accepted if asked)."""
    made = []

    def _make(rate=60, balance=1000, request=True, accept=False, present=False):
        creator = make_creator(name="Call Host")
        fan = make_fan(balance=balance, name="Caller")
        made.extend([fan.id, creator.id])
        service.update_settings(creator, rate, True)
        call_id = None
        if request:
            call_id = service.init_call(fan, creator.id, rate).id
            if present:
                service.presence_changed(call_id, "fan", True)
                service.presence_changed(call_id, "creator", True)
            if accept:
                service.accept(creator, call_id)
        return SimpleNamespace(fan=fan, creator=creator, call_id=call_id)
    yield _make
    if made:
        close_calls_of(made)
