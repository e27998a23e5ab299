"""Read-side helpers for the call tests: fresh rows, ledger and audit-log views."""
from __future__ import annotations

from sqlalchemy import text

from app import ledger
from app.calls.models import Call
from app.extensions import db


def fresh_call(call_id: int) -> Call:
    """The call as committed right now (other sessions and threads write it)."""
    db.session.rollback()
    return db.session.get(Call, call_id, populate_existing=True)


def block_keys(call_id: int) -> list[str]:
    """Idempotency keys of the call's block transfers, in block order."""
    rows = db.session.scalars(text(
        "SELECT idempotency_key FROM ledger_transfers WHERE idempotency_key LIKE :k ORDER BY id"),
        {"k": f"call:{call_id}:block:%"}).all()
    return sorted(rows, key=lambda key: int(key.rsplit(":", 1)[1]))


def block_transfer_kinds(call_id: int) -> set[str]:
    return set(db.session.scalars(text("SELECT DISTINCT kind FROM ledger_transfers WHERE idempotency_key LIKE :k"),
                                  {"k": f"call:{call_id}:block:%"}))


def events(call_id: int) -> list[tuple]:
    """(type, block_index, amount, reason) of every billing event, in order."""
    return [tuple(r) for r in db.session.execute(text(
        "SELECT type, block_index, amount, reason FROM billing_events WHERE call_id = :c ORDER BY id"),
        {"c": call_id})]


def event_types(call_id: int) -> list[str]:
    return [e[0] for e in events(call_id)]


def charged_blocks(call_id: int) -> list[int]:
    """Block indexes of the call's block_charged events, in order of writing."""
    return [e[1] for e in events(call_id) if e[0] == "block_charged"]


def wallet(user_id: int) -> int:
    return ledger.balance_of(ledger.account_for(user_id, "wallet"))


def earnings(user_id: int) -> int:
    return ledger.balance_of(ledger.account_for(user_id, "earnings"))


def platform_fees() -> int:
    return ledger.balance_of(ledger.system_account("platform_fees"))


def wallet_debits_for_call(call_id: int, user_id: int) -> dict[int, int]:
    """block index → amount debited from the fan's wallet by that block's transfer."""
    rows = db.session.execute(text(
        "SELECT t.idempotency_key, e.amount FROM ledger_transfers t JOIN ledger_entries e ON e.transfer_id = t.id "
        "WHERE t.idempotency_key LIKE :k AND e.account_id = :a"),
        {"k": f"call:{call_id}:block:%", "a": ledger.account_for(user_id, "wallet").id}).all()
    return {int(key.rsplit(":", 1)[1]): -amount for key, amount in rows}
