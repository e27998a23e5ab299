"""The Stripe SDK client, configured from the app (`STRIPE_SECRET_KEY`,
`STRIPE_API_BASE`), and the one place its errors become ours."""
from __future__ import annotations

import logging

import stripe
from flask import current_app

from app.errors import AppError

log = logging.getLogger(__name__)


class ProviderError(AppError):
    """Stripe refused or could not be reached; nothing was changed on our side.
    `declined` is True when Stripe answered with a refusal (a retry won't help)."""

    status, code = 503, "payment_provider_error"

    def __init__(self, message: str, *, declined: bool):
        super().__init__(message)
        self.declined = declined


class Client:
    def __init__(self, sdk: stripe.StripeClient):
        self.sdk = sdk

    def call(self, request):
        """Run `request(sdk)`; Stripe's errors become `ProviderError` (a refusal has
        Stripe's message; a network failure or Stripe outage says to try again)."""
        try:
            return request(self.sdk)
        except (stripe.APIConnectionError, stripe.RateLimitError) as err:
            log.warning("stripe unreachable: %s", err)
            raise ProviderError("The payment provider could not be reached. Try again in a moment.",
                                declined=False) from err
        except stripe.StripeError as err:
            status = getattr(err, "http_status", None) or 0
            message = getattr(err, "user_message", None) or str(err) or "The payment provider refused."
            # 409: a request with the same idempotency key is still running at Stripe (a retry
            # right after a crash); its outcome is not known yet, so this is no refusal.
            if status >= 500 or status in (0, 409):
                log.warning("stripe failed: %s", err)
                raise ProviderError("The payment provider failed. Try again in a moment.", declined=False) from err
            raise ProviderError(message, declined=True) from err


def stripe_client() -> Client:
    """One SDK client per app (it keeps its HTTP connection pool)."""
    cached = current_app.extensions.get("stripe_client")
    if cached is None:
        config = current_app.config
        sdk = stripe.StripeClient(
            config["STRIPE_SECRET_KEY"],
            base_addresses={"api": config["STRIPE_API_BASE"], "connect": config["STRIPE_API_BASE"],
                            "files": config["STRIPE_API_BASE"]},
            # Retries reuse the idempotency key, so a retried create never makes two.
            max_network_retries=2,
        )
        cached = current_app.extensions["stripe_client"] = Client(sdk)
    return cached
