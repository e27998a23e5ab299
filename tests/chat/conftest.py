"""Chat fixtures: the realtime package's socket viewers and live-server API, and a poster
that goes through the JSON API."""
import pytest

from tests.realtime.conftest import live_api, people, viewers  # noqa: F401  (fixtures)


@pytest.fixture()
def chat(client, api_headers):
    """chat(user, stream_id, text) → the response of POST /api/streams/:id/chat as `user`."""
    def _post(user, stream_id, text, **extra):
        return client.post(f"/api/streams/{stream_id}/chat", json={"text": text, **extra}, headers=api_headers(user))
    return _post


@pytest.fixture()
def seed_messages(ctx):
    """seed_messages(stream, user, n) → ids of `n` messages written straight to the table
    (history tests need more than the rate limit lets one person post)."""
    from sqlalchemy import text

    from app.extensions import db

    def _seed(stream, user, n, prefix="m"):
        ids = db.session.scalars(text(
            "INSERT INTO chat_messages (stream_id, user_id, text, created_at) "
            "SELECT :s, :u, :p || ' ' || g, now() - (:n - g) * interval '1 millisecond' FROM generate_series(1, :n) g "
            "RETURNING id"), {"s": stream.id, "u": user.id, "p": prefix, "n": n}).all()
        db.session.commit()
        return sorted(ids)
    return _seed
