"""Redis connections are bounded per process (REDIS_MAX_CONNECTIONS): when all
are busy, a caller gets a clear "pool exhausted" error that is a RedisError like
any other, so realtime degrades and no money path fails. Real Redis."""
from __future__ import annotations

import logging
import threading
import time
import uuid

import pytest
import redis

from app.redis_client import BoundedPool, PoolExhausted, bounded_client


def test_the_third_concurrent_user_of_a_pool_of_two_gets_a_clear_error_naming_the_size(services):
    client = bounded_client(services[1], 2, timeout=0.3)
    key = f"pool-test-{uuid.uuid4().hex}"
    holding = [threading.Thread(target=client.blpop, args=(key,), kwargs={"timeout": 1.5}) for _ in range(2)]
    for t in holding:
        t.start()
    time.sleep(0.3)  # both BLPOPs hold their connection now
    started = time.monotonic()
    with pytest.raises(PoolExhausted) as caught:
        client.get(key)
    waited = time.monotonic() - started
    assert isinstance(caught.value, redis.RedisError)  # callers' `except RedisError` covers it
    assert "pool exhausted" in str(caught.value) and "all 2 connections" in str(caught.value)
    assert 0.25 <= waited < 1.0, waited  # waited the pool's timeout, no longer
    for t in holding:
        t.join(5)
    assert client.get(key) is None  # connections back: served again
    assert len(client.connection_pool._connections) <= 2
    client.close()


def test_a_tip_commits_while_the_redis_pool_is_exhausted_and_the_log_says_so(
        make_app, make_fan, make_creator, make_stream, api_headers, caplog, monkeypatch):
    # Alembic's fileConfig (the session's migration) disabled loggers that existed then.
    monkeypatch.setattr(logging.getLogger("app.redis_client"), "disabled", False)
    app = make_app(REDIS_MAX_CONNECTIONS=2)
    pool = app.extensions["redis"].connection_pool
    held = [pool.get_connection() for _ in range(2)]  # two other users, busy throughout
    fan, creator = make_fan(balance=500), make_creator()
    stream = make_stream(creator, live=True)
    try:
        with caplog.at_level(logging.WARNING):
            resp = app.test_client().post(
                "/api/tips/send", headers={**api_headers(fan), "Idempotency-Key": str(uuid.uuid4())},
                json={"toCreatorId": creator.id, "amountTokens": 40, "context": {"streamId": stream.id}})
        assert resp.status_code == 201, resp.get_data(as_text=True)
        assert resp.get_json()["newBalance"] == 460
        logged = caplog.text
        assert "Redis connection pool exhausted: all 2 connections in use" in logged, logged
        assert "Redis unavailable" not in logged  # Redis is up; the pool is what ran out
    finally:
        for conn in held:
            pool.release(conn)


def _limiter_pool():
    from app.extensions import limiter
    return limiter.storage.storage.connection_pool  # Flask-Limiter's `limits` storage → its redis client


def test_the_rate_limiters_connections_are_bounded_like_the_apps(make_app, make_fan, make_creator, api_headers):
    app = make_app(REDIS_MAX_CONNECTIONS=3)
    pool = _limiter_pool()
    assert isinstance(pool, BoundedPool) and pool.max_connections == 3
    fans, creator = [make_fan(balance=1_000) for _ in range(6)], make_creator()
    statuses, start = [], threading.Barrier(6)

    def tip_twice(headers):
        client = app.test_client()
        start.wait()
        for _ in range(2):
            statuses.append(client.post("/api/tips/send", json={"toCreatorId": creator.id, "amountTokens": 5},
                                        headers={**headers, "Idempotency-Key": str(uuid.uuid4())}).status_code)

    threads = [threading.Thread(target=tip_twice, args=(api_headers(fan),)) for fan in fans]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert statuses == [201] * 12
    assert 1 <= len(pool._connections) <= 3  # every tip checked its limit through at most three connections


def test_a_tip_commits_when_the_rate_limiters_pool_is_exhausted_and_the_log_names_that_pool(
        make_app, make_fan, make_creator, api_headers, caplog, monkeypatch):
    for name in ("app.redis_client", "flask-limiter"):
        monkeypatch.setattr(logging.getLogger(name), "disabled", False)
    app = make_app(REDIS_MAX_CONNECTIONS=2)
    pool = _limiter_pool()
    fan, creator = make_fan(balance=500), make_creator()

    def tip():
        return app.test_client().post("/api/tips/send", json={"toCreatorId": creator.id, "amountTokens": 40},
                                      headers={**api_headers(fan), "Idempotency-Key": str(uuid.uuid4())})

    held = [pool.get_connection() for _ in range(2)]  # two other requests' limit checks, busy throughout
    try:
        with caplog.at_level(logging.INFO):
            resp = tip()
        assert resp.status_code == 201, resp.get_data(as_text=True)
        assert resp.get_json()["newBalance"] == 460
        assert "Redis connection pool (rate limits) exhausted: all 2 connections in use" in caplog.text, caplog.text
        assert "Redis unavailable" not in caplog.text  # Redis is up; the limiter's pool ran out
    finally:
        for conn in held:
            pool.release(conn)
    # Connections back: once Flask-Limiter looks again (after a second), it counts in Redis again.
    time.sleep(1.1)
    caplog.clear()
    with caplog.at_level(logging.INFO):
        assert tip().status_code == 201
    assert "Rate limit storage recovered" in caplog.text, caplog.text
    assert len(pool._connections) <= 2
