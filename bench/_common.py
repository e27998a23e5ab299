"""Shared by the benchmarks: a fresh migrated database, and a production web server.

Every benchmark runs against its own brand-new `pm_bench_<random>` database
(on DATABASE_URL's server, else the embedded one under instance/bench-services)
and drops it at the end, so runs never see each other's data.
"""
from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from app import embedded  # noqa: E402

BENCH_INSTANCE = ROOT / "instance" / "bench-services"


def libpq_url(url: str) -> str:
    """SQLAlchemy URL -> plain libpq URL that psycopg.connect accepts."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def server_url() -> str:
    """SQLAlchemy URL of the server's maintenance database (`postgres`)."""
    base = os.environ.get("DATABASE_URL") or embedded.postgres_url(str(BENCH_INSTANCE), database="postgres")
    if base.startswith("postgresql://"):
        base = base.replace("postgresql://", "postgresql+psycopg://", 1)
    return base


def create_database(base: str) -> tuple[str, str]:
    """Create a fresh `pm_bench_<random>` database; returns (name, SQLAlchemy URL)."""
    name = f"pm_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(libpq_url(base), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return name, make_url(base).set(database=name).render_as_string(hide_password=False)


def drop_database(base: str, name: str) -> None:
    with psycopg.connect(libpq_url(base), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _app(db_url: str, redis_url: str):
    from app import create_app
    from app.config import Config
    return create_app(Config.from_env({"APP_ENV": "test", "DATABASE_URL": db_url, "REDIS_URL": redis_url,
                                       "SECRET_KEY": "bench", "INSTANCE_DIR": str(BENCH_INSTANCE)}))


def migrate(db_url: str, redis_url: str) -> None:
    """Apply the real migrations to the bench database."""
    from flask_migrate import upgrade
    with _app(db_url, redis_url).app_context():
        upgrade()


def verify(db_url: str, redis_url: str) -> list:
    """`app.ledger.verify()` on the bench database: [] when the books balance."""
    from app.ledger import verify as ledger_verify
    with _app(db_url, redis_url).app_context():
        return ledger_verify()


def redis_url() -> tuple[str, subprocess.Popen | None]:
    """REDIS_URL, or an embedded redis-server started for this run (stop it with embedded.stop)."""
    if os.environ.get("REDIS_URL"):
        return os.environ["REDIS_URL"], None
    proc = embedded.start_redis(str(BENCH_INSTANCE))
    return embedded.redis_url(str(BENCH_INSTANCE)), proc


@contextlib.contextmanager
def fresh_services():
    """A migrated `pm_bench_<random>` database and a Redis for one run; yields
    (database name, SQLAlchemy URL, Redis URL) and drops / stops them afterwards."""
    base = server_url()
    name, db_url = create_database(base)
    redis, redis_proc = redis_url()
    try:
        migrate(db_url, redis)
        yield name, db_url, redis
    finally:
        drop_database(base, name)
        embedded.stop(redis_proc)


def tree_cpu(pid: int) -> float:
    """CPU seconds of a process and its children (gunicorn + workers, nginx master + workers)."""
    import psutil
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


class WebServer:
    """gunicorn with the repo's gunicorn.conf.py (the production config) on a free port."""

    def __init__(self, db_url: str, redis: str, worker_class: str = "gevent", extra_env: dict | None = None,
                 log_path: str | None = None, port: int | None = None):
        self.port = port or embedded.free_port()
        env = {**os.environ, "DATABASE_URL": db_url, "REDIS_URL": redis, "APP_ENV": "production",
               "SECRET_KEY": "bench-secret-key", "ALLOW_DEMO_PAYMENTS": "1", "PORT": str(self.port),
               "HOST": "127.0.0.1", "GUNICORN_WORKER_CLASS": worker_class,
               # Setup registers and funds many users from one IP; limits are not what is measured.
               "SIGNUP_LIMIT_PER_IP": "1000000 per minute", "PURCHASE_LIMIT_PER_USER": "1000000 per minute",
               **(extra_env or {})}
        self.log = open(log_path or os.devnull, "w")
        self.proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"],
                                     cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        self.base = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(self.base + "/healthz", timeout=2):
                    return
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"gunicorn exited with {self.proc.returncode}") from None
                time.sleep(0.3)
        raise RuntimeError("gunicorn did not become healthy")

    def cpu_seconds(self) -> float:
        """CPU time used so far by the gunicorn master and its workers."""
        return tree_cpu(self.proc.pid)

    def worker_pids(self) -> list[int]:
        """The gunicorn worker processes (the master's children)."""
        import psutil
        try:
            return [p.pid for p in psutil.Process(self.proc.pid).children()]
        except psutil.NoSuchProcess:
            return []

    def stop(self) -> None:
        embedded.stop(self.proc, timeout=20)
        self.log.close()


def rss_bytes(pids: list[int]) -> int:
    """Sum of the processes' resident set sizes (VmRSS in /proc/<pid>/status)."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as status:
                for line in status:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
                        break
        except FileNotFoundError:
            pass
    return total


def raise_fd_limit() -> int:
    """Raise this process's open-file limit to its hard limit (thousands of sockets); returns it."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def listen_overflows() -> int:
    """The kernel's count of connections dropped because a listen queue was full
    (TcpExt ListenOverflows in /proc/net/netstat, machine-wide)."""
    with open("/proc/net/netstat") as f:
        lines = f.read().splitlines()
    for names, values in zip(lines[::2], lines[1::2]):
        if names.startswith("TcpExt:"):
            return int(dict(zip(names.split()[1:], values.split()[1:])).get("ListenOverflows", 0))
    return 0


def api(base: str, method: str, path: str, body: dict | None = None, token: str | None = None,
        key: str | None = None) -> tuple[int, dict]:
    """One JSON API call (urllib); returns (status, body)."""
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if key:
        headers["Idempotency-Key"] = key
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base + path, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


def register(base: str, role: str, name: str) -> dict:
    status, body = api(base, "POST", "/api/auth/register", {
        "email": f"{role}-{uuid.uuid4().hex[:10]}@example.com", "password": "bench-password-1",
        "displayName": name, "role": role})
    assert status == 201, body
    return body


def fund(base: str, token: str, tokens: int) -> None:
    while tokens > 0:
        chunk = min(tokens, 100_000)
        status, body = api(base, "POST", "/api/tokens/purchase", {"amountTokens": chunk}, token, str(uuid.uuid4()))
        assert status == 201, body
        tokens -= chunk
