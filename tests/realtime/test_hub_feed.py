"""The hub listener's own Redis reader (hub._Feed): replies parsed in bulk, and a
connection that falls silent is PINGed, then given up, so the listener
reconnects (and its sockets resync) instead of waiting forever on a dead peer."""
from __future__ import annotations

import socket
import time

import hiredis
import pytest
import redis

from app.realtime import hub


def feed_on(sock: socket.socket) -> hub._Feed:
    feed = hub._Feed.__new__(hub._Feed)  # on a socketpair instead of a connection redis-py opened
    feed._sock = sock
    feed._connection = redis.Connection()  # only packs commands here
    feed._reader = hiredis.Reader()
    feed._heard, feed._pinged = time.monotonic(), False
    sock.settimeout(0.05)
    return feed


def test_everything_redis_sent_is_read_at_once_in_order():
    ours, redis_end = socket.socketpair()
    feed = feed_on(ours)
    redis_end.sendall(b"*3\r\n$7\r\nmessage\r\n$1\r\na\r\n$2\r\nm1\r\n" * 3 + b"*3\r\n$7\r\nmessage\r\n$1\r\nb\r\n$2\r\nm2")
    assert feed.read(2) == [[b"message", b"a", b"m1"]] * 2
    assert feed.read(10) == [[b"message", b"a", b"m1"]]  # the rest of the reply isn't there yet
    redis_end.sendall(b"\r\n")
    assert feed.read(10) == [[b"message", b"b", b"m2"]]
    assert feed.read(10) == []  # nothing more: waited READ_TIMEOUT (here 50 ms)


def test_a_silent_connection_is_pinged_then_given_up():
    ours, redis_end = socket.socketpair()
    feed = feed_on(ours)
    assert feed.read(10) == []  # quiet, but not for long: no PING yet
    with pytest.raises(BlockingIOError):
        redis_end.recv(100, socket.MSG_DONTWAIT)
    feed._heard -= hub.HEALTH_INTERVAL
    assert feed.read(10) == []
    assert redis_end.recv(100) == b"*1\r\n$4\r\nPING\r\n"
    redis_end.sendall(b"*2\r\n$4\r\npong\r\n$0\r\n\r\n")  # answered: healthy again
    assert feed.read(10) == [[b"pong", b""]]
    feed._heard -= 2 * hub.HEALTH_INTERVAL
    assert feed.read(10) == []  # pinged again …
    assert redis_end.recv(100) == b"*1\r\n$4\r\nPING\r\n"
    feed._heard -= 2 * hub.HEALTH_INTERVAL
    with pytest.raises(redis.ConnectionError):  # … and never answered
        feed.read(10)


def test_an_error_reply_or_a_closed_connection_raises():
    ours, redis_end = socket.socketpair()
    feed = feed_on(ours)
    redis_end.sendall(b"-ERR unknown command\r\n")
    with pytest.raises(redis.ResponseError):
        feed.read(10)
    redis_end.close()
    with pytest.raises(redis.ConnectionError):
        feed.read(10)
