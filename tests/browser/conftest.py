"""Fixtures shared by the browser tests."""
import pytest


@pytest.fixture()
def new_creator(make_creator):
    """new_creator() → a creator with no unseen tips. Each test session's database numbers users
    from 1 while Redis (where the unseen-tips counter lives, keyed by user id) may be shared with
    earlier or concurrent runs: start from a clean counter."""
    from app.tips import pushes

    def _make(**kw):
        creator = make_creator(**kw)
        pushes.mark_tips_seen(creator.id)
        return creator
    return _make


@pytest.fixture()
def hub(app):
    """The app's realtime hub (to wait until a page's sockets are subscribed)."""
    return app.extensions["realtime_hub"]
