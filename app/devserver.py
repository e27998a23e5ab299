"""`make run`: everything in one command.

Starts embedded PostgreSQL and Redis under `instance/` when `DATABASE_URL` /
`REDIS_URL` are unset (reusing them if already running), applies migrations,
seeds the demo users, then runs the web server and `worker.py` as child
processes. Ctrl-C or SIGTERM stops everything it started, embedded servers
included.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time

from app import embedded
from app.config import Config


def _web_command(cfg: Config, host: str) -> list[str]:
    if cfg.APP_ENV == "production":
        return [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "--bind", f"{host}:{cfg.PORT}", "wsgi:app"]
    return [sys.executable, "-m", "flask", "--app", "wsgi", "run", "--host", host, "--port", str(cfg.PORT),
            "--no-reload", "--with-threads", "--no-debugger"]


def main() -> int:
    embedded.exit_on_sigterm()
    cfg = Config.from_env()
    redis_proc = None
    children: list[subprocess.Popen] = []
    try:
        db_url = cfg.DATABASE_URL or embedded.postgres_url(cfg.INSTANCE_DIR)
        redis_url = cfg.REDIS_URL
        if not redis_url:
            redis_proc = embedded.start_redis(cfg.INSTANCE_DIR)
            redis_url = embedded.redis_url(cfg.INSTANCE_DIR)
        env = embedded.env_with_services(db_url, redis_url)

        from flask_migrate import upgrade

        from app import create_app
        from app.seed import seed_demo
        app = create_app(Config.from_env(env))
        with app.app_context():
            upgrade()
            demo = seed_demo()

        host = os.environ.get("HOST", "127.0.0.1")
        print("\n  Pro Monetization is starting on "
              f"http://{'127.0.0.1' if host == '0.0.0.0' else host}:{cfg.PORT}/  (APP_ENV={cfg.APP_ENV})")
        print(f"  database: {'embedded (instance/pgdata)' if not cfg.DATABASE_URL else 'DATABASE_URL'}"
              f" · redis: {'embedded (instance/redis)' if not cfg.REDIS_URL else 'REDIS_URL'}")
        print("  demo accounts:")
        for role, email, password in demo:
            print(f"    {role:<8} {email:<22} password: {password}")
        print("  Ctrl-C stops everything.\n", flush=True)

        children.append(subprocess.Popen(_web_command(cfg, host), env=env))
        children.append(subprocess.Popen([sys.executable, "worker.py"], env=env))
        while all(c.poll() is None for c in children):
            time.sleep(0.5)
        failed = [c for c in children if c.poll()]
        return 1 if failed else 0
    except KeyboardInterrupt:
        return 0
    finally:
        for child in children:
            embedded.stop(child)
        embedded.stop(redis_proc)
        # Embedded PostgreSQL stops when this process exits (pgserver's atexit).


if __name__ == "__main__":
    sys.exit(main())
