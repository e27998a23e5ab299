"""Discover page and the health check."""
from flask import Blueprint, jsonify, redirect, render_template, request, url_for
from redis import RedisError
from sqlalchemy import select, text
from sqlalchemy.exc import SQLAlchemyError

from app.extensions import db
from app.http import is_htmx, public
from app.profiles.service import SEARCH_MAX_LENGTH, search_creators
from app.realtime.sockets import hub
from app.redis_client import get_redis

bp = Blueprint("main", __name__)


@bp.get("/")
def discover():
    """Live streams (avatar, title, creator, viewers), what starts soon, and the creator
    search (`?q=` without JavaScript)."""
    from app.auth.models import User
    from app.streams.service import live_and_upcoming
    streams = live_and_upcoming()
    ids = {s.creator_id for s in streams}
    creators = {u.id: u for u in db.session.scalars(select(User).where(User.id.in_(ids)))} if ids else {}
    # One Redis round trip for every live card's count (None while Redis is down: not shown).
    viewers = hub().viewer_counts(s.channel for s in streams if s.status == "live")
    return render_template("main/discover.html", streams=streams, creators=creators, viewers=viewers,
                           **_search_context())


@bp.get("/search")
def search():
    """The search as you type (htmx: the results alone); without htmx, Discover with them."""
    if not is_htmx():
        return redirect(url_for("main.discover", q=request.args.get("q", "")[:SEARCH_MAX_LENGTH]) + "#search")
    return render_template("main/_search_results.html", **_search_context())


def _search_context() -> dict:
    query = request.args.get("q", "")[:SEARCH_MAX_LENGTH]
    return {"q": query, "results": search_creators(query)}


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
