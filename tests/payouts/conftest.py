"""Fixtures for the payout tests: creators with earnings (earned through real tips),
a payout account, time moved past the hold with the app's clock, and the
Stripe-provider app on the same clock."""
from __future__ import annotations

import uuid

import pytest

from app import ledger
from app.tips import service as tips
from tests.clock import install_clock, restore_clock
from tests.payouts.helpers import make_ready


@pytest.fixture()
def earn(make_fan):
    """earn(creator, tokens) → the creator's earnings grow by exactly `tokens` (a multiple
    of 4: a tip's creator share is 80%) through one real tip from a new fan."""
    def _earn(creator, tokens: int):
        gross, rest = divmod(tokens * 100, ledger.split(100)[0])
        assert not rest, "pick an amount the share divides exactly"
        fan = make_fan(balance=gross)
        tips.send_tip(fan, creator.id, gross, "", None, f"earn-{uuid.uuid4()}", confirmed=True)
        return fan
    return _earn


@pytest.fixture()
def payee(make_creator, earn, clock):
    """payee(tokens=4000, ready=True) → a creator whose `tokens` of earnings are past the
    hold (the clock moved on 8 days) and, if `ready`, whose payout account is ready."""
    def _make(tokens: int = 4000, ready: bool = True):
        creator = make_creator()
        if tokens:
            earn(creator, tokens)
        if ready:
            make_ready(creator)
        clock.advance(days=8)
        return creator
    return _make


@pytest.fixture()
def on_stripe(stripe_app, clock):
    """The app with PAYMENTS_PROVIDER=stripe (its SDK on the stand-in), on the session
    app's clock: use `with on_stripe.app_context():` — after making users and
    earnings, which need the demo provider."""
    previous = install_clock(stripe_app, clock)
    yield stripe_app
    restore_clock(stripe_app, previous)


@pytest.fixture()
def no_unsent_payouts(ctx):
    """Payouts earlier tests left unsent are sent first (demo provider: at once), so a
    sweep in this test meets only this test's payouts."""
    from app.payouts import cron
    cron.sweep_payouts()
