"""`app.ledger.transfer_many` (`ledger_post_batch`, migration 0008): a batch of
independent transfers in one statement, each applied or refused on its own,
with the same rules and idempotency as `transfer`."""
import threading
import uuid

import psycopg
import pytest
from psycopg.types.json import Jsonb
from sqlalchemy import text
from sqlalchemy.engine import make_url

from app import ledger
from app.errors import InsufficientFunds
from app.extensions import db


def _block(fan, creator, amount, key=None):
    creator_share, platform_share = ledger.split(amount)
    return ledger.TransferRequest("call_block", key or f"many:{uuid.uuid4()}", [
        ledger.Leg(ledger.account_for(fan.id, "wallet"), -amount),
        ledger.Leg(ledger.account_for(creator.id, "earnings"), creator_share),
        ledger.Leg(ledger.system_account("platform_fees"), platform_share)], {"n": amount})


def _rows(key):
    return db.session.execute(text(
        "SELECT count(*) FROM ledger_transfers t JOIN ledger_entries e ON e.transfer_id = t.id "
        "WHERE t.idempotency_key = :k"), {"k": key}).scalar_one()


def test_a_batch_posts_each_transfer_with_its_balance_and_metadata(make_fan, make_creator):
    creator = make_creator()
    fans = [make_fan(balance=100) for _ in range(3)]
    requests = [_block(fan, creator, 30 + i) for i, fan in enumerate(fans)]
    results = ledger.transfer_many(requests)
    db.session.commit()
    for i, (fan, result) in enumerate(zip(fans, results)):
        wallet = ledger.account_for(fan.id, "wallet")
        assert result.created and result.balances == {wallet.id: 70 - i}
        assert ledger.balance_of(wallet) == 70 - i
        meta = db.session.execute(text("SELECT metadata FROM ledger_transfers WHERE id = :i"),
                                  {"i": result.transfer_id}).scalar_one()
        assert meta == {"n": 30 + i}
    assert ledger.balance_of(ledger.account_for(creator.id, "earnings")) == sum(ledger.split(30 + i)[0] for i in range(3))
    assert ledger.verify() == []


def test_a_refused_transfer_writes_nothing_and_the_others_stand(make_fan, make_creator):
    creator = make_creator()
    rich, poor, also_rich = make_fan(balance=100), make_fan(balance=10), make_fan(balance=50)
    requests = [_block(rich, creator, 30), _block(poor, creator, 30), _block(also_rich, creator, 30)]
    results = ledger.transfer_many(requests)
    db.session.commit()
    assert results[0].created and results[2].created
    assert isinstance(results[1], InsufficientFunds) and results[1].required == 20
    assert _rows(requests[1].key) == 0
    assert ledger.balance_of(ledger.account_for(poor.id, "wallet")) == 10
    assert ledger.balance_of(ledger.account_for(also_rich.id, "wallet")) == 20
    assert ledger.verify() == []


def test_a_replayed_key_moves_nothing_and_answers_the_first_transfer(make_fan, make_creator):
    creator, fan, other = make_creator(), make_fan(balance=100), make_fan(balance=100)
    key = f"replay-me:{uuid.uuid4()}"
    first = ledger.transfer_many([_block(fan, creator, 30, key)])[0]
    db.session.commit()
    again = ledger.transfer_many([_block(fan, creator, 30, key), _block(other, creator, 30)])
    db.session.commit()
    assert not again[0].created and again[0].transfer_id == first.transfer_id and again[0].balances == {}
    assert again[1].created
    assert ledger.balance_of(ledger.account_for(fan.id, "wallet")) == 70
    assert ledger.verify() == []


def test_a_replay_is_not_refused_for_funds_the_first_post_spent(make_fan, make_creator):
    """Retrying a batch after the wallet ran dry answers "already done", not "insufficient"."""
    creator, fan = make_creator(), make_fan(balance=30)
    request = _block(fan, creator, 30)
    assert ledger.transfer_many([request])[0].created
    db.session.commit()
    again = ledger.transfer_many([request])[0]
    assert not isinstance(again, InsufficientFunds) and not again.created


@pytest.mark.parametrize("problem", ["same wallet twice", "same key twice", "derived debit", "unbalanced"])
def test_a_malformed_batch_is_refused_before_anything_moves(make_fan, make_creator, problem):
    creator, fan, other = make_creator(), make_fan(balance=100), make_fan(balance=100)
    key = f"dup:{uuid.uuid4()}"
    batches = {
        "same wallet twice": [_block(fan, creator, 10), _block(fan, creator, 10)],
        "same key twice": [_block(fan, creator, 10, key), _block(other, creator, 10, key)],
        "derived debit": [ledger.TransferRequest("x", key, [
            ledger.Leg(ledger.account_for(creator.id, "earnings"), -5),
            ledger.Leg(ledger.account_for(fan.id, "wallet"), 5)])],
        "unbalanced": [ledger.TransferRequest("x", key, [
            ledger.Leg(ledger.account_for(fan.id, "wallet"), -5),
            ledger.Leg(ledger.account_for(creator.id, "earnings"), 4)])],
    }
    with pytest.raises(ledger.LedgerError):
        ledger.transfer_many(batches[problem])
    db.session.rollback()
    assert ledger.balance_of(ledger.account_for(fan.id, "wallet")) == 100


@pytest.fixture()
def raw(services):
    url = make_url(services[0]).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(url) as conn:
        yield conn


@pytest.mark.parametrize("problem", ["same wallet twice", "same key twice", "derived debit", "unknown account"])
def test_the_database_refuses_a_malformed_batch_itself(raw, make_fan, make_creator, problem):
    """With app.ledger bypassed: ledger_post_batch checks its contract before it locks or writes."""
    fan, creator = make_fan(balance=100), make_creator()
    wallet, earnings = ledger.account_for(fan.id, "wallet").id, ledger.account_for(creator.id, "earnings").id
    k1, k2 = f"raw:{uuid.uuid4()}", f"raw:{uuid.uuid4()}"
    args = {
        "same wallet twice": (["x", "x"], [k1, k2], [1, 1, 2, 2], [wallet, earnings, wallet, earnings], [-1, 1, -1, 1]),
        "same key twice": (["x", "x"], [k1, k1], [1, 1, 2, 2], [wallet, earnings, earnings, wallet], [-1, 1, -1, 1]),
        "derived debit": (["x"], [k1], [1, 1], [earnings, wallet], [-1, 1]),
        "unknown account": (["x"], [k1], [1, 1], [wallet, 10**12], [-1, 1]),
    }[problem]
    kinds, keys, leg_of, accounts, amounts = args
    with pytest.raises(psycopg.errors.InvalidParameterValue):
        raw.execute("SELECT * FROM ledger_post_batch(%s, %s, %s, %s, %s, %s)",
                    (kinds, keys, Jsonb([{}] * len(keys)), leg_of, accounts, amounts))
    raw.rollback()
    assert raw.execute("SELECT count(*) FROM ledger_transfers WHERE idempotency_key = ANY(%s)",
                       ([k1, k2],)).fetchone()[0] == 0


def test_concurrent_batches_with_the_same_keys_post_each_transfer_once(app, make_fan, make_creator):
    """Real threads, real PostgreSQL: four meters racing with the same batch."""
    creator = make_creator()
    fans = [make_fan(balance=100) for _ in range(20)]
    requests = [_block(fan, creator, 30) for fan in fans]
    created, barrier = [], threading.Barrier(4)

    def run():
        with app.app_context():
            barrier.wait()
            results = ledger.transfer_many(requests)
            db.session.commit()
            created.append(sum(1 for r in results if r.created))
            db.session.remove()

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(created) == 20
    for fan in fans:
        assert ledger.balance_of(ledger.account_for(fan.id, "wallet")) == 70
    assert ledger.verify() == []
