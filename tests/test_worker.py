"""`python worker.py`, for real: on the session's database and Redis, on a job
queue of this test's own."""
import logging
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

    def _start(log=None, **settings):
        """`log`: a file to take the worker's output; `settings`: more environment."""
        out = subprocess.DEVNULL if log is None else log
        proc = subprocess.Popen([sys.executable, "worker.py"], cwd=ROOT, env=dict(env, **settings),
                                stdin=subprocess.DEVNULL, stdout=out, stderr=out)
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


# ---- quiet cron ticks ----------------------------------------------------------------------------

RQ_TICK_LINES = ("Enqueued job", "Job OK", "Successfully completed", "result is kept", "meter_calls",
                 "refund_failed_calls")


def _info_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if " INFO " in line]


def test_cron_ticks_print_no_info_lines_so_the_demo_passwords_stay_on_screen(workers, tmp_path):
    """Ticking every second for several seconds, the worker prints no INFO line about
    the periodic jobs (RQ's enqueued / started / completed / Job OK / result kept), and
    nothing at all once started: the `make run` banner above stays in view."""
    from rq.registry import FinishedJobRegistry
    log_path = tmp_path / "worker.log"
    with open(log_path, "w") as log:
        proc = workers(log=log, BILLING_TICK_SECONDS="1")
        finished = FinishedJobRegistry(queue=workers.queue)
        deadline = time.monotonic() + 90
        while finished.count < 10:  # the first run of all six jobs, then a few 1 s ticks of the two calls jobs
            assert proc.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    info = _info_lines(log_path.read_text())
    ticks = [line for line in info if " INFO rq." in line and any(marker in line for marker in RQ_TICK_LINES)]
    assert ticks == [], "\n".join(ticks)
    after_start = info[next(i for i, line in enumerate(info) if "Listening on" in line) + 1:]
    chatter = [line for line in after_start
               if "rollups:" not in line and "metering:" not in line
               and "shut down" not in line and "stopping on request" not in line and "unsubscribing" not in line]
    assert chatter == [], "\n".join(chatter)


def test_jobs_other_than_cron_ticks_keep_rqs_info_lines(workers, tmp_path):
    """Only the periodic jobs are quietened: a queued job (a show's refunds) still says
    it ran and finished."""
    from app.streams.jobs import refund_show
    log_path = tmp_path / "worker.log"
    with open(log_path, "w") as log:
        proc = workers(log=log)
        job = workers.queue.enqueue(refund_show, 0)  # no such show: refunds nothing, finishes OK
        deadline = time.monotonic() + 90
        while job.get_status(refresh=True) != "finished":
            assert proc.poll() is None and time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    info = "\n".join(_info_lines(log_path.read_text()))
    assert f"app.streams.jobs.refund_show(0) ({job.id})" in info, info
    assert f"Job OK ({job.id})" in info, info


def _record(name: str, msg: str, *args) -> logging.LogRecord:
    return logging.LogRecord(name, logging.INFO, __file__, 1, msg, args, None)


def test_the_filter_demotes_every_rq_line_of_a_cron_job_and_no_other(ctx):
    """QuietCronTicks, line by line as RQ 3 writes them: the cron job's start names its
    function and id, its "Job OK" and "result is kept" only the id."""
    from app.calls.cron import meter_calls
    from worker import QuietCronTicks
    quiet = QuietCronTicks([meter_calls])
    cron_id, other_id = "53f944d7-c25d-44d0-8e19-c4c960ec4a38", "90175481-2a17-4071-ab0c-31a1f6b28db6"
    lines = [
        _record("rq.cron", "Enqueued job meter_calls to queue pm:jobs"),
        _record("rq.cron", "Registered 'app.calls.cron.meter_calls' to run on pm:jobs every 5 seconds"),
        _record("rq.worker", "Worker %s: %s: %s (%s)", "w1", "pm:jobs", "app.calls.cron.meter_calls()", cron_id),
        _record("rq.worker", "Successfully completed %s job in %ss on worker %s", "app.calls.cron.meter_calls()",
                "0:00:00.04", "w1"),
        _record("rq.worker", "Worker %s: %s: %s (%s)", "w1", "pm:jobs", "Job OK", cron_id),
        _record("rq.worker", "Worker %s: job %s result is kept for %s seconds", "w1", cron_id, 500),
        _record("rq.worker", "Worker %s: cleaning registries for queue: %s", "w1", "pm:jobs"),
    ]
    kept = [
        _record("rq.worker", "Worker %s: %s: %s (%s)", "w1", "pm:jobs", "app.streams.jobs.refund_show(3)", other_id),
        _record("rq.worker", "Worker %s: %s: %s (%s)", "w1", "pm:jobs", "Job OK", other_id),
        _record("rq.cron", "Enqueued job sweep_shows to queue pm:jobs"),
        _record("rq.worker", "*** Listening on %s...", "pm:jobs"),
    ]
    rq_loggers = [logging.getLogger("rq.worker"), logging.getLogger("rq.cron")]
    disabled = [lg.disabled for lg in rq_loggers]  # Alembic's fileConfig disables loggers that existed then
    for lg in rq_loggers:
        lg.setLevel(logging.INFO)
        lg.disabled = False
    try:
        assert [quiet.filter(r) for r in lines] == [False] * len(lines)
        assert {(r.levelno, r.levelname) for r in lines} == {(logging.DEBUG, "DEBUG")}
        assert [quiet.filter(r) for r in kept] == [True] * len(kept)
        assert {r.levelno for r in kept} == {logging.INFO}
        logging.getLogger("rq.worker").setLevel(logging.DEBUG)  # DEBUG on: the demoted lines show, as DEBUG
        assert quiet.filter(_record("rq.worker", "Worker %s: %s: %s (%s)", "w1", "q", "Job OK", cron_id))
    finally:
        for lg, was in zip(rq_loggers, disabled):
            lg.setLevel(logging.NOTSET)
            lg.disabled = was


def test_a_metering_tick_logs_info_only_when_it_charged_or_ended_something(clock, make_call, caplog, request):
    """The job's own line is what stays at INFO: a tick that charged a block says so;
    a tick with nothing due says nothing at INFO."""
    from app.calls.cron import meter_calls
    cron_log = logging.getLogger("app.calls.cron")
    was_disabled, cron_log.disabled = cron_log.disabled, False  # Alembic's fileConfig disables existing loggers
    request.addfinalizer(lambda: setattr(cron_log, "disabled", was_disabled))
    make_call(rate=60)
    clock.advance(10)
    with caplog.at_level(logging.INFO, logger="app.calls.cron"):
        meter_calls()
    assert [r for r in caplog.records if r.name == "app.calls.cron" and r.levelno >= logging.INFO] == []
    clock.advance(20)  # block 1 is due
    with caplog.at_level(logging.INFO, logger="app.calls.cron"):
        meter_calls()
    charged = [r.getMessage() for r in caplog.records if r.name == "app.calls.cron" and r.levelno == logging.INFO]
    assert len(charged) == 1 and "block(s) charged" in charged[0] and not charged[0].startswith("metering: 0 ")


def test_the_display_refreshes_a_tip_storm_queues_and_the_go_live_announcement_are_quiet_too(ctx):
    """A room's goal bar and leaderboard, a creator's earnings pill: jobs a storm runs back to
    back log nothing at INFO (RQ's lines become DEBUG), like the cron ticks."""
    from worker import QuietCronTicks, quiet_jobs
    quiet = QuietCronTicks(quiet_jobs())
    job_id = "0b7a2a4e-3f0c-4f55-9b0e-3c1d5e6f7a8b"
    lines = [
        _record("rq.worker", "Worker %s: %s: %s (%s)", "w1", "pm:jobs", "app.goals.jobs.push_room(1)", job_id),
        _record("rq.worker", "Worker %s: %s: %s (%s)", "w1", "pm:jobs", "Job OK", job_id),
        _record("rq.worker", "Worker %s: %s: %s (%s)", "w1", "pm:jobs", "app.wallet.jobs.push_earnings([1])",
                job_id.replace("0b", "1c")),
        # The go-live announcement (every stream start; the demo's at every `make run`).
        _record("rq.worker", "Worker %s: %s: %s (%s)", "w1", "pm:jobs", "app.notifications.jobs.announce_live(1)",
                job_id.replace("0b", "2d")),
        _record("rq.worker", "Successfully completed %s job in %ss on worker %s",
                "app.notifications.jobs.announce_live(1)", "0:00:00.05", "w1"),
    ]
    kept = _record("rq.worker", "Worker %s: %s: %s (%s)", "w1", "pm:jobs", "app.streams.jobs.refund_show(3)",
                   "90175481-2a17-4071-ab0c-31a1f6b28db6")
    worker_log = logging.getLogger("rq.worker")
    was_disabled, worker_log.disabled = worker_log.disabled, False
    worker_log.setLevel(logging.INFO)
    try:
        assert [quiet.filter(r) for r in lines] == [False] * 5
        assert quiet.filter(kept) and kept.levelno == logging.INFO
    finally:
        worker_log.setLevel(logging.NOTSET)
        worker_log.disabled = was_disabled
