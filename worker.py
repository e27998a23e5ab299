"""The background worker: an RQ worker on the app's job queue (`<REDIS_PREFIX>jobs`).

Later features register periodic jobs (call metering, no-show refunds,
rollups) in `app.jobs.cron_jobs()`; when there are any, RQ 3's
`CronScheduler` runs them from a daemon thread in this same process (its
signal handlers only work in the main thread, which the RQ worker needs).
Start exactly one cron per deployment: two schedulers double-enqueue, which
jobs must survive anyway (they are idempotent).
"""
from __future__ import annotations

import logging
import threading

from redis import Redis
from rq import Queue, Worker

from app import create_app, embedded
from app.jobs import cron_jobs, queue_name

log = logging.getLogger("worker")


def _start_cron(connection: Redis, queue: str, jobs: list) -> None:
    from rq.cron import CronScheduler

    class ThreadCron(CronScheduler):
        def _install_signal_handlers(self):  # only the main thread may install them
            pass

    cron = ThreadCron(connection=connection)
    for func, interval in jobs:
        cron.register(func, queue_name=queue, interval=interval)
    threading.Thread(target=cron.start, name="rq-cron", daemon=True).start()
    log.info("cron: %d periodic job(s) registered", len(jobs))


def main() -> None:
    embedded.exit_on_sigterm()
    app = create_app()
    with app.app_context():
        connection = Redis.from_url(app.config["REDIS_URL"])
        if cron_jobs():
            # Its own connection: sharing the worker's made the worker's blocking
            # dequeue time out every few seconds (seen with RQ 3.0).
            _start_cron(Redis.from_url(app.config["REDIS_URL"]), queue_name(), cron_jobs())
        worker = Worker([Queue(queue_name(), connection=connection)], connection=connection)
        log.info("worker: listening on queue %r", queue_name())
        worker.work(with_scheduler=False)


if __name__ == "__main__":
    main()
