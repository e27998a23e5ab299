"""Transfer kinds are one enumeration (`ledger.TransferKind`) and the database accepts exactly its members."""
import re
import uuid

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from app import ledger
from app.extensions import db


@pytest.fixture()
def raw(services):
    url = make_url(services[0]).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(url) as conn:
        yield conn


def test_the_database_check_lists_exactly_the_transfer_kinds(ctx):
    """The CHECK on ledger_transfers.kind (a migration's snapshot) and the enumeration agree: a new kind
    needs both."""
    definition = db.session.scalar(text(
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = 'ck_ledger_transfers_kind'"))
    assert definition is not None, "no CHECK on ledger_transfers.kind"
    assert set(re.findall(r"'(\w+)'", definition)) == {kind.value for kind in ledger.TransferKind}


@pytest.mark.parametrize("kind", list(ledger.TransferKind))
def test_the_database_accepts_every_transfer_kind(raw, kind):
    raw.execute("INSERT INTO ledger_transfers (kind, idempotency_key) VALUES (%s, %s)", (kind, f"raw:{uuid.uuid4()}"))
    raw.rollback()  # it has no entries: COMMIT would refuse it


@pytest.mark.parametrize("kind", ["withdrawal", "Tip", "", "tip "])
def test_the_database_refuses_a_transfer_of_any_other_kind(raw, kind):
    with pytest.raises(psycopg.errors.CheckViolation, match="ck_ledger_transfers_kind"):
        raw.execute("INSERT INTO ledger_transfers (kind, idempotency_key) VALUES (%s, %s)",
                    (kind, f"raw:{uuid.uuid4()}"))


def test_a_transfer_kind_is_stored_and_read_back_as_its_plain_name(make_fan):
    fan = make_fan(balance=5)
    kind = db.session.scalar(text(
        "SELECT t.kind FROM ledger_transfers t JOIN ledger_entries e ON e.transfer_id = t.id "
        "JOIN ledger_accounts a ON a.id = e.account_id WHERE a.user_id = :u"), {"u": fan.id})
    assert kind == "purchase" and kind == ledger.TransferKind.PURCHASE
