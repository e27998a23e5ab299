"""JSON API: POST /api/tips/send {toCreatorId, amountTokens, message?, context?, menuItemId?, confirm?}."""
from flask import Blueprint, jsonify, request
from flask_login import current_user

from app.http import request_idempotency_key
from app.protections.service import confirm_value
from app.tipmenu.service import menu_item_id
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
    item_id, confirmed = menu_item_id(data.get("menuItemId")), confirm_value(data.get("confirm"))
    # The user itself, not the `current_user` proxy: the tip and its pushes read the sender
    # a dozen times, and each read through the proxy looks the user up again.
    result = service.send_tip(current_user._get_current_object(), data.get("toCreatorId"), amount, message,
                              data.get("context"), request_idempotency_key(), menu_item_id=item_id,
                              confirmed=confirmed)
    return jsonify(tip=result.tip.to_dict(), newBalance=result.new_balance), 201
