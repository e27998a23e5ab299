"""JSON API: /api/wallet/me, /api/tokens/purchase, /api/purchases/:id."""
from flask import Blueprint, jsonify, request
from flask_login import current_user

from app.http import request_idempotency_key
from app.validation import json_body
from app.wallet import service
from app.wallet.limits import purchase_limit

bp = Blueprint("wallet_api", __name__, url_prefix="/api")


@bp.get("/wallet/me")
def me():
    return jsonify(service.balances(current_user))


@bp.post("/tokens/purchase")
@purchase_limit
def purchase():
    """201 `{newBalance, purchase}` when paid at once (demo); 201 `{purchase, checkoutUrl}`
    when the buyer pays at Stripe Checkout (`checkoutUrl` null on a replay after the
    payment settled). A replay of the Idempotency-Key answers the same purchase."""
    data = json_body(request)
    amount = service.purchase_amount(data.get("amountTokens"))
    result = service.purchase_tokens(current_user, amount, request_idempotency_key())
    if result.at_checkout:
        return jsonify(purchase=result.purchase.to_dict(), checkoutUrl=result.checkout_url), 201
    return jsonify(newBalance=result.new_balance, purchase=result.purchase.to_dict()), 201


@bp.get("/purchases/<int:purchase_id>")
def purchase_status(purchase_id):
    """`{purchase}`: the caller's own purchase (anyone else's is 404)."""
    return jsonify(purchase=service.purchase_of(current_user, purchase_id).to_dict())
