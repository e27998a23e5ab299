"""JSON API: POST /api/creator/profile {handle?, bio?} and POST /api/creator/avatar
(multipart field `avatar`) → {profile} (DESIGN.md §13)."""
from flask import Blueprint, jsonify, request
from flask_login import current_user

from app.profiles import avatars, service
from app.profiles.uploads import avatar_bytes, limit_avatar_bodies
from app.validation import json_body

bp = Blueprint("profiles_api", __name__, url_prefix="/api")
limit_avatar_bodies(bp, {"profiles_api.avatar"})


@bp.post("/creator/profile")
def profile():
    data = json_body(request)
    fields = {k: data[k] for k in ("handle", "bio") if k in data}
    return jsonify(profile=service.update_profile(current_user, **fields))


@bp.post("/creator/avatar")
def avatar():
    return jsonify(profile=avatars.set_avatar(current_user, avatar_bytes()))
