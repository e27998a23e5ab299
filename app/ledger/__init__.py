"""The ledger: the only code that moves tokens.

Design note
-----------
Double entry. A *transfer* is one business event (a purchase, a tip, a
ticket, a call block, a refund) with a unique idempotency key; its *entries*
are signed amounts on accounts and always sum to zero. Sign rule: a positive
entry credits (increases) an account, a negative entry debits it.

Accounts come in two flavours:

* **cached** (fan wallets): the row's `balance` is updated in the same
  transaction as the entry. A debit is the conditional
  ``UPDATE … SET balance = balance - n WHERE id = … AND balance >= n``, so two
  concurrent spends serialise on the row and the loser sees the new balance;
  ``CHECK (balance >= 0)`` backs it up in the database.
* **derived** (hot accounts: creator earnings, platform fees, token sales,
  escrow): thousands of fans credit them at once, so a credit only appends an
  entry and never touches the shared row; the balance is the sum of entries.
  A debit of a derived account (escrow settling, say) is rare: it locks the
  account row, sums, and checks.

The database enforces the invariants even when this module is bypassed
(see the initial migration): entries of a transfer sum to zero (deferred
constraint trigger, checked at COMMIT), entries and transfers are immutable
(triggers reject UPDATE/DELETE/TRUNCATE), non-zero amounts, non-negative
wallet balances, unique idempotency keys. `verify()` re-checks everything,
including that cached balances equal the sum of their entries and that every
token issued was purchased.

Nothing here commits: callers own the transaction, so a transfer and the
business row it belongs to (a purchase, a tip) commit or roll back together.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

from flask import current_app
from sqlalchemy import text

from app.errors import InsufficientFunds
from app.extensions import db

__all__ = [
    "Account", "Leg", "TransferResult", "LedgerError", "split", "transfer", "open_account",
    "account_for", "system_account", "balance_of", "verify",
]

SYSTEM_KINDS = ("platform_fees", "token_sales")
# Accounts allowed to go below zero: the issuer is the counter-side of every
# purchase, so its balance is minus the tokens in circulation.
NEGATIVE_ALLOWED = ("token_sales",)


class LedgerError(RuntimeError):
    """A programming error: an unbalanced or malformed transfer request."""


@dataclass(frozen=True)
class Account:
    id: int
    kind: str
    cached: bool


@dataclass(frozen=True)
class Leg:
    account: Account
    amount: int


@dataclass
class TransferResult:
    transfer_id: int
    created: bool
    # Balance after the transfer for each cached account it touched.
    balances: dict[int, int] = field(default_factory=dict)


def split(amount: int, share_percent: int | None = None) -> tuple[int, int]:
    """Split a gross amount into (creator, platform); the one place the rule lives.

    ``creator = amount * share // 100`` and ``platform = amount - creator``, so
    the two always add up to ``amount`` and rounding favours the platform by
    at most one token.
    """
    if share_percent is None:
        share_percent = current_app.config["CREATOR_SHARE_PERCENT"]
    creator = amount * share_percent // 100
    return creator, amount - creator


def open_account(kind: str, user_id: int) -> Account:
    """Return the user's account of this kind, creating it if needed (idempotent)."""
    cached = kind == "wallet"
    db.session.execute(
        text("INSERT INTO ledger_accounts (kind, user_id, cached) VALUES (:k, :u, :c) "
             "ON CONFLICT DO NOTHING"),
        {"k": kind, "u": user_id, "c": cached},
    )
    return account_for(user_id, kind)


def account_for(user_id: int, kind: str) -> Account | None:
    row = db.session.execute(
        text("SELECT id, kind, cached FROM ledger_accounts WHERE user_id = :u AND kind = :k"),
        {"u": user_id, "k": kind},
    ).one_or_none()
    return Account(*row) if row else None


def system_account(kind: str) -> Account:
    """The singleton `platform_fees` or `token_sales` account (made by the migration)."""
    if kind not in SYSTEM_KINDS:
        raise LedgerError(f"not a system account kind: {kind}")
    cache = current_app.extensions.setdefault("ledger_system_accounts", {})
    if kind not in cache:
        row = db.session.execute(
            text("SELECT id, kind, cached FROM ledger_accounts WHERE kind = :k AND user_id IS NULL"),
            {"k": kind},
        ).one()
        cache[kind] = Account(*row)
    return cache[kind]


def balance_of(account: Account) -> int:
    """Current balance: the row for cached accounts, the entry sum for derived ones."""
    if account.cached:
        sql = "SELECT balance FROM ledger_accounts WHERE id = :id"
    else:
        sql = "SELECT coalesce(sum(amount), 0) FROM ledger_entries WHERE account_id = :id"
    return int(db.session.execute(text(sql), {"id": account.id}).scalar_one())


_INSERT_TRANSFER = text(
    "INSERT INTO ledger_transfers (kind, idempotency_key, metadata) "
    "VALUES (:kind, :key, CAST(:meta AS jsonb)) "
    "ON CONFLICT (idempotency_key) DO NOTHING RETURNING id"
)
_EXISTING_TRANSFER = text("SELECT id FROM ledger_transfers WHERE idempotency_key = :key")
_DEBIT_CACHED = text(
    "UPDATE ledger_accounts SET balance = balance + :amount "
    "WHERE id = :id AND balance + :amount >= 0 RETURNING balance"
)
_CREDIT_CACHED = text(
    "UPDATE ledger_accounts SET balance = balance + :amount WHERE id = :id RETURNING balance"
)
_CACHED_BALANCE = text("SELECT balance FROM ledger_accounts WHERE id = :id")
_LOCK_DERIVED = text("SELECT id FROM ledger_accounts WHERE id = :id FOR UPDATE")
_DERIVED_BALANCE = text("SELECT coalesce(sum(amount), 0) FROM ledger_entries WHERE account_id = :id")
_INSERT_ENTRIES = text(
    "INSERT INTO ledger_entries (transfer_id, account_id, amount, balance_after) "
    "SELECT :tid, a, m, b FROM unnest(CAST(:accounts AS bigint[]), CAST(:amounts AS bigint[]), "
    "CAST(:balances AS bigint[])) AS x(a, m, b)"
)


def _validate_legs(legs: list[Leg]) -> None:
    if len(legs) < 2:
        raise LedgerError("a transfer needs at least two legs")
    seen = set()
    for leg in legs:
        if type(leg.amount) is not int or leg.amount == 0:
            raise LedgerError(f"leg amounts must be non-zero integers, got {leg.amount!r}")
        if leg.account.id in seen:
            raise LedgerError("an account may appear once per transfer")
        seen.add(leg.account.id)
    if sum(leg.amount for leg in legs) != 0:
        raise LedgerError("legs must sum to zero")


def transfer(kind: str, key: str, legs: list[Leg], metadata: dict | None = None) -> TransferResult:
    """Move tokens: one transfer with one entry per leg, inside the caller's transaction.

    `key` is the transfer's idempotency key (e.g. ``purchase:42``,
    ``call:7:block:3``). If a transfer with that key already exists nothing
    moves and the result has ``created=False`` — running a job twice is
    harmless.

    Raises `InsufficientFunds` (with the shortfall) when a debit would take a
    wallet (or a derived account other than `token_sales`) below zero, and
    `LedgerError` for malformed legs. On either, the caller must roll back.
    """
    _validate_legs(legs)
    session = db.session
    tid = session.execute(
        _INSERT_TRANSFER, {"kind": kind, "key": key, "meta": json.dumps(metadata or {})}
    ).scalar()
    if tid is None:
        existing = session.execute(_EXISTING_TRANSFER, {"key": key}).scalar_one()
        return TransferResult(existing, created=False)

    balances: dict[int, int] = {}
    # Lock rows in account-id order so two transfers never wait on each other in a cycle.
    for leg in sorted(legs, key=lambda leg: leg.account.id):
        acc, amount = leg.account, leg.amount
        if acc.cached:
            stmt = _DEBIT_CACHED if amount < 0 else _CREDIT_CACHED
            new_balance = session.execute(stmt, {"amount": amount, "id": acc.id}).scalar()
            if new_balance is None:
                current = session.execute(_CACHED_BALANCE, {"id": acc.id}).scalar_one()
                raise InsufficientFunds(required=-(current + amount))
            balances[acc.id] = int(new_balance)
        elif amount < 0 and acc.kind not in NEGATIVE_ALLOWED:
            session.execute(_LOCK_DERIVED, {"id": acc.id})
            current = session.execute(_DERIVED_BALANCE, {"id": acc.id}).scalar_one()
            if current + amount < 0:
                raise InsufficientFunds(required=-(current + amount))

    session.execute(_INSERT_ENTRIES, {
        "tid": tid,
        "accounts": [leg.account.id for leg in legs],
        "amounts": [leg.amount for leg in legs],
        "balances": [balances.get(leg.account.id) for leg in legs],
    })
    return TransferResult(tid, created=True, balances=balances)


from app.ledger.verify import verify  # noqa: E402  (re-export)
