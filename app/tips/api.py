"""JSON API: POST /api/tips/send."""
from flask import Blueprint, jsonify, request
from flask_login import current_user

from app.http import request_idempotency_key
from app.tips import service
from app.tips.limits import tip_limit
from app.validation import json_body

bp = Blueprint("tips_api", __name__, url_prefix="/api/tips")


@bp.post("/send")
@tip_limit
def send():
    data = json_body(request)
    amount = service.tip_amount(data.get("amountTokens"))
    message = service.tip_message(data.get("message"))
    result = service.send_tip(current_user, data.get("toCreatorId"), amount, message, data.get("context"),
                              request_idempotency_key())
    return jsonify(tip=result.tip.to_dict(), newBalance=result.new_balance), 201
