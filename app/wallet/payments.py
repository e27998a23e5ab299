"""Payment providers behind one interface.

`provider.start(purchase)` either completes the payment at once (demo) or
returns a URL where the buyer pays (Stripe Checkout, to come); crediting a
completed payment is `wallet.service`'s job so it happens exactly once.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass

from flask import current_app

# Demo price: one token costs one cent. Integer cents, never floats.
CENTS_PER_TOKEN = 1


def price_cents(amount_tokens: int) -> int:
    return amount_tokens * CENTS_PER_TOKEN


@dataclass(frozen=True)
class PaymentStart:
    completed: bool
    provider_ref: str | None = None
    checkout_url: str | None = None


class DemoProvider:
    """Test-mode provider: every payment succeeds immediately, no money changes hands."""

    name = "demo"
    test_mode = True

    def start(self, purchase) -> PaymentStart:
        return PaymentStart(completed=True, provider_ref=f"demo_{uuid.uuid4().hex}")


_PROVIDERS = {"demo": DemoProvider}


def get_provider():
    return _PROVIDERS[current_app.config["PAYMENTS_PROVIDER"]]()


def test_mode() -> bool:
    """True while payments are simulated; the layout shows the test-mode banner."""
    return get_provider().test_mode
