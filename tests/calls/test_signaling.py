"""A call's sockets over real HTTP (DESIGN.md §5 Media, §6, §10): the call's channel and
its signaling socket `/ws/calls/<id>/signal` are for its two participants only
(refused at the handshake), signaling relays JSON between the two pages through
Redis, refuses what isn't a valid message, and turns socket + media state into
billing presence."""
from __future__ import annotations

import json
import time
from datetime import timedelta

import pytest
from simple_websocket import Client, ConnectionClosed

from app.calls import service
from tests.calls.helpers import fresh_call
from tests.realtime.helpers import handshake

OFFER_SDP = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"


def ws_url(live_server: str, path: str) -> str:
    return "ws://" + live_server.split("://", 1)[1] + path


def refused(hs, status: int, code: str) -> None:
    assert hs.status == status, (hs.status, hs.body)
    assert "sec-websocket-accept" not in hs.headers
    assert json.loads(hs.body)["code"] == code, hs.body


def wait_until(predicate, timeout: float = 5.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


class Page:
    """One call page's signaling socket: JSON in, JSON out."""

    def __init__(self, url: str, headers: dict):
        self.ws = Client.connect(url, headers=headers)
        self.closed = False

    def send(self, message) -> None:
        self.ws.send(message if isinstance(message, (str, bytes)) else json.dumps(message))

    def receive(self, timeout: float = 3.0) -> dict | None:
        try:
            raw = self.ws.receive(timeout=timeout)
        except ConnectionClosed:
            self.closed = True
            return None
        return None if raw is None else json.loads(raw)

    def expect(self, kind: str, timeout: float = 3.0) -> dict:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            message = self.receive(left)
            if message is None and self.closed:
                break
            if message is not None and message.get("type") == kind:
                return message
        raise AssertionError(f"no {kind!r} message arrived")

    def ready(self) -> None:
        """Wait until the server reads this socket (it subscribed to its inbox before that)."""
        self.send("not json")
        assert self.expect("error")["code"] == "invalid_json"

    def close(self) -> None:
        try:
            self.ws.close()
        except Exception:  # noqa: BLE001 - already closed by the server
            pass


@pytest.fixture()
def pages(live_server):
    """pages(call_id, headers) → a connected Page (closed after the test)."""
    opened = []

    def _open(call_id, headers, ready=True):
        page = Page(ws_url(live_server, f"/ws/calls/{call_id}/signal"), headers)
        opened.append(page)
        if ready:
            page.ready()
        return page
    yield _open
    for page in opened:
        page.close()


# ---- who may connect -----------------------------------------------------------------------------

def test_the_signaling_socket_refuses_everyone_but_the_two_participants_at_the_handshake(
        live_server, make_call, make_fan, make_creator, api_headers):
    s = make_call(present=False)
    path = f"/ws/calls/{s.call_id}/signal"
    refused(handshake(live_server, path), 401, "unauthorized")
    for outsider in (make_fan(), make_creator()):
        refused(handshake(live_server, path, api_headers(outsider)), 403, "not_a_participant")
    refused(handshake(live_server, "/ws/calls/999999999/signal", api_headers(s.fan)), 404, "call_not_found")
    for origin in ("http://evil.example", "null"):
        refused(handshake(live_server, path, {"Origin": origin, **api_headers(s.fan)}), 403, "bad_origin")
    for user in (s.fan, s.creator):
        hs = handshake(live_server, path, {"Origin": live_server, **api_headers(user)})
        assert hs.status == 101, (hs.status, hs.body)
    service.end(s.fan, s.call_id)
    refused(handshake(live_server, path, api_headers(s.fan)), 409, "call_over")


def test_a_calls_channel_is_open_to_its_participants_only(live_server, make_call, make_fan, api_headers):
    s = make_call(present=False)
    path = f"/ws/channels/{fresh_call(s.call_id).channel}"
    refused(handshake(live_server, path), 401, "unauthorized")
    refused(handshake(live_server, path, api_headers(make_fan())), 403, "not_a_participant")
    refused(handshake(live_server, "/ws/channels/c-no-such-call", api_headers(s.fan)), 404, "channel_not_found")
    for user in (s.fan, s.creator):
        hs = handshake(live_server, path, api_headers(user))
        assert hs.status == 101, (hs.status, hs.body)
        # The state as it is now, first thing on (re)connect.
        assert f'id="call-state-{s.call_id}"'.encode() in hs.body and b'data-status="active"' in hs.body


# ---- relaying ----------------------------------------------------------------------------------------

def test_offer_answer_and_candidates_go_to_the_other_page_only(make_call, api_headers, pages):
    s = make_call(present=False)
    creator = pages(s.call_id, api_headers(s.creator))
    fan = pages(s.call_id, api_headers(s.fan))

    fan.send({"type": "hello", "rtc": "new"})
    assert creator.expect("hello")["rtc"] == "new"
    fan.send({"type": "offer", "n": "neg-1", "description": {"type": "offer", "sdp": OFFER_SDP}, "extra": "x"})
    offer = creator.expect("offer")
    assert offer["n"] == "neg-1" and offer["description"] == {"type": "offer", "sdp": OFFER_SDP}
    assert "extra" not in offer  # only the known fields travel
    creator.send({"type": "answer", "n": "neg-1", "description": {"type": "answer", "sdp": OFFER_SDP}})
    assert fan.expect("answer")["description"]["type"] == "answer"
    candidate = {"candidate": "candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host", "sdpMid": "0",
                 "sdpMLineIndex": 0, "usernameFragment": "abcd", "evil": "<script>"}
    creator.send({"type": "candidate", "n": "neg-1", "candidate": candidate})
    got = fan.expect("candidate")
    assert got["candidate"] == {k: v for k, v in candidate.items() if k != "evil"}
    # Nobody hears their own messages back.
    assert fan.receive(0.3) is None and creator.receive(0.3) is None


@pytest.mark.parametrize("message, code", [
    ("{not json", "invalid_json"),
    ("[1, 2]", "invalid_json"),
    ({"type": "shout"}, "unknown_type"),
    ({"type": "offer", "n": "x", "description": {"type": "answer", "sdp": "v=0"}}, "invalid_message"),
    ({"type": "offer", "n": "", "description": {"type": "offer", "sdp": "v=0"}}, "invalid_message"),
    ({"type": "candidate", "n": "x", "candidate": "nope"}, "invalid_message"),
    ({"type": "media", "state": "happy"}, "invalid_message"),
    (b"\x00binary", "binary_message"),
])
def test_invalid_messages_are_answered_with_an_error_and_not_relayed(make_call, api_headers, pages, message, code):
    s = make_call(present=False)
    creator = pages(s.call_id, api_headers(s.creator))
    fan = pages(s.call_id, api_headers(s.fan))
    fan.send(message)
    error = fan.expect("error")
    assert error["code"] == code and error["error"]
    assert creator.receive(0.3) is None
    fan.send({"type": "hello", "rtc": "new"})  # the socket still works
    assert creator.expect("hello")


def test_a_message_over_64_kb_closes_the_socket(make_call, api_headers, pages):
    s = make_call(present=False)
    creator = pages(s.call_id, api_headers(s.creator))
    fan = pages(s.call_id, api_headers(s.fan))
    fan.send({"type": "offer", "n": "big", "description": {"type": "offer", "sdp": "a" * (64 * 1024)}})
    assert fan.receive(3) is None and fan.closed
    assert fan.ws.close_reason == 1009
    assert creator.expect("peer-left")  # and the other page hears it left


def test_a_second_page_of_the_same_party_replaces_the_first(make_call, api_headers, pages):
    s = make_call(present=False)
    creator = pages(s.call_id, api_headers(s.creator))
    first = pages(s.call_id, api_headers(s.fan))
    second = pages(s.call_id, api_headers(s.fan))
    assert first.expect("replaced")
    assert first.receive(2) is None and first.closed and first.ws.close_reason == 4001
    second.send({"type": "hello", "rtc": "new"})
    assert creator.expect("hello")
    assert creator.receive(0.3) is None  # no "peer-left" for a replaced page


# ---- presence ----------------------------------------------------------------------------------------

def test_presence_is_socket_and_media_connected(make_call, api_headers, pages, clock):
    s = make_call(present=False)  # nobody's page reported yet: both missing since acceptance
    accepted = clock.now
    call = fresh_call(s.call_id)
    assert call.fan_missing_since == call.creator_missing_since == accepted

    fan = pages(s.call_id, api_headers(s.fan))
    creator = pages(s.call_id, api_headers(s.creator))
    clock.advance(3)
    fan.send({"type": "media", "state": "connecting"})
    fan.ready()
    assert fresh_call(s.call_id).fan_missing_since == accepted  # a socket alone is not presence
    for page in (fan, creator):
        page.send({"type": "media", "state": "connected"})
    wait_until(lambda: fresh_call(s.call_id).fan_missing_since is None and fresh_call(s.call_id).creator_missing_since is None,
               what="both parties present")

    clock.advance(5)
    creator.send({"type": "media", "state": "disconnected"})
    wait_until(lambda: fresh_call(s.call_id).creator_missing_since == clock.now, what="the creator's media drop")
    creator.send({"type": "media", "state": "connected"})
    wait_until(lambda: fresh_call(s.call_id).creator_missing_since is None, what="the creator back")

    clock.advance(5)
    fan.close()  # the page went away: its socket closed
    wait_until(lambda: fresh_call(s.call_id).fan_missing_since == clock.now, what="the fan's socket close")
    assert creator.expect("peer-left")
    assert fresh_call(s.call_id).creator_missing_since is None


def test_both_pages_media_connected_is_the_calls_media_connected_at_set_once(make_call, api_headers, pages, clock):
    """What the automatic refund of a first block reads (app/calls/refunds.py)."""
    s = make_call(present=False)
    fan = pages(s.call_id, api_headers(s.fan))
    creator = pages(s.call_id, api_headers(s.creator))
    clock.advance(4)
    fan.send({"type": "media", "state": "connected"})
    wait_until(lambda: fresh_call(s.call_id).fan_missing_since is None, what="the fan present")
    assert fresh_call(s.call_id).media_connected_at is None  # one side's media is not the call's
    clock.advance(2)
    connected = clock.now
    creator.send({"type": "media", "state": "connected"})
    wait_until(lambda: fresh_call(s.call_id).media_connected_at == connected, what="the call's media up")
    clock.advance(5)
    creator.send({"type": "media", "state": "failed"})
    wait_until(lambda: fresh_call(s.call_id).creator_missing_since == clock.now, what="the creator's media drop")
    clock.advance(1)
    creator.send({"type": "media", "state": "connected"})
    wait_until(lambda: fresh_call(s.call_id).creator_missing_since is None, what="the creator back")
    assert fresh_call(s.call_id).media_connected_at == connected  # the first time, kept


def test_presence_gone_past_the_grace_pauses_billing_and_coming_back_resumes(app, make_call, api_headers, pages,
                                                                             clock):
    s = make_call(present=False)
    fan = pages(s.call_id, api_headers(s.fan))
    creator = pages(s.call_id, api_headers(s.creator))
    for page in (fan, creator):
        page.send({"type": "media", "state": "connected"})
    wait_until(lambda: fresh_call(s.call_id).creator_missing_since is None and fresh_call(s.call_id).fan_missing_since is None,
               what="both present")
    creator.close()
    left = wait_until(lambda: fresh_call(s.call_id).creator_missing_since, what="the creator gone")
    clock.advance(app.config["PRESENCE_GRACE_SECONDS"] + 1)
    service.meter()
    call = fresh_call(s.call_id)
    assert (call.status, call.paused_by) == ("paused", "presence")
    assert left == clock.now - timedelta(seconds=app.config["PRESENCE_GRACE_SECONDS"] + 1)

    back = pages(s.call_id, api_headers(s.creator))
    back.send({"type": "media", "state": "connected"})
    wait_until(lambda: fresh_call(s.call_id).status == "active", what="billing resumed on return")
