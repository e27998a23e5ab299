"""What chat publishes after commit, on the stream's channel, to everyone in the room:
a new message, a deleted one, and (from `tips.pushes.tip_sent`) a tip's line. Each is
rendered once from the partial the page uses (chat/_message.html, tips/_tip_item.html),
the same for every viewer: who may moderate is the page's business (app.css shows the
moderation buttons on the creator's page only; the routes check)."""
from __future__ import annotations

from app.realtime import fragments
from app.realtime.bus import publish


def message_posted(channel: str, line) -> None:
    publish(channel, fragments.render("chat/_message_push.html", line=line))


def message_deleted(channel: str, message_id: int) -> None:
    publish(channel, fragments.render("chat/_removal_push.html", message_id=message_id))


def tip_line(**context) -> str:
    """A tip's line in the stream's chat (`id="chat-tip-<id>"`), for the tip's own publish:
    rendered with the context of its overlay pop (`tip`, `sender`, …), so whatever the tip
    partial shows there (menu label, crown, masking) shows in the chat too."""
    return fragments.render("chat/_tip_push.html", **context)
