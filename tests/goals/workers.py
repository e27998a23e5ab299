"""A real RQ worker running in a thread of the test (the room jobs must really run)."""
from __future__ import annotations

import threading

from rq import SimpleWorker
from rq.timeouts import TimerDeathPenalty


class ThreadWorker(SimpleWorker):
    """worker.py's worker class without the signal handlers RQ installs (only a process's
    main thread may), so it can run beside the test."""

    jobs_run = 0
    death_penalty_class = TimerDeathPenalty  # SIGALRM, RQ's default, is for the main thread too

    def _install_signal_handlers(self):
        pass

    def perform_job(self, job, queue, *args) -> bool:
        ok = super().perform_job(job, queue, *args)
        self.jobs_run += bool(ok)
        return ok


class WorkerThread:
    """Runs the queue's jobs as they come until `stop()`, which runs one last burst and
    returns; `jobs_run` counts the jobs it ran successfully. The worker blocks on the
    queue as worker.py does (a job starts as soon as it is queued) and leaves after a
    second idle, so a stop is noticed within a second."""

    def __init__(self, app, queue):
        self.app, self.queue = app, queue
        self.jobs_run = 0
        self._stop = threading.Event()
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        try:
            with self.app.app_context():
                while True:
                    last = self._stop.is_set()
                    worker = ThreadWorker([self.queue], connection=self.queue.connection)
                    if last:
                        worker.work(burst=True)
                    else:
                        worker.work(max_idle_time=1)
                    self.jobs_run += worker.jobs_run
                    if last:
                        return
        except BaseException as exc:  # noqa: BLE001 - raised in the test by stop()
            self.error = exc

    def stop(self, timeout: float = 30) -> None:
        self._stop.set()
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the worker did not finish its jobs"
        if self.error is not None:
            raise self.error
