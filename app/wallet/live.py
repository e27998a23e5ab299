"""The wallet's live behaviour (STYLE.md 9): its share of every user's `/ws/me`
state — the balance, and the rows of their recent purchases, so a page that
missed a push (a payment landing while its socket was down) is right again on
reconnect; what it publishes after commit is in pushes.py."""
from __future__ import annotations

from flask import Flask, render_template

from app.realtime.channels import register_feed
from app.wallet.service import earnings_figure, purchases_changed_since, wallet_balance


def init_app(app: Flask) -> None:
    register_feed(app, _wallet_state)


def _wallet_state(user) -> str:
    state = render_template("wallet/_wallet_push.html", balance=wallet_balance(user),
                            purchases=purchases_changed_since(user.id))
    if user.is_creator:  # their nav pill shows earnings
        state += render_template("wallet/_earnings_push.html", earnings=earnings_figure(user.id))
    return state
