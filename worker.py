"""The background worker: an RQ worker on the app's job queue (`<REDIS_PREFIX>jobs`).

Features name their periodic jobs (call metering, the show sweep, rollups)
in their own `cron.py`; `cron_jobs()` collects them, and RQ 3's
`CronScheduler` runs them from a daemon thread in this same process (its
signal handlers only work in the main thread, which the RQ worker needs).
Start exactly one cron per deployment: two schedulers double-enqueue, which
jobs must survive anyway (they are idempotent).

On start it forgets the workers of this host that died without saying so
(`_forget_dead_workers`): RQ would list them for minutes after a SIGKILL.

A cron tick logs at DEBUG unless it did something (`QuietCronTicks`): RQ's
own lines about a periodic job (enqueued, started, completed, OK, result
kept) go down to DEBUG, and each job logs its own INFO line when it charged,
refunded, settled or canceled something. Every 5 s of INFO would push the
demo passwords `make run` printed off the screen within seconds. The jobs that
only refresh what pages show (a room's goal bar and leaderboard, a creator's
earnings pill: a tip storm runs them back to back) and the go-live
announcement are quiet the same way (`quiet_jobs`). Other jobs (a show's
refunds, a payout) keep RQ's INFO lines; failures stay visible.
"""
from __future__ import annotations

import logging
import re
import socket
import threading
from collections import deque

from redis import Redis
from rq import Queue, Worker

from app import create_app, embedded
from app.calls import cron as calls_cron
from app.dashboard import cron as dashboard_cron
from app.jobs import queue_name
from app.notifications import cron as notifications_cron
from app.payouts import cron as payouts_cron
from app.streams import cron as streams_cron
from app.wallet import cron as wallet_cron

log = logging.getLogger("worker")


def cron_jobs() -> list:
    """(job, interval in seconds) of every feature's periodic jobs. Needs an app context."""
    return [*streams_cron.schedule(), *calls_cron.schedule(), *dashboard_cron.schedule(), *wallet_cron.schedule(),
            *payouts_cron.schedule(), *notifications_cron.schedule()]


def quiet_jobs() -> list:
    """Jobs that only re-read and publish what pages show, queued by tips and calls,
    and the go-live announcement, queued each time a stream starts (the demo's
    live stream's at every `make run`: run late on a busy machine, its lines pushed
    the demo passwords up). Their effect shows in the app; failures stay visible."""
    from app.goals.jobs import push_room
    from app.notifications.jobs import announce_live
    from app.wallet.jobs import push_earnings
    return [push_room, push_earnings, announce_live]


class QuietCronTicks(logging.Filter):
    """On RQ's loggers: their INFO lines about the periodic jobs `funcs`, and about RQ's
    own periodic registry cleanup, become DEBUG records (emitted only where DEBUG is on). RQ names the job's function in the
    line that starts it and in "Successfully completed", only its id in "Job OK"
    and "result is kept": ids seen starting are remembered (the last few hundred;
    RQ forks each job after logging its start, so the work horse knows them too)."""

    _JOB_ID = re.compile(r"\(([0-9a-f-]{8,})\)$")

    def __init__(self, funcs) -> None:
        super().__init__()
        names = [f"{f.__module__}.{f.__qualname__}" for f in funcs]
        self._described = re.compile(r"(?<![\w.])(%s)\(" % "|".join(map(re.escape, names))) if names else None
        self._short = {f.__name__ for f in funcs}
        self._ids: deque[str] = deque(maxlen=500)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.INFO or not self._routine(record):
            return True
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)

    def _routine(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.name == "rq.cron":
            enqueued = re.match(r"Enqueued job (\w+) to queue ", message)
            return bool(enqueued and enqueued.group(1) in self._short) or message.startswith("Registered '")
        if record.name == "rq.worker" and re.match(r"Worker \S+: cleaning (group )?registries", message):
            return True  # RQ's own upkeep, every few minutes
        if self._described is not None and self._described.search(message):
            job_id = self._JOB_ID.search(message)
            if job_id:
                self._ids.append(job_id.group(1))
            return True
        return any(job_id in message for job_id in self._ids)


def quiet_cron_ticks(funcs) -> QuietCronTicks:
    """Install QuietCronTicks for `funcs` on RQ's worker and cron loggers; returns it."""
    quiet = QuietCronTicks(funcs)
    for name in ("rq.worker", "rq.cron"):
        logging.getLogger(name).addFilter(quiet)
    return quiet


def _start_cron(connection: Redis, queue: str, jobs: list) -> None:
    from rq.cron import CronScheduler

    class ThreadCron(CronScheduler):
        def _install_signal_handlers(self):  # only the main thread may install them
            pass

    cron = ThreadCron(connection=connection)
    for func, interval in jobs:
        cron.register(func, queue_name=queue, interval=interval)
    threading.Thread(target=cron.start, name="rq-cron", daemon=True).start()
    log.info("cron: %s (each tick logs at DEBUG unless it did something)",
             ", ".join(f"{func.__name__} every {interval} s" for func, interval in jobs))


def _forget_dead_workers(queue: Queue) -> None:
    """Register the death of every worker of `queue` that ran on this host
    (same hostname) and whose process is gone, as RQ does when a worker stops
    normally. Live workers and workers of other hosts are never touched
    (containers sharing one Redis need distinct hostnames, Docker's default).
    The jobs such a worker held as started stay in RQ's StartedJobRegistry
    until their heartbeat lapses; RQ's own registry cleanup (run by every
    worker at start and every 10 minutes) then retries or fails them as
    abandoned. They are not failed at once: RQ runs each job in a forked work
    horse in a process group of its own, which outlives a SIGKILLed worker and
    may still be finishing the job."""
    host = socket.gethostname()
    dead = [w for w in Worker.all(queue=queue)
            if w.hostname == host and w.pid
            and not embedded.pid_alive(w.pid, started_by=w.birth_date.timestamp() if w.birth_date else None)]
    for w in dead:
        w.register_death()
        log.warning("worker: forgot worker %s (pid %d), which died without unregistering", w.name, w.pid)


def main() -> None:
    embedded.exit_on_sigterm()
    app = create_app()
    with app.app_context():
        connection = Redis.from_url(app.config["REDIS_URL"])
        quiet_cron_ticks([func for func, _ in cron_jobs()] + quiet_jobs())
        if cron_jobs():
            # Its own connection: sharing the worker's made the worker's blocking
            # dequeue time out every few seconds (seen with RQ 3.0).
            _start_cron(Redis.from_url(app.config["REDIS_URL"]), queue_name(), cron_jobs())
        queue = Queue(queue_name(), connection=connection)
        _forget_dead_workers(queue)
        worker = Worker([queue], connection=connection)
        log.info("worker: listening on queue %r", queue_name())
        worker.work(with_scheduler=False)


if __name__ == "__main__":
    main()
