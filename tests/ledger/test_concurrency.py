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
