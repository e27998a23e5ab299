"""JSON API: leaderboards (DESIGN.md §12)."""
from flask import Blueprint, jsonify, request
from flask_login import current_user

from app.http import public
from app.leaderboard import service

bp = Blueprint("leaderboard_api", __name__, url_prefix="/api")


@bp.get("/streams/<int:stream_id>/leaderboard")
@public
def stream_leaderboard(stream_id):
    """The stream's top 10 tippers, for anyone who may watch it."""
    return jsonify(top=[t.to_dict() for t in service.stream_top_for_viewer(current_user, stream_id)])


@bp.get("/creators/<int:creator_id>/leaderboard")
@public
def creator_leaderboard(creator_id):
    """The creator's top 10 tippers over `range` (30d, the default, or all)."""
    return jsonify(top=[t.to_dict() for t in service.creator_top(creator_id, request.args.get("range", "30d"))])
