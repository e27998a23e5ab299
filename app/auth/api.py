"""JSON API: /api/auth/register, /api/auth/token."""
from flask import Blueprint, jsonify, request

from app.auth import service
from app.auth.limits import login_limits, signup_limits
from app.http import public
from app.validation import json_body

bp = Blueprint("auth_api", __name__, url_prefix="/api/auth")


@bp.post("/register")
@signup_limits
@public
def register():
    data = json_body(request)
    user = service.register(data.get("email"), data.get("password"), data.get("displayName"),
                            data.get("role", "fan"))
    return jsonify(user=user.to_dict(), token=service.issue_token(user)), 201


@bp.post("/token")
@login_limits
@public
def token():
    data = json_body(request)
    user = service.authenticate(data.get("email"), data.get("password"))
    return jsonify(token=service.issue_token(user))


@bp.get("/me")
def me():
    """Who this token or session belongs to (also the benchmarks' authenticated no-op)."""
    from flask_login import current_user
    return jsonify(user=current_user.to_dict())
