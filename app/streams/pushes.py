"""What streams publish after commit: a stream's new status, to everyone on its channel."""
from __future__ import annotations

from app.realtime import fragments
from app.realtime.bus import publish


def stream_status_changed(stream) -> None:
    publish(stream.channel, fragments.render("streams/_status.html", stream=stream, oob=True))
