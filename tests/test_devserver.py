"""`make run`'s launcher, for real: embedded PostgreSQL + Redis, migrations,
demo users, web + worker; SIGTERM stops every process it started."""
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
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


def _read_banner(proc, lines: list[str] | None = None) -> list[str]:
    """The launcher's output up to its "Ctrl-C stops everything." line (read as it
    comes, on a thread: the rest keeps flowing while the test goes on, into `lines`
    when given)."""
    lines = [] if lines is None else lines
    done = threading.Event()

    def _read():
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
            if "Ctrl-C stops everything." in line:
                done.set()
        done.set()
    threading.Thread(target=_read, daemon=True).start()
    assert done.wait(120), f"no banner from the launcher:\n{lines}"
    return list(lines)


def _get(url: str, headers: dict | None = None) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


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
        # redis, nginx-rtmp (installed here and on CI), web, worker
        assert len(children) == 4, [c.cmdline() for c in children]
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


def test_make_run_starts_nginx_rtmp_and_what_it_prints_puts_video_on_the_demo_stream(instance):
    """A newcomer's path: the printed ffmpeg line (OBS's server and key) publishes the
    demo stream, whose page, open to anyone, now has the player, and nginx serves its
    playlist to the player's token. SIGTERM stops nginx with everything else."""
    proc, port = _start(instance)
    encoder = None
    try:
        banner = _read_banner(proc)
        _wait_healthy(f"http://127.0.0.1:{port}/healthz", proc)
        text = "\n".join(banner)
        assert re.search(r"Server: rtmp://127\.0\.0\.1:\d+/stream\s+Stream Key: \d+\?token=sk_", text), text
        command = next(line.strip() for line in banner if line.strip().startswith("ffmpeg "))
        watch = re.search(r"then watch (http://\S+/streams/(\d+))", text)
        assert watch, text
        page_url, stream_id = watch.group(1), watch.group(2)
        encoder = subprocess.Popen(shlex.split(command), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while True:  # the player appears once the encoder is on air (on_publish)
            status, html = _get(page_url)
            if status == 200 and b'class="player-video"' in html:
                break
            assert time.monotonic() < deadline, html.decode()[-2000:]
            time.sleep(0.5)
        hls = re.search(rb'data-hls-src="([^"]+)"', html).group(1).decode()
        status, body = _get(f"http://127.0.0.1:{port}/streams/{stream_id}/playback-token",
                            {"Accept": "application/json"})
        assert status == 200, body
        token = json.loads(body)["token"]
        while True:
            status, playlist = _get(hls, {"Authorization": f"Bearer {token}"})
            if status == 200 and playlist.count(b".ts") >= 2:
                break
            assert time.monotonic() < deadline, (status, playlist[:300])
            time.sleep(0.5)
        assert _get(hls)[0] == 403  # no token, no video
        family = [" ".join(_cmdline(p)) for p in psutil.Process(proc.pid).children(recursive=True)]
        assert any(c.startswith("nginx") for c in family), family
    finally:
        if encoder is not None:
            encoder.kill()
            encoder.wait()
        _stop(proc)
    _assert_none_left(instance)


def test_without_the_rtmp_module_make_run_says_how_to_get_video_and_the_page_says_so(instance, monkeypatch):
    monkeypatch.setenv("NGINX_RTMP_MODULE", str(instance / "no-such-module.so"))
    proc, port = _start(instance)
    try:
        banner = "\n".join(_read_banner(proc))
        _wait_healthy(f"http://127.0.0.1:{port}/healthz", proc)
        assert "live video: off (needs libnginx-mod-rtmp)" in banner, banner
        assert "sudo apt-get install nginx libnginx-mod-rtmp ffmpeg" in banner
        assert "Stream Key" not in banner and "then watch" not in banner, banner  # no OBS settings to print
        status, html = _get(f"http://127.0.0.1:{port}/")
        assert status == 200
        live = re.search(rb'href="/streams/(\d+)"', html)
        assert live, html.decode()[-2000:]  # the seeded demo stream is listed as live
        status, html = _get(f"http://127.0.0.1:{port}/streams/{live.group(1).decode()}")
        assert b"Video appears here once the operator connects a media server" in html
    finally:
        _stop(proc)
    _assert_none_left(instance)


def test_make_run_says_what_to_try_at_once_and_the_worker_keeps_it_on_screen(instance):
    """A newcomer's first minute: the banner names the funded demo fan, the live stream
    to tip or call on and the private show to buy a ticket for (each page works), and
    the worker's cron ticks print nothing at INFO afterwards, so the demo passwords
    stay in view."""
    proc, port = _start(instance)
    output: list[str] = []
    try:
        banner = "\n".join(_read_banner(proc, output))
        _wait_healthy(f"http://127.0.0.1:{port}/healthz", proc)
        assert "fan@example.com" in banner and "password: demo-fan-pass" in banner
        assert re.search(r"logged in as fan@example\.com \(5,000 demo tokens\)", banner), banner
        live = re.search(r"tip or video-call .* (http://\S+/streams/\d+)", banner)
        show = re.search(r"buy a ticket \((\d+) tokens\) to the private show\s+(http://\S+/streams/\d+)", banner)
        assert live and show and live.group(1) != show.group(2), banner
        assert _get(live.group(1))[0] == 200
        status, html = _get(show.group(2))
        assert status == 200 and show.group(1).encode() in html, html.decode()[-2000:]
        banner_end = len(output)
        time.sleep(12)  # two metering ticks (every 5 s) and a bit
        after = [line for line in output[banner_end:] if " INFO " in line and "werkzeug" not in line]
        assert [line for line in after if "Job OK" in line or "Enqueued job" in line or "cleaning registries" in line
                or "Successfully completed" in line or "meter_calls()" in line] == [], "\n".join(after)
        assert len(after) <= 15, "\n".join(after)  # the worker's start lines, then silence
    finally:
        _stop(proc)
    _assert_none_left(instance)
