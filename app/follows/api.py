"""JSON API: POST / DELETE /api/creators/<id>/follow → {following, followers} (DESIGN.md §13)."""
from flask import Blueprint, jsonify, request
from flask_login import current_user

from app.follows import service

bp = Blueprint("follows_api", __name__, url_prefix="/api")


@bp.route("/creators/<int:creator_id>/follow", methods=["POST", "DELETE"])
def follow(creator_id):
    change = service.follow if request.method == "POST" else service.unfollow
    return jsonify(service.state(current_user, change(current_user, creator_id).id))
