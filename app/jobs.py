"""The job queue run by `worker.py`: the `job` decorator and `enqueue`. Knows no feature.

Each feature defines its own jobs with `@job` — the ones it queues in its
`jobs.py` (e.g. app/streams/jobs.py), the ones the worker runs on a timer in
its `cron.py` with a `schedule()` of (job, interval seconds) pairs, which
worker.py collects. Jobs take ids, are enqueued after the commit that makes
them necessary, and are harmless when run twice. A cron sweep backs up every
enqueue: if Redis was down when a show was canceled, the next sweep refunds
it anyway.
"""
from __future__ import annotations

import functools
import logging

from flask import current_app, has_app_context
from redis import RedisError

from app.extensions import db

log = logging.getLogger(__name__)


def queue_name() -> str:
    """The RQ queue, namespaced like every other key (REDIS_PREFIX): deployments or
    test runs sharing one Redis never run each other's jobs."""
    return f"{current_app.config['REDIS_PREFIX']}jobs"


def job(func):
    """Run `func` in an app context (the worker's, or a new one under a bare
    `rq worker`) and release its DB session afterwards."""
    @functools.wraps(func)
    def run(*args, **kwargs):
        if has_app_context():
            try:
                return func(*args, **kwargs)
            finally:
                db.session.remove()
        from app import create_app
        with create_app().app_context():
            try:
                return func(*args, **kwargs)
            finally:
                db.session.remove()
    return run


def enqueue(func, *args) -> bool:
    """Queue `func(*args)` for the worker; False (logged) if Redis is down — the
    cron sweep that backs each job up will do the work instead."""
    from rq import Queue

    from app.redis_client import get_redis
    try:
        # In one pipeline: RQ on its own sends the queue's registration and the job in
        # two round trips (a tip storm queues a refresh per job the worker finishes).
        redis = get_redis()
        pipe = redis.pipeline()
        Queue(queue_name(), connection=redis).enqueue_call(func, args=args, pipeline=pipe)
        pipe.execute()
        return True
    except RedisError as exc:
        log.warning("jobs: could not queue %s%r (%s); the next sweep will do it", func.__name__, args, exc)
        return False

