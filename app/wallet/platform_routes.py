"""The operators' Purchases section on /platform (htmx) and its JSON twin.

`GET /platform/purchases` renders `wallet/_platform_purchases.html`: the
/platform page loads it on arrival; its search, its "Refund…" buttons and its
refund form all swap the same section. `POST /platform/purchases/<id>/refund`
(the form: whole tokens, confirmed) and `POST /api/platform/purchases/<id>/refund`
(`{amountCents}` + `Idempotency-Key`) call the one service function,
`reversals.request_refund`. Operators only: anyone else gets 403.
"""
from __future__ import annotations

import uuid

from flask import Blueprint, flash, jsonify, render_template, request, url_for
from flask_login import current_user, login_required

from app import validation
from app.auth.service import require_operator
from app.errors import AppError, Conflict, InvalidValue
from app.http import int_arg, is_htmx, redirect_to, request_idempotency_key
from app.payments.client import ProviderError
from app.payments.providers import test_mode
from app.wallet import reversals

bp = Blueprint("wallet_platform", __name__)


@bp.get("/platform/purchases")
@login_required
def purchases():
    """The section (htmx); `?q=` searches by purchase id or e-mail, `?refund=<id>`
    opens that purchase's refund form. A plain visit (a link followed before htmx took
    it) goes to /platform with the same arguments: the page loads the section with them."""
    require_operator(current_user, "Purchases and refunds")
    query, selected = request.args.get("q") or "", int_arg(request.args, "refund")
    if not is_htmx():
        return redirect_to(url_for("dashboard.platform", q=query[:reversals.SEARCH_MAX] or None, refund=selected))
    return _section(query, selected)


@bp.post("/platform/purchases/<int:purchase_id>/refund")
@login_required
def refund(purchase_id):
    """The refund form: everything left or part of it, in whole tokens, once confirmed.
    Errors come back in the form; success shows what happens next above the list."""
    require_operator(current_user, "Purchases and refunds")
    form = request.form
    query = (form.get("q") or "")[:reversals.SEARCH_MAX]
    reversals.purchase_row(current_user, purchase_id)  # 404 before reading the rest
    try:
        raw = form.get("fullTokens") if form.get("choice") == "full" else form.get("partTokens")
        tokens = validation.token_amount(raw, "amountTokens", maximum=validation.BIGINT_MAX, from_form=True)
        if form.get("confirm") != "yes":
            raise InvalidValue("Tick the box to confirm the refund.", field="confirm")
        result = reversals.request_refund(current_user, purchase_id, request_idempotency_key(), amount_tokens=tokens)
    except (Conflict, InvalidValue, ProviderError) as err:
        # htmx swaps no 5xx answer, so Stripe's refusal is shown in the form with a 200.
        status = 200 if isinstance(err, ProviderError) else err.status
        return _section(query, purchase_id, status, error=err.message,
                        field=err.field if err.field in ("confirm",) else "amountTokens",
                        choice=form.get("choice"), part=(form.get("partTokens") or "")[:32])
    notice = _done(result)
    if not is_htmx():
        flash(notice, "success")
        return redirect_to(url_for("dashboard.platform"))
    return _section(query, None, notice=notice)


def _done(result: reversals.RefundResult) -> str:
    if result.waiting:
        return (f"Refund of {result.money} for purchase #{result.purchase.id} requested — waiting for Stripe. "
                "The tokens are taken back when Stripe confirms it.")
    return (f"Purchase #{result.purchase.id}: {result.money} refunded"
            f"{' (test mode, no money moved)' if test_mode() else ''}; its tokens were taken back.")


@bp.post("/api/platform/purchases/<int:purchase_id>/refund")
def api_refund(purchase_id):
    """`{amountCents}` (+ Idempotency-Key) → 202 `{refund: {id, amountCents, status}}` while
    Stripe has it, or 200 `{purchase}` when the refund applied at once (demo)."""
    require_operator(current_user, "Purchases and refunds")
    data = validation.json_body(request)
    result = reversals.request_refund(current_user, purchase_id, request_idempotency_key(),
                                      amount_cents=reversals.refund_cents(data.get("amountCents")))
    if result.waiting:
        return jsonify(refund={"id": result.refund_id, "amountCents": result.amount_cents, "status": "pending"},
                       purchase=result.purchase.to_dict()), 202
    return jsonify(purchase=result.purchase.to_dict())


def _section(query: str, selected_id: int | None, status: int = 200, *, error: str | None = None,
             field: str | None = None, notice: str | None = None, choice: str | None = None, part: str = ""):
    search_error = None
    try:
        rows = reversals.recent_purchases(current_user, query)
    except AppError as err:  # a search too long: say so, list the latest
        search_error, rows, status = err.message, reversals.recent_purchases(current_user), err.status
    selected = reversals.purchase_row(current_user, selected_id) if selected_id else None
    return render_template("wallet/_platform_purchases.html", rows=rows, query=query[:reversals.SEARCH_MAX],
                           search_error=search_error, selected=selected, error=error, error_field=field,
                           notice=notice, choice=choice or "full", part=part,
                           # One key per rendered form: a double click or a retry is one refund.
                           idempotency_key=str(uuid.uuid4())), status
