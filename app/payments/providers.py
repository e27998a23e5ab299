"""Payment providers behind one interface: `provider()` is the configured one.

Money in (Checkout), money back (refunds) and money out (Connect payouts) all
go through here, so features never talk to Stripe themselves. The demo
provider (development, tests, `make run`) succeeds at once and moves no real
money; the layout shows a test-mode banner while it is in use. The Stripe
provider drives the official SDK (`app.payments.client`). Neither moves tokens:
crediting, taking back and paying out are the features' ledger work, done once
per payment whichever way the news arrives (an immediate demo answer, a
webhook, the reconciliation job).
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from urllib.parse import urlsplit

from flask import current_app

from app.payments.client import ProviderError, stripe_client

__all__ = ["Checkout", "DemoProvider", "ProviderError", "StripeProvider", "format_money", "price_cents", "payout_cents",
           "provider", "test_mode"]


def price_cents(amount_tokens: int) -> int:
    """What `amount_tokens` cost the buyer, in integer cents of `CURRENCY`."""
    return amount_tokens * current_app.config["TOKEN_PRICE_CENTS"]


def payout_cents(amount_tokens: int) -> int:
    """What a creator receives for `amount_tokens`, in integer cents of `CURRENCY`."""
    return amount_tokens * current_app.config["PAYOUT_CENTS_PER_TOKEN"]


# Currencies Stripe counts in whole units: an amount of 500 in jpy is ¥500, not ¥5.00.
ZERO_DECIMAL_CURRENCIES = frozenset({"bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd",
                                     "vuv", "xaf", "xof", "xpf"})


def format_money(cents: int, currency: str) -> str:
    """An amount in the smallest unit of `currency` as a person reads it: "$5.00"
    and "$1,250.00" in usd, "5.00 EUR" in any other currency ("500 JPY" in one
    without cents). The one way money is written (the `money` Jinja filter)."""
    currency = currency.lower()
    sign, cents = ("-" if cents < 0 else ""), abs(int(cents))
    amount = f"{cents:,}" if currency in ZERO_DECIMAL_CURRENCIES else f"{cents // 100:,}.{cents % 100:02d}"
    return f"{sign}${amount}" if currency == "usd" else f"{sign}{amount} {currency.upper()}"


@dataclass(frozen=True)
class Checkout:
    """How a purchase is paid: at once (demo: `completed`), or at `url` (Stripe Checkout)."""
    completed: bool
    reference: str  # the provider's id for this payment (a Checkout Session id)
    url: str | None = None


class DemoProvider:
    """Test mode: every payment, refund, account and transfer succeeds at once; no money moves."""

    name = "demo"
    test_mode = True

    def page_origins(self) -> tuple[str, ...]:
        """It has no pages of its own: nobody is sent anywhere."""
        return ()

    def start_checkout(self, purchase, *, success_url: str, cancel_url: str) -> Checkout:
        return Checkout(completed=True, reference=f"demo_{uuid.uuid4().hex}")

    def refund(self, purchase, *, amount_cents: int, key: str) -> str:
        """Nothing to send back: the caller applies the refund to the ledger at once."""
        return f"re_demo_{uuid.uuid4().hex}"

    def create_account(self, user) -> str:
        return f"acct_demo_{user.id}"

    def onboarding_url(self, account_id: str, *, refresh_url: str, return_url: str) -> str:
        return return_url

    def transfer(self, payout, *, destination: str) -> str:
        return f"tr_demo_{payout.id}"


class StripeProvider:
    """Real money through Stripe: Checkout for purchases, refunds, Connect Express payouts."""

    name = "stripe"
    test_mode = False

    def page_origins(self) -> tuple[str, ...]:
        """Origins of Stripe's hosted pages the app sends browsers to (Checkout,
        Connect onboarding). A form answered with a redirect there needs them in
        CSP `form-action` (browsers check redirects of a submission too). With
        STRIPE_API_BASE elsewhere (the tests' stand-in), that host serves them."""
        base = urlsplit(current_app.config["STRIPE_API_BASE"])
        if base.netloc == "api.stripe.com":
            return ("https://checkout.stripe.com", "https://connect.stripe.com")
        return (f"{base.scheme}://{base.netloc}",)

    def start_checkout(self, purchase, *, success_url: str, cancel_url: str) -> Checkout:
        """One Checkout Session per purchase; the purchase id is its client reference,
        its metadata and Stripe's idempotency key, so a retry never makes a second one."""
        session = stripe_client().call(
            lambda c: c.v1.checkout.sessions.create(params={
                "mode": "payment",
                "client_reference_id": str(purchase.id),
                "metadata": {"purchase_id": str(purchase.id)},
                "line_items": [{"quantity": 1, "price_data": {
                    "currency": purchase.currency, "unit_amount": purchase.amount_cents,
                    "product_data": {"name": f"{purchase.amount_tokens:,} tokens"}}}],
                "success_url": success_url, "cancel_url": cancel_url,
            }, options={"idempotency_key": f"purchase-{purchase.id}"}))
        return Checkout(completed=False, reference=session["id"], url=session["url"])

    def checkout_session(self, session_id: str) -> dict:
        """The Checkout Session as Stripe has it now (reconciliation), as a plain dict."""
        return stripe_client().call(lambda c: c.v1.checkout.sessions.retrieve(session_id)).to_dict()

    def refund(self, purchase, *, amount_cents: int, key: str) -> str:
        """Ask Stripe to refund `amount_cents` of the purchase's payment; the
        `charge.refunded` webhook does the ledger work."""
        refund = stripe_client().call(lambda c: c.v1.refunds.create(
            params={"payment_intent": purchase.payment_intent, "amount": amount_cents,
                    "metadata": {"purchase_id": str(purchase.id)}},
            options={"idempotency_key": key}))
        return refund["id"]

    def create_account(self, user) -> str:
        account = stripe_client().call(lambda c: c.v1.accounts.create(
            params={"type": "express", "email": user.email, "metadata": {"user_id": str(user.id)},
                    "capabilities": {"transfers": {"requested": True}}},
            options={"idempotency_key": f"payout-account-{user.id}"}))
        return account["id"]

    def onboarding_url(self, account_id: str, *, refresh_url: str, return_url: str) -> str:
        link = stripe_client().call(lambda c: c.v1.account_links.create(params={
            "account": account_id, "type": "account_onboarding",
            "refresh_url": refresh_url, "return_url": return_url}))
        return link["url"]

    def transfer(self, payout, *, destination: str) -> str:
        """Send a payout to the creator's connected account; the payout id is the
        idempotency key, so a retry after a crash pays once."""
        made = stripe_client().call(lambda c: c.v1.transfers.create(
            params={"amount": payout.amount_cents, "currency": payout.currency, "destination": destination,
                    "metadata": {"payout_id": str(payout.id)}},
            options={"idempotency_key": f"payout-{payout.id}"}))
        return made["id"]


_PROVIDERS = {"demo": DemoProvider, "stripe": StripeProvider}


def provider() -> DemoProvider | StripeProvider:
    return _PROVIDERS[current_app.config["PAYMENTS_PROVIDER"]]()


def test_mode() -> bool:
    """True while payments are simulated; the layout shows the test-mode banner."""
    return provider().test_mode
