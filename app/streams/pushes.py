"""What streams publish after commit, to everyone on a stream's channel: its new
status, and the player's state when the creator's encoder connects or leaves."""
from __future__ import annotations

from app.realtime import fragments
from app.realtime.bus import publish


def stream_status_changed(stream) -> None:
    publish(stream.channel, fragments.render("streams/_status.html", stream=stream, oob=True))


def player_changed(stream) -> None:
    publish(stream.channel, fragments.render("streams/_player_state.html", stream=stream, oob=True))
