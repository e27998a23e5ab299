"""The database itself refuses to break the ledger's rules, with the ORM and
`app.ledger` bypassed: plain SQL on a raw psycopg connection."""
import uuid

import psycopg
import pytest
from sqlalchemy.engine import make_url

from app import ledger


@pytest.fixture()
def raw(services):
    url = make_url(services[0]).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(url) as conn:
        yield conn


@pytest.fixture()
def two_wallets(make_fan):
    a, b = make_fan(balance=100), make_fan(balance=0)
    return ledger.account_for(a.id, "wallet").id, ledger.account_for(b.id, "wallet").id


def _new_transfer(raw) -> int:
    return raw.execute("INSERT INTO ledger_transfers (kind, idempotency_key) VALUES ('purchase', %s) RETURNING id",
                       (f"raw:{uuid.uuid4()}",)).fetchone()[0]

def _post_by_hand(raw, a, b) -> int:
    """A correct 10-token transfer from wallet a to wallet b in plain SQL, committed."""
    tid = _new_transfer(raw)
    bal_a = raw.execute("UPDATE ledger_accounts SET balance = balance - 10 WHERE id = %s RETURNING balance",
                        (a,)).fetchone()[0]
    bal_b = raw.execute("UPDATE ledger_accounts SET balance = balance + 10 WHERE id = %s RETURNING balance",
                        (b,)).fetchone()[0]
    raw.execute("INSERT INTO ledger_entries (transfer_id, account_id, amount, balance_after) "
                "VALUES (%s, %s, -10, %s), (%s, %s, 10, %s)", (tid, a, bal_a, tid, b, bal_b))
    raw.commit()
    return tid



def test_unbalanced_entries_are_refused_by_their_statement(raw, two_wallets):
    """Checked per INSERT statement (migration 0008), so before COMMIT is even reached."""
    a, b = two_wallets
    tid = _new_transfer(raw)
    with pytest.raises(psycopg.errors.CheckViolation, match="unbalanced"):
        raw.execute("INSERT INTO ledger_entries (transfer_id, account_id, amount) VALUES (%s, %s, -10), (%s, %s, 9)",
                    (tid, a, tid, b))


def test_a_lone_entry_is_refused_even_if_a_later_one_would_balance_it(raw, two_wallets):
    """A transfer's entries go in together: each statement leaves its transfers balanced."""
    a, b = two_wallets
    tid = _new_transfer(raw)
    with pytest.raises(psycopg.errors.CheckViolation, match="unbalanced"):
        raw.execute("INSERT INTO ledger_entries (transfer_id, account_id, amount) VALUES (%s, %s, -10)", (tid, a))


def test_entries_added_to_a_committed_transfer_are_refused(raw, two_wallets):
    """A committed transfer can't gain a one-sided entry later."""
    a, b = two_wallets
    tid = _post_by_hand(raw, a, b)
    with pytest.raises(psycopg.errors.CheckViolation, match="unbalanced"):
        raw.execute("INSERT INTO ledger_entries (transfer_id, account_id, amount) VALUES (%s, %s, 5)", (tid, b))
    raw.rollback()
    # The control half: the committed pair itself is fine (the refusal above was the added entry).
    assert raw.execute("SELECT count(*), sum(amount) FROM ledger_entries WHERE transfer_id = %s",
                       (tid,)).fetchone() == (2, 0)


def test_transfer_without_entries_is_refused(raw):
    _new_transfer(raw)
    with pytest.raises(psycopg.errors.CheckViolation, match="unbalanced"):
        raw.commit()


def test_balanced_raw_transfer_is_accepted(raw, two_wallets):
    """Control: a correct transfer written by hand commits, so the refusals above mean something."""
    a, b = two_wallets
    tid = _post_by_hand(raw, a, b)
    assert raw.execute("SELECT count(*) FROM ledger_entries WHERE transfer_id = %s", (tid,)).fetchone()[0] == 2
    assert ledger.verify() == []


@pytest.mark.parametrize("statement", [
    "UPDATE ledger_entries SET amount = amount * 2 WHERE id = (SELECT max(id) FROM ledger_entries)",
    "DELETE FROM ledger_entries WHERE id = (SELECT max(id) FROM ledger_entries)",
    "TRUNCATE ledger_entries CASCADE",
    "UPDATE ledger_transfers SET kind = 'x' WHERE id = (SELECT max(id) FROM ledger_transfers)",
    "DELETE FROM ledger_transfers WHERE id = (SELECT max(id) FROM ledger_transfers)",
])
def test_entries_and_transfers_are_immutable(raw, make_fan, statement):
    make_fan(balance=10)  # at least one entry and transfer exist
    with pytest.raises(psycopg.errors.CheckViolation, match="append-only"):
        raw.execute(statement)


def test_wallet_cannot_go_negative(raw, two_wallets):
    a, _ = two_wallets
    with pytest.raises(psycopg.errors.CheckViolation):
        raw.execute("UPDATE ledger_accounts SET balance = -1 WHERE id = %s", (a,))


def test_reused_transfer_idempotency_key_is_refused(raw):
    key = f"raw:{uuid.uuid4()}"
    raw.execute("INSERT INTO ledger_transfers (kind, idempotency_key) VALUES ('purchase', %s)", (key,))
    with pytest.raises(psycopg.errors.UniqueViolation):
        raw.execute("INSERT INTO ledger_transfers (kind, idempotency_key) VALUES ('purchase', %s)", (key,))


def test_zero_amount_entry_is_refused(raw, two_wallets):
    a, _ = two_wallets
    tid = _new_transfer(raw)
    with pytest.raises(psycopg.errors.CheckViolation):
        raw.execute("INSERT INTO ledger_entries (transfer_id, account_id, amount) VALUES (%s, %s, 0)", (tid, a))


def test_hot_account_balance_column_stays_zero(raw, make_creator):
    """Derived (hot) accounts keep their balance in entries; the row can't be made to lie."""
    creator = make_creator()
    earnings = ledger.account_for(creator.id, "earnings").id
    with pytest.raises(psycopg.errors.CheckViolation):
        raw.execute("UPDATE ledger_accounts SET balance = 5 WHERE id = %s", (earnings,))
