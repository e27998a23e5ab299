"""Pages: /payouts (a creator's balance, account, requests and history) and the
operators' payout queue (/platform/payouts, loaded into /platform).

Every action calls the same service function as the JSON API; a refused form
re-renders its fragment with the message next to the field."""
from __future__ import annotations

import uuid

from flask import Blueprint, current_app, flash, render_template, request, url_for
from flask_login import current_user, login_required

from app import clock
from app.auth.service import require_creator, require_operator
from app.errors import AppError, InvalidValue
from app.http import is_htmx, redirect_to, render, request_idempotency_key
from app.payouts import service
from app.payouts.api import onboarding_urls

bp = Blueprint("payouts", __name__)

# Back from onboarding (?onboarding=…): what to say, by how it ended and the account's state now.
ONBOARDING_NOTICES = {
    ("done", "ready"): ("success", "Payouts are set up: request one below whenever you like."),
    ("done", "pending"): ("info", "Thanks! Stripe is checking your details; this page shows “Ready” once it has."),
    ("refresh", "pending"): ("warn", "That setup link expired. Choose “Continue setup” to get a fresh one."),
    ("refresh", "none"): ("warn", "That setup link expired. Choose “Set up payouts” to start again."),
}


def _page_context(**extra) -> dict:
    """Everything `payouts/_body.html` needs; a fresh idempotency key per render (the key
    names *this* form: a double click is one payout, the next request gets a new key)."""
    config = current_app.config
    context = dict(balance=service.balance(current_user), account=service.account_state(current_user),
                   payouts=service.history(current_user), minimum=config["PAYOUT_MINIMUM_TOKENS"],
                   hold_days=config["PAYOUT_HOLD_DAYS"], needs_approval=config["PAYOUT_REQUIRES_APPROVAL"],
                   value=service.payout_value, currency=config["CURRENCY"],
                   idempotency_key=str(uuid.uuid4()),
                   this_month=clock.now().strftime("%Y-%m"), error=None, amount_value="", success=None, notice=None)
    context.update(extra)
    return context


@bp.get("/payouts")
@login_required
def page():
    require_creator(current_user, service.CREATORS_ONLY)
    context = _page_context()
    context["notice"] = ONBOARDING_NOTICES.get((request.args.get("onboarding", ""), context["account"]["status"]))
    return render_template("payouts/page.html", **context)


@bp.post("/payouts/account")
@login_required
def start_account():
    """Off to the provider's onboarding (the demo's is this page again, ready at once)."""
    require_creator(current_user, service.CREATORS_ONLY)
    return redirect_to(service.start_onboarding(current_user, **onboarding_urls()))


@bp.post("/payouts/request")
@login_required
def request_payout():
    require_creator(current_user, service.CREATORS_ONLY)
    raw = request.form.get("amountTokens", "")
    try:
        result = service.request_payout(current_user, raw, request_idempotency_key(), from_form=True)
    except AppError as err:
        return render("payouts/page.html", "payouts/_body.html", err.status,
                      **_page_context(error=err.message, amount_value=raw[:32]))
    success = f"Payout of {result.payout.amount_tokens:,} tokens requested."
    if not is_htmx():
        flash(success, "success")
        return redirect_to(url_for("payouts.page"))
    return render_template("payouts/_body.html", **_page_context(success=success))


# ---- operators ----------------------------------------------------------------------------------


def _queue(status: int = 200, **extra):
    """The queue fragment (or, for a plain request, its page); `errors`/`reasons`: a refused
    reason next to its payout's field; `problem`: any other refusal, above the list."""
    context = dict(queue=service.approval_queue(current_user), value=service.payout_value,
                   needs_approval=current_app.config["PAYOUT_REQUIRES_APPROVAL"], errors={}, reasons={},
                   message=None, problem=None)
    context.update(extra)
    return render("payouts/platform_queue.html", "payouts/_queue.html", status, **context)


@bp.get("/platform/payouts")
@login_required
def platform_queue():
    """Payouts awaiting an operator's decision (a section of /platform)."""
    return _queue()


@bp.post("/platform/payouts/<int:payout_id>/approve")
@login_required
def approve(payout_id):
    require_operator(current_user, "Deciding payouts")
    try:
        payout = service.approve(current_user, payout_id)
    except AppError as err:
        return _queue(err.status, problem=err.message)
    return _queue(message=f"Payout #{payout.id} approved: it is on its way.")


@bp.post("/platform/payouts/<int:payout_id>/reject")
@login_required
def reject(payout_id):
    require_operator(current_user, "Deciding payouts")
    raw = request.form.get("reason", "")
    try:
        payout = service.reject(current_user, payout_id, raw)
    except InvalidValue as err:
        return _queue(err.status, errors={payout_id: err.message}, reasons={payout_id: raw[:service.REASON_MAX]})
    except AppError as err:
        return _queue(err.status, problem=err.message)
    return _queue(message=f"Payout #{payout.id} rejected: its tokens are back in the creator's earnings.")
