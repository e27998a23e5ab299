"""`make run`: everything in one command.

Starts embedded PostgreSQL and Redis under `instance/` when `DATABASE_URL` /
`REDIS_URL` are unset, applies migrations, seeds the demo users, then runs
the web server and `worker.py` as child processes. The banner names the demo
accounts and what can be tried with them right away (app/seed.py). When Debian's nginx and
its RTMP module are installed and no media server is configured
(`MEDIA_HLS_BASE_URL` / `MEDIA_INGEST_URL` unset), it also starts nginx-rtmp
(app/mediaserver.py) and prints where OBS publishes the demo stream; without
them it says how to get video. Ctrl-C or SIGTERM stops everything it started,
embedded servers included:

- one launcher per instance dir: it holds `instance/launcher.lock` for its
  whole life (the kernel drops the lock when it dies, however it dies); a
  second launcher says so and exits with status 1;
- so a Redis found answering on the instance socket belongs to a dead
  launcher: it is shut down and a fresh one started (`embedded.start_redis`);
- children die with the launcher even when it is SIGKILLed
  (`embedded.die_with_owner`); only the embedded PostgreSQL, a daemon, then
  stays up until the next launcher adopts it and stops it on exit;
- a signal never cuts a start or the cleanup short (`_Stop`).
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

from app import embedded, mediaserver
from app.config import Config


class _Stop:
    """SIGTERM and SIGINT (Ctrl-C) stop the launcher once. The first one raises
    SystemExit where the launcher is, except inside `deferred()`, which raises
    it on leaving: a server interrupted half-way through its start is worse
    than a late stop (an interrupted initdb leaves a data dir no later start
    can use; a postmaster started before pgserver registered its owner is
    never stopped; a child not yet in our list is never stopped either).
    From the first signal on, or once `begin()` is called, further signals are
    ignored, so the cleanup always runs to its end (make forwards its own
    SIGTERM to us, so a signal to the whole process group arrives twice)."""

    def __init__(self):
        self.stopping = False
        self._deferring = False
        self._requested = False
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_signal)

    def _on_signal(self, signum, frame):
        if self.stopping:
            return
        if self._deferring:
            self._requested = True
            return
        self.stopping = True
        raise SystemExit(0)

    @contextlib.contextmanager
    def deferred(self):
        self._deferring = True
        try:
            yield
        finally:
            self._deferring = False
        if self._requested and not self.stopping:
            self.stopping = True
            raise SystemExit(0)

    def begin(self) -> None:
        """The cleanup starts: ignore signals from now on."""
        self.stopping = True


_instance_lock = None  # held until the process ends, after pgserver's exit handler stops PostgreSQL


def _lock_instance(instance_dir: str) -> None:
    """Take the instance dir's launcher lock; SystemExit (status 1) naming the
    holder if another launcher holds it."""
    global _instance_lock
    path = Path(instance_dir) / "launcher.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = open(path, "a+")  # not inherited: Python opens files close-on-exec
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.seek(0)
        holder = lock.read().strip() or "?"
        raise SystemExit(f"make run: another launcher (pid {holder}) is already running for "
                         f"{Path(instance_dir).resolve()}; stop it first.") from None
    lock.truncate(0)
    lock.write(f"{os.getpid()}\n")
    lock.flush()
    _instance_lock = lock


def _web_command(cfg: Config, host: str) -> list[str]:
    if cfg.APP_ENV == "production":
        return [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "--bind", f"{host}:{cfg.PORT}", "wsgi:app"]
    return [sys.executable, "-m", "flask", "--app", "wsgi", "run", "--host", host, "--port", str(cfg.PORT),
            "--no-reload", "--with-threads", "--no-debugger"]


def _print_video(cfg: Config, app, video: mediaserver.MediaServer | None, origin: str) -> None:
    """How to get live video on screen: OBS's settings for the demo stream when
    nginx-rtmp runs, the one install line when it can't."""
    if cfg.MEDIA_HLS_BASE_URL or cfg.MEDIA_INGEST_URL:
        print("  live video: the media server in MEDIA_HLS_BASE_URL / MEDIA_INGEST_URL")
        return
    if video is None:
        print(f"  live video: off (needs {' and '.join(mediaserver.missing())}). To watch streams here:\n"
              f"    {mediaserver.INSTALL_HINT}   then make run again")
        return
    from app.auth.models import User
    from app.extensions import db
    from app.seed import demo_stream
    from app.streams.media import stream_key
    with app.app_context():
        stream = demo_stream()
        key = stream_key(db.session.get(User, stream.creator_id))
        stream_id = stream.id
    print(f"  live video: nginx-rtmp (RTMP {video.ingest_url}, HLS {video.hls_base_url})\n"
          f"    OBS → Settings → Stream → Custom…  Server: {video.ingest_url}/stream"
          f"   Stream Key: {stream_id}?token={key}\n"
          f"    or a test picture from ffmpeg:\n"
          f"      {shlex.join(mediaserver.publish_command(video.ingest_url, stream_id, key))}\n"
          f"    then watch {origin}/streams/{stream_id} (any browser, no login needed)")


def main() -> int:
    stop = _Stop()
    cfg = Config.from_env()
    _lock_instance(cfg.INSTANCE_DIR)
    started: list[subprocess.Popen] = []  # stopped in reverse: web and worker before their Redis
    video: mediaserver.MediaServer | None = None  # stopped after them
    try:
        with stop.deferred():
            db_url = cfg.DATABASE_URL or embedded.postgres_url(cfg.INSTANCE_DIR)
        redis_url = cfg.REDIS_URL
        if not redis_url:
            with stop.deferred():
                started.append(embedded.start_redis(cfg.INSTANCE_DIR))
            redis_url = embedded.redis_url(cfg.INSTANCE_DIR)
        env = embedded.env_with_services(db_url, redis_url)

        from flask_migrate import upgrade

        from app import create_app
        from app.seed import seed_demo, try_it_lines
        app = create_app(Config.from_env(env))
        with app.app_context():
            upgrade()
            demo = seed_demo()

        host = os.environ.get("HOST", "127.0.0.1")
        origin = f"http://{'127.0.0.1' if host == '0.0.0.0' else host}:{cfg.PORT}"
        video = None
        if not (cfg.MEDIA_HLS_BASE_URL or cfg.MEDIA_INGEST_URL) and not mediaserver.missing():
            with stop.deferred():
                video = mediaserver.start(f"127.0.0.1:{cfg.PORT}", origin,
                                          mediaserver.auth_cache_seconds(cfg.PLAYBACK_TOKEN_TTL_SECONDS))
            env.update(MEDIA_HLS_BASE_URL=video.hls_base_url, MEDIA_INGEST_URL=video.ingest_url)
        print(f"\n  Pro Monetization is starting on {origin}/  (APP_ENV={cfg.APP_ENV})")
        print(f"  database: {'embedded (instance/pgdata)' if not cfg.DATABASE_URL else 'DATABASE_URL'}"
              f" · redis: {'embedded (instance/redis)' if not cfg.REDIS_URL else 'REDIS_URL'}")
        print("  demo accounts:")
        for role, email, password in demo.accounts:
            print(f"    {role:<8} {email:<22} password: {password}")
        print("\n".join(try_it_lines(demo, origin)))
        _print_video(cfg, app, video, origin)
        print("  Ctrl-C stops everything.\n", flush=True)

        children = []
        for command in (_web_command(cfg, host), [sys.executable, "worker.py"]):
            with stop.deferred():
                children.append(subprocess.Popen(command, env=env, preexec_fn=embedded.die_with_owner()))
                started.append(children[-1])
        while all(c.poll() is None for c in children):
            time.sleep(0.5)
        failed = [c for c in children if c.poll()]
        return 1 if failed else 0
    finally:
        stop.begin()
        for proc in reversed(started):
            embedded.stop(proc)
        if video is not None:
            video.stop()
        # Embedded PostgreSQL stops when this process exits (pgserver's atexit).


if __name__ == "__main__":
    sys.exit(main())
