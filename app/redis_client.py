"""The process's Redis client (jobs, pub/sub, rate-limit counters).

Redis is never the system of record: callers treat `RedisError` as "the
realtime/job side is degraded", never as a reason to fail a money movement.
"""
import redis
from flask import current_app


def init_app(app):
    # Short timeouts: a dead Redis must cost a request milliseconds, not seconds.
    app.extensions["redis"] = redis.Redis.from_url(
        app.config["REDIS_URL"], socket_connect_timeout=0.5, socket_timeout=2, health_check_interval=30
    )


def get_redis() -> redis.Redis:
    return current_app.extensions["redis"]
