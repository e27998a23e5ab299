"""Money back: refunds, chargebacks, the debt they leave, and operator refunds (DESIGN.md §11).

Design note
-----------
A purchase's tokens come back to `token_sales` in three ways, each applied
under a lock on the purchase row (``SELECT … FOR UPDATE``), then on the buyer's
wallet and debt (`ledger.lock_holder`), in that order everywhere:

* **Refund** (`charge.refunded`, cumulative ``amount_refunded``): the purchase
  keeps ``floor(amount_tokens × amount_refunded / amount_cents)`` tokens taken
  back in all (`refunded_tokens`). Only an increase moves anything, so a
  repeated event or a lower amount arriving late does nothing. Tokens still
  with the fan are taken back (``purchase:<id>:refund:<cumulative tokens>``);
  tokens a dispute already holds back are only counted as refunded instead, so
  a refund and a dispute, in either order, take back at most the purchase.
* **Dispute** (`charge.dispute.created`): everything still with the fan is
  taken back and held (`disputed_tokens`), ``purchase:<id>:dispute:<dispute>``.
  Closed as *won*, what the dispute still holds is given back
  (``…:won``, `PURCHASE_RESTORE`); *lost*, it stays taken.
* **Operator refund**: `request_refund` asks the provider. With Stripe that is
  all: the `charge.refunded` webhook does the ledger work, exactly as for a
  refund made in Stripe's dashboard. The demo provider refunds at once, so the
  same `apply_refund` runs right away with the new cumulative amount.

Taking back empties the wallet first; what it lacks becomes the fan's debt
(`ledger.holder_take_back`). Credits repay debt first (`ledger.holder_credit`),
so a user who owes always has an empty wallet; `refuse_if_owing` is what every
way of spending asks once the wallet said no (`AccountRestricted`, 403).

The status follows the counters: ``disputed`` while a dispute holds tokens,
else ``refunded`` once any were refunded, else ``completed``.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

from flask import Flask
from sqlalchemy import func, select

from app import idempotency, ledger, validation
from app.auth.models import User
from app.auth.service import require_operator
from app.errors import AccountRestricted, BadRequest, Conflict, InvalidValue, NotFound
from app.extensions import db
from app.ledger.models import LedgerEntry, LedgerTransfer
from app.payments.providers import DemoProvider, format_money, provider as get_provider
from app.payments.webhooks import Handled, register_handler
from app.wallet.models import CREDITED_STATUSES, Purchase
from app.wallet.pushes import balance_changed

REFUND_SCOPE = "purchases.refund"
RECENT_PURCHASES = 50
SEARCH_MAX = 254  # the longest e-mail address
_STRIPE_ID_MAX = 100  # Stripe's ids are ~30 characters; a bound keeps our transfer keys short


# ---- restriction ---------------------------------------------------------------------------

def refuse_if_owing(user_id: int) -> None:
    """Raise `AccountRestricted` when the user owes tokens. Spending paths call it
    only after the wallet refused (a user who owes always has an empty wallet), so
    the hot path pays nothing for it."""
    owed = ledger.owed_by(user_id)
    if owed:
        raise AccountRestricted(owed)


def tokens_owed(user) -> int:
    """What a logged-in user owes (0 for anyone else): the /wallet debt notice."""
    return ledger.owed_by(user.id) if getattr(user, "is_authenticated", False) else 0


# ---- applying refunds and disputes (purchase row locked by the caller) --------------------------

@dataclass
class Change:
    """What a reversal did: a word for the webhook's record, and the buyer's wallet
    balance to publish after commit (None when nothing moved)."""
    outcome: str
    user_id: int
    balance: int | None = None

    def handled(self) -> Handled:
        if self.balance is None:
            return Handled(self.outcome)
        user_id, balance = self.user_id, self.balance
        return Handled(self.outcome, after_commit=lambda: balance_changed(user_id, balance))


def apply_refund(purchase: Purchase, amount_refunded: int) -> Change:
    """Bring the purchase's refunded tokens up to ``floor(amount_tokens ×
    amount_refunded / amount_cents)`` (`amount_refunded` is cumulative, in cents,
    0..amount_cents). Never moves anything twice: an amount at or below what was
    already applied changes nothing. Call with the purchase row locked; does not commit."""
    _require_credited(purchase)
    target = purchase.amount_tokens * amount_refunded // purchase.amount_cents if purchase.amount_cents else 0
    more = target - purchase.refunded_tokens
    if more <= 0:
        return Change("nothing new to refund", purchase.user_id)
    holder = ledger.lock_holder(purchase.user_id)
    # What a dispute already holds back is not taken twice: it only counts as refunded now.
    take = min(more, purchase.amount_tokens - purchase.refunded_tokens - purchase.disputed_tokens)
    balance = _take_back(purchase, holder, take, f"purchase:{purchase.id}:refund:{target}", "refund")
    purchase.disputed_tokens -= more - take
    purchase.refunded_tokens = target
    _settle_status(purchase)
    return Change("refunded", purchase.user_id, balance)


def open_dispute(purchase: Purchase, dispute_id: str) -> Change:
    """Take back every token of the purchase still with the fan and hold it for the
    dispute. A dispute seen before changes nothing. Purchase row locked; no commit."""
    _require_credited(purchase)
    held = purchase.amount_tokens - purchase.refunded_tokens - purchase.disputed_tokens
    if held <= 0 or _dispute_taken(purchase, dispute_id) is not None:
        return Change("nothing left to dispute", purchase.user_id)
    holder = ledger.lock_holder(purchase.user_id)
    balance = _take_back(purchase, holder, held, _dispute_key(purchase, dispute_id), "dispute")
    purchase.disputed_tokens += held
    _settle_status(purchase)
    return Change("disputed", purchase.user_id, balance)


def close_dispute(purchase: Purchase, dispute_id: str, status: str) -> Change:
    """A dispute closed: *won* gives back what it still holds (debt repaid first); any
    other ending, or a dispute never opened, changes nothing. Purchase row locked; no commit."""
    _require_credited(purchase)
    if status != "won":
        return Change(f"dispute {status[:24]}: nothing given back", purchase.user_id)
    taken = _dispute_taken(purchase, dispute_id)
    # A refund may have turned part of what the dispute held into refunded tokens meanwhile.
    give = min(taken or 0, purchase.disputed_tokens)
    if give <= 0:
        return Change("no dispute to give back", purchase.user_id)
    holder = ledger.lock_holder(purchase.user_id)
    moved = ledger.transfer(
        ledger.TransferKind.PURCHASE_RESTORE, f"{_dispute_key(purchase, dispute_id)}:won",
        [ledger.Leg(ledger.system_account("token_sales"), -give), *ledger.holder_credit(holder, give)],
        {"purchaseId": purchase.id, "disputeId": dispute_id})
    if not moved.created:
        return Change("already given back", purchase.user_id)
    purchase.disputed_tokens -= give
    _settle_status(purchase)
    return Change("dispute won: given back", purchase.user_id, moved.balances.get(holder.wallet.id,
                                                                                   holder.wallet_balance))


def _take_back(purchase: Purchase, holder: ledger.Holder, tokens: int, key: str, reason: str) -> int | None:
    """Post one `PURCHASE_REVERSAL` of `tokens` (the wallet first, the rest as debt);
    returns the buyer's wallet balance after it."""
    if tokens <= 0:
        return None
    moved = ledger.transfer(
        ledger.TransferKind.PURCHASE_REVERSAL, key,
        [ledger.Leg(ledger.system_account("token_sales"), tokens), *ledger.holder_take_back(holder, tokens)],
        {"purchaseId": purchase.id, "reason": reason})
    if not moved.created:
        # The key is the purchase's counters at the time; with the row locked they cannot repeat.
        raise ledger.LedgerError(f"{key} was already posted but purchase {purchase.id} does not count it")
    return moved.balances.get(holder.wallet.id, holder.wallet_balance)


def _dispute_key(purchase: Purchase, dispute_id: str) -> str:
    return f"purchase:{purchase.id}:dispute:{dispute_id}"


def _dispute_taken(purchase: Purchase, dispute_id: str) -> int | None:
    """Tokens the dispute's reversal took back, or None if it never took any."""
    return db.session.scalar(
        select(LedgerEntry.amount).join(LedgerTransfer, LedgerTransfer.id == LedgerEntry.transfer_id)
        .where(LedgerTransfer.idempotency_key == _dispute_key(purchase, dispute_id),
               LedgerEntry.account_id == ledger.system_account("token_sales").id))


def _settle_status(purchase: Purchase) -> None:
    purchase.status = ("disputed" if purchase.disputed_tokens else
                       "refunded" if purchase.refunded_tokens else "completed")
    purchase.updated_at = func.now()


def _require_credited(purchase: Purchase) -> None:
    if purchase.status not in CREDITED_STATUSES:
        raise Conflict(f"Purchase {purchase.id} is {purchase.status}: no tokens were credited to take back.",
                       "not_refundable")


def _locked(where) -> Purchase | None:
    return db.session.execute(select(Purchase).where(where).order_by(Purchase.id).limit(1).with_for_update()
                              .execution_options(populate_existing=True)).scalar_one_or_none()


# ---- the webhook handlers (app/payments/webhooks.py: raise AppError = refused, nothing kept) ----

def on_charge_refunded(charge: dict, event: dict) -> Handled:
    """`charge.refunded`: apply the charge's cumulative `amount_refunded` to its purchase."""
    intent = _stripe_id(charge.get("payment_intent"), "payment_intent")
    amount = _cents(charge.get("amount"), "amount")
    refunded = _cents(charge.get("amount_refunded"), "amount_refunded")
    if refunded > amount:
        raise InvalidValue("amount_refunded exceeds the charge's amount.", "invalid_event")
    purchase = _purchase_for(intent)
    if amount != purchase.amount_cents or not isinstance(charge.get("currency"), str) \
            or charge["currency"].lower() != purchase.currency:
        raise InvalidValue(f"The charge does not match purchase {purchase.id}'s amount and currency.",
                           "amount_mismatch")
    return apply_refund(purchase, refunded).handled()


def on_dispute_created(dispute: dict, event: dict) -> Handled:
    """`charge.dispute.created`: take the purchase's tokens back while the dispute runs."""
    dispute_id = _stripe_id(dispute.get("id"), "id")
    return open_dispute(_purchase_for(_stripe_id(dispute.get("payment_intent"), "payment_intent")),
                        dispute_id).handled()


def on_dispute_closed(dispute: dict, event: dict) -> Handled:
    """`charge.dispute.closed`: won → the tokens come back; lost (or anything else) → they stay taken."""
    dispute_id = _stripe_id(dispute.get("id"), "id")
    status = dispute.get("status")
    if not isinstance(status, str) or not status:
        raise BadRequest("The dispute has no status.", "invalid_event")
    purchase = _purchase_for(_stripe_id(dispute.get("payment_intent"), "payment_intent"))
    return close_dispute(purchase, dispute_id, status).handled()


def _purchase_for(intent: str) -> Purchase:
    purchase = _locked(Purchase.payment_intent == intent)
    if purchase is None:
        raise NotFound("No purchase was paid with that payment.", "unknown_purchase")
    return purchase


def _stripe_id(value, name: str) -> str:
    if not (isinstance(value, str) and 0 < len(value) <= _STRIPE_ID_MAX and value.isascii() and value.isprintable()
            and " " not in value):
        raise BadRequest(f"The event's {name} is missing or not an id.", "invalid_event")
    return value


def _cents(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= validation.BIGINT_MAX:
        raise BadRequest(f"The event's {name} is not an amount in cents.", "invalid_event")
    return value


# ---- operator refunds --------------------------------------------------------------------------

@dataclass
class PurchaseRow:
    """A purchase as the operators' list shows it."""
    purchase: Purchase
    email: str
    display_name: str

    @property
    def left_tokens(self) -> int:
        """Tokens a refund can still take back (not refunded, not held by a dispute)."""
        p = self.purchase
        return p.amount_tokens - p.refunded_tokens - p.disputed_tokens

    @property
    def refundable(self) -> bool:
        return _refusal(self.purchase) is None and self.left_tokens > 0

    def money(self, tokens: int | None = None) -> str:
        """The purchase's price, or what `tokens` of it cost."""
        p = self.purchase
        return format_money(p.amount_cents if tokens is None else tokens * _cents_per_token(p), p.currency)


@dataclass
class RefundResult:
    """`request_refund`'s answer: Stripe's refund id while Stripe has yet to confirm
    it (`waiting`), or, with the demo provider, the purchase already refunded."""
    purchase: Purchase
    amount_cents: int
    refund_id: str | None
    waiting: bool
    replayed: bool

    @property
    def money(self) -> str:
        return format_money(self.amount_cents, self.purchase.currency)


def recent_purchases(operator, query: str | None = None, limit: int = RECENT_PURCHASES) -> list[PurchaseRow]:
    """The latest purchases, newest first, optionally those matching `query`: a
    number is a purchase id ("42" or "#42"), anything else part of the buyer's
    e-mail address. Operators only (`Forbidden`); `InvalidValue` for a query
    longer than an e-mail address."""
    require_operator(operator, "Purchases and refunds")
    q = select(Purchase, User.email, User.display_name).join(User, User.id == Purchase.user_id)
    query = (query or "").strip()
    if len(query) > SEARCH_MAX:
        raise InvalidValue(f"Search for at most {SEARCH_MAX} characters.", field="q")
    as_id = validation.ascii_int(query.removeprefix("#"))
    if as_id is not None:
        q = q.where(Purchase.id == as_id)
    elif query:
        pattern = "%" + query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        q = q.where(User.email.ilike(pattern))
    return [PurchaseRow(*row) for row in db.session.execute(q.order_by(Purchase.id.desc()).limit(limit))]


def purchase_row(operator, purchase_id: int) -> PurchaseRow:
    """One purchase as the list shows it, or `NotFound`; operators only."""
    require_operator(operator, "Purchases and refunds")
    row = db.session.execute(select(Purchase, User.email, User.display_name).join(User, User.id == Purchase.user_id)
                             .where(Purchase.id == purchase_id)).one_or_none()
    if row is None:
        raise NotFound("No such purchase.", "purchase_not_found")
    return PurchaseRow(*row)


def refund_cents(raw, *, field: str = "amountCents") -> int:
    """A refund amount in cents from JSON: a positive integer."""
    if isinstance(raw, bool) or not isinstance(raw, int) or not 0 < raw <= validation.BIGINT_MAX:
        raise InvalidValue("amountCents must be a positive whole number of cents.", field=field)
    return raw


def request_refund(operator, purchase_id: int, key: str, *, amount_cents: int | None = None,
                   amount_tokens: int | None = None) -> RefundResult:
    """Refund part or all of a credited purchase, in cents or in tokens (give one);
    idempotent on the operator's `key`; commits.

    With Stripe, asks Stripe for the refund (its idempotency key derives from
    `key`) and moves no tokens: the `charge.refunded` webhook does. With the demo
    provider the refund is applied at once. A replay of `key` returns the first
    answer (Stripe replays its refund) and moves nothing.

    Refunds are whole tokens' worth: the purchase's price per token divides the
    amount. Raises `Forbidden` (not an operator), `NotFound`, `Conflict`
    ``not_refundable`` (not credited, under a chargeback, nothing was paid, or
    bought with another provider), `InvalidValue` (not a whole number of tokens, or
    more than is left), `Conflict` (key reused with other parameters) and
    `ProviderError` (Stripe refused or is down; nothing changed).
    """
    require_operator(operator, "Purchases and refunds")
    try:
        return _request_refund(operator, purchase_id, key, amount_cents, amount_tokens)
    except Exception:
        db.session.rollback()  # a refused refund leaves nothing behind, not even the key's claim
        raise


def _request_refund(operator, purchase_id, key, amount_cents, amount_tokens) -> RefundResult:
    provider = get_provider()
    applies_at_once = isinstance(provider, DemoProvider)
    # The demo refund applies here, so it locks the purchase as a webhook would; a
    # Stripe refund only asks (Stripe refuses more than is left), so no lock is held
    # across the call to Stripe.
    q = select(Purchase).where(Purchase.id == purchase_id)
    purchase = db.session.execute(q.with_for_update() if applies_at_once else q).scalar_one_or_none()
    if purchase is None:
        raise NotFound("No such purchase.", "purchase_not_found")
    cents = _refund_amount(purchase, amount_cents, amount_tokens)
    # No row of its own to reserve an id for: the claim only remembers the request.
    claim = idempotency.claim(operator.id, key, REFUND_SCOPE, {"purchaseId": purchase.id, "amountCents": cents}, None)
    stripe_key = f"purchase-{purchase.id}-refund-" + hashlib.sha256(f"{operator.id}:{key}".encode()).hexdigest()[:32]
    if not claim.fresh:
        # Stripe replays the first refund for the same key and amount; the demo one is done.
        refund_id = None if applies_at_once else provider.refund(purchase, amount_cents=cents, key=stripe_key)
        db.session.rollback()
        return RefundResult(purchase, cents, refund_id, waiting=not applies_at_once, replayed=True)
    refusal = _refusal(purchase, provider.name)
    if refusal:
        raise Conflict(refusal, "not_refundable")
    per_token = _cents_per_token(purchase)
    left = purchase.amount_tokens - purchase.refunded_tokens - purchase.disputed_tokens
    if cents // per_token > left:
        raise InvalidValue(f"Only {left:,} tokens ({format_money(left * per_token, purchase.currency)}) of this "
                           "purchase are left to refund.", "refund_too_large", field="amountCents")
    refund_id = provider.refund(purchase, amount_cents=cents, key=stripe_key)
    change = apply_refund(purchase, purchase.refunded_tokens * per_token + cents) if applies_at_once else None
    db.session.commit()
    if change is not None and change.balance is not None:
        balance_changed(change.user_id, change.balance)
    return RefundResult(purchase, cents, refund_id, waiting=not applies_at_once, replayed=False)


def _refund_amount(purchase: Purchase, amount_cents: int | None, amount_tokens: int | None) -> int:
    per_token = _cents_per_token(purchase)
    if amount_tokens is not None:
        return amount_tokens * per_token
    if amount_cents is None:
        raise InvalidValue("Enter an amount to refund.", field="amountCents")
    if amount_cents % per_token:
        raise InvalidValue(f"Refund a whole number of tokens: a multiple of {per_token:,} cents for this purchase.",
                           field="amountCents")
    return amount_cents


def _cents_per_token(purchase: Purchase) -> int:
    # Every purchase costs amount_tokens × TOKEN_PRICE_CENTS (of its day); `_refusal` rules out the rest.
    return max(1, purchase.amount_cents // purchase.amount_tokens)


def _refusal(purchase: Purchase, provider_name: str | None = None) -> str | None:
    """Why the purchase cannot be refunded by the operator, or None."""
    if purchase.status not in CREDITED_STATUSES:
        return f"Purchase {purchase.id} is {purchase.status}: nothing was credited, so there is nothing to refund."
    if purchase.disputed_tokens:
        return f"Purchase {purchase.id} is under a chargeback: the card's bank decides, not a refund."
    if not purchase.amount_cents or purchase.amount_cents % purchase.amount_tokens:
        return f"Purchase {purchase.id} cannot be refunded by tokens: its price is not a whole number of cents each."
    if (provider_name or get_provider().name) != purchase.provider:
        return f"Purchase {purchase.id} was paid with the {purchase.provider} provider, which is not the one in use."
    if purchase.provider != DemoProvider.name and not purchase.payment_intent:
        return f"Purchase {purchase.id} has no payment at Stripe to refund."
    return None


# ---- the wallet history's words ---------------------------------------------------------------

KINDS = (ledger.TransferKind.PURCHASE_REVERSAL, ledger.TransferKind.PURCHASE_RESTORE)


def describe(kind: str, metadata: dict, amount: int) -> str:
    """A wallet entry of a reversal or restore, in words (plain text)."""
    purchase = f"purchase #{metadata.get('purchaseId')}"
    if kind == ledger.TransferKind.PURCHASE_RESTORE:
        return f"Given back: the chargeback on {purchase} was closed and the payment stands"
    if metadata.get("reason") == "dispute":
        return f"Taken back: {purchase} is under a chargeback"
    return f"Taken back: {purchase} was refunded"


def init_app(app: Flask) -> None:
    """Stripe's refund and dispute events, and the /wallet debt notice's figure."""
    register_handler(app, "charge.refunded", on_charge_refunded)
    register_handler(app, "charge.dispute.created", on_dispute_created)
    register_handler(app, "charge.dispute.closed", on_dispute_closed)
    app.add_template_global(tokens_owed, "tokens_owed")
