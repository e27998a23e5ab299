"""`python worker.py`, for real: on the session's database and Redis, on a job
queue of this test's own."""
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from redis import Redis
from rq import Queue, Worker

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture()
def workers(app, services, tmp_path):
    """workers() → a started `worker.py` (a Popen) on this test's own queue; all
    stopped at teardown. `.queue` is that queue."""
    db_url, redis_url = services
    prefix = f"{os.environ['REDIS_PREFIX']}worker-{uuid.uuid4().hex[:8]}:"
    env = dict(os.environ, APP_ENV="test", SECRET_KEY="worker-test-secret", DATABASE_URL=db_url,
               REDIS_URL=redis_url, REDIS_PREFIX=prefix, INSTANCE_DIR=str(tmp_path / "instance"))
    started = []

    def _start():
        proc = subprocess.Popen([sys.executable, "worker.py"], cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        started.append(proc)
        return proc
    _start.queue = Queue(f"{prefix}jobs", connection=Redis.from_url(redis_url))
    yield _start
    for proc in started:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)


def _listed(queue):
    """(hostname, pid) of every worker RQ lists for `queue`."""
    return {(w.hostname, w.pid) for w in Worker.all(queue=queue)}


def _wait_listed(queue, pid, timeout=90):
    deadline = time.monotonic() + timeout
    while (socket.gethostname(), pid) not in _listed(queue):
        assert time.monotonic() < deadline, f"worker {pid} never registered"
        time.sleep(0.1)


def test_a_starting_worker_forgets_dead_workers_of_this_host_and_no_others(workers):
    queue, host = workers.queue, socket.gethostname()
    dead, live = workers(), workers()
    _wait_listed(queue, dead.pid)
    _wait_listed(queue, live.pid)
    dead.kill()
    dead.wait(30)
    # A worker of another host, with a pid that is dead here: only its hostname protects it.
    elsewhere = Worker([queue], connection=queue.connection, name=f"elsewhere-{uuid.uuid4().hex[:8]}")
    elsewhere.hostname, elsewhere.pid = "another-host", dead.pid
    elsewhere.register_birth()
    try:
        assert (host, dead.pid) in _listed(queue)  # RQ alone lists it for minutes

        fresh = workers()
        _wait_listed(queue, fresh.pid)  # it forgets the dead before it registers itself
        assert _listed(queue) == {(host, live.pid), (host, fresh.pid), ("another-host", dead.pid)}
    finally:
        elsewhere.register_death()
