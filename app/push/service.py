"""Web Push subscriptions and `push_to_users` (DESIGN.md §13).

A subscription is one browser's push endpoint and keys (what
`PushManager.subscribe` returns) with the topics its owner turned on for that
device: `tips` and `calls` (creators: each tip, each call request) and `live`
(anyone: a creator they follow went live). The endpoint is unique: a browser
belongs to whoever is logged in on it, so subscribing an endpoint another
account had moves it to the current user (the other account stops getting
pushes on a device it no longer uses).

`push_to_users` never sends: it queues `jobs.send_push` after the caller's
commit, and only when one of the users has a subscription with the topic. It
never raises into its caller: the action that triggered it is done. For one
user (each tip asks about its creator) the topics their devices have on are
read at most once per `TOPICS_CACHE_SECONDS` per process, so a tip storm to a
creator without push costs no query per tip. So a device subscribed (or a topic
turned on) gets pushes within `TOPICS_CACHE_SECONDS` at most: at once when it
was done through this same process (its cached read is dropped), unless a read
raced with it. A device removed meanwhile may still get a job queued, which
finds no subscription and sends nothing.
"""
from __future__ import annotations

import ipaddress
import logging
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from flask import current_app
from sqlalchemy import delete, exists, func, literal_column, select
from sqlalchemy.dialects.postgresql import insert

from app import validation
from app.errors import InvalidValue, NotFound
from app.extensions import db
from app.push import keys
from app.push.models import PushSubscription

log = logging.getLogger(__name__)

TOPICS = ("tips", "calls", "live")
CREATOR_TOPICS = ("tips", "calls")
MAX_ENDPOINT_LENGTH = 1000
# Each user's newest devices; subscribing one more forgets the oldest (a phone long gone).
MAX_DEVICES_PER_USER = 20
# A job's share of a fan-out: a creator with many followers queues several jobs.
USERS_PER_JOB = 1000
# How long this process trusts what it read of one user's push topics (see the docstring).
TOPICS_CACHE_SECONDS = 5.0
# PostgreSQL: a row this INSERT wrote (not its ON CONFLICT update) has xmax 0.
_INSERTED = literal_column("(xmax = 0)")


@dataclass(frozen=True)
class Delivery:
    """How long the push service keeps a push for an offline device, and how eagerly
    it wakes the device (RFC 8030 TTL and Urgency)."""
    ttl: int
    urgency: str


DELIVERY = {
    "tips": Delivery(ttl=24 * 3600, urgency="normal"),
    # A call request expires unanswered after two minutes (calls.service.REQUEST_TIMEOUT).
    "calls": Delivery(ttl=120, urgency="high"),
    "live": Delivery(ttl=3600, urgency="normal"),
}


def topics_for(user) -> tuple[str, ...]:
    """The topics `user` may turn on: creators all, fans `live`."""
    return TOPICS if user.is_creator else ("live",)


def public_key() -> str | None:
    """The VAPID public key browsers subscribe with; None while push is off."""
    return current_app.config["VAPID_PUBLIC_KEY"] if current_app.config["PUSH_ENABLED"] else None


def subscribe(user, endpoint, keys_value, topics) -> tuple[PushSubscription, bool]:
    """Store (or update) this browser's subscription for `user` with `topics`, which replace
    the device's previous ones; commits. Returns (subscription, created). An endpoint
    another account had moves to `user`; a repeat is an update. Raises `InvalidValue`
    (422, `field` named) for any bad endpoint, key or topic, storing nothing."""
    endpoint = _endpoint(endpoint)
    p256dh, auth = _keys(keys_value)
    topics = _topics(user, topics)
    stmt = insert(PushSubscription).values(user_id=user.id, endpoint=endpoint, p256dh=p256dh, auth=auth,
                                           topics=topics)
    stmt = stmt.on_conflict_do_update(
        index_elements=[PushSubscription.endpoint],
        set_={"user_id": stmt.excluded.user_id, "p256dh": stmt.excluded.p256dh, "auth": stmt.excluded.auth,
              "topics": stmt.excluded.topics},
    ).returning(PushSubscription.id, _INSERTED)
    sub_id, created = db.session.execute(stmt).one()
    _forget_oldest(user.id)
    db.session.commit()
    _forget_topics(user.id)
    return db.session.get(PushSubscription, sub_id), created


def _forget_oldest(user_id: int) -> None:
    keep = (select(PushSubscription.id).where(PushSubscription.user_id == user_id)
            .order_by(PushSubscription.created_at.desc(), PushSubscription.id.desc()).limit(MAX_DEVICES_PER_USER))
    db.session.execute(delete(PushSubscription).where(PushSubscription.user_id == user_id,
                                                      PushSubscription.id.not_in(keep)))


def unsubscribe(user, endpoint) -> None:
    """Delete `user`'s subscription of this endpoint; commits. `NotFound` when `user` has
    none (another account's endpoint is none of theirs)."""
    if not isinstance(endpoint, str) or not endpoint or len(endpoint) > MAX_ENDPOINT_LENGTH:
        raise InvalidValue("endpoint must be the subscription's push URL.", field="endpoint")
    deleted = db.session.execute(delete(PushSubscription).where(
        PushSubscription.user_id == user.id, PushSubscription.endpoint == endpoint)).rowcount
    db.session.commit()
    _forget_topics(user.id)
    if not deleted:
        raise NotFound("This device has no push subscription here.", "subscription_not_found")


def forget_devices(user_id: int) -> None:
    """Delete every push subscription of a user, in the caller's transaction (no commit):
    "log out everywhere" also stops notifications to a lost phone."""
    db.session.execute(delete(PushSubscription).where(PushSubscription.user_id == user_id))
    _forget_topics(user_id)


def subscriptions_of(user) -> list[PushSubscription]:
    return list(db.session.scalars(select(PushSubscription).where(PushSubscription.user_id == user.id)
                                   .order_by(PushSubscription.created_at.desc(), PushSubscription.id.desc())))


def push_to_users(user_ids, topic: str, title: str, body: str, url: str, *, tag: str | None = None) -> bool:
    """Queue a push of {title, body, url, tag} to every device of `user_ids` that has `topic`
    on; call it after the commit that makes it true. `url` is a path on this site (the
    notification opens it). True when a job was queued; never raises (a failure is logged)."""
    try:
        if topic not in TOPICS:
            raise ValueError(f"unknown push topic {topic!r}")
        if not current_app.config["PUSH_ENABLED"]:
            return False
        ids = sorted({int(i) for i in user_ids})
        if not ids or not _anyone_subscribed(ids, topic):
            return False
        from app.jobs import enqueue
        from app.push.jobs import send_push
        message = _message(title, body, url, tag or topic)
        queued = False
        for start in range(0, len(ids), USERS_PER_JOB):
            queued = enqueue(send_push, ids[start:start + USERS_PER_JOB], topic, message) or queued
        return queued
    except Exception:
        log.exception("push: could not queue the %r push", topic)
        try:
            db.session.rollback()
        except Exception:  # the session may be unusable; the caller's work is committed
            pass
        return False


def page_path(endpoint: str, **values) -> str:
    """The path of a page of this site for a push's `url`, built without a request (jobs and
    tests send pushes too); "/" if it cannot be built. Never raises."""
    try:
        return current_app.url_map.bind("").build(endpoint, values)
    except Exception:
        log.exception("push: no page %s%r", endpoint, values)
        return "/"


def _anyone_subscribed(ids: list[int], topic: str) -> bool:
    if len(ids) == 1:
        return topic in _topics_of(ids[0])
    return bool(db.session.scalar(select(exists().where(PushSubscription.user_id.in_(ids),
                                                        PushSubscription.topics.any(topic)))))


_topics_cache: dict[int, tuple[float, frozenset[str]]] = {}
_topics_lock = threading.Lock()


def _topics_of(user_id: int) -> frozenset[str]:
    """The topics any of the user's devices has on, read at most once per
    `TOPICS_CACHE_SECONDS` in this process."""
    now = time.monotonic()
    cached = _topics_cache.get(user_id)
    if cached and cached[0] > now:
        return cached[1]
    found = frozenset(db.session.scalars(
        select(func.unnest(PushSubscription.topics)).where(PushSubscription.user_id == user_id).distinct()))
    with _topics_lock:
        _topics_cache[user_id] = (now + TOPICS_CACHE_SECONDS, found)
    return found


def _forget_topics(user_id: int) -> None:
    """This process changed the user's devices: read their topics afresh next time."""
    with _topics_lock:
        _topics_cache.pop(user_id, None)


def _message(title: str, body: str, url: str, tag: str) -> dict:
    """The push's JSON payload, kept well inside the 4 KB a push may carry."""
    if not validation.is_local_path(url) or len(url) > 500:
        url = "/"
    return {"title": _clip(title, 100), "body": _clip(body, 300), "url": url, "tag": _clip(tag, 64)}


def _clip(text: str, limit: int) -> str:
    text = str(text)
    return text if len(text) <= limit else text[:limit - 1] + "…"


# ---- input -----------------------------------------------------------------

_LOOPBACK_NAMES = ("localhost",)


def _endpoint(value) -> str:
    """An https push URL of at most 1000 characters. Outside production, http to a loopback
    host is allowed too (the tests' stand-in push service). In production the host must be
    a domain name on the default port: the worker POSTs to this URL, so it must not be
    steerable at the app's own network (no IP literals, no single-label names, no ports)."""
    bad = InvalidValue("endpoint must be the https URL of a push service (at most 1000 characters).",
                       field="endpoint")
    if not isinstance(value, str) or not value or len(value) > MAX_ENDPOINT_LENGTH:
        raise bad
    if not value.isascii() or not value.isprintable() or " " in value:
        raise bad
    try:
        parts = urlsplit(value)
        host, port = parts.hostname, parts.port
    except ValueError:
        raise bad from None
    if not host or parts.username is not None or parts.password is not None or parts.fragment:
        raise bad
    production = current_app.config["APP_ENV"] == "production"
    loopback = _is_loopback(host)
    if parts.scheme == "http" and not (loopback and not production):
        raise bad
    if parts.scheme not in ("https", "http"):
        raise bad
    if production and (loopback or _is_ip(host) or "." not in host or port not in (None, 443)):
        raise bad
    return value


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


def _is_loopback(host: str) -> bool:
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _keys(value) -> tuple[str, str]:
    """`{p256dh, auth}`: base64url; p256dh a 65-byte uncompressed P-256 point, auth 16 bytes."""
    if not isinstance(value, dict):
        raise InvalidValue("keys must be an object with p256dh and auth.", field="keys")
    p256dh, auth = value.get("p256dh"), value.get("auth")
    if not isinstance(p256dh, str) or len(p256dh) > 100 or not _decodes(p256dh, keys.is_public_point):
        raise InvalidValue("keys.p256dh must be the base64url of a 65-byte P-256 public key.", field="keys.p256dh")
    if not isinstance(auth, str) or len(auth) > 40 or not _decodes(auth, lambda raw: len(raw) == 16):
        raise InvalidValue("keys.auth must be the base64url of a 16-byte secret.", field="keys.auth")
    return p256dh.rstrip("="), auth.rstrip("=")


def _decodes(text: str, check) -> bool:
    try:
        return check(keys.b64url_decode(text))
    except ValueError:
        return False


def _topics(user, value) -> list[str]:
    allowed = topics_for(user)
    if not isinstance(value, list) or not value or len(value) > len(TOPICS) \
            or not all(isinstance(t, str) for t in value):
        raise InvalidValue(f"topics must be a list of one or more of: {', '.join(allowed)}.", field="topics")
    chosen = set(value)
    if not chosen <= set(allowed):
        raise InvalidValue(f"topics must be a list of one or more of: {', '.join(allowed)}.", field="topics")
    return [t for t in TOPICS if t in chosen]
