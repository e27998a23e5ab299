"""Realtime fixtures: viewers, app servers in their own processes (on the
session's database and Redis, or a Redis of the test's own), the in-process
live server's API. Helpers live in `helpers.py`."""
from __future__ import annotations

import subprocess
import sys

import pytest

from app import embedded
from app.config import RATE_LIMIT_SETTINGS
from tests.realtime.helpers import ROOT, Api, ServerProcess, Viewer, wait_healthy


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


@pytest.fixture()
def spawn_server(app, services, tmp_path):
    """spawn_server(name, redis_url=None, wait=True) → a ServerProcess: `flask --app
    wsgi run` in its own process on the session's database (migrated by `app`)
    and Redis (or `redis_url`); healthy unless wait=False (then call
    `wait_healthy`). Every process is stopped at teardown."""
    started: list[ServerProcess] = []

    def _spawn(name: str, redis_url: str | None = None, wait: bool = True) -> ServerProcess:
        port = embedded.free_port()
        log_path = tmp_path / f"{name}.log"
        log = open(log_path, "wb")  # noqa: SIM115 - closed by ServerProcess.stop
        env = embedded.env_with_services(services[0], redis_url or services[1])
        env.pop("FLASK_DEBUG", None)
        env.update(APP_ENV="test", SECRET_KEY="realtime-test-secret", PYTHONUNBUFFERED="1",
                   INSTANCE_DIR=str(tmp_path / f"instance-{name}"),
                   # Counters by IP outlive a run on a shared Redis (no per-run key prefix
                   # from the environment): keep every test's sign-ups under the limits.
                   **{name_: "10000 per minute" for name_ in RATE_LIMIT_SETTINGS})
        proc = subprocess.Popen(
            [sys.executable, "-m", "flask", "--app", "wsgi", "run", "--host", "127.0.0.1", "--port", str(port),
             "--no-reload", "--with-threads"],
            cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True)
        server = ServerProcess(name, f"http://127.0.0.1:{port}", proc, log_path, log)
        started.append(server)
        if wait:
            wait_healthy(server)
        return server

    yield _spawn
    for server in started:
        server.stop()


@pytest.fixture()
def own_redis(tmp_path):
    """A redis-server of this test alone (`.url`), that the test can `.kill()`
    (SIGKILL) and `.start()` again on the same unix socket; stopped at teardown."""

    class Controller:
        def __init__(self):
            self.dir = str(tmp_path / "own-redis")
            self.url = embedded.redis_url(self.dir)
            self.proc = None

        def start(self):
            self.proc = embedded.start_redis(self.dir)
            assert self.proc is not None, "something else is already serving on this socket"

        def kill(self):
            """Crash it (SIGKILL): no graceful goodbye to connected clients."""
            self.proc.kill()
            self.proc.wait(5)

    ctl = Controller()
    ctl.start()
    yield ctl
    embedded.stop(ctl.proc)


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
