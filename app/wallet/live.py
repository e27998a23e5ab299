"""The wallet's live behaviour (STYLE.md 9): its share of every user's `/ws/me`
state, the balance; what it publishes after commit is in pushes.py."""
from __future__ import annotations

from flask import Flask, render_template

from app.realtime.channels import register_feed
from app.wallet.service import wallet_balance


def init_app(app: Flask) -> None:
    register_feed(app, _balance)


def _balance(user) -> str:
    return render_template("wallet/_balance_push.html", balance=wallet_balance(user))
