"""Goals' live behaviour (STYLE.md 9): the goal bar's share of a stream channel's
(re)connect state, and the creator's goal OBS source socket
(`/ws/overlay/<secret>/goal`, its secret URL the only credential, on
`overlay-goal:<creator id>`). What goals publish is in pushes.py / jobs.py."""
from __future__ import annotations

from flask import Blueprint, Flask, g

from app.extensions import sock
from app.goals import pushes, service
from app.realtime import fragments
from app.realtime.channels import register_channel_share
from app.realtime.sockets import hub_served, serve
from app.streams.models import CHANNEL_PREFIX
from app.streams.service import stream_for_channel
from app.tips.live import join_overlay

bp = Blueprint("goals_live", __name__)


def init_app(app: Flask) -> None:
    register_channel_share(app, CHANNEL_PREFIX, _stream_goal)
    app.register_blueprint(bp)


def _stream_goal(channel: str) -> str | None:
    stream = stream_for_channel(channel)
    return pushes.goal_html(service.current_goal(stream.id)) if stream else None


bp.before_request(join_overlay)  # the secret URL is the credential, as for the tip overlay


@sock.route("/ws/overlay/<secret>/goal", bp=bp)
@hub_served
def overlay_socket(ws, secret):
    creator_id = g.overlay_creator_id
    serve(ws, (pushes.obs_goal_channel(creator_id),),
          lambda: fragments.render("goals/_goal.html", goal=service.obs_goal(creator_id), oob=True, obs=True))
