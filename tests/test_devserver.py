"""`make run`'s launcher, for real: embedded PostgreSQL + Redis, migrations,
demo users, web + worker; SIGTERM stops every process it started."""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import psutil
import pytest
import redis

from app import embedded

ROOT = Path(__file__).resolve().parent.parent
LAUNCHER = [sys.executable, "-m", "app.devserver"]
MAKE_RUN = ["make", "--no-print-directory", "run"]


@pytest.fixture()
def instance():
    """A fresh instance dir. Not under pytest's tmp_path: another pytest run
    starting meanwhile resets /tmp/pytest-of-<user> to 0700, which the embedded
    PostgreSQL, running as its own user when we are root, cannot traverse."""
    path = Path(tempfile.mkdtemp(prefix="pm-devserver-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _wait_healthy(url, proc, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"launcher exited early with {proc.returncode}:\n{proc.stdout.read()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                return resp.status, json.loads(resp.read())
        except OSError:
            time.sleep(0.3)
    raise AssertionError("the app never became healthy")


def _start(instance_dir, command=LAUNCHER):
    """(process, port): `command` on a free port with everything embedded under
    `instance_dir`, in a session of its own (so a test can signal its group)."""
    port = embedded.free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(INSTANCE_DIR=str(instance_dir), PORT=str(port), APP_ENV="development")
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    return proc, port


def _instance_processes(instance_dir):
    """Every live process of this instance dir: named on its command line
    (PostgreSQL, Redis) or started with it as INSTANCE_DIR (make, launcher,
    web, worker)."""
    found = []
    for p in psutil.process_iter(["name", "cmdline", "environ", "status"]):
        try:
            if p.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            if str(instance_dir) in " ".join(p.info["cmdline"] or []) or \
                    (p.info["environ"] or {}).get("INSTANCE_DIR") == str(instance_dir):
                found.append(p)
        except psutil.Error:
            continue
    return found


def _assert_none_left(instance_dir, timeout=90):
    deadline = time.monotonic() + timeout
    while (left := _instance_processes(instance_dir)) and time.monotonic() < deadline:
        time.sleep(0.3)
    assert not left, [" ".join(_cmdline(p)) for p in left if p.is_running()]


def _stop(proc, sig=signal.SIGTERM, timeout=90):
    proc.send_signal(sig)
    output, _ = proc.communicate(timeout=timeout)
    return output


def _running(procs):
    return [p for p in procs if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


def _wait_for(predicate, what, timeout=90):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := predicate():
            return result
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _cmdline(process) -> list[str]:
    """A process's command line; [] if it ended meanwhile (RQ forks a short-lived
    work horse for each cron job, which may finish between listing and asking)."""
    try:
        return process.cmdline()
    except psutil.NoSuchProcess:
        return []


def test_launcher_runs_everything_embedded_and_stops_it_all(instance):
    proc, port = _start(instance)
    try:
        status, body = _wait_healthy(f"http://127.0.0.1:{port}/healthz", proc)
        assert status == 200 and body == {"db": "ok", "redis": "ok"}
        family = psutil.Process(proc.pid).children(recursive=True)
        cmdlines = [" ".join(_cmdline(p)) for p in family]
        assert any("worker.py" in c for c in cmdlines), cmdlines
        assert any("redis-server" in c for c in cmdlines), cmdlines
        postgres = [p for p in _instance_processes(instance) if "postgres" in " ".join(_cmdline(p))]
        assert postgres, "embedded PostgreSQL is not running from the instance dir"
    finally:
        output = _stop(proc)
    assert "fan@example.com" in output and "password:" in output
    _assert_none_left(instance)
    assert all(not p.is_running() or p.status() == psutil.STATUS_ZOMBIE for p in family)


@pytest.mark.parametrize("target", ["make", "process group"])
def test_sigterm_to_make_run_stops_everything(instance, target):
    """SIGTERM to the real `make run`, alone or with its whole process group (as
    a process manager may send it: then the launcher gets it twice, once
    forwarded by make), leaves no process of the instance behind."""
    assert subprocess.run(["make", "-q", "install"], cwd=ROOT).returncode == 0, \
        "the venv is not installed: `make run` would reinstall it first"
    make, port = _start(instance, MAKE_RUN)
    try:
        _wait_healthy(f"http://127.0.0.1:{port}/healthz", make)
    finally:
        if target == "make":
            make.send_signal(signal.SIGTERM)
        else:
            os.killpg(make.pid, signal.SIGTERM)
        make.communicate(timeout=90)
    _assert_none_left(instance)


def test_sigterm_while_make_run_starts_stops_everything_and_breaks_nothing(instance):
    """SIGTERM during the first start (initdb running: no Redis, web or worker
    yet) leaves no process behind and no half-made database: the next start
    works."""
    make, _ = _start(instance, MAKE_RUN)
    try:
        # initdb writes PG_VERSION first: seen either way, even on a machine faster than our polling.
        _wait_for(lambda: (instance / "pgdata" / "PG_VERSION").exists()
                  or any(p.info["name"] == "initdb" for p in _instance_processes(instance)), "initdb to run")
    finally:
        make.send_signal(signal.SIGTERM)
        make.communicate(timeout=90)
    _assert_none_left(instance)

    again, port = _start(instance, MAKE_RUN)
    try:
        _wait_healthy(f"http://127.0.0.1:{port}/healthz", again)
    finally:
        _stop(again)
    _assert_none_left(instance)


def test_a_second_sigterm_while_stopping_does_not_cut_the_cleanup_short(instance):
    proc, port = _start(instance)
    try:
        _wait_healthy(f"http://127.0.0.1:{port}/healthz", proc)
        children = psutil.Process(proc.pid).children()
    finally:
        proc.send_signal(signal.SIGTERM)
    _wait_for(lambda: len(_running(children)) < len(children), "the launcher to stop its first child")
    _stop(proc)
    _assert_none_left(instance)


def test_children_die_with_a_sigkilled_launcher_and_the_next_launcher_stops_what_it_left(instance):
    """A SIGKILLed launcher runs no cleanup: its web, worker and Redis still go
    with it; the PostgreSQL daemon it left is adopted by the next launcher, whose
    SIGTERM then stops everything."""
    first, port = _start(instance)
    try:
        _wait_healthy(f"http://127.0.0.1:{port}/healthz", first)
        children = psutil.Process(first.pid).children()
        assert len(children) == 3, [c.cmdline() for c in children]  # redis, web, worker
    finally:
        _stop(first, signal.SIGKILL)
    _wait_for(lambda: not _running(children), "the launcher's children to exit")

    second, port = _start(instance)
    try:
        _wait_healthy(f"http://127.0.0.1:{port}/healthz", second)
    finally:
        _stop(second)
    _assert_none_left(instance)


def test_a_launcher_owns_its_instance_dir(instance):
    """One launcher per instance dir: a second one is refused (status 1, saying
    why), and a Redis found serving on the instance socket (left by a dead
    launcher) is shut down and replaced, never adopted with its old data."""
    leftover = embedded.start_redis(str(instance))
    redis.Redis.from_url(embedded.redis_url(str(instance))).set("left-from-before", 1)
    proc, port = _start(instance)
    try:
        _wait_healthy(f"http://127.0.0.1:{port}/healthz", proc)
        _wait_for(lambda: leftover.poll() is not None, "the Redis left on the socket to be shut down", 30)
        assert redis.Redis.from_url(embedded.redis_url(str(instance))).get("left-from-before") is None

        second, _ = _start(instance)
        output, _ = second.communicate(timeout=90)
        assert second.returncode == 1, output
        assert f"another launcher (pid {proc.pid}) is already running for {instance.resolve()}" in output
        _wait_healthy(f"http://127.0.0.1:{port}/healthz", proc)
    finally:
        embedded.stop(leftover)
        _stop(proc)
    _assert_none_left(instance)
