"""This feature's Stripe webhook events (registered with app.payments.webhooks)."""
from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    pass
