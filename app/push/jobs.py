"""The push job: encrypt (RFC 8291, aes128gcm) and send one message to every
subscription of some users that has the topic, signed with VAPID (RFC 8292).

Queued by `service.push_to_users` after the commit that made the news. A push
service answering 404 or 410 says the subscription is gone: it is deleted.
Any other failure (5xx, a timeout, a refused connection) is logged and the
subscription kept; the job never raises, and running it twice only repeats a
notification (the tag makes the browser replace it, not stack it).

Sends run on a few threads (one HTTP session each) so a creator with thousands
of followers is not sent to one round trip at a time; the database is read
before and written after, never held open across the network.
"""
from __future__ import annotations

import json
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import requests
from flask import current_app
from py_vapid import Vapid02
from pywebpush import WebPusher
from sqlalchemy import delete, func, select, update

from app.extensions import db
from app.jobs import job
from app.push.models import PushSubscription
from app.push.service import DELIVERY

log = logging.getLogger(__name__)

SEND_THREADS = 8
SEND_TIMEOUT_SECONDS = 10
GONE = (404, 410)
# A VAPID token is good for 12 hours at most (RFC 8292 asks for no more than 24).
TOKEN_LIFETIME_SECONDS = 12 * 3600


@job
def send_push(user_ids: list[int], topic: str, message: dict) -> dict:
    """Send `message` ({title, body, url, tag}) to `user_ids`' subscriptions with `topic`.
    Returns counts {sent, gone, failed}; never raises."""
    try:
        return _send(user_ids, topic, message)
    except Exception:
        log.exception("push: the %r push to %d users failed", topic, len(user_ids))
        db.session.rollback()
        return {"sent": 0, "gone": 0, "failed": len(user_ids)}


def _send(user_ids, topic, message) -> dict:
    rows = db.session.execute(select(PushSubscription.id, PushSubscription.endpoint, PushSubscription.p256dh,
                                     PushSubscription.auth)
                              .where(PushSubscription.user_id.in_(user_ids), PushSubscription.topics.any(topic))).all()
    db.session.rollback()  # no transaction stays open while we wait on push services
    if not rows:
        return {"sent": 0, "gone": 0, "failed": 0}
    sender = _Sender(current_app.config["VAPID_PRIVATE_KEY"], current_app.config["VAPID_SUBJECT"],
                     DELIVERY[topic], json.dumps(message, ensure_ascii=False))
    try:
        with ThreadPoolExecutor(max_workers=min(SEND_THREADS, len(rows))) as pool:
            statuses = list(pool.map(sender.send, rows))
    finally:
        sender.close()
    sent = [row.id for row, status in zip(rows, statuses) if status is not None and 200 <= status < 300]
    gone = [(row.id, row.endpoint) for row, status in zip(rows, statuses) if status in GONE]
    for row_id, endpoint in gone:
        # Matched on the endpoint too: the browser may have subscribed it afresh meanwhile.
        db.session.execute(delete(PushSubscription).where(PushSubscription.id == row_id,
                                                          PushSubscription.endpoint == endpoint))
    if sent:
        db.session.execute(update(PushSubscription).where(PushSubscription.id.in_(sent))
                           .values(last_sent_at=func.now()))
    db.session.commit()
    return {"sent": len(sent), "gone": len(gone), "failed": len(rows) - len(sent) - len(gone)}


class _Sender:
    """Encrypts and posts one payload to many subscriptions from several threads."""

    def __init__(self, private_key: str, subject: str, delivery, payload: str):
        self.vapid = Vapid02.from_raw(private_key.encode("ascii"))
        self.subject, self.delivery, self.payload = subject, delivery, payload
        self.tokens: dict[str, dict] = {}  # one VAPID token per push service (audience)
        self.lock = threading.Lock()
        self.local = threading.local()
        self.sessions: list[requests.Session] = []

    def send(self, row) -> int | None:
        """The push service's HTTP status, or None when it could not be reached."""
        try:
            headers = dict(self._authorization(row.endpoint), Urgency=self.delivery.urgency)
            response = WebPusher({"endpoint": row.endpoint, "keys": {"p256dh": row.p256dh, "auth": row.auth}},
                                 requests_session=self._session()).send(
                self.payload, headers, ttl=self.delivery.ttl, content_encoding="aes128gcm",
                timeout=SEND_TIMEOUT_SECONDS)
        except Exception as exc:  # refused, timed out, redirected, a key the library rejects…
            log.warning("push: subscription %s unreachable: %s", row.id, exc)
            return None
        if response.status_code not in GONE and not 200 <= response.status_code < 300:
            log.warning("push: subscription %s: the push service answered %s %s", row.id, response.status_code,
                        response.text[:200])
        return response.status_code

    def _authorization(self, endpoint: str) -> dict:
        parts = urlsplit(endpoint)
        audience = f"{parts.scheme}://{parts.netloc}"
        with self.lock:
            if audience not in self.tokens:
                self.tokens[audience] = self.vapid.sign({"aud": audience, "sub": self.subject,
                                                         "exp": int(time.time()) + TOKEN_LIFETIME_SECONDS})
            return self.tokens[audience]

    def _session(self) -> requests.Session:
        session = getattr(self.local, "session", None)
        if session is None:
            session = self.local.session = requests.Session()
            session.max_redirects = 0  # a push service never redirects; don't let an endpoint steer us
            with self.lock:
                self.sessions.append(session)
        return session

    def close(self) -> None:
        for session in self.sessions:
            session.close()
