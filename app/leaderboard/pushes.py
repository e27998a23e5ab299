"""What the leaderboard publishes: a stream's top tippers, out of band (the same partial
as the page's). Sent by the room's refresh job (app/goals/jobs.py) and on every
(re)connect of the stream's channel (live.py)."""
from __future__ import annotations

from app.realtime import fragments


def leaderboard_html(stream, top) -> str:
    return fragments.render("leaderboard/_stream_top.html", stream=stream, top=top, oob=True)
