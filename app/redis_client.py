"""The process's Redis client (jobs, pub/sub, rate-limit counters).

Redis is never the system of record: callers treat `RedisError` as "the
realtime/job side is degraded", never as a reason to fail a money movement.
An outage is logged once when it starts and once when it ends
(`report_failure` / `report_recovery`), not once per request.
"""
import logging
import threading

import redis
from flask import current_app

log = logging.getLogger(__name__)


def init_app(app):
    # Short timeouts: a dead Redis must cost a request milliseconds, not seconds.
    app.extensions["redis"] = redis.Redis.from_url(
        app.config["REDIS_URL"], socket_connect_timeout=0.5, socket_timeout=2, health_check_interval=30
    )


def get_redis() -> redis.Redis:
    return current_app.extensions["redis"]


class _Outage:
    """This process's view of whether Redis is down, so an outage makes one log line, not thousands."""

    def __init__(self):
        self._lock = threading.Lock()
        self.down = False
        self.missed = 0

    def failure(self, what: str, exc: Exception) -> None:
        with self._lock:
            first, self.down = not self.down, True
            self.missed += 1
        if first:
            log.warning("Redis unavailable (%s): %s; realtime events are not delivered until it is back",
                        what, exc)

    def recovery(self) -> None:
        if not self.down:  # the common case: one attribute read, no lock
            return
        with self._lock:
            if not self.down:
                return
            missed, self.down, self.missed = self.missed, False, 0
        log.info("Redis reachable again; %d event batch(es) were not delivered during the outage", missed)


_outage = _Outage()
report_failure = _outage.failure
report_recovery = _outage.recovery
