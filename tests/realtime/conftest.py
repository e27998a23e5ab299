"""Realtime fixtures: viewers, the in-process live server's API. App servers in
their own processes (`spawn_server`) and a Redis of a test's own (`own_redis`)
are in tests/conftest.py. Helpers live in `helpers.py`."""
from __future__ import annotations

import pytest

from tests.realtime.helpers import Api, Viewer


@pytest.fixture()
def viewers():
    """viewers(url, headers=None) → a connected Viewer, closed after the test."""
    opened: list[Viewer] = []

    def _open(url, headers=None):
        viewer = Viewer(url, headers)
        opened.append(viewer)
        return viewer
    yield _open
    for viewer in opened:
        viewer.close()


# ---- live server (in-process) helpers -----------------------------------------------

@pytest.fixture()
def live_api(live_server) -> Api:
    return Api(live_server)


@pytest.fixture()
def people(ctx, make_fan, make_creator, api_headers):
    """people(fans=1, balance=10_000) → (creator, creator_headers, [(fan, fan_headers), …])."""
    def _make(fans=1, balance=10_000):
        creator = make_creator()
        fan_list = [(f, api_headers(f)) for f in (make_fan(balance=balance) for _ in range(fans))]
        return creator, api_headers(creator), fan_list
    return _make
