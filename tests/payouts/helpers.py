"""Helpers of the payout tests: reading the books and the payouts, signing webhooks."""
from __future__ import annotations

import json
import uuid

from sqlalchemy import text

from app import ledger
from app.extensions import db
from app.payouts import service
from app.payouts.models import PayoutAccount
from tests.payments import standin


def earnings_of(user_id: int) -> int:
    account = ledger.account_for(user_id, "earnings")
    return ledger.balance_of(account) if account else 0


def in_transit() -> int:
    return ledger.balance_of(ledger.system_account("payouts_in_transit"))


def paid_out() -> int:
    return ledger.balance_of(ledger.system_account("payouts_paid"))


def payout_row(payout_id: int) -> dict:
    """The payout as the database has it now (not the session's copy)."""
    db.session.rollback()
    return dict(db.session.execute(text("SELECT * FROM payouts WHERE id = :id"), {"id": payout_id}).mappings().one())


def payouts_of(user_id: int) -> list[dict]:
    db.session.rollback()
    return [dict(r) for r in db.session.execute(text("SELECT * FROM payouts WHERE user_id = :u ORDER BY id"),
                                                {"u": user_id}).mappings()]


def transfer_keys(prefix: str) -> list[str]:
    """Idempotency keys of the ledger transfers starting with `prefix`, oldest first."""
    return list(db.session.scalars(text("SELECT idempotency_key FROM ledger_transfers WHERE idempotency_key LIKE :p "
                                        "ORDER BY id"), {"p": prefix + "%"}))


def signed_webhook(client, event: dict, secret: str = standin.CONNECT_WEBHOOK_SECRET):
    """POST `event` to /webhooks/stripe signed as Stripe's Connect endpoint would."""
    payload = json.dumps(event)
    return client.post("/webhooks/stripe", data=payload, content_type="application/json",
                       headers={"Stripe-Signature": standin.sign(payload, secret)})


def event_outcome(event_id: str) -> str | None:
    db.session.rollback()
    return db.session.scalar(text("SELECT outcome FROM stripe_events WHERE id = :id"), {"id": event_id})


def make_ready(creator, stripe_account_id: str | None = None) -> PayoutAccount:
    """Give `creator` a payout account that can be paid."""
    account = PayoutAccount(user_id=creator.id, payouts_enabled=True, details_submitted=True,
                            stripe_account_id=stripe_account_id or f"acct_test_{uuid.uuid4().hex[:12]}")
    db.session.add(account)
    db.session.commit()
    return account


def request(user, amount: int, key: str | None = None):
    """`service.request_payout` with a fresh key unless one is given."""
    return service.request_payout(user, amount, key or str(uuid.uuid4()))


def date_latest_earning(user_id: int, at) -> None:
    """Date the creator's latest earnings entry at `at` (the app's moved clock: the
    database dates entries with its own). Entries are immutable, so the guard
    triggers are off for this one statement (the test database's superuser)."""
    db.session.commit()
    db.session.execute(text("SET LOCAL session_replication_role = replica"))
    db.session.execute(text(
        "UPDATE ledger_entries SET created_at = :at WHERE id = (SELECT max(e.id) FROM ledger_entries e "
        "JOIN ledger_accounts a ON a.id = e.account_id WHERE a.user_id = :u AND a.kind = 'earnings')"),
        {"at": at, "u": user_id})
    db.session.commit()


def fresh_user(user_id: int):
    """The user loaded in this thread's own session: threads must not share ORM objects
    (an expired one would be refreshed through another thread's session)."""
    from app.auth.models import User
    return db.session.get(User, user_id)
