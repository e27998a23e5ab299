"""Discover page and the health check."""
from flask import Blueprint, jsonify, render_template
from redis import RedisError
from sqlalchemy import select, text
from sqlalchemy.exc import SQLAlchemyError

from app.extensions import db
from app.http import public
from app.redis_client import get_redis

bp = Blueprint("main", __name__)


@bp.get("/")
def discover():
    from app.auth.models import User
    from app.streams.service import live_and_upcoming
    streams = live_and_upcoming()
    ids = {s.creator_id for s in streams}
    names = dict(db.session.execute(select(User.id, User.display_name).where(User.id.in_(ids))).all()) if ids else {}
    return render_template("main/discover.html", streams=streams, names=names)


@bp.get("/healthz")
@public
def healthz():
    status = {}
    try:
        db.session.execute(text("SELECT 1"))
        status["db"] = "ok"
    except SQLAlchemyError:
        db.session.rollback()
        status["db"] = "down"
    try:
        get_redis().ping()
        status["redis"] = "ok"
    except RedisError:
        status["redis"] = "down"
    healthy = all(v == "ok" for v in status.values())
    if not healthy:
        down = ", ".join(k for k, v in status.items() if v != "ok")
        status.update(error=f"Dependency down: {down}.", code="service_unavailable")
    return jsonify(status), 200 if healthy else 503
