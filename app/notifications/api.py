"""JSON API: GET /api/me/notifications, POST /api/me/notifications/read."""
from flask import Blueprint, jsonify, request
from flask_login import current_user

from app.notifications import service
from app.validation import json_body

bp = Blueprint("notifications_api", __name__, url_prefix="/api/me/notifications")


@bp.get("")
def list_():
    """Newest first; `before` (an id: older ones only) and `limit` (1–100, default 50) optional."""
    items = service.list_for(current_user.id, before=request.args.get("before"), limit=request.args.get("limit"))
    return jsonify(notifications=[n.to_dict() for n in items])


@bp.post("/read")
def read():
    """Body `{ids?}` (or none): without ids every notification is marked read."""
    data = json_body(request) if request.get_data() else {}
    return jsonify(unread=service.mark_read(current_user, data.get("ids")))
