"""The ledger: the only code that moves tokens.

Design note
-----------
Double entry. A *transfer* is one business event with a unique idempotency
key and a kind (`TransferKind`, app/ledger/kinds.py: purchases and their
reversals, tips, tickets, call blocks and refunds, payouts — the database
accepts no other); its *entries* are signed amounts on accounts.

Sign rule: a positive entry credits (increases) an account, a negative entry
debits (decreases) it. A transfer's entries sum to zero, so tokens only ever
move: the issuer (`token_sales`) is debited for every purchase and may go below
zero (its balance is minus the tokens in circulation); so may a user's `debt`,
which holds what a refund or chargeback could not take back from their wallet
(`lock_holder`, `holder_credit`, `holder_take_back`: credits repay it first).
Paid-out tokens leave a creator's earnings for `payouts_in_transit`, then
`payouts_paid` once the money was sent.

Accounts come in two flavours:

* **cached** (wallets, debts: a user's own): the row's `balance` is updated in the same
  transaction as the entry, under a row lock taken in account-id order; a
  debit that would take it below zero is refused, and
  ``CHECK (balance >= 0)`` backs that up in the database.
* **derived** (hot accounts: creator earnings, platform fees, token sales,
  escrow): thousands of fans credit them at once, so a credit only appends an
  entry and never touches the shared row; the balance is the sum of entries.
  A debit of a derived account (escrow settling, say) is rare: it locks the
  account row, sums, and checks.

Invariants the database enforces, even when this module is bypassed:

* every INSERT of entries leaves each transfer it touches summing to zero with
  at least two entries, and a transfer with no entries is refused at COMMIT;
* entries and transfers are immutable (UPDATE/DELETE/TRUNCATE refused: a
  correction is a reversing transfer);
* entry amounts are non-zero; wallets never go below zero (CHECK);
* idempotency keys are unique (a repeated post moves nothing);
* a transfer's kind is a `TransferKind` (CHECK, migration 0013).

The ledger's functions add: no derived account but `token_sales` is debited
below zero (its entries are summed under its row lock). `verify()` re-checks
all of it from the raw tables, plus that cached balances equal the sum of
their entries, that each show's escrow holds its valid unsettled tickets, and
that every token issued was purchased.

The database code (its triggers and functions) is code, not history: its one
current source is app/ledger/sql/, migrations are generated from it, and a
test proves the live database runs exactly that source.

Three ways in, each one statement (one round trip) that checks every debit
before writing anything, so a refused transfer leaves no trace:

* `transfer` — one transfer (`ledger_post`);
* `transfer_many` — a batch of independent transfers (`ledger_post_batch`),
  each applied or refused on its own: the call meter's blocks;
* `transfer_for_request` — a transfer made once per client request: it claims
  the request's idempotency key and posts, together (`ledger_post_request`):
  a tip.

"Pay a creator, the platform takes its share" (a tip, a call block, a show's
settlement) is one shape of legs, built by `creator_payment` from `split`,
the one place the share rule lives.

Nothing here commits: callers own the transaction, so a transfer and the
business row it belongs to (a purchase, a tip) commit or roll back together.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from flask import current_app
from psycopg.types.json import Jsonb
from sqlalchemy import text

from app import idempotency
from app.errors import InsufficientFunds
from app.extensions import db, driver_connection
from app.ledger.kinds import TransferKind
from app.ledger.models import CACHED_KINDS, NEGATIVE_ALLOWED, SYSTEM_KINDS

__all__ = [
    "Account", "Leg", "TransferKind", "TransferResult", "LedgerError", "split", "transfer", "open_account",
    "open_escrow", "escrow_account", "accounts_for", "TransferRequest", "transfer_many", "CreatorPayment",
    "creator_payment", "RequestTransfer", "transfer_for_request", "account_for", "system_account", "balance_of",
    "verify", "Holder", "lock_holder", "lock_holders", "holder_credit", "holder_take_back", "owed_by", "lock_account",
]



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


@dataclass(frozen=True)
class TransferRequest:
    """One transfer of a `transfer_many` batch (the arguments of `transfer`)."""
    kind: TransferKind
    key: str
    legs: list[Leg]
    metadata: dict | None = None


@dataclass
class TransferResult:
    transfer_id: int
    created: bool
    # Balance after the transfer for each cached account it touched.
    balances: dict[int, int] = field(default_factory=dict)


@dataclass(frozen=True)
class CreatorPayment:
    """A payment to a creator as `creator_payment` builds it: its legs and the split they apply."""
    legs: list[Leg]
    creator_share: int
    platform_share: int


@dataclass
class RequestTransfer:
    """`transfer_for_request`'s answer."""
    # The id the request's claim reserved for the row it creates (a tip's id).
    resource_id: int
    # On a replay: the first request's transfer (created=False) with the balances right after it.
    transfer: TransferResult
    # What the request's `Record` returned (None on a replay or without one).
    recorded: object = None


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


def creator_payment(payer: Account, earnings: Account, amount: int,
                    share_percent: int | None = None) -> CreatorPayment:
    """The legs of "`payer` pays a creator `amount`, the platform takes its share":
    `payer` (a fan's wallet, a show's escrow) −amount, the creator's `earnings`
    +creator share, `platform_fees` +platform share, as `split` divides it. A
    share of 0 gets no leg (a 1-token tip is all the platform's).

    The one shape of a tip, a call block and a show's settlement; post it with
    `transfer`, `transfer_many` or `transfer_for_request`.
    """
    creator_share, platform_share = split(amount, share_percent)
    legs = [Leg(payer, -amount), Leg(earnings, creator_share), Leg(system_account("platform_fees"), platform_share)]
    return CreatorPayment([leg for leg in legs if leg.amount], creator_share, platform_share)


def open_account(kind: str, user_id: int) -> Account:
    """Return the user's account of this kind, creating it if needed (idempotent)."""
    cached = kind in CACHED_KINDS
    db.session.execute(
        text("INSERT INTO ledger_accounts (kind, user_id, cached) VALUES (:k, :u, :c) "
             "ON CONFLICT DO NOTHING"),
        {"k": kind, "u": user_id, "c": cached},
    )
    return account_for(user_id, kind)


def open_escrow(owner_id: int) -> Account:
    """A new escrow account owned by `owner_id` (a creator): one per private show,
    so settling or refunding a show only ever sums that show's entries."""
    account_id = db.session.execute(
        text("INSERT INTO ledger_accounts (kind, user_id, cached) VALUES ('escrow', :u, false) RETURNING id"),
        {"u": owner_id}).scalar_one()
    return Account(account_id, "escrow", False)


def escrow_account(account_id: int) -> Account:
    """A show's escrow account, from the id its show keeps (`open_escrow` made it:
    kind and flavour are known, so nothing to look up)."""
    return Account(account_id, "escrow", False)


def account_for(user_id: int, kind: str) -> Account | None:
    """The user's account of this kind, or None. Found accounts are cached per
    process: an account's id, kind and flavour never change once it exists."""
    cache = current_app.extensions.setdefault("ledger_accounts", {})
    found = cache.get((user_id, kind))
    if found is None:
        row = db.session.execute(
            text("SELECT id, kind, cached FROM ledger_accounts WHERE user_id = :u AND kind = :k"),
            {"u": user_id, "k": kind},
        ).one_or_none()
        if row is None:
            return None
        found = cache[(user_id, kind)] = Account(*row)
    return found


def accounts_for(user_ids, kind: str) -> dict[int, Account]:
    """`account_for` for many users in one query (the metering tick's batch); only
    users that have such an account appear in the result."""
    cache = current_app.extensions.setdefault("ledger_accounts", {})
    missing = [u for u in set(user_ids) if (u, kind) not in cache]
    if missing:
        for row in db.session.execute(
                text("SELECT id, kind, cached, user_id FROM ledger_accounts WHERE kind = :k AND user_id = ANY(:u)"),
                {"k": kind, "u": missing}):
            cache[(row.user_id, kind)] = Account(row.id, row.kind, row.cached)
    return {u: cache[(u, kind)] for u in set(user_ids) if (u, kind) in cache}


def system_account(kind: str) -> Account:
    """A singleton account: `platform_fees`, `token_sales`, `payouts_in_transit` or
    `payouts_paid` (made by the migrations)."""
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


@dataclass(frozen=True)
class Holder:
    """A user's own tokens, locked by `lock_holder` until the transaction ends:
    their wallet and their debt account with the balances as of the lock."""
    user_id: int
    wallet: Account
    debt: Account
    wallet_balance: int
    owed: int  # tokens owed after refunds and disputes took back more than the wallet held (>= 0)


def lock_holder(user_id: int) -> Holder:
    """Lock the user's wallet and debt rows (opening them if needed), in account-id
    order as `ledger_post` locks, and read their balances. Take this lock before
    building `holder_credit` or `holder_take_back` legs, so the split between
    wallet and debt cannot go stale before the transfer posts."""
    return lock_holders([user_id])[user_id]


def lock_holders(user_ids) -> dict[int, Holder]:
    """`lock_holder` for many users at once (a show's refund batch): opens the
    missing wallet and debt accounts in one statement, then locks every row in one
    query, in account-id order (as `ledger_post` does, so two batches sharing users
    cannot deadlock). Returns a `Holder` per user."""
    ids = sorted(set(user_ids))
    found = {kind: accounts_for(ids, kind) for kind in ("wallet", "debt")}
    missing = [(kind, u) for kind in found for u in ids if u not in found[kind]]
    if missing:
        db.session.execute(
            text("INSERT INTO ledger_accounts (kind, user_id, cached) "
                 "SELECT k, u, true FROM unnest(CAST(:k AS text[]), CAST(:u AS bigint[])) AS m(k, u) "
                 "ON CONFLICT DO NOTHING"),
            {"k": [k for k, _ in missing], "u": [u for _, u in missing]})
        found = {kind: accounts_for(ids, kind) for kind in found}
    wallets, debts = found["wallet"], found["debt"]
    balances = dict(db.session.execute(
        text("SELECT id, balance FROM ledger_accounts WHERE id = ANY(:ids) ORDER BY id FOR UPDATE"),
        {"ids": [a.id for a in (*wallets.values(), *debts.values())]}).all())
    return {u: Holder(u, wallets[u], debts[u], int(balances[wallets[u].id]), -int(balances[debts[u].id]))
            for u in ids}


def holder_credit(holder: Holder, amount: int) -> list[Leg]:
    """The user's legs of receiving `amount` tokens: what they owe is repaid first
    (their debt account), the rest lands in their wallet. The counter-legs are
    the caller's (token_sales for a purchase, earnings for a refund)."""
    repaid = min(amount, holder.owed)
    return [leg for leg in (Leg(holder.debt, repaid), Leg(holder.wallet, amount - repaid)) if leg.amount]


def holder_take_back(holder: Holder, amount: int) -> list[Leg]:
    """The user's legs of giving back `amount` tokens (a refund, a chargeback): the
    wallet gives what it holds, the rest becomes debt (DESIGN.md §11)."""
    from_wallet = min(amount, holder.wallet_balance)
    return [leg for leg in (Leg(holder.wallet, -from_wallet), Leg(holder.debt, -(amount - from_wallet)))
            if leg.amount]


def owed_by(user_id: int) -> int:
    """Tokens the user owes (0 if none), read without a lock: a user who owes
    anything may not spend (`AccountRestricted`)."""
    owed = db.session.execute(
        text("SELECT -balance FROM ledger_accounts WHERE user_id = :u AND kind = 'debt'"), {"u": user_id}).scalar()
    return int(owed or 0)


def lock_account(account: Account) -> int:
    """Lock a derived account's row for the rest of the transaction and return its
    balance (a payout checks what is available, then posts, with no one else
    debiting in between)."""
    db.session.execute(text("SELECT 1 FROM ledger_accounts WHERE id = :id FOR UPDATE"), {"id": account.id})
    return balance_of(account)


def balance_of(account: Account) -> int:
    """Current balance: the row for cached accounts, the entry sum for derived ones."""
    if account.cached:
        sql = "SELECT balance FROM ledger_accounts WHERE id = :id"
    else:
        sql = "SELECT coalesce(sum(amount), 0) FROM ledger_entries WHERE account_id = :id"
    return int(db.session.execute(text(sql), {"id": account.id}).scalar_one())


# One statement per transfer (app/ledger/sql/functions/ledger_post.sql explains the
# steps), sent on the session's own psycopg connection (see `driver_connection`).
_POST = ("SELECT o_transfer_id, o_created, o_shortfall, o_balances "
         "FROM ledger_post(%s, %s, %s, %s::bigint[], %s::bigint[])")


def _post_arguments(legs: list[Leg]) -> tuple[list[int], list[int]]:
    """Check `legs` and return them as the database functions take them: (account
    ids, amounts). Raises `LedgerError` for malformed legs."""
    if len(legs) < 2:
        raise LedgerError("a transfer needs at least two legs")
    ids = [leg.account.id for leg in legs]
    amounts = [leg.amount for leg in legs]
    for account_id, amount in zip(ids, amounts):
        if type(amount) is not int or amount == 0:
            raise LedgerError(f"leg amounts must be non-zero integers, got {amount!r}")
        if type(account_id) is not int:
            raise LedgerError(f"account ids must be integers, got {account_id!r}")
    if len(set(ids)) != len(ids):
        raise LedgerError("an account may appear once per transfer")
    if sum(amounts) != 0:
        raise LedgerError("legs must sum to zero")
    return ids, amounts


def _bigint_array(values: list[int]) -> str:
    """`values` (integers, checked by `_post_arguments`) as a PostgreSQL array literal,
    for a ``%s::bigint[]`` parameter: the same value psycopg would send for the
    list, without its pure-Python list dumper (measured: ~20 µs of client CPU per
    array, a tenth of what a whole transfer costs the client)."""
    return "{" + ",".join(map(str, values)) + "}"


def transfer(kind: TransferKind, key: str, legs: list[Leg], metadata: dict | None = None) -> TransferResult:
    """Move tokens: one transfer with one entry per leg, inside the caller's transaction.

    `key` is the transfer's idempotency key (e.g. ``purchase:42``,
    ``call:7:block:3``). If a transfer with that key already exists nothing
    moves and the result has ``created=False`` — running a job twice is
    harmless.

    Raises `InsufficientFunds` (with the shortfall) when a debit would take a
    wallet (or a derived account other than `token_sales`) below zero — having
    written nothing, so the caller's transaction may go on (the call meter
    ends one call and bills the rest of its batch) — and `LedgerError` for
    malformed legs.
    """
    ids, amounts = _post_arguments(legs)
    tid, created, shortfall, balances = driver_connection().execute(
        _POST, (kind, key, Jsonb(metadata or {}), _bigint_array(ids), _bigint_array(amounts))).fetchone()
    if shortfall:
        raise InsufficientFunds(required=shortfall)
    if not created:
        return TransferResult(tid, created=False)
    return TransferResult(tid, created=True,
                          balances={a: b for a, b in zip(ids, balances, strict=True) if b is not None})


# Binary parameters (%b): a meter tick's arrays hold ~100,000 elements, and
# psycopg dumps arrays in binary at a third of the cost of text.
_POST_BATCH = ("SELECT o_transfer_ids, o_created, o_shortfalls, o_balances "
               "FROM ledger_post_batch(%b::text[], %b::text[], %b, %b::int[], %b::bigint[], %b::bigint[])")


def transfer_many(requests: list[TransferRequest]) -> list[TransferResult | InsufficientFunds]:
    """Post independent transfers in one statement (`ledger_post_batch`), inside
    the caller's transaction. Each is applied or refused on its own:
    a refused one comes back as an `InsufficientFunds` (not raised) and wrote
    nothing, so the others stand. Same rules and idempotency as `transfer`.

    For batches of independent transfers — the call meter's: one open call per
    fan. Raises `LedgerError` (nothing written) unless keys are distinct, each
    cached account (wallet) appears in at most one transfer of the batch, and no
    derived account other than `token_sales` is debited (use `transfer` for
    that: it sums the account's entries).
    """
    if not requests:
        return []
    keys, leg_of, accounts, amounts, seen_cached = [], [], [], [], set()
    for ordinal, request in enumerate(requests, start=1):
        ids, legs_amounts = _post_arguments(request.legs)
        for leg in request.legs:
            if leg.account.cached:
                if leg.account.id in seen_cached:
                    raise LedgerError("a cached account may appear in one transfer per batch")
                seen_cached.add(leg.account.id)
            elif leg.amount < 0 and leg.account.kind not in NEGATIVE_ALLOWED:
                raise LedgerError("debits of derived accounts go through transfer()")
        keys.append(request.key)
        leg_of += [ordinal] * len(ids)
        accounts += ids
        amounts += legs_amounts
    if len(set(keys)) != len(keys):
        raise LedgerError("keys in a batch must be distinct")
    metas = Jsonb([r.metadata or {} for r in requests])
    tids, created, shortfalls, balances = driver_connection().execute(
        _POST_BATCH, ([r.kind for r in requests], keys, metas, leg_of, accounts, amounts)).fetchone()
    if any(t is None and not s for t, s in zip(tids, shortfalls, strict=True)):
        # Inserted meanwhile by a concurrent post that shared no lock with this one
        # (its transaction committed while ours waited on the key): a replay.
        found = dict(driver_connection().execute(
            "SELECT idempotency_key, id FROM ledger_transfers WHERE idempotency_key = ANY(%s)", (keys,)).fetchall())
        tids = [t if t is not None else found.get(k) for t, k in zip(tids, keys, strict=True)]
    per_transfer: list[dict[int, int]] = [{} for _ in requests]
    for ordinal, account, balance in zip(leg_of, accounts, balances, strict=True):
        if balance is not None:
            per_transfer[ordinal - 1][account] = balance
    results: list[TransferResult | InsufficientFunds] = []
    for tid, made, shortfall, moved in zip(tids, created, shortfalls, per_transfer, strict=True):
        if shortfall:
            results.append(InsufficientFunds(required=shortfall))
        else:
            results.append(TransferResult(tid, created=made, balances=moved if made else {}))
    return results


# A claim and a transfer in one statement (app/ledger/sql/functions/ledger_post_request.sql).
_POST_REQUEST = ("SELECT o_status, o_resource_id, o_transfer_id, o_balances, o_shortfall "
                 "FROM ledger_post_request(%s, %s, %s, %s, %s, %s, %s, %s::bigint[], %s::bigint[])")
# The same, with the caller's row written in that statement when the transfer is
# posted: its INSERT reads the request as `posted(id, transfer_id)`.
_POST_REQUEST_AND_RECORD = (
    "WITH r AS MATERIALIZED (" + _POST_REQUEST + "), "
    "posted AS (SELECT o_resource_id AS id, o_transfer_id AS transfer_id FROM r WHERE o_status = 'posted'), "
    "recorded AS ({record}) "
    "SELECT r.*, (SELECT * FROM recorded) FROM r")


@dataclass(frozen=True)
class Record:
    """The row a request creates, written in the ledger's statement (`transfer_for_request`):
    `sql` is an INSERT … SELECT … FROM posted … RETURNING <one column>, where `posted`
    has the reserved `id` and the `transfer_id`; `args` fill its own placeholders."""
    sql: str
    args: tuple


def transfer_for_request(kind: TransferKind, legs: list[Leg], metadata: dict | None = None, *, user_id: int,
                         key: str, scope: str, params: dict, id_sequence: str,
                         record: Record | None = None) -> RequestTransfer:
    """`transfer` made once per client request, in one statement, inside the caller's
    transaction: claim the request's idempotency key the way `idempotency.claim` does
    (`user_id`, `key`, `scope`, `params`), reserving the id of the row the request
    creates from `id_sequence`; then post the transfer ``<kind>:<id>``, its metadata
    naming the row (``<kind>Id``). With `record`, that row is written in the same
    statement (its RETURNING value is `recorded`); else the caller writes it, with
    that id, before it commits. One statement either way: a tip is this plus the
    commit, the same two round trips as before the ledger owned it.

    A replay of the key returns the first request's id and transfer (``created=False``,
    with the balances right after it) and moves nothing (nor records anything). Raises
    `Conflict` (the key was used with other parameters), `InsufficientFunds` (with the
    shortfall) and `LedgerError` (malformed legs); after a raise the caller must roll
    back, which also releases the claim, so a refused request leaves nothing behind.
    """
    ids, amounts = _post_arguments(legs)
    args = (user_id, key, scope, idempotency.fingerprint(scope, params), id_sequence, kind, Jsonb(metadata or {}),
            _bigint_array(ids), _bigint_array(amounts))
    if record is None:
        row = driver_connection().execute(_POST_REQUEST, args).fetchone() + (None,)
    else:
        row = driver_connection().execute(_POST_REQUEST_AND_RECORD.format(record=record.sql),
                                          args + record.args).fetchone()
    status, resource_id, tid, balances, shortfall, recorded = row
    if status == "conflict":
        raise idempotency.key_reused()
    if status == "insufficient_funds":
        raise InsufficientFunds(required=shortfall)
    after = {a: b for a, b in zip(ids, balances or [], strict=False) if b is not None}
    return RequestTransfer(resource_id, TransferResult(tid, created=status == "posted", balances=after), recorded)


from app.ledger.verify import verify  # noqa: E402  (re-export)
