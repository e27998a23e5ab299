"""JSON API: GET and POST /api/fan/limits {dailySpendTokens} → {limits:{dailySpendTokens,
spentTodayTokens}} (DESIGN.md §12): a fan's own daily spending cap (null clears it)."""
from flask import Blueprint, jsonify, request
from flask_login import current_user

from app.errors import InvalidValue
from app.protections import service
from app.validation import json_body

bp = Blueprint("protections_api", __name__, url_prefix="/api/fan")


@bp.get("/limits")
def limits():
    return jsonify(limits=service.limits_of(current_user))


@bp.post("/limits")
def set_limits():
    data = json_body(request)
    if "dailySpendTokens" not in data:
        raise InvalidValue("Send dailySpendTokens: a whole number of tokens, or null to remove the limit.",
                           field="dailySpendTokens")
    return jsonify(limits=service.set_daily_limit(current_user, data["dailySpendTokens"]))
