"""Concurrency claims, proven with real threads against real PostgreSQL."""
from __future__ import annotations

import uuid

from app import ledger
from app.auth.models import User
from app.errors import Conflict, InsufficientFunds
from app.extensions import db
from app.wallet import service as wallet
from tests.helpers import run_together


def _buy(user_id, amount, key):
    """Buy in this thread's own session; plain values out (ORM rows don't cross threads)."""
    result = wallet.purchase_tokens(db.session.get(User, user_id), amount, key)
    return {"id": result.purchase.id, "amount": result.purchase.amount_tokens,
            "new_balance": result.new_balance, "replayed": result.replayed}


def test_50_threads_spending_one_wallet_never_overdraw(app, make_fan, make_creator):
    """1,000 tokens, 50 concurrent spends of 30: exactly 33 succeed, 10 left, tokens conserved."""
    fan, creator = make_fan(balance=1000), make_creator()
    wallet_acc = ledger.account_for(fan.id, "wallet")
    earnings_acc = ledger.account_for(creator.id, "earnings")
    fees = ledger.system_account("platform_fees")
    fees_before = ledger.balance_of(fees)

    def spend(i):
        c, p = ledger.split(30)
        ledger.transfer("tip", f"spend:{uuid.uuid4()}",
                        [ledger.Leg(wallet_acc, -30), ledger.Leg(earnings_acc, c), ledger.Leg(fees, p)])
        db.session.commit()
        return "ok"

    results = run_together(app, 50, spend)
    ok = [r for r in results if r == "ok"]
    refused = [r for r in results if isinstance(r, InsufficientFunds)]
    assert len(ok) == 33 and len(refused) == 17, results
    assert ledger.balance_of(wallet_acc) == 10
    assert ledger.balance_of(earnings_acc) == 33 * 24
    assert ledger.balance_of(fees) - fees_before == 33 * 6
    assert ledger.verify() == []


def test_concurrent_replays_of_a_debit_the_wallet_pays_once_all_answer_done(app, make_fan, make_creator):
    """30 tokens, 20 threads posting the same 30-token transfer: one moves them, every
    other one waits on the wallet's lock and then finds the key (created=False, the
    same transfer) — none is told "insufficient funds"."""
    fan, creator = make_fan(balance=30), make_creator()
    wallet_acc = ledger.account_for(fan.id, "wallet")
    legs = ledger.creator_payment(wallet_acc, ledger.account_for(creator.id, "earnings"), 30).legs
    key = f"replay:{uuid.uuid4()}"

    def post(i):
        result = ledger.transfer("tip", key, legs)
        db.session.commit()
        return result

    results = run_together(app, 20, post)
    assert not [r for r in results if isinstance(r, Exception)], results
    assert sum(r.created for r in results) == 1
    assert len({r.transfer_id for r in results}) == 1
    assert ledger.balance_of(wallet_acc) == 0
    assert ledger.verify() == []


def test_concurrent_debits_of_one_derived_account_never_overdraw(app, make_fan, make_creator):
    """Earnings of 80 (derived: the sum of their entries), 10 concurrent refunds of 30
    out of them: exactly two go through. Each sums the entries after taking the account's lock."""
    fan, creator = make_fan(balance=100), make_creator()
    earnings = ledger.account_for(creator.id, "earnings")
    ledger.transfer("tip", f"tip:{uuid.uuid4()}",
                    ledger.creator_payment(ledger.account_for(fan.id, "wallet"), earnings, 100).legs)
    db.session.commit()
    refunded = ledger.account_for(fan.id, "wallet")

    def refund(i):
        ledger.transfer("call_refund", f"refund:{uuid.uuid4()}", [ledger.Leg(earnings, -30), ledger.Leg(refunded, 30)])
        db.session.commit()
        return "ok"

    results = run_together(app, 10, refund)
    refused = [r for r in results if isinstance(r, InsufficientFunds)]
    assert results.count("ok") == 2 and len(refused) == 8, results
    assert {r.required for r in refused} == {10}
    assert ledger.balance_of(earnings) == 20
    assert ledger.verify() == []


def test_transfers_both_ways_between_two_wallets_never_deadlock(app, make_fan):
    """20 threads move tokens between the same two wallets, half each way with their legs
    listed in opposite orders: locks are taken in account-id order, so no deadlock."""
    a, b = make_fan(balance=1000), make_fan(balance=1000)
    wallet_a, wallet_b = ledger.account_for(a.id, "wallet"), ledger.account_for(b.id, "wallet")

    def shuttle(i):
        payer, payee = (wallet_a, wallet_b) if i % 2 else (wallet_b, wallet_a)
        for _ in range(15):
            ledger.transfer("tip", f"shuttle:{uuid.uuid4()}", [ledger.Leg(payer, -1), ledger.Leg(payee, 1)])
            db.session.commit()
        return "ok"

    results = run_together(app, 20, shuttle)
    assert results == ["ok"] * 20, [r for r in results if r != "ok"][:3]
    assert ledger.balance_of(wallet_a) == ledger.balance_of(wallet_b) == 1000
    assert ledger.verify() == []


def test_200_concurrent_replays_of_one_key_credit_once(app, make_fan):
    fan = make_fan()
    fan_id = fan.id
    key = f"storm-{uuid.uuid4()}"
    # Threads load their own copy: `fan` belongs to the main thread's session.
    results = run_together(app, 200, lambda i: _buy(fan_id, 1000, key))
    errors = [r for r in results if isinstance(r, Exception)]
    assert not errors, errors[:3]
    assert len({r["id"] for r in results}) == 1
    assert {r["new_balance"] for r in results} == {1000}
    assert sum(1 for r in results if not r["replayed"]) == 1
    assert wallet.wallet_balance(fan) == 1000
    assert ledger.verify() == []


def test_concurrent_reuse_of_a_key_with_other_amounts_is_409_and_credits_once(app, make_fan):
    fan = make_fan()
    fan_id = fan.id
    key = f"storm-{uuid.uuid4()}"
    amounts = [500 if i % 2 else 700 for i in range(40)]
    results = run_together(app, 40, lambda i: _buy(fan_id, amounts[i], key))
    winners = [r for r in results if not isinstance(r, Exception)]
    conflicts = [r for r in results if isinstance(r, Conflict)]
    assert len(winners) + len(conflicts) == 40, [r for r in results if isinstance(r, Exception)
                                                 and not isinstance(r, Conflict)]
    winning_amount = winners[0]["amount"]
    assert all(r["amount"] == winning_amount for r in winners)
    assert len({r["id"] for r in winners}) == 1
    assert len(conflicts) == amounts.count(500 if winning_amount == 700 else 700)
    assert wallet.wallet_balance(fan) == winning_amount


def test_200_concurrent_http_replays_return_the_first_response(app, make_fan, api_headers):
    """The same storm through the JSON API: every answer is the first one, one credit."""
    fan = make_fan()
    headers = api_headers(fan, **{"Idempotency-Key": f"http-{uuid.uuid4()}"})

    def call(i):
        resp = app.test_client().post("/api/tokens/purchase", json={"amountTokens": 2500}, headers=headers)
        return resp.status_code, resp.get_json()

    results = run_together(app, 200, call)
    assert {status for status, _ in results} == {201}
    assert len({str(body) for _, body in results}) == 1
    assert results[0][1]["newBalance"] == 2500
    assert wallet.wallet_balance(fan) == 2500
    conflict = app.test_client().post("/api/tokens/purchase", json={"amountTokens": 2400}, headers=headers)
    assert conflict.status_code == 409 and conflict.get_json()["code"] == "idempotency_key_reused"
    assert wallet.wallet_balance(fan) == 2500
