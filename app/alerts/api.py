"""JSON API: GET/POST /api/creator/alerts (DESIGN.md §12) and a creator's decision on a
tip's message for their OBS source, POST /api/tips/<id>/approve · /hide."""
from flask import Blueprint, jsonify, request
from flask_login import current_user

from app.alerts import service
from app.auth.service import require_creator
from app.validation import json_body

bp = Blueprint("alerts_api", __name__, url_prefix="/api")


@bp.get("/creator/alerts")
def get_alerts():
    require_creator(current_user, "Only creators have alerts.")
    return jsonify(alerts=service.current_settings(current_user).to_dict())


@bp.post("/creator/alerts")
def set_alerts():
    data = json_body(request)
    settings = service.update_settings(current_user, data.get("minTokens"), data.get("profanityFilter"),
                                       data.get("requireApproval"), data["sound"] if "sound" in data else ...)
    return jsonify(alerts=settings.to_dict())


@bp.post("/tips/<int:tip_id>/approve")
def approve(tip_id):
    return jsonify(tip=service.tip_dict(service.decide_message(current_user, tip_id, "approve").tip))


@bp.post("/tips/<int:tip_id>/hide")
def hide(tip_id):
    return jsonify(tip=service.tip_dict(service.decide_message(current_user, tip_id, "hide").tip))
