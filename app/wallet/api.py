"""JSON API: /api/wallet/me, /api/tokens/purchase."""
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
    data = json_body(request)
    amount = service.purchase_amount(data.get("amountTokens"))
    result = service.purchase_tokens(current_user, amount, request_idempotency_key())
    if result.checkout_url:
        return jsonify(checkoutUrl=result.checkout_url), 201
    return jsonify(newBalance=result.new_balance, purchase=result.purchase.to_dict()), 201
