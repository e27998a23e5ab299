"""`app.ledger.transfer` and `split`: the rules every money movement goes through."""
import uuid

import pytest

from app import ledger
from app.errors import InsufficientFunds
from app.extensions import db
from sqlalchemy import text


def _tip_legs(fan, creator, amount):
    creator_share, platform_share = ledger.split(amount)
    return [ledger.Leg(ledger.account_for(fan.id, "wallet"), -amount),
            ledger.Leg(ledger.account_for(creator.id, "earnings"), creator_share),
            ledger.Leg(ledger.system_account("platform_fees"), platform_share)]


@pytest.mark.parametrize("amount,creator,platform", [
    (100, 80, 20), (1, 0, 1), (3, 2, 1), (99, 79, 20), (100_000, 80_000, 20_000), (7, 5, 2),
])
def test_split_is_80_20_floor_for_creator_and_always_adds_up(ctx, amount, creator, platform):
    assert ledger.split(amount) == (creator, platform)
    assert sum(ledger.split(amount)) == amount


def test_split_follows_configured_share(ctx):
    assert ledger.split(100, share_percent=70) == (70, 30)
    assert ledger.split(101, share_percent=0) == (0, 101)


def test_transfer_moves_tokens_and_records_running_balance(make_fan, make_creator):
    fan, creator = make_fan(balance=1000), make_creator()
    result = ledger.transfer("tip", f"t:{uuid.uuid4()}", _tip_legs(fan, creator, 250))
    db.session.commit()
    assert result.created
    wallet = ledger.account_for(fan.id, "wallet")
    assert result.balances == {wallet.id: 750}
    assert ledger.balance_of(wallet) == 750
    assert ledger.balance_of(ledger.account_for(creator.id, "earnings")) == 200


def test_same_transfer_key_moves_nothing_the_second_time(make_fan, make_creator):
    fan, creator = make_fan(balance=1000), make_creator()
    key = f"t:{uuid.uuid4()}"
    first = ledger.transfer("tip", key, _tip_legs(fan, creator, 100))
    db.session.commit()
    second = ledger.transfer("tip", key, _tip_legs(fan, creator, 100))
    db.session.commit()
    assert not second.created and second.transfer_id == first.transfer_id
    assert ledger.balance_of(ledger.account_for(fan.id, "wallet")) == 900


def test_a_key_posted_twice_before_commit_moves_tokens_once(make_fan, make_creator):
    """The one-account path debits as it checks; the replay it then finds (the key
    this same transaction just used) gives the debit back: one transfer, one debit."""
    fan, creator = make_fan(balance=1000), make_creator()
    key = f"t:{uuid.uuid4()}"
    first = ledger.transfer("tip", key, _tip_legs(fan, creator, 100))
    again = ledger.transfer("tip", key, _tip_legs(fan, creator, 100))
    db.session.commit()
    assert (first.created, again.created, again.transfer_id) == (True, False, first.transfer_id)
    assert first.balances == {ledger.account_for(fan.id, "wallet").id: 900}
    assert ledger.balance_of(ledger.account_for(fan.id, "wallet")) == 900
    assert ledger.balance_of(ledger.account_for(creator.id, "earnings")) == 80 and ledger.verify() == []

def test_overdraft_raises_insufficient_funds_with_shortfall(make_fan, make_creator):
    fan, creator = make_fan(balance=40), make_creator()
    with pytest.raises(InsufficientFunds) as info:
        ledger.transfer("tip", f"t:{uuid.uuid4()}", _tip_legs(fan, creator, 100))
    db.session.rollback()
    assert info.value.required == 60
    assert ledger.balance_of(ledger.account_for(fan.id, "wallet")) == 40


@pytest.mark.parametrize("amounts", [[-10, 9], [0, 0], [-10], [-1.5, 1.5], [True, -1]])
def test_malformed_legs_are_refused_before_touching_the_database(make_fan, make_creator, amounts):
    fan, creator = make_fan(balance=100), make_creator()
    accounts = [ledger.account_for(fan.id, "wallet"), ledger.account_for(creator.id, "earnings")]
    legs = [ledger.Leg(acc, amt) for acc, amt in zip(accounts, amounts, strict=False)]
    with pytest.raises(ledger.LedgerError):
        ledger.transfer("tip", f"t:{uuid.uuid4()}", legs)
    db.session.rollback()


def test_derived_account_debit_cannot_overdraw(make_creator, make_fan):
    """Escrow-like hot accounts are debited under a row lock and may not go below zero."""
    creator = make_creator()
    fan = make_fan()
    earnings = ledger.account_for(creator.id, "earnings")
    with pytest.raises(InsufficientFunds):
        ledger.transfer("payout", f"t:{uuid.uuid4()}",
                        [ledger.Leg(earnings, -5), ledger.Leg(ledger.account_for(fan.id, "wallet"), 5)])
    db.session.rollback()


def test_a_refused_transfer_writes_nothing_so_the_callers_transaction_can_go_on(make_fan, make_creator):
    """A refused debit leaves no trace (migration 0007: ledger_post checks before it
    writes): the caller may commit its other work — the call meter ends one call and
    bills the rest of its batch — and no half transfer lands."""
    fan, creator = make_fan(balance=10), make_creator()
    other = make_fan(balance=50)
    key = f"t:{uuid.uuid4()}"
    with pytest.raises(InsufficientFunds) as refused:
        ledger.transfer("tip", key, _tip_legs(fan, creator, 100))
    assert refused.value.required == 90
    moved = ledger.transfer("tip", f"t:{uuid.uuid4()}", _tip_legs(other, creator, 20))  # same transaction
    db.session.commit()
    assert moved.created and ledger.balance_of(ledger.account_for(other.id, "wallet")) == 30
    assert ledger.balance_of(ledger.account_for(fan.id, "wallet")) == 10
    assert db.session.execute(text("SELECT count(*) FROM ledger_transfers WHERE idempotency_key = :k"),
                              {"k": key}).scalar_one() == 0
    assert ledger.verify() == []
    # The refused key was never used: a transfer the wallet can pay goes through under it.
    assert ledger.transfer("tip", key, _tip_legs(fan, creator, 10)).created
    db.session.commit()
    assert ledger.balance_of(ledger.account_for(fan.id, "wallet")) == 0 and ledger.verify() == []


def test_a_replay_is_done_even_when_the_wallet_could_not_pay_it_again(make_fan, make_creator):
    """The first post emptied the wallet: posting its key again answers "already done"
    (created=False, the same transfer), not "insufficient funds"."""
    fan, creator = make_fan(balance=100), make_creator()
    key = f"t:{uuid.uuid4()}"
    first = ledger.transfer("tip", key, _tip_legs(fan, creator, 100))
    db.session.commit()
    again = ledger.transfer("tip", key, _tip_legs(fan, creator, 100))
    db.session.commit()
    assert (again.created, again.transfer_id, again.balances) == (False, first.transfer_id, {})
    assert ledger.balance_of(ledger.account_for(fan.id, "wallet")) == 0 and ledger.verify() == []


def test_a_derived_account_debit_is_checked_against_the_sum_of_its_entries(make_fan, make_creator):
    """Earnings (derived) hold what their entries sum to: a debit within it goes through,
    one beyond it is refused with the exact shortfall and writes nothing."""
    fan, creator = make_fan(balance=100), make_creator()
    ledger.transfer("tip", f"t:{uuid.uuid4()}", _tip_legs(fan, creator, 100))  # earnings +80
    db.session.commit()
    earnings, refunded = ledger.account_for(creator.id, "earnings"), ledger.account_for(fan.id, "wallet")
    paid = ledger.transfer("call_refund", f"t:{uuid.uuid4()}", [ledger.Leg(earnings, -50), ledger.Leg(refunded, 50)])
    db.session.commit()
    assert paid.created and paid.balances == {refunded.id: 50}
    with pytest.raises(InsufficientFunds) as refused:
        ledger.transfer("call_refund", f"t:{uuid.uuid4()}", [ledger.Leg(earnings, -40), ledger.Leg(refunded, 40)])
    db.session.rollback()
    assert refused.value.required == 10
    assert ledger.balance_of(earnings) == 30 and ledger.verify() == []


def test_each_cached_leg_reports_its_balance_after_the_transfer(make_fan):
    """Two wallets in one transfer: `balances` has each one's new balance, in any leg order."""
    payer, payee = make_fan(balance=70), make_fan(balance=5)
    a, b = ledger.account_for(payer.id, "wallet"), ledger.account_for(payee.id, "wallet")
    moved = ledger.transfer("tip", f"t:{uuid.uuid4()}", [ledger.Leg(b, 20), ledger.Leg(a, -20)])
    db.session.commit()
    assert moved.balances == {a.id: 50, b.id: 25}
    assert ledger.balance_of(a) == 50 and ledger.balance_of(b) == 25 and ledger.verify() == []


def test_an_account_id_that_is_not_an_integer_is_refused_before_touching_the_database(make_fan, make_creator):
    """Ids are written into an array literal for the database: only integers may be."""
    fan, creator = make_fan(balance=100), make_creator()
    wallet = ledger.account_for(fan.id, "wallet")
    legs = _tip_legs(fan, creator, 10)
    legs[0] = ledger.Leg(ledger.Account(str(wallet.id), wallet.kind, wallet.cached), -10)
    with pytest.raises(ledger.LedgerError, match="account ids"):
        ledger.transfer("tip", f"t:{uuid.uuid4()}", legs)
    db.session.rollback()
    assert ledger.balance_of(wallet) == 100
