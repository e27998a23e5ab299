"""WebRTC signaling for calls (`/ws/calls/<id>/signal`) and the billing presence it reports.

Design note
-----------
* **Relay.** Each party's socket subscribes, through the process's hub, to its own
  inbox `signal:<call>:<fan|creator>` and publishes what its page sends into the other
  party's inbox (Redis pub/sub via `bus.publish`), so the two pages may be connected
  to different web instances. A socket reads its page's messages in the handler's
  thread and relays its inbox in a second thread; one lock serializes their writes.
* **Messages** are JSON objects of at most 64 KB (the socket closes with 1009 above
  that): `hello`/`welcome` (a page arrived / answers one), `offer`, `answer`,
  `candidate` (forwarded with only their known fields), and `media` (the page's
  RTCPeerConnection state, kept here). Anything else is answered with an `error`
  message. The server adds `peer-left` when a page's socket closes, `replaced` when
  the same party opens the call elsewhere, and `resync` after a Redis outage (the
  pages then say hello again: messages may have been lost).
* **One page per party.** A new socket announces itself in its own inbox; an older
  socket of the same party (another tab, or a reload whose close isn't noticed yet)
  reads that and closes with 4001, so only the newest page negotiates.
* **Presence.** A party is present while one of its sockets is open *and* that page's
  peer connection reports "connected". Each socket adds itself to a Redis sorted set
  `call-presence:<call>:<party>` when its media connects and removes itself when the
  media drops or the socket closes; under a per-party Redis lock, the change that
  makes the set non-empty (or empty) calls `service.presence_changed(call, party,
  True/False)`. Members carry a heartbeat so a crashed instance's sockets stop
  counting after `STALE_SECONDS`. Without Redis each socket reports for itself.
"""
from __future__ import annotations

import json
import logging
import queue
import threading
import time
import uuid

from flask import current_app
from redis import RedisError
from redis.exceptions import LockError
from simple_websocket import ConnectionClosed

from app.calls import service
from app.calls.models import Call
from app.extensions import db, driver_connection
from app.realtime.bus import publish
from app.realtime.hub import ENDED, RESYNC, WAKE, frame_payload, text_frame
from app.realtime import sockets
from app.redis_client import get_redis

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 64 * 1024
RATE_WINDOW, RATE_MAX = 10.0, 300  # messages per window a page may send (ICE bursts are ~20)
STALE_SECONDS = 30
HEARTBEAT_SECONDS = 10
REPLACED = 4001  # close code: the same party opened this call in another page
PEER = {"fan": "creator", "creator": "fan"}
RTC_STATES = ("new", "connecting", "connected", "disconnected", "failed", "closed")
_STOP = object()


class SignalError(ValueError):
    def __init__(self, message: str, code: str):
        super().__init__(message)
        self.message, self.code = message, code


def inbox(call_id: int, party: str) -> str:
    return f"signal:{call_id}:{party}"


# ---- messages ------------------------------------------------------------------------------

def _token(value, field: str) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= 64:
        raise SignalError(f"{field} must be a short string.", "invalid_message")
    return value


def _optional(value, kind, field: str):
    if value is not None and (isinstance(value, bool) or not isinstance(value, kind)):
        raise SignalError(f"{field} has the wrong type.", "invalid_message")
    return value


def _description(message: dict, kind: str) -> dict:
    desc = message.get("description")
    if not isinstance(desc, dict) or desc.get("type") != kind or not isinstance(desc.get("sdp"), str):
        raise SignalError(f"An {kind} needs a description {{type: {kind!r}, sdp}}.", "invalid_message")
    return {"type": kind, "n": _token(message.get("n"), "n"), "description": {"type": kind, "sdp": desc["sdp"]}}


def _candidate(message: dict) -> dict:
    raw = message.get("candidate")
    if raw is not None:
        if not isinstance(raw, dict):
            raise SignalError("candidate must be an object or null.", "invalid_message")
        raw = {"candidate": _optional(raw.get("candidate"), str, "candidate.candidate") or "",
               "sdpMid": _optional(raw.get("sdpMid"), str, "candidate.sdpMid"),
               "sdpMLineIndex": _optional(raw.get("sdpMLineIndex"), int, "candidate.sdpMLineIndex"),
               "usernameFragment": _optional(raw.get("usernameFragment"), str, "candidate.usernameFragment")}
    return {"type": "candidate", "n": _token(message.get("n"), "n"), "candidate": raw}


def _rtc(value) -> str:
    return value if value in RTC_STATES else "new"


def parse(raw) -> dict:
    """A page's message, validated and reduced to its known fields; `SignalError` otherwise."""
    if not isinstance(raw, str):
        raise SignalError("Send JSON text, not binary.", "binary_message")
    if len(raw) > MAX_MESSAGE_BYTES or len(raw.encode("utf-8", "replace")) > MAX_MESSAGE_BYTES:
        raise SignalError("A message may be at most 64 KB.", "message_too_large")
    try:
        message = json.loads(raw)
    except (ValueError, RecursionError):
        raise SignalError("Send a JSON object.", "invalid_json") from None
    if not isinstance(message, dict):
        raise SignalError("Send a JSON object.", "invalid_json")
    kind = message.get("type")
    if kind in ("hello", "welcome"):
        return {"type": kind, "rtc": _rtc(message.get("rtc"))}
    if kind in ("offer", "answer"):
        return _description(message, kind)
    if kind == "candidate":
        return _candidate(message)
    if kind == "media":
        if message.get("state") not in RTC_STATES:
            raise SignalError(f"state must be one of: {', '.join(RTC_STATES)}.", "invalid_message")
        return {"type": "media", "state": message["state"]}
    raise SignalError("Unknown message type.", "unknown_type")


# ---- presence -------------------------------------------------------------------------------

class Presence:
    """This socket's share of its party's presence on the call (see the module note)."""

    def __init__(self, redis, prefix: str, call_id: int, party: str, sid: str):
        self.redis, self.call_id, self.party, self.sid = redis, call_id, party, sid
        self.key = f"{prefix}call-presence:{call_id}:{party}"
        self.present = False
        self._beat = 0.0

    def set(self, present: bool) -> None:
        """This page's media is (not) connected. Needs an app context (it may write the call)."""
        if present == self.present:
            return
        self.present = present
        lock = self.redis.lock(self.key + ":lock", timeout=30, blocking_timeout=5)
        locked, count = False, None
        try:
            locked = bool(lock.acquire())
            if locked:
                count = self._update(present)
        except (RedisError, OSError) as exc:
            log.warning("call %s: presence bookkeeping without Redis (%s)", self.call_id, exc)
        try:
            # Under the party's lock when there is one, so its reports reach the database in order.
            _report(self.call_id, self.party, present if count is None else count > 0)
        finally:
            if locked:
                try:
                    lock.release()
                except (LockError, RedisError, OSError):
                    pass  # expired meanwhile: nothing to release

    def _update(self, present: bool) -> int:
        """Add or remove this page; the party's live pages left (stale ones dropped first)."""
        now = time.time()
        pipe = self.redis.pipeline()
        pipe.zremrangebyscore(self.key, "-inf", now - STALE_SECONDS)
        if present:
            pipe.zadd(self.key, {self.sid: now})
        else:
            pipe.zrem(self.key, self.sid)
        pipe.zcard(self.key)
        pipe.expire(self.key, 6 * 3600)
        self._beat = time.monotonic()
        return int(pipe.execute()[2])

    def heartbeat(self) -> None:
        """Keep this page's membership fresh (called from the relay thread; Redis only)."""
        if not self.present or time.monotonic() - self._beat < HEARTBEAT_SECONDS:
            return
        self._beat = time.monotonic()
        try:
            self.redis.zadd(self.key, {self.sid: time.time()}, xx=True)
        except (RedisError, OSError):
            pass


# How many parties one script call checks: Redis runs nothing else meanwhile, and
# 2,000 ZCOUNTs take about a millisecond.
SWEEP_CHUNK = 2_000

# The parties (KEYS, their presence sets) with no heartbeat newer than ARGV[1]:
# their 1-based positions. One round trip per chunk instead of a pipelined ZCOUNT
# each, which cost ~15 µs of the worker's Python a party (3 s a tick at 100,000
# calls); a healthy tick answers with an empty list.
_STALE_PARTIES = """
local stale = {}
for i, key in ipairs(KEYS) do
    if redis.call('ZCOUNT', key, ARGV[1], '+inf') == 0 then
        stale[#stale + 1] = i
    end
end
return stale
"""


# Open calls with a party the database counts as present: (id, fan here, creator here).
_PRESENT = ("SELECT id, fan_missing_since IS NULL, creator_missing_since IS NULL FROM calls "
            "WHERE status IN ('active', 'paused') AND (fan_missing_since IS NULL OR creator_missing_since IS NULL)")


def sweep_stale_presence() -> list[tuple[int, str]]:
    """Report gone every party the database counts as present whose pages all stopped
    heartbeating — their web instance died, so no socket close ever said so. Run
    by the worker before each metering tick; returns the (call id, party) reported."""
    rows = driver_connection().execute(_PRESENT).fetchall()  # plain tuples: 100,000 rows at scale
    db.session.rollback()
    present = [(call_id, party) for call_id, fan_here, creator_here in rows
               for party, here in (("fan", fan_here), ("creator", creator_here)) if here]
    if not present:
        return []
    redis, prefix = get_redis(), current_app.config["REDIS_PREFIX"]
    try:
        script = current_app.extensions.get("calls_stale_parties_script")
        if script is None:
            script = current_app.extensions["calls_stale_parties_script"] = redis.register_script(_STALE_PARTIES)
        since = time.time() - STALE_SECONDS
        silent = []
        for start in range(0, len(present), SWEEP_CHUNK):
            chunk = present[start:start + SWEEP_CHUNK]
            keys = [f"{prefix}call-presence:{call_id}:{party}" for call_id, party in chunk]
            silent += [chunk[i - 1] for i in script(keys=keys, args=[since])]
    except (RedisError, OSError) as exc:
        log.warning("presence sweep skipped, Redis unavailable: %s", exc)
        return []
    reported = []
    for call_id, party in silent:
        key = f"{prefix}call-presence:{call_id}:{party}"
        try:
            with redis.lock(key + ":lock", timeout=30, blocking_timeout=5):
                # Re-checked under the party's lock: a page may have just joined.
                if redis.zcount(key, time.time() - STALE_SECONDS, "+inf"):
                    continue
                _report(call_id, party, False)
                reported.append((call_id, party))
        except (LockError, RedisError, OSError):
            continue
    return reported


def _report(call_id: int, party: str, present: bool) -> None:
    try:
        call = db.session.get(Call, call_id)
        if call is not None and call.status in service.OPEN_STATUSES:
            service.presence_changed(call_id, party, present)
    except Exception:  # noqa: BLE001 - a failed report must not take the call's socket down
        log.exception("call %s: presence_changed(%s, %s) failed", call_id, party, present)
    finally:
        db.session.remove()


# ---- the socket -----------------------------------------------------------------------------

class _Link:
    """The socket's writes, from either thread: whole frames, one at a time."""

    def __init__(self, ws):
        self.ws = ws
        self.lock = threading.Lock()

    def send_frame(self, frame: bytes) -> bool:
        with self.lock:
            if not self.ws.connected:
                return False
            try:
                # No extension was negotiated (sockets._guard), so the hub's frame is sent as is.
                self.ws.sock.sendall(frame)
                return True
            except OSError:
                return False

    def send(self, message: dict) -> bool:
        return self.send_frame(text_frame(json.dumps(message, separators=(",", ":")).encode()))

    def close(self, code: int, reason: str) -> None:
        """Close with `code` (or finish the browser's own close) and end the connection
        only after the close frames were exchanged (`sockets.close`)."""
        with self.lock:
            sockets.close(self.ws, code, reason)


class _Session:
    def __init__(self):
        self.done = threading.Event()
        self.replaced = False


def serve(ws, call_id: int, party: str, credential_channels: tuple[str, ...] = ()) -> None:
    """Run one page's signaling socket until it closes, or until the session or
    token it was opened with ends (`credential_channels`). The caller checked
    it is a participant."""
    hub = sockets.hub()
    sid = uuid.uuid4().hex
    own, peer = inbox(call_id, party), inbox(call_id, PEER[party])
    presence = Presence(get_redis(), current_app.config["REDIS_PREFIX"], call_id, party, sid)
    link, session = _Link(ws), _Session()
    db.session.remove()  # hold no DB connection for the socket's lifetime
    sub = hub.subscribe((own, *credential_channels))
    relay = threading.Thread(target=_relay, args=(link, sub, sid, session, presence), daemon=True,
                             name=f"signal-{call_id}-{party}")
    relay.start()
    try:
        publish(own, json.dumps({"type": "replaced", "sid": sid}))  # older pages of this party step aside
        _read(ws, link, peer, sid, session, presence)
    except ConnectionClosed:
        pass
    finally:
        session.done.set()
        hub.unsubscribe(sub)
        try:
            sub.queue.put_nowait(_STOP)
        except queue.Full:
            pass  # the relay drains it and sees `done`
        presence.set(False)
        if not session.replaced:
            publish(peer, json.dumps({"type": "peer-left", "sid": sid}))
        db.session.remove()
        # Returning with the connection still up lets the server write its HTTP answer
        # into the socket (mid close handshake): browsers log "Invalid frame header".
        link.close(1000, "Goodbye.")


def _read(ws, link: _Link, peer: str, sid: str, session: _Session, presence: Presence) -> None:
    window, count = time.monotonic(), 0
    while ws.connected and not session.replaced:
        raw = ws.receive(timeout=1)
        if raw is None:
            continue
        now = time.monotonic()
        if now - window > RATE_WINDOW:
            window, count = now, 0
        count += 1
        if count > RATE_MAX:
            link.send({"type": "error", "error": "Too many messages; reconnect.", "code": "rate_limited"})
            link.close(1008, "Too many messages.")
            return
        try:
            message = parse(raw)
        except SignalError as err:
            link.send({"type": "error", "error": err.message, "code": err.code})
            continue
        if message["type"] == "media":
            presence.set(message["state"] == "connected")
        else:
            message["sid"] = sid
            publish(peer, json.dumps(message, separators=(",", ":")))


def _relay(link: _Link, sub, sid: str, session: _Session, presence: Presence) -> None:
    """The other party's messages (this page's inbox) to this page."""
    while not session.done.is_set():
        item = sub.queue.get()  # the hub WAKEs idle inboxes every second
        if item is _STOP or session.done.is_set():
            break
        if sub.dropped:
            link.close(1013, "Too slow; reconnect.")
            break
        if item is WAKE:
            presence.heartbeat()
            continue
        if item is RESYNC:
            link.send({"type": "resync"})
            continue
        if item is ENDED:
            link.close(1008, "Your session has ended; log in again.")
            break
        try:
            message = json.loads(frame_payload(item))
        except ValueError:
            continue
        if not isinstance(message, dict) or message.get("sid") == sid:
            continue  # our own announcement
        if message.get("type") == "replaced":
            session.replaced = True
            link.send({"type": "replaced"})
            link.close(REPLACED, "This call was opened in another page.")
            break
        link.send_frame(item)
