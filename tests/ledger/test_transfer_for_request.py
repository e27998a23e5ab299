"""`ledger.transfer_for_request`: a transfer made once per client request, the claim and the
post in one statement (a tip's money)."""
import uuid

import pytest
from sqlalchemy import text

from app import ledger
from app.errors import Conflict, InsufficientFunds
from app.extensions import db

SCOPE = "test.request"


@pytest.fixture()
def scene(make_fan, make_creator):
    fan, creator = make_fan(balance=100), make_creator()
    wallet, earnings = ledger.account_for(fan.id, "wallet"), ledger.account_for(creator.id, "earnings")
    yield fan, wallet, ledger.creator_payment(wallet, earnings, 30), earnings
    db.session.rollback()  # these transfers have no tip rows: keep them out of the shared database


def _send(fan, payment, key, params=None):
    return ledger.transfer_for_request(ledger.TransferKind.TIP, payment.legs, {"note": "x"}, user_id=fan.id, key=key,
                                       scope=SCOPE, params=params or {"amount": 30}, id_sequence="tips_id_seq")


def test_the_transfer_is_named_after_the_row_the_request_creates(scene):
    fan, wallet, payment, _earnings = scene
    moved = _send(fan, payment, str(uuid.uuid4()))
    assert moved.transfer.created and moved.transfer.balances == {wallet.id: 70}
    key, kind, metadata = db.session.execute(text(
        "SELECT idempotency_key, kind, metadata FROM ledger_transfers WHERE id = :t"),
        {"t": moved.transfer.transfer_id}).one()
    assert (key, kind, metadata) == (f"tip:{moved.resource_id}", "tip", {"note": "x", "tipId": moved.resource_id})
    claimed = db.session.scalar(text("SELECT resource_id FROM idempotency_keys WHERE user_id = :u AND scope = :s"),
                                {"u": fan.id, "s": SCOPE})
    assert claimed == moved.resource_id


def test_a_replay_returns_the_first_transfer_and_moves_nothing(scene):
    fan, wallet, payment, _earnings = scene
    key = str(uuid.uuid4())
    first = _send(fan, payment, key)
    again = _send(fan, payment, key)
    assert not again.transfer.created
    assert (again.resource_id, again.transfer.transfer_id) == (first.resource_id, first.transfer.transfer_id)
    assert again.transfer.balances == {wallet.id: 70}  # right after the first, as the first answered
    assert ledger.balance_of(wallet) == 70


def test_the_same_key_with_other_parameters_is_a_conflict(scene):
    fan, wallet, payment, _earnings = scene
    key = str(uuid.uuid4())
    _send(fan, payment, key)
    with pytest.raises(Conflict) as refused:
        _send(fan, payment, key, params={"amount": 31})
    assert refused.value.code == "idempotency_key_reused"
    assert ledger.balance_of(wallet) == 70


def test_a_refused_transfer_leaves_the_key_free_once_rolled_back(scene):
    fan, wallet, payment, earnings = scene
    key = str(uuid.uuid4())
    with pytest.raises(InsufficientFunds) as refused:
        _send(fan, ledger.creator_payment(wallet, earnings, 500), key)
    assert refused.value.required == 400
    db.session.rollback()
    assert db.session.scalar(text("SELECT count(*) FROM idempotency_keys WHERE user_id = :u AND key = :k"),
                             {"u": fan.id, "k": key}) == 0
    assert _send(fan, payment, key).transfer.created  # the key was never used
