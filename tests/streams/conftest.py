"""Fixtures shared by the stream tests."""
import pytest
from sqlalchemy import text

from app.auth.models import User
from app.extensions import db
from app.streams import service as streams
from app.streams import tickets


@pytest.fixture()
def leave_streams_as_found(ctx):
    """Discover shows at most 50 live/scheduled streams and the sweep refunds canceled
    shows: cancel what this test left open and refund it, so other tests see no trace."""
    before = db.session.scalar(text("SELECT coalesce(max(id), 0) FROM streams"))
    yield
    db.session.rollback()
    rows = db.session.execute(text("SELECT id, creator_id, status FROM streams WHERE id > :b"), {"b": before}).all()
    for stream_id, creator_id, status in rows:
        if status in ("scheduled", "live"):
            streams.change_status(db.session.get(User, creator_id), stream_id, "cancel")
    for stream_id in streams.shows_awaiting_refunds():
        if stream_id > before:
            tickets.refund_show(stream_id)


