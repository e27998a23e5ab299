"""JSON API: a stream's tip goal (DESIGN.md §12) — /api/streams/:id/goal."""
from flask import Blueprint, jsonify, request
from flask_login import current_user

from app.goals import service
from app.http import public
from app.validation import json_body

bp = Blueprint("goals_api", __name__, url_prefix="/api/streams")


def _body(state) -> dict:
    return {"goal": state.to_dict() if state else None}


@bp.post("/<int:stream_id>/goal")
def set_goal(stream_id):
    """Set or replace the goal (the stream's creator; scheduled or live stream)."""
    data = json_body(request)
    return jsonify(_body(service.set_goal(current_user, stream_id, data.get("title"), data.get("targetTokens"))))


@bp.get("/<int:stream_id>/goal")
@public
def get_goal(stream_id):
    """`{goal}` or `{goal: null}`, for anyone who may watch the stream."""
    return jsonify(_body(service.goal_for_viewer(current_user, stream_id)))


@bp.delete("/<int:stream_id>/goal")
def clear_goal(stream_id):
    """Clear the goal → `{goal: null}` (also when there was none)."""
    service.clear_goal(current_user, stream_id)
    return jsonify(goal=None)
