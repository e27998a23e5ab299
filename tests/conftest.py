"""Test fixtures: real PostgreSQL and real Redis, never mocks.

`DATABASE_URL` / `REDIS_URL` name servers to use; without them an embedded
PostgreSQL (instance/test-services/pgdata, kept between runs for speed) and a
redis-server are started. Each session gets a brand-new database, migrated
with the real Alembic migrations, and dropped at the end.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
import uuid
from pathlib import Path
from typing import NamedTuple

import psycopg
import pytest
from flask.testing import FlaskClient
from sqlalchemy import text
from sqlalchemy.engine import make_url

from app import create_app, embedded
from app.config import RATE_LIMIT_SETTINGS, Config
from app.extensions import db
from tests.realtime.helpers import ServerProcess, wait_healthy

ROOT = Path(__file__).resolve().parent.parent
# This run's Redis namespace, inherited by server processes the tests start:
# runs sharing one Redis never see each other's events, counters or presence.
RUN_ID = uuid.uuid4().hex[:8]
os.environ["REDIS_PREFIX"] = f"pmtest-{RUN_ID}:"
os.environ["RATELIMIT_KEY_PREFIX"] = f"test-{RUN_ID}"
TEST_INSTANCE = ROOT / "instance" / "test-services"


def _libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def services():
    """(database_url, redis_url) of a fresh database and a live Redis for this session."""
    base = os.environ.get("DATABASE_URL") or embedded.postgres_url(str(TEST_INSTANCE), database="postgres")
    base = base.replace("postgresql://", "postgresql+psycopg://", 1) if base.startswith("postgresql://") else base
    name = f"pm_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(_libpq(base), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    db_url = make_url(base).set(database=name).render_as_string(hide_password=False)

    redis_proc = None
    redis_url = os.environ.get("REDIS_URL")
    # A redis-server of this session's own: another test run in the same
    # checkout must not stop it (or share its data) when it finishes.
    redis_dir = TEST_INSTANCE / f"run-{RUN_ID}"
    if not redis_url:
        redis_proc = embedded.start_redis(str(redis_dir))
        redis_url = embedded.redis_url(str(redis_dir))
    yield db_url, redis_url
    embedded.stop(redis_proc)
    shutil.rmtree(redis_dir, ignore_errors=True)
    with psycopg.connect(_libpq(base), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def make_config(services, **overrides) -> Config:
    db_url, redis_url = services
    settings = dict(
        PASSWORD_HASH_METHOD="pbkdf2:sha256:1000",  # fast hashing keeps the suite quick
        LOGIN_LIMIT_PER_IP="10000 per minute",
        LOGIN_LIMIT_PER_ACCOUNT_CLIENT="10000 per minute",
        LOGIN_LIMIT_PER_ACCOUNT="10000 per minute",
        SIGNUP_LIMIT_PER_IP="10000 per minute",
        PURCHASE_LIMIT_PER_USER="10000 per minute",
        TIP_LIMIT_PER_USER="10000 per second",
        # Tests read X-RateLimit-Remaining (Flask-Limiter fixes this at the first init_app).
        RATELIMIT_HEADERS_ENABLED=True,
        # Concurrency tests run up to 200 threads; they queue for these.
        DB_POOL_SIZE=25, DB_MAX_OVERFLOW=25,
    )
    settings.update(overrides)
    cfg = Config.from_env({"APP_ENV": "test", "DATABASE_URL": db_url, "REDIS_URL": redis_url,
                           "SECRET_KEY": "test-secret-key", "REDIS_PREFIX": os.environ["REDIS_PREFIX"],
                           "RATELIMIT_KEY_PREFIX": os.environ["RATELIMIT_KEY_PREFIX"]}, **settings)
    return cfg


@pytest.fixture(scope="session")
def app(services):
    from flask_migrate import upgrade
    application = create_app(make_config(services))
    with application.app_context():
        upgrade()
    return application


@pytest.fixture()
def make_app(app, services):
    """make_app(services=None, **config_overrides) → a second app on the same
    database (or other services); its connections are closed at teardown. Flask-Limiter's extension object keeps one
    storage for the last app it was bound to, so the session app is re-bound
    afterwards."""
    from app.extensions import limiter
    made = []

    def _make(services_override=None, **overrides):
        made.append(create_app(make_config(services_override or services, **overrides)))
        return made[-1]
    yield _make
    for other in made:  # their pools' connections, closed now rather than whenever they are collected
        with other.app_context():
            db.engine.dispose()
    limiter.init_app(app)


@pytest.fixture()
def ctx(app):
    """An app context with a clean session, closed afterwards."""
    with app.app_context():
        yield app
        db.session.remove()


class FreshContextClient(FlaskClient):
    """A test client whose every request runs in its own app context, as in production.

    Flask reuses an app context that is already pushed (the `ctx` fixture pushes
    one for the whole test), so `g` — Flask-Login's user, the DB session — would
    otherwise leak from one request into the next: a bearer request would make
    the following anonymous request look logged in.
    """

    def open(self, *args, **kwargs):
        with self.application.app_context():
            return super().open(*args, **kwargs)


def fresh_client(app) -> FreshContextClient:
    return FreshContextClient(app, app.response_class, use_cookies=True)


@pytest.fixture()
def client(app):
    return fresh_client(app)


@pytest.fixture()
def new_client(app):
    """new_client() → another independent browser (own cookies), e.g. a second user."""
    return lambda: fresh_client(app)


# ---- factories -------------------------------------------------------------

def unique_email(prefix="user") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}@example.com"


@pytest.fixture()
def make_user(ctx):
    """make_user(role="fan", balance=0, name=None) → User, funded through a real purchase."""
    from app.auth import service as auth
    from app.wallet import service as wallet

    def _make(role="fan", balance=0, name=None, password="correct-horse-1"):
        user = auth.register(unique_email(role), password, name or f"{role.title()} {uuid.uuid4().hex[:4]}", role)
        user.test_password = password
        while balance > 0:
            chunk = min(balance, 100_000)
            wallet.purchase_tokens(user, chunk, f"seed-{uuid.uuid4()}")
            balance -= chunk
        return user
    return _make


@pytest.fixture()
def make_fan(make_user):
    return lambda **kw: make_user("fan", **kw)


@pytest.fixture()
def make_creator(make_user):
    return lambda **kw: make_user("creator", **kw)


@pytest.fixture()
def queue(ctx, services):
    """This run's job queue, emptied before the test (jobs other tests left are not ours to run)."""
    from redis import Redis
    from rq import Queue

    from app import jobs
    q = Queue(jobs.queue_name(), connection=Redis.from_url(services[1]))
    q.empty()
    yield q
    q.empty()


@pytest.fixture()
def run_jobs(ctx, queue):
    """run_jobs(): run the queued jobs the way worker.py does (a real RQ worker, burst mode),
    in an app context of their own as in the worker: each job reads the database afresh, not
    through the test's session (whose rows may be stale: sessions don't expire on commit)."""
    from rq import SimpleWorker

    def _run():
        db.session.commit()
        with ctx.app_context():
            SimpleWorker([queue], connection=queue.connection).work(burst=True)
    return _run


@pytest.fixture()
def make_stream(ctx, make_creator):
    """make_stream(creator=None, type_="public", title=None, ticket_price=None, starts_at=None, live=False)
    → Stream: `creator`'s (a new creator's if None) stream, scheduled by the streams service
    (`title` None: the service's default title), and started if `live`."""
    from app.streams import service as streams

    def _make(creator=None, type_="public", title=None, ticket_price=None, starts_at=None, live=False):
        creator = make_creator() if creator is None else creator
        stream = streams.create_stream(creator, type_, title, ticket_price, starts_at)
        if live:
            streams.change_status(creator, stream.id, "start")
        return stream
    return _make


class CallScene(NamedTuple):
    """What `make_call` made: unpacks as (fan, creator, call_id), reads as scene.fan."""
    fan: object
    creator: object
    call_id: int


def close_open_calls(user_ids: list[int] | None = None) -> None:
    """End every open call (only those of `user_ids`, if given) in plain SQL, so no
    later test's meter() bills it. Needs an app context."""
    scope = "" if user_ids is None else " AND (fan_id = ANY(:ids) OR creator_id = ANY(:ids))"
    db.session.rollback()
    db.session.execute(text(
        "UPDATE calls SET status = CASE WHEN status = 'requested' THEN 'expired' ELSE 'ended' END, "
        "end_reason = CASE WHEN status = 'requested' THEN NULL ELSE 'ended_by_fan' END, "
        "active_since = NULL, paused_by = NULL, ended_at = coalesce(ended_at, now()) "
        "WHERE status IN ('requested', 'active', 'paused')" + scope), {"ids": user_ids})
    db.session.commit()


@pytest.fixture()
def no_open_calls(app):
    """Tests that meter assert exact totals: start and finish with no open call anywhere."""
    def _close():
        with app.app_context():
            close_open_calls()
            db.session.remove()
    _close()
    yield
    _close()


@pytest.fixture()
def make_call(ctx, make_fan, make_creator):
    """make_call(rate=60, balance=None, present=True, accept=True, fan=None, creator=None) → CallScene.

    `creator` (a new one if None) takes calls at `rate`; `fan` (a new one funded with
    `balance`, default 1000; an existing fan calls with what it has) requests one. With
    `present` both call pages report presence before the creator accepts (so billing
    runs continuously); with `accept` the creator accepts at the current clock. The
    open calls of everyone involved are closed at teardown.
    """
    from app.calls import service as calls
    involved: set[int] = set()

    def _make(rate=60, balance=None, present=True, accept=True, fan=None, creator=None) -> CallScene:
        assert fan is None or balance is None, "an existing fan calls with the tokens it has"
        creator = make_creator() if creator is None else creator
        fan = make_fan(balance=1000 if balance is None else balance) if fan is None else fan
        involved.update((fan.id, creator.id))
        calls.update_settings(creator, rate, True)
        call_id = calls.init_call(fan, creator.id, rate).id
        if present:
            calls.presence_changed(call_id, "fan", True)
            calls.presence_changed(call_id, "creator", True)
        if accept:
            calls.accept(creator, call_id)
        return CallScene(fan, creator, call_id)
    yield _make
    if involved:
        close_open_calls(list(involved))


@pytest.fixture()
def api_headers(ctx):
    """api_headers(user, **extra) → {"Authorization": "Bearer …", ...}."""
    from app.auth.service import issue_token

    def _headers(user, **extra):
        return {"Authorization": f"Bearer {issue_token(user)}", **extra}
    return _headers


_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_from(client, path="/signup") -> str:
    """The CSRF token the browser would get, read from a rendered page."""
    html = client.get(path).get_data(as_text=True)
    return _CSRF.search(html).group(1)


@pytest.fixture()
def login(client):
    """login(user) → the CSRF token for that logged-in session (client is the test client)."""
    def _login(user, password=None):
        token = csrf_from(client, "/login")
        resp = client.post("/login", data={"email": user.email, "password": password or user.test_password,
                                           "csrf_token": token})
        assert resp.status_code == 303, resp.get_data(as_text=True)
        return csrf_from(client, "/wallet")
    return _login


# ---- app servers in their own processes, a Redis of a test's own ---------------

@pytest.fixture()
def spawn_server(app, services, tmp_path):
    """spawn_server(name, redis_url=None, wait=True, **settings) → a ServerProcess:
    `flask --app wsgi run` in its own process on the session's database
    (migrated by `app`) and Redis (or `redis_url`), with extra environment
    `settings`; healthy unless wait=False (then call `wait_healthy`). Every
    process is stopped at teardown."""
    started: list[ServerProcess] = []

    def _spawn(name: str, redis_url: str | None = None, wait: bool = True, **settings) -> ServerProcess:
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
        env.update(settings)
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


# ---- Stripe: the official SDK against a local stand-in (tests/payments/standin.py) ----

@pytest.fixture()
def stripe_standin():
    """A fresh stand-in of Stripe's HTTP API on a free port (see its module docstring)."""
    from tests.payments import standin
    found, stop = standin.start()
    yield found
    stop()


@pytest.fixture()
def stripe_app(make_app, stripe_standin):
    """An app on the test database with PAYMENTS_PROVIDER=stripe, its SDK pointed at
    `stripe_standin`; `stripe_app.app_context()` for services, `fresh_client(stripe_app)`
    for requests. `make_app(...)` with other settings for variants (approval, hold)."""
    from tests.payments import standin
    return make_app(PAYMENTS_PROVIDER="stripe", STRIPE_API_BASE=stripe_standin.url,
                    STRIPE_SECRET_KEY=standin.API_KEY, STRIPE_WEBHOOK_SECRET=standin.WEBHOOK_SECRET,
                    STRIPE_CONNECT_WEBHOOK_SECRET=standin.CONNECT_WEBHOOK_SECRET)


# ---- live server for browser tests ------------------------------------------

@pytest.fixture(scope="session")
def live_server(app):
    """The app served over real HTTP on a free port (threaded, like production)."""
    from werkzeug.serving import make_server
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


@pytest.fixture(scope="module")
def media_stack(app, services):
    """Live video for real (tests/media_stack.py): nginx-rtmp on free ports and a second
    app on this session's database, configured with its URLs and short playback tokens,
    served over HTTP. One per test module; encoders a test started are stopped after it."""
    from werkzeug.serving import make_server

    from app.extensions import limiter
    from tests import media_stack as stack_module

    def configured(**overrides):
        return create_app(make_config(services, **overrides))

    stack = stack_module.start(configured, lambda application, port: make_server("127.0.0.1", port, application,
                                                                                 threaded=True))
    yield stack
    stack_module.stop(stack)
    with stack.app.app_context():
        db.engine.dispose()
    limiter.init_app(app)  # Flask-Limiter keeps the last app's storage: give it back to the session app


@pytest.fixture()
def on_air(media_stack):
    """The media stack, with every encoder a test started stopped after it."""
    yield media_stack
    media_stack.stop_encoders()


CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@pytest.fixture(scope="session")
def pw_driver():
    """One Playwright driver for the whole session: its sync API refuses to start a
    second one while another is running. Missing browser → skipped with a reason;
    CI (.ci/run) installs it and fails the run on any skip."""
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"browser test needs Chromium at {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import sync_playwright
    with sync_playwright() as pw:
        yield pw


def launch_chromium(pw_driver, extra_args=()):
    """Yield Debian's Chromium driven by Playwright (with `extra_args`, e.g. a fake camera)."""
    b = pw_driver.chromium.launch(executable_path=CHROMIUM, args=[*CHROMIUM_ARGS, *extra_args])
    yield b
    b.close()


@pytest.fixture(scope="session")
def browser(pw_driver):
    yield from launch_chromium(pw_driver)


from tests.clock import clock  # noqa: E402,F401  (the shared injectable-clock fixture)
