"""`make run`'s launcher, for real: embedded PostgreSQL + Redis, migrations,
demo users, web + worker; SIGTERM stops every process it started."""
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil

from app import embedded

ROOT = Path(__file__).resolve().parent.parent


def _wait_healthy(url, proc, timeout=90):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"launcher exited early with {proc.returncode}"
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                return resp.status, json.loads(resp.read())
        except OSError:
            time.sleep(0.3)
    raise AssertionError("the app never became healthy")


def test_launcher_runs_everything_embedded_and_stops_it_all(tmp_path):
    port = embedded.free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(INSTANCE_DIR=str(tmp_path / "instance"), PORT=str(port), APP_ENV="development")
    proc = subprocess.Popen([sys.executable, "-m", "app.devserver"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        status, body = _wait_healthy(f"http://127.0.0.1:{port}/healthz", proc)
        assert status == 200 and body == {"db": "ok", "redis": "ok"}
        family = psutil.Process(proc.pid).children(recursive=True)
        cmdlines = [" ".join(p.cmdline()) for p in family]
        assert any("worker.py" in c for c in cmdlines), cmdlines
        assert any("redis-server" in c for c in cmdlines), cmdlines
        postgres = [p for p in psutil.process_iter(["cmdline"])
                    if str(tmp_path) in " ".join(p.info["cmdline"] or []) and "postgres" in " ".join(p.info["cmdline"] or [])]
        assert postgres, "embedded PostgreSQL is not running from the instance dir"
    finally:
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=60)
    assert "fan@example.com" in output and "password:" in output
    time.sleep(1)
    leftovers = [p for p in psutil.process_iter(["cmdline"]) if str(tmp_path) in " ".join(p.info["cmdline"] or [])]
    assert not leftovers, [p.info["cmdline"] for p in leftovers]
    assert all(not p.is_running() or p.status() == psutil.STATUS_ZOMBIE for p in family)
