"""A user's debt (DESIGN.md §11): take-backs empty the wallet first and the rest
becomes debt; credits repay debt first; the database keeps a debt at most zero."""
from __future__ import annotations

import uuid

import psycopg
import pytest
from sqlalchemy.engine import make_url

from sqlalchemy import text

from app import ledger
from app.extensions import db
from tests.helpers import run_together

Kind = ledger.TransferKind


@pytest.fixture()
def raw(services):
    url = make_url(services[0]).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(url, autocommit=True) as conn:
        yield conn


def _fan_with(make_fan, make_creator, bought: int, spent: int):
    """A fan who bought `bought` tokens and tipped `spent` of them away; returns (fan, purchase id)."""
    fan = make_fan(balance=bought)
    if spent:
        creator = make_creator()
        ledger.transfer(Kind.TIP, f"test:tip:{uuid.uuid4()}", ledger.creator_payment(
            ledger.account_for(fan.id, "wallet"), ledger.open_account("earnings", creator.id), spent).legs)
        db.session.commit()
    purchase_id = db.session.execute(text("SELECT max(id) FROM purchases WHERE user_id = :u"), {"u": fan.id}).scalar()
    return fan, purchase_id


def _lock_purchase(purchase_id: int) -> int:
    return db.session.execute(text("SELECT disputed_tokens FROM purchases WHERE id = :p FOR UPDATE"),
                              {"p": purchase_id}).scalar_one()


def _take_back(fan_id: int, purchase_id: int, amount: int) -> int:
    """What a chargeback does to the books (the purchase row keeps issued = credited − taken back)."""
    _lock_purchase(purchase_id)
    holder = ledger.lock_holder(fan_id)
    ledger.transfer(Kind.PURCHASE_REVERSAL, f"test:take:{uuid.uuid4()}",
                    ledger.holder_take_back(holder, amount) + [ledger.Leg(ledger.system_account("token_sales"),
                                                                          amount)])
    db.session.execute(text("UPDATE purchases SET disputed_tokens = disputed_tokens + :n, status = 'disputed' "
                            "WHERE id = :p"), {"n": amount, "p": purchase_id})
    db.session.commit()
    return -amount


def _give(fan_id: int, purchase_id: int, amount: int) -> int:
    """What a won dispute does: gives back (at most what is still held)."""
    amount = min(amount, _lock_purchase(purchase_id))
    if amount:
        holder = ledger.lock_holder(fan_id)
        ledger.transfer(Kind.PURCHASE_RESTORE, f"test:give:{uuid.uuid4()}",
                        [ledger.Leg(ledger.system_account("token_sales"), -amount)]
                        + ledger.holder_credit(holder, amount))
        db.session.execute(text("UPDATE purchases SET disputed_tokens = disputed_tokens - :n WHERE id = :p"),
                           {"n": amount, "p": purchase_id})
    db.session.commit()
    return amount


def _state(user_id: int) -> tuple[int, int]:
    holder = ledger.lock_holder(user_id)
    db.session.rollback()
    return holder.wallet_balance, holder.owed


def test_a_take_back_within_the_wallet_leaves_no_debt(make_fan, make_creator):
    fan, purchase = _fan_with(make_fan, make_creator, 500, 0)
    _take_back(fan.id, purchase, 200)
    assert _state(fan.id) == (300, 0)
    assert ledger.owed_by(fan.id) == 0


def test_a_take_back_beyond_the_wallet_empties_it_and_the_rest_is_owed(make_fan, make_creator):
    fan, purchase = _fan_with(make_fan, make_creator, 1000, 500)
    _take_back(fan.id, purchase, 800)
    assert _state(fan.id) == (0, 300)
    assert ledger.owed_by(fan.id) == 300
    assert ledger.verify() == []


def test_credits_repay_the_debt_first_then_fill_the_wallet(make_fan, make_creator):
    fan, purchase = _fan_with(make_fan, make_creator, 1000, 900)
    _take_back(fan.id, purchase, 400)    # 100 from the wallet, owes 300
    _give(fan.id, purchase, 200)
    assert _state(fan.id) == (0, 100)
    _give(fan.id, purchase, 200)
    assert _state(fan.id) == (100, 0)
    assert ledger.verify() == []


def test_a_user_without_a_debt_account_owes_nothing(make_fan):
    assert ledger.owed_by(make_fan().id) == 0


def test_the_database_refuses_a_debt_above_zero(raw, make_fan):
    fan = make_fan()
    ledger.lock_holder(fan.id)  # opens the debt account
    db.session.commit()
    debt_id = ledger.account_for(fan.id, "debt").id
    with pytest.raises(psycopg.errors.CheckViolation, match="ck_ledger_accounts_debt_non_positive"):
        raw.execute("UPDATE ledger_accounts SET balance = 1 WHERE id = %s", (debt_id,))


def test_ledger_post_lets_only_a_debt_go_below_zero(make_fan):
    """The same debit refused on an empty wallet is accepted on the user's debt account."""
    fan = make_fan()
    holder = ledger.lock_holder(fan.id)
    sales = ledger.system_account("token_sales")
    with pytest.raises(ledger.InsufficientFunds):
        ledger.transfer(Kind.PURCHASE_REVERSAL, f"test:{uuid.uuid4()}",
                        [ledger.Leg(holder.wallet, -5), ledger.Leg(sales, 5)])
    moved = ledger.transfer(Kind.PURCHASE_REVERSAL, f"test:{uuid.uuid4()}",
                            [ledger.Leg(holder.debt, -5), ledger.Leg(sales, 5)])
    assert moved.balances[holder.debt.id] == -5
    db.session.rollback()


def test_concurrent_take_backs_and_credits_keep_wallet_and_debt_exact(app, make_fan, make_creator):
    """20 take-backs of 50 and 20 give-backs of up to 30 race on a 300-token wallet
    (1,000 bought, 700 spent): whatever the order, wallet − owed = 300 − taken + given,
    nobody owes while holding tokens (verify's debt_while_holding), the books verify."""
    fan, purchase = _fan_with(make_fan, make_creator, 1000, 700)

    def act(i):
        return _take_back(fan.id, purchase, 50) if i % 2 else _give(fan.id, purchase, 30)

    moved = run_together(app, 40, act)
    assert all(isinstance(m, int) for m in moved), moved
    assert sum(m for m in moved if m < 0) == -1000
    wallet, owed = _state(fan.id)
    assert wallet - owed == 300 + sum(moved)
    assert min(wallet, owed) == 0
    assert ledger.verify() == []
