"""Helpers of the refund, dispute, restriction and operator-refund tests.

Purchases paid at Stripe are made here the way checkout crediting makes them
(`purchase:<id>`, debt repaid first): these tests are about what happens after
the money came in, not how. Webhooks are signed with the real scheme and posted
to `/webhooks/stripe` through a test client.
"""
from __future__ import annotations

import json
import uuid

from sqlalchemy import func, select

from app import ledger
from app.extensions import db
from app.wallet import reversals
from app.wallet.models import Purchase
from tests.payments import standin as standin_module


def paid_purchase(user, tokens: int, cents: int | None = None, *, provider: str = "stripe", standin=None,
                  currency: str = "usd") -> Purchase:
    """A purchase of `tokens` paid with `cents` (1 a token by default) and credited:
    its `purchase:<id>` transfer moves the tokens from token_sales, repaying the
    buyer's debt first. With `standin`, Stripe knows its charge. Commits."""
    cents = tokens if cents is None else cents
    intent = f"pi_{uuid.uuid4().hex[:24]}" if provider == "stripe" else None
    purchase = Purchase(user_id=user.id, amount_tokens=tokens, amount_cents=cents, provider=provider,
                        currency=currency, payment_intent=intent, provider_ref=f"cs_test_{uuid.uuid4().hex}")
    db.session.add(purchase)
    db.session.flush()
    holder = ledger.lock_holder(user.id)
    moved = ledger.transfer(ledger.TransferKind.PURCHASE, f"purchase:{purchase.id}",
                            [ledger.Leg(ledger.system_account("token_sales"), -tokens),
                             *ledger.holder_credit(holder, tokens)],
                            {"purchaseId": purchase.id, "provider": provider})
    purchase.status, purchase.transfer_id, purchase.completed_at = "completed", moved.transfer_id, func.now()
    db.session.commit()
    if standin is not None:
        standin.charges[intent] = {"id": f"ch_{uuid.uuid4().hex[:24]}", "object": "charge", "payment_intent": intent,
                                   "amount": cents, "amount_refunded": 0, "currency": currency, "refunded": False,
                                   "metadata": {"purchase_id": str(purchase.id)}}
    return purchase


def fresh(purchase_id: int) -> Purchase:
    db.session.rollback()
    return db.session.get(Purchase, purchase_id, populate_existing=True)


def wallet_of(user_id: int) -> int:
    db.session.rollback()
    return ledger.balance_of(ledger.account_for(user_id, "wallet"))


def owed(user_id: int) -> int:
    db.session.rollback()
    return ledger.owed_by(user_id)


def spend(user, creator, tokens: int) -> None:
    """`user` tips `creator` `tokens` (a wallet emptied by spending, not by refunds)."""
    from app.tips import service as tips
    tips.send_tip(user, creator.id, tokens, "", None, f"spend-{uuid.uuid4()}", confirmed=True)


def _locked(purchase: Purchase) -> Purchase:
    return db.session.execute(select(Purchase).where(Purchase.id == purchase.id).with_for_update()
                              .execution_options(populate_existing=True)).scalar_one()


def refund_now(purchase: Purchase, amount_refunded: int) -> None:
    """Apply a refund as the webhook would (purchase row locked); commits."""
    reversals.apply_refund(_locked(purchase), amount_refunded)
    db.session.commit()


def dispute_now(purchase: Purchase, dispute_id: str) -> None:
    """Open a dispute as the webhook would; commits."""
    reversals.open_dispute(_locked(purchase), dispute_id)
    db.session.commit()


def indebted_fan(make_fan, make_creator, owed_tokens: int, *, held: int = 0):
    """(fan, creator, purchase): a fan who bought `owed_tokens + held` (demo), tipped
    `creator` all but `held` of it, then had the whole purchase refunded: the wallet
    gave its `held`, and the fan owes the rest."""
    fan, creator = make_fan(), make_creator()
    purchase = paid_purchase(fan, owed_tokens + held, provider="demo")
    spend(fan, creator, owed_tokens)
    refund_now(purchase, owed_tokens + held)
    assert owed(fan.id) == owed_tokens and wallet_of(fan.id) == 0
    return fan, creator, purchase


def post_event(client, event: dict):
    """Deliver `event` to /webhooks/stripe as Stripe would (signed now)."""
    payload = json.dumps(event)
    return client.post("/webhooks/stripe", data=payload, content_type="application/json",
                       headers={"Stripe-Signature": standin_module.sign(payload, standin_module.WEBHOOK_SECRET)})


def make_operator(make_user):
    user = make_user("fan", name="Operator")
    user.is_operator = True
    db.session.commit()
    return user
