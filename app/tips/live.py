"""Tips' live behaviour (STYLE.md 9): a creator's OBS overlay socket
(`/ws/overlay/<secret>`, its secret URL the only credential; a (re)connect gets the
creator's alert sound) and their share of
`/ws/me` (the tips feed and the unseen-tips badge). What tips publish after
commit is in pushes.py: tips.service imports that, and this module imports
tips.service, so one module for both would be an import loop.
"""
from __future__ import annotations

from functools import partial

from flask import Blueprint, Flask, g, render_template, request

from app.alerts.service import settings_of
from app.errors import NotFound, error_response
from app.extensions import sock
from app.realtime.channels import register_feed
from app.realtime.sockets import hub_served, serve
from app.tips import pushes, service

bp = Blueprint("tips_live", __name__)


def init_app(app: Flask) -> None:
    register_feed(app, _creator_feed)
    app.jinja_env.globals.update(recent_tips_shown=service.RECENT_SHOWN, tip_pops_shown=service.POPS_SHOWN)
    app.register_blueprint(bp)


def _creator_feed(user) -> str | None:
    """A creator's recent tips (their notification menu and dashboard) and unseen count."""
    if not user.is_creator:
        return None
    return render_template("tips/_me_sync.html", feed=service.recent_tips(creator_id=user.id),
                           unseen=pushes.unseen_tips(user.id))


@bp.before_request
def join_overlay():
    """Who may open an OBS source's socket (this one, and the goal's in app/goals): whoever
    has its secret URL, the only credential. Names the creator in `g.overlay_creator_id`."""
    creator = service.creator_for_overlay(request.view_args["secret"])
    if creator is None:
        return error_response(NotFound("No such overlay.", "overlay_not_found"))
    g.overlay_creator_id = creator.id
    return None


@sock.route("/ws/overlay/<secret>", bp=bp)
@hub_served
def overlay_socket(ws, secret):
    creator_id = g.overlay_creator_id
    serve(ws, (pushes.overlay_channel(creator_id),), partial(_overlay_state, creator_id))


def _overlay_state(creator_id: int) -> str:
    """What the OBS source gets on every (re)connect: the creator's current alert sound."""
    return render_template("alerts/_sound_push.html", sound=settings_of(creator_id).sound, push=True)
