"""Held and available earnings: tokens become available PAYOUT_HOLD_DAYS after they
were earned (DESIGN.md §11). Time moves with the app's clock; entries keep the
database's time, so "now + 8 days" means everything earned so far is free."""
from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import text

from app import ledger
from app.extensions import db
from app.payouts import service
from tests.clock import install_clock
from tests.payouts.helpers import date_latest_earning, make_ready, request


def entry_day(user_id: int):
    """The UTC day the creator's latest earnings entry was written (the database's clock)."""
    return db.session.scalar(text(
        "SELECT (max(e.created_at) AT TIME ZONE 'UTC')::date FROM ledger_entries e "
        "JOIN ledger_accounts a ON a.id = e.account_id WHERE a.user_id = :u AND a.kind = 'earnings'"), {"u": user_id})


def claw_back(creator, tokens: int) -> None:
    """A refund-style debit of the creator's earnings (to the platform: the kind's legs don't matter here)."""
    earnings = ledger.account_for(creator.id, "earnings")
    ledger.lock_account(earnings)
    ledger.transfer(ledger.TransferKind.CALL_REFUND, f"test-clawback:{uuid.uuid4()}",
                    [ledger.Leg(earnings, -tokens), ledger.Leg(ledger.system_account("platform_fees"), tokens)])
    db.session.commit()


def test_fresh_earnings_are_held_until_the_hold_has_passed(ctx, make_creator, earn, clock):
    creator = make_creator()
    earn(creator, 800)
    day = entry_day(creator.id)
    found = service.balance(creator)
    assert (found.earnings, found.available, found.held) == (800, 0, 800)
    assert found.releases == [service.Release(day + timedelta(days=7), 800)]

    clock.advance(days=6)
    assert service.balance(creator).available == 0
    clock.advance(days=1, seconds=60)  # a minute past the 7 days: free (the entry is at most seconds old)
    found = service.balance(creator)
    assert (found.available, found.held, found.releases) == (800, 0, [])


def test_each_held_amount_frees_up_on_its_own_day(ctx, make_creator, earn, clock, make_app):
    creator = make_creator()
    earn(creator, 400)
    first_day = entry_day(creator.id)
    clock.advance(days=8)
    earn(creator, 1200)
    date_latest_earning(creator.id, clock.now)  # earned at the app's "now", 8 days on
    found = service.balance(creator)
    assert (found.earnings, found.available, found.held) == (1600, 400, 1200)
    assert found.releases == [service.Release(clock.now.date() + timedelta(days=7), 1200)]
    assert first_day + timedelta(days=7) <= clock.now.date()

    # With a 0-day hold everything is available at once.
    no_hold = make_app(PAYOUT_HOLD_DAYS=0)
    install_clock(no_hold, clock)
    with no_hold.app_context():
        assert service.balance(creator).available == 1600


def test_held_is_capped_at_the_balance_and_the_latest_earnings_are_the_held_ones(ctx, make_creator, earn, clock):
    creator = make_creator()
    earn(creator, 400)
    day_one = entry_day(creator.id)
    earn(creator, 800)
    claw_back(creator, 1000)  # a chargeback inside the hold took most of it back
    found = service.balance(creator)
    assert (found.earnings, found.held, found.available) == (200, 200, 0)
    assert sum(r.tokens for r in found.releases) == 200
    assert found.releases == [service.Release(day_one + timedelta(days=7), 200)]


def test_tokens_of_a_rejected_payout_are_available_again_at_once(
        ctx, payee, make_fan, clock, api_headers):
    creator = payee(4000)
    payout = request(creator, 3000).payout
    assert service.balance(creator).available == 1000
    operator = make_fan()
    operator.is_operator = True
    db.session.commit()
    service.reject(operator, payout.id, "Looks wrong")
    found = service.balance(creator)
    assert (found.available, found.held) == (4000, 0)


def test_get_api_payouts_reports_available_held_minimum_and_history(client, ctx, payee, earn, api_headers, clock):
    creator = payee(4000)
    earn(creator, 800)
    date_latest_earning(creator.id, clock.now)  # fresh: held
    first = request(creator, 2000).payout
    second = request(creator, 2000).payout
    resp = client.get("/api/payouts", headers=api_headers(creator))
    assert resp.status_code == 200
    body = resp.get_json()
    assert body["available"] == 0 and body["held"] == 800 and body["minimum"] == 2000
    assert [p["id"] for p in body["payouts"]] == [second.id, first.id]
    assert body["payouts"][0] == {"id": second.id, "amountTokens": 2000, "amountCents": 2000, "currency": "usd",
                                  "status": "requested", "createdAt": second.created_at.isoformat()}


def test_a_creator_without_earnings_has_nothing(ctx, make_creator):
    creator = make_creator()
    make_ready(creator)
    found = service.balance(creator)
    assert (found.earnings, found.available, found.held, found.releases) == (0, 0, 0, [])
