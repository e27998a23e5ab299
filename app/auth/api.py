"""JSON API: /api/auth/register, /api/auth/token (issue, revoke), /api/auth/tokens."""
from flask import Blueprint, g, jsonify, request
from flask_login import current_user

from app.auth import service
from app.auth.limits import login_limits, login_succeeded, signup_limits
from app.errors import BadRequest
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
    login_succeeded()
    return jsonify(token=service.issue_token(user))


@bp.delete("/token")
def revoke_current_token():
    """Revoke the token this request was made with (an app logging out)."""
    if not g.get("api_token_id"):
        raise BadRequest("This request was not made with an API token.", "no_token_in_use")
    service.revoke_token(current_user, g.api_token_id)
    return "", 204


@bp.get("/tokens")
def tokens():
    """The caller's working tokens: ids and dates, never the secrets."""
    return jsonify(tokens=[t.to_dict() for t in service.tokens_of(current_user)])


@bp.delete("/tokens/<int:token_id>")
def revoke_token(token_id):
    service.revoke_token(current_user, token_id)
    return "", 204


@bp.get("/me")
def me():
    """Who this token or session belongs to (also the benchmarks' authenticated no-op)."""
    return jsonify(user=current_user.to_dict())
