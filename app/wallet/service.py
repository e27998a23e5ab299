"""Wallet: balances, token purchases and the history of every entry.

Buying (DESIGN.md §11): `purchase_tokens` stores a purchase and starts its
payment. The demo provider pays at once and the tokens are credited in the same
transaction; with Stripe the purchase waits `pending` while the buyer pays at
Checkout, and the news arrives later — by webhook (app/wallet/stripe_events.py)
or, when that was lost, by the reconciliation job (app/wallet/cron.py) — as a
`CheckoutSession`, settled by `checkout_paid`, `checkout_unpaid` or
`checkout_ended`. Every path credits through `_credit`, once per purchase
(ledger transfer `purchase:<id>`), debt repaid first.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from flask import current_app, has_request_context, url_for
from sqlalchemy import func, select, text

from app import idempotency, ledger, validation
from app.errors import BadRequest, NotFound
from app.extensions import db
from app.ledger.models import LedgerEntry, LedgerTransfer
from app.payments.providers import format_money, price_cents, provider as get_provider
from app.wallet import pushes, reversals
from app.wallet.models import Purchase

log = logging.getLogger(__name__)

PURCHASE_SCOPE = "tokens.purchase"
# Purchases listed on /wallet (the newest; a highlighted older one is added).
RECENT_PURCHASES = 10


@dataclass
class PurchaseResult:
    purchase: Purchase
    # Paid at once (demo): the buyer's wallet balance right after the credit. None otherwise.
    new_balance: int | None
    replayed: bool

    @property
    def at_checkout(self) -> bool:
        """Paid at the provider's Checkout (Stripe), not at once (demo)."""
        return self.purchase.checkout_url is not None

    @property
    def checkout_url(self) -> str | None:
        """Where the buyer pays, while the purchase still waits for payment; else None."""
        return self.purchase.checkout_url if self.purchase.status == "pending" else None


def wallet_of(user) -> ledger.Account:
    return ledger.account_for(user.id, "wallet") or ledger.open_account("wallet", user.id)


def wallet_balance(user) -> int:
    return ledger.balance_of(wallet_of(user))


def earnings_balance(user) -> int:
    """A creator's earned tokens (0 for anyone without an earnings account)."""
    account = ledger.account_for(user.id, "earnings")
    return ledger.balance_of(account) if account else 0


def earnings_figure(user_id: int) -> int:
    """The same figure as `earnings_balance`, for what is read on every page and after every
    tip (the nav pill): earnings are a derived account, a sum of entries, so it is read
    from the dashboards' rollups plus the newest entries — its cost does not grow with
    the creator's history."""
    from app.dashboard.queries import by_kind  # a sibling's reads; the dashboards import the wallet
    from app.dashboard.ranges import EPOCH
    account = ledger.account_for(user_id, "earnings")
    return sum(by_kind([account.id], EPOCH).values()) if account else 0


def balances(user) -> dict:
    """`{balance, earnings}`: spendable tokens, and a creator's earned tokens (else 0)."""
    balance = wallet_balance(user)
    return {"balance": balance, "earnings": earnings_balance(user)}


def purchase_amount(raw, *, from_form: bool = False) -> int:
    return validation.token_amount(raw, "amountTokens", maximum=current_app.config["MAX_PURCHASE_TOKENS"],
                                   from_form=from_form)


def price_of(amount_tokens: int) -> str:
    """What `amount_tokens` cost, written for a person ("$5.00")."""
    return format_money(price_cents(amount_tokens), current_app.config["CURRENCY"])


def purchase_tokens(user, amount_tokens: int, key: str, return_to: str | None = None) -> PurchaseResult:
    """Buy `amount_tokens` for `user` at `price_cents` in `CURRENCY`, idempotent on `key`; commits.
    `return_to`: the page the buyer was on (a stream, a call), offered on /wallet
    when Checkout sends them back (`back_path`); ignored unless a local path.

    Demo: the wallet is credited at once (`new_balance`). Stripe: the purchase is
    stored `pending` with its Checkout Session (`checkout_url`: send the buyer
    there); a webhook or the reconciliation credits it later. A replay of `key`
    returns the first purchase as it stands now (for a demo purchase, with the
    balance its credit produced) and moves nothing; the same key with another
    amount raises `Conflict`. Stripe failing raises `ProviderError` (503) and
    keeps nothing: no purchase, and the key is free for a retry.
    """
    try:
        result = _purchase_tokens(user, amount_tokens, key, return_to)
    except Exception:
        db.session.rollback()  # a refused purchase leaves nothing behind
        raise
    if result.new_balance is not None and not result.replayed:
        pushes.purchase_changed(result.purchase, result.new_balance)  # the buyer's other tabs
    return result


def _purchase_tokens(user, amount_tokens: int, key: str, return_to: str | None) -> PurchaseResult:
    claim = idempotency.claim(user.id, key, PURCHASE_SCOPE, {"amountTokens": amount_tokens}, "purchases_id_seq")
    if not claim.fresh:
        db.session.rollback()  # end the claim's transaction: nothing to write
        purchase = db.session.get(Purchase, claim.resource_id)
        paid_at_once = purchase.checkout_url is None
        return PurchaseResult(purchase, _balance_after(purchase) if paid_at_once else None, replayed=True)

    provider = get_provider()
    purchase = Purchase(id=claim.resource_id, user_id=user.id, amount_tokens=amount_tokens,
                        amount_cents=price_cents(amount_tokens), currency=current_app.config["CURRENCY"],
                        provider=provider.name, status="pending")
    # Stripe is asked while the claim is held (uncommitted): a concurrent retry of
    # the key waits for this answer, and a failure rolls the claim back with the rest.
    checkout = provider.start_checkout(purchase, **_return_urls(purchase.id, back_path(return_to)))
    purchase.provider_ref, purchase.checkout_url = checkout.reference, checkout.url
    new_balance = _credit(purchase) if checkout.completed else None
    db.session.add(purchase)
    db.session.commit()
    return PurchaseResult(purchase, new_balance, replayed=False)


def back_path(raw) -> str | None:
    """The page a buyer came from, if it is worth going back to: a local path (see
    `validation.is_local_path`), short, and not the wallet itself; else None."""
    if not (validation.is_local_path(raw) and len(raw) <= 200) or raw.split("?")[0].startswith("/wallet"):
        return None
    return raw


def _return_urls(purchase_id: int, back: str | None = None) -> dict:
    """Where Checkout sends the buyer back: /wallet, highlighting the purchase (or
    /wallet alone when they cancel), with `next` naming the page they bought from,
    which /wallet offers to go back to. Absolute, as Stripe requires, built from
    the request's host (behind a proxy: TRUSTED_PROXIES). Outside a request
    (seeding) there is no host: empty, which only the demo provider, which sends
    nobody anywhere, accepts."""
    if not has_request_context():
        return {"success_url": "", "cancel_url": ""}
    return {"success_url": url_for("wallet.wallet", purchase=purchase_id, next=back, _external=True),
            "cancel_url": url_for("wallet.wallet", next=back, _external=True)}


def _credit(purchase: Purchase) -> int:
    """Credit a paid purchase to its buyer: token_sales −amount, and the buyer's
    `holder_credit` legs (what they owe is repaid first, the rest lands in their
    wallet); transfer `purchase:<id>`, so it happens once whoever calls. Marks the
    purchase `completed`. The caller holds the purchase (a row it is creating, or
    one locked by `_locked_purchase`) and has seen it uncredited; it commits.
    Returns the buyer's wallet balance after the credit."""
    holder = ledger.lock_holder(purchase.user_id)
    credit = ledger.holder_credit(holder, purchase.amount_tokens)
    moved = ledger.transfer(
        ledger.TransferKind.PURCHASE, f"purchase:{purchase.id}",
        [ledger.Leg(ledger.system_account("token_sales"), -purchase.amount_tokens), *credit],
        {"purchaseId": purchase.id, "provider": purchase.provider, "amountTokens": purchase.amount_tokens,
         "amountCents": purchase.amount_cents, "currency": purchase.currency},
    )
    purchase.status = "completed"
    purchase.transfer_id = moved.transfer_id
    purchase.completed_at = purchase.updated_at = func.now()
    return holder.wallet_balance + sum(leg.amount for leg in credit if leg.account == holder.wallet)


def _balance_after(purchase: Purchase) -> int | None:
    """The buyer's wallet balance right after the purchase's credit (0 when all of
    it repaid debt: nobody owes while holding tokens); None if not credited."""
    if purchase.transfer_id is None:
        return None
    wallet = ledger.account_for(purchase.user_id, "wallet")
    after = db.session.scalar(
        select(LedgerEntry.balance_after).where(LedgerEntry.transfer_id == purchase.transfer_id,
                                                LedgerEntry.account_id == wallet.id))
    return 0 if after is None else after


# ---- purchases: reading ----------------------------------------------------------------

def purchase_of(user, purchase_id: int) -> Purchase:
    """The user's purchase, or `NotFound` (also for other people's)."""
    purchase = db.session.get(Purchase, purchase_id)
    if purchase is None or purchase.user_id != user.id:
        raise NotFound("No such purchase.")
    return purchase


def recent_purchases(user, highlight: int | None = None) -> list[Purchase]:
    """The user's newest purchases for /wallet, newest first; the `highlight`ed one
    (back from Checkout) is included even when older, if it is theirs."""
    found = list(db.session.scalars(select(Purchase).where(Purchase.user_id == user.id)
                                    .order_by(Purchase.id.desc()).limit(RECENT_PURCHASES)))
    if highlight is not None and all(p.id != highlight for p in found):
        older = db.session.get(Purchase, highlight)
        if older is not None and older.user_id == user.id:
            found.append(older)
    return found


def purchases_changed_since(user_id: int, hours: int = 24) -> list[Purchase]:
    """The user's purchases made in the last `hours` (what a /wallet page opened
    since may show): re-sent on every /ws/me (re)connect, so a missed push never
    leaves a purchase showing "waiting for payment" after it was credited."""
    return list(db.session.scalars(
        select(Purchase).where(Purchase.user_id == user_id,
                               Purchase.created_at > func.now() - text(f"interval '{int(hours)} hours'"))
        .order_by(Purchase.id.desc()).limit(RECENT_PURCHASES)))


# ---- purchases: what Stripe says happened at Checkout ---------------------------------------

@dataclass(frozen=True)
class CheckoutSession:
    """The fields of a Stripe Checkout Session the wallet acts on, type-checked
    (app/wallet/stripe_events.py builds it from an event or from Stripe's answer)."""
    id: str
    purchase_id: int
    amount_total: int | None
    currency: str | None
    payment_status: str | None
    payment_intent: str | None


@dataclass
class Settled:
    """What news of a Checkout Session did to its purchase: `outcome` (kept on the
    webhook event's row), whether anything `changed`, and the buyer's wallet
    balance if it was credited now. Publish with `settled_push` after the commit."""
    outcome: str
    purchase: Purchase
    changed: bool = False
    new_balance: int | None = None


class UnknownPurchase(BadRequest):
    code = "unknown_purchase"


class SessionMismatch(BadRequest):
    code = "session_mismatch"


def _locked_purchase(session: CheckoutSession) -> Purchase:
    """The session's purchase, its row locked until the transaction ends (news of one
    purchase is applied one at a time, whatever order it arrives in). Raises
    `UnknownPurchase` (no such Stripe purchase) or `SessionMismatch` (the purchase
    belongs to another Checkout Session)."""
    purchase = db.session.scalars(select(Purchase).where(Purchase.id == session.purchase_id).with_for_update()
                                  .execution_options(populate_existing=True)).one_or_none()
    if purchase is None or purchase.provider != "stripe":
        raise UnknownPurchase(f"No Stripe purchase {session.purchase_id} for Checkout Session {session.id}.")
    if purchase.provider_ref != session.id:
        raise SessionMismatch(f"Purchase {purchase.id} was paid through another Checkout Session, not {session.id}.")
    return purchase


def _mismatch(purchase: Purchase, session: CheckoutSession) -> str | None:
    """Why the amount paid is not the purchase's price (None when it is)."""
    if session.amount_total != purchase.amount_cents or session.currency != purchase.currency:
        return (f"Checkout {session.id} paid {session.amount_total} {session.currency}, "
                f"the purchase costs {purchase.amount_cents} {purchase.currency}")[:255]
    return None


def checkout_paid(session: CheckoutSession) -> Settled:
    """The buyer paid (`checkout.session.completed` with payment_status "paid",
    `async_payment_succeeded`, or Stripe's answer to the reconciliation): credit the
    purchase once, if the amount and currency paid are its price. A mismatch
    credits nothing and flags the purchase for the operator (outcome "flagged").
    Already credited: nothing (late or repeated news). Expired or failed: credited
    all the same (the money was taken). Keeps the PaymentIntent. Doesn't commit."""
    purchase = _locked_purchase(session)
    if purchase.transfer_id is not None:
        return Settled("already_credited", purchase)
    problem = _mismatch(purchase, session)
    if problem is not None:
        log.warning("purchase %s flagged: %s", purchase.id, problem)
        purchase.flagged, purchase.updated_at = problem, func.now()
        purchase.payment_intent = session.payment_intent or purchase.payment_intent
        return Settled("flagged", purchase, changed=True)
    balance = _credit(purchase)
    # Only now: changed before the credit's statements, it would be flushed on a round trip of its own.
    purchase.payment_intent = session.payment_intent or purchase.payment_intent
    return Settled("credited", purchase, changed=True, new_balance=balance)


def checkout_unpaid(session: CheckoutSession) -> Settled:
    """Checkout completed but the payment is still on its way (an asynchronous
    method such as a bank debit): the purchase stays pending until
    `async_payment_succeeded` or `_failed`. Keeps the PaymentIntent. Doesn't commit."""
    purchase = _locked_purchase(session)
    if purchase.status == "pending" and session.payment_intent and not purchase.payment_intent:
        purchase.payment_intent = session.payment_intent
    return Settled("awaiting_payment", purchase)


def checkout_ended(session: CheckoutSession, status: str) -> Settled:
    """The buyer never paid: the Checkout Session expired (`status` "expired") or
    its asynchronous payment failed ("failed"). Only a purchase still pending
    changes; nothing is credited. Doesn't commit."""
    purchase = _locked_purchase(session)
    if purchase.status != "pending":
        return Settled("already_settled", purchase)
    purchase.status, purchase.updated_at = status, func.now()
    return Settled(status, purchase, changed=True)


def settled_push(settled: Settled) -> None:
    """After the commit: the purchase's row, and the new balance if it was credited,
    to every tab its buyer has open."""
    if settled.changed:
        pushes.purchase_changed(settled.purchase, settled.new_balance)


def checkouts_to_reconcile(after_minutes: int, limit: int = 100) -> list[tuple[int, str]]:
    """(purchase id, Checkout Session id) of Stripe purchases pending and not looked
    at for `after_minutes` (made, changed or checked: see `checked`), least recently
    first. Flagged ones are the operator's."""
    stale = func.now() - text(f"interval '{int(after_minutes)} minutes'")
    return [tuple(row) for row in db.session.execute(
        select(Purchase.id, Purchase.provider_ref)
        .where(Purchase.provider == "stripe", Purchase.status == "pending", Purchase.flagged.is_(None),
               Purchase.provider_ref.is_not(None), func.coalesce(Purchase.updated_at, Purchase.created_at) < stale)
        .order_by(func.coalesce(Purchase.updated_at, Purchase.created_at)).limit(limit))]


def checked(purchase_id: int) -> None:
    """Note that the purchase was just looked up at Stripe (`updated_at`), so the
    reconciliation asks about it again only `RECONCILE_AFTER_MINUTES` later. Doesn't commit."""
    db.session.execute(text("UPDATE purchases SET updated_at = now() WHERE id = :id"), {"id": purchase_id})


@dataclass
class HistoryItem:
    entry_id: int
    transfer_id: int
    kind: str
    amount: int
    balance_after: int | None
    created_at: datetime
    reason: str
    price: str | None = None  # what a purchase cost ("$5.00")


@dataclass
class HistoryPage:
    items: list[HistoryItem]
    page: int
    per_page: int
    total: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))

    @property
    def has_prev(self) -> bool:
        return self.page > 1

    @property
    def has_next(self) -> bool:
        return self.page < self.pages


def describe(kind: str, metadata: dict, amount: int) -> str:
    """The reason a person reads next to a wallet entry (plain text: templates escape it)."""
    if kind in reversals.KINDS:
        return reversals.describe(kind, metadata, amount)
    if kind == ledger.TransferKind.PURCHASE:
        suffix = " (test mode)" if metadata.get("provider") == "demo" else ""
        bought = metadata.get("amountTokens")
        if isinstance(bought, int) and bought > amount:  # part of it repaid what the buyer owed
            return f"Bought {bought:,} tokens{suffix}, {bought - amount:,} of them repaid what you owed"
        return f"Bought {amount:,} tokens{suffix}"
    show = metadata.get("streamTitle")
    if kind == ledger.TransferKind.TICKET and show:
        return f"Ticket: {show}"
    if kind == ledger.TransferKind.TICKET_REFUND and show:
        why = "did not start in time" if metadata.get("reason") == "no_show" else "was canceled"
        return f"Refund: {show} {why}"
    if kind == ledger.TransferKind.CALL_REFUND and metadata.get("creatorName"):
        why = "media never connected" if metadata.get("reason") == "media_never_connected" else "refunded by the platform"
        block = metadata.get("blockIndex")
        which = f", block {block + 1}" if isinstance(block, int) else ""
        return f"Refund: call with {metadata['creatorName']}{which} ({why})"
    return kind.replace("_", " ").capitalize()


def _price(kind: str, metadata: dict) -> str | None:
    """What a purchase's tokens cost, from its transfer (purchases credited since
    prices were recorded there); None for anything else."""
    cents, currency = metadata.get("amountCents"), metadata.get("currency")
    if kind != ledger.TransferKind.PURCHASE or not isinstance(cents, int) or not isinstance(currency, str):
        return None
    return format_money(cents, currency)


def history(user, page: int = 1, per_page: int = 25) -> HistoryPage:
    """One page of the user's wallet entries, newest first, each with its reason."""
    wallet = wallet_of(user)
    total = db.session.scalar(select(func.count()).select_from(LedgerEntry)
                              .where(LedgerEntry.account_id == wallet.id))
    page = max(1, min(page, max(1, -(-total // per_page))))
    rows = db.session.execute(
        select(LedgerEntry.id, LedgerEntry.transfer_id, LedgerTransfer.kind, LedgerTransfer.metadata_,
               LedgerEntry.amount, LedgerEntry.balance_after, LedgerEntry.created_at)
        .join(LedgerTransfer, LedgerTransfer.id == LedgerEntry.transfer_id)
        .where(LedgerEntry.account_id == wallet.id)
        .order_by(LedgerEntry.id.desc())
        .limit(per_page).offset((page - 1) * per_page)
    ).all()
    items = [HistoryItem(r.id, r.transfer_id, r.kind, r.amount, r.balance_after, r.created_at,
                         describe(r.kind, r.metadata_ or {}, abs(r.amount)), _price(r.kind, r.metadata_ or {}))
             for r in rows]
    return HistoryPage(items, page, per_page, total)


def receipt(user, transfer_id: int) -> dict:
    """The user's side of one transfer, or `NotFound` (also for other people's)."""
    wallet = wallet_of(user)
    row = db.session.execute(
        select(LedgerEntry.id, LedgerEntry.amount, LedgerEntry.balance_after, LedgerEntry.created_at,
               LedgerTransfer.id.label("transfer_id"), LedgerTransfer.kind, LedgerTransfer.metadata_,
               LedgerTransfer.idempotency_key)
        .join(LedgerTransfer, LedgerTransfer.id == LedgerEntry.transfer_id)
        .where(LedgerEntry.transfer_id == transfer_id, LedgerEntry.account_id == wallet.id)
    ).one_or_none()
    if row is None:
        raise NotFound("No such receipt.")
    purchase = tip = None
    if row.kind == ledger.TransferKind.PURCHASE:
        purchase = db.session.get(Purchase, (row.metadata_ or {}).get("purchaseId"))
    elif row.kind == ledger.TransferKind.TIP:
        from app.tips.service import tip_receipt  # a sibling's service; tips imports the wallet's
        tip = tip_receipt(row.transfer_id, row.idempotency_key)
    return {"entry": row, "reason": describe(row.kind, row.metadata_ or {}, abs(row.amount)),
            "purchase": purchase, "tip": tip}
