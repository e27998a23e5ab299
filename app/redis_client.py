"""The process's Redis client (jobs, pub/sub, rate-limit counters).

Redis is never the system of record: callers treat `RedisError` as "the
realtime/job side is degraded", never as a reason to fail a money movement.
An outage is logged once when it starts and once when it ends
(`report_failure` / `report_recovery`), not once per request.

Connections are bounded: each client's pool holds at most
`REDIS_MAX_CONNECTIONS` (a join storm of thousands of sockets must queue for
a few connections, not open a hundred), and a caller that finds them all in
use for `POOL_TIMEOUT` seconds gets `PoolExhausted`, a `redis.ConnectionError`
(so a `RedisError` like any other: realtime degraded, money unaffected) whose
message names the pool's size.
"""
import logging
import threading
import time

import redis
from flask import current_app

log = logging.getLogger(__name__)

# Per process and per client (the app's, the realtime hub's and the rate
# limiter's; the hub's listener holds one more). Every thread or greenlet holds
# a connection only for one command or pipeline, so 50 serve thousands of sockets.
DEFAULT_MAX_CONNECTIONS = 50
# How long a command waits for a free connection before PoolExhausted.
POOL_TIMEOUT = 1.0
# At most one "pool exhausted" line per pool per this many seconds.
EXHAUSTED_LOG_INTERVAL = 5.0


class PoolExhausted(redis.ConnectionError):
    """All connections of this process's pool were busy for the whole wait."""


class BoundedPool(redis.BlockingConnectionPool):
    """redis-py's BlockingConnectionPool, raising PoolExhausted (with the pool's
    size in its message) instead of a bare "No connection available.".

    `label` names a pool whose caller is not ours (the rate limiter's: Flask-Limiter
    catches the error and counts in memory): such a pool reports its exhaustion itself,
    through `report_failure` like our callers do."""

    def __init__(self, *args, label: str | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.label = label

    def get_connection(self, *args, **kwargs):
        try:
            return super().get_connection(*args, **kwargs)
        except redis.ConnectionError as exc:
            if type(exc) is not redis.ConnectionError or str(exc) != "No connection available.":
                raise
            pool = f" ({self.label})" if self.label else ""
            exhausted = PoolExhausted(
                f"Redis connection pool{pool} exhausted: all {self.max_connections} connections in use "
                f"for {self.timeout:g}s (REDIS_MAX_CONNECTIONS)")
            if self.label:
                report_failure(self.label, exhausted)
            raise exhausted from exc


def bounded_client(url: str, max_connections: int = DEFAULT_MAX_CONNECTIONS, timeout: float = POOL_TIMEOUT,
                   **options) -> redis.Redis:
    """A client of `url` whose pool holds at most `max_connections`, each command
    waiting at most `timeout` seconds for one (then PoolExhausted)."""
    pool = BoundedPool.from_url(url, max_connections=max_connections, timeout=timeout, **options)
    return redis.Redis(connection_pool=pool)


def rate_limit_pool(url: str, max_connections: int) -> BoundedPool:
    """The rate limiter's own pool (Flask-Limiter keeps a client of its own), bounded
    like the app's. A limit check that can't get a connection in time, like one that
    can't reach Redis, is counted in this process's memory (RATELIMIT_IN_MEMORY_FALLBACK)."""
    return BoundedPool.from_url(url, max_connections=max_connections, timeout=POOL_TIMEOUT, label="rate limits",
                                socket_connect_timeout=0.5, socket_timeout=1)


def init_app(app):
    # Short timeouts: a dead Redis must cost a request milliseconds, not seconds.
    app.extensions["redis"] = bounded_client(
        app.config["REDIS_URL"], app.config["REDIS_MAX_CONNECTIONS"],
        socket_connect_timeout=0.5, socket_timeout=2, health_check_interval=30
    )


def get_redis() -> redis.Redis:
    return current_app.extensions["redis"]


class _Outage:
    """This process's view of whether Redis is down, so an outage makes one log line, not thousands."""

    def __init__(self):
        self._lock = threading.Lock()
        self.down = False
        self.missed = 0
        self.exhausted_logged: dict[str, float] = {}  # a pool's exhaustion message → when last logged

    def failure(self, what: str, exc: Exception) -> None:
        if isinstance(exc, PoolExhausted):
            # Redis is up, this process is short of connections: say so (at most every
            # few seconds per pool: the message names it), and don't report an outage that isn't one.
            now, pool = time.monotonic(), str(exc)
            if now - self.exhausted_logged.get(pool, -EXHAUSTED_LOG_INTERVAL) >= EXHAUSTED_LOG_INTERVAL:
                self.exhausted_logged[pool] = now  # a race may log twice: harmless
                log.warning("%s (%s): %s", what, type(exc).__name__, exc)
            return
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
