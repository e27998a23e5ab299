"""Wallet: balances, token purchases and the history of every entry."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from flask import current_app
from sqlalchemy import func, select

from app import idempotency, ledger, validation
from app.errors import NotFound
from app.extensions import db
from app.ledger.models import LedgerEntry, LedgerTransfer
from app.wallet import reversals
from app.wallet.models import Purchase
from app.payments.providers import price_cents, provider as get_provider

PURCHASE_SCOPE = "tokens.purchase"


@dataclass
class PurchaseResult:
    purchase: Purchase
    new_balance: int | None
    replayed: bool
    checkout_url: str | None = None


def wallet_of(user) -> ledger.Account:
    return ledger.account_for(user.id, "wallet") or ledger.open_account("wallet", user.id)


def wallet_balance(user) -> int:
    return ledger.balance_of(wallet_of(user))


def balances(user) -> dict:
    """`{balance, earnings}`: spendable tokens, and a creator's earned tokens (else 0)."""
    balance = wallet_balance(user)
    earnings_acc = ledger.account_for(user.id, "earnings")
    earnings = ledger.balance_of(earnings_acc) if earnings_acc else 0
    return {"balance": balance, "earnings": earnings}


def purchase_amount(raw, *, from_form: bool = False) -> int:
    return validation.token_amount(raw, "amountTokens", maximum=current_app.config["MAX_PURCHASE_TOKENS"],
                                   from_form=from_form)


def purchase_tokens(user, amount_tokens: int, key: str) -> PurchaseResult:
    """Buy `amount_tokens` for `user`, idempotent on `key`; commits.

    With the demo provider the wallet is credited at once. A replay of `key`
    returns the first purchase and the balance it produced, moving nothing;
    the same key with another amount raises `Conflict`.
    """
    try:
        return _purchase_tokens(user, amount_tokens, key)
    except Exception:
        db.session.rollback()  # a refused purchase leaves nothing behind
        raise


def _purchase_tokens(user, amount_tokens: int, key: str) -> PurchaseResult:
    claim = idempotency.claim(user.id, key, PURCHASE_SCOPE, {"amountTokens": amount_tokens}, "purchases_id_seq")
    if not claim.fresh:
        db.session.rollback()  # end the claim's transaction: nothing to write
        purchase = db.session.get(Purchase, claim.resource_id)
        return PurchaseResult(purchase, _balance_after(purchase), replayed=True)

    provider = get_provider()
    purchase = Purchase(id=claim.resource_id, user_id=user.id, amount_tokens=amount_tokens,
                        amount_cents=price_cents(amount_tokens), provider=provider.name)
    start = provider.start_checkout(purchase, success_url="", cancel_url="")
    result = PurchaseResult(purchase, None, replayed=False, checkout_url=start.url)
    if start.completed:
        result.new_balance = _credit(purchase, start.reference)
    db.session.add(purchase)
    db.session.commit()
    return result


def _credit(purchase: Purchase, provider_ref: str) -> int:
    """Credit a paid purchase to the buyer's wallet; returns the new balance."""
    wallet = ledger.account_for(purchase.user_id, "wallet")
    moved = ledger.transfer(
        ledger.TransferKind.PURCHASE, f"purchase:{purchase.id}",
        [ledger.Leg(ledger.system_account("token_sales"), -purchase.amount_tokens),
         ledger.Leg(wallet, purchase.amount_tokens)],
        {"purchaseId": purchase.id, "provider": purchase.provider},
    )
    purchase.status = "completed"
    purchase.provider_ref = provider_ref
    purchase.transfer_id = moved.transfer_id
    purchase.completed_at = func.now()
    return moved.balances[wallet.id]


def _balance_after(purchase: Purchase) -> int | None:
    if purchase.transfer_id is None:
        return None
    wallet = ledger.account_for(purchase.user_id, "wallet")
    return db.session.scalar(
        select(LedgerEntry.balance_after).where(LedgerEntry.transfer_id == purchase.transfer_id,
                                                LedgerEntry.account_id == wallet.id))


@dataclass
class HistoryItem:
    entry_id: int
    transfer_id: int
    kind: str
    amount: int
    balance_after: int | None
    created_at: datetime
    reason: str


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
        return f"Bought {amount:,} tokens{suffix}"
    show = metadata.get("streamTitle")
    if kind == ledger.TransferKind.TICKET and show:
        return f"Ticket: {show}"
    if kind == ledger.TransferKind.TICKET_REFUND and show:
        why = "did not start in time" if metadata.get("reason") == "no_show" else "was canceled"
        return f"Refund: {show} {why}"
    return kind.replace("_", " ").capitalize()


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
                         describe(r.kind, r.metadata_ or {}, abs(r.amount))) for r in rows]
    return HistoryPage(items, page, per_page, total)


def receipt(user, transfer_id: int) -> dict:
    """The user's side of one transfer, or `NotFound` (also for other people's)."""
    wallet = wallet_of(user)
    row = db.session.execute(
        select(LedgerEntry.id, LedgerEntry.amount, LedgerEntry.balance_after, LedgerEntry.created_at,
               LedgerTransfer.id.label("transfer_id"), LedgerTransfer.kind, LedgerTransfer.metadata_)
        .join(LedgerTransfer, LedgerTransfer.id == LedgerEntry.transfer_id)
        .where(LedgerEntry.transfer_id == transfer_id, LedgerEntry.account_id == wallet.id)
    ).one_or_none()
    if row is None:
        raise NotFound("No such receipt.")
    purchase = None
    if row.kind == ledger.TransferKind.PURCHASE:
        purchase = db.session.get(Purchase, (row.metadata_ or {}).get("purchaseId"))
    return {"entry": row, "reason": describe(row.kind, row.metadata_ or {}, abs(row.amount)),
            "purchase": purchase}
