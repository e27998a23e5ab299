"""Live video end to end with a real media server (DESIGN.md §5 Media, §14):
ffmpeg publishes as the creator's OBS would to Debian's nginx + RTMP module,
which asks the app (on_publish / on_update); clients read HLS from nginx,
which asks the app for every playlist and segment (auth_request). What a
browser's player does with it is in tests/browser/test_live_video.py.

Tokens here come from the player's own endpoint (/streams/<id>/playback-token,
logged in on the stack's app) or are signed with the app's key where a test
needs one the endpoint would no longer give (an expired one, another
stream's). nginx caches a yes for half a token's lifetime, as make run does
(app/mediaserver.py), so every "refused after …" waits at most one token
lifetime (PLAYBACK_TTL), as the issue allows.
"""
from __future__ import annotations

import time

import pytest
from itsdangerous import URLSafeTimedSerializer
from sqlalchemy import func, select

from app import ledger
from app.extensions import db
from app.streams import media, tickets
from app.streams import service as streams
from app.streams.models import Stream, Ticket
from tests.conftest import fresh_client
from tests.helpers import log_in
from tests.media_stack import PLAYBACK_TTL

JSON = {"Accept": "application/json"}
MPEG_TS_SYNC = 0x47


def token_for(stack, user, stream_id: int) -> str:
    """The playback token the player would get: from the endpoint, as `user` (None: logged out)."""
    client = fresh_client(stack.app)
    if user is not None:
        log_in(client, user)
    resp = client.get(f"/streams/{stream_id}/playback-token", headers=JSON)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return resp.get_json()["token"]


def refused_within(stack, path: str, token: str | None, limit: float = PLAYBACK_TTL) -> float:
    """Seconds until nginx answers 403 to `path` with `token` (fails after `limit`)."""
    started = time.monotonic()
    while True:
        got = stack.hls(path, token)
        if got.status == 403:
            return time.monotonic() - started
        assert got.status in (200, 404), (got.status, got.text[:200])
        if time.monotonic() - started > limit:
            raise AssertionError(f"{path} still answered {got.status} {limit} s later")
        time.sleep(0.2)


def broadcasting(stream_id: int):
    db.session.expire_all()
    return db.session.get(Stream, stream_id).broadcasting_since


@pytest.fixture()
def show(make_creator, make_fan, make_stream):
    """A live private show (price 300), its creator's stream key, and a fan holding a ticket."""
    creator = make_creator()
    key = media.stream_key(creator)
    stream = make_stream(creator, "private", title="VIP", ticket_price=300)
    holder = make_fan(balance=1000)
    tickets.checkout(holder, stream)
    streams.change_status(creator, stream.id, "start")
    return type("Show", (), dict(creator=creator, key=key, id=stream.id, holder=holder))


def test_the_creators_encoder_publishes_and_a_ticket_holder_reads_playlist_and_segments(on_air, show):
    assert broadcasting(show.id) is None
    encoder = on_air.publish(show.id, show.key)
    token = token_for(on_air, show.holder, show.id)
    playlist = on_air.wait_for_segments(show.id, token)
    assert playlist.headers["content-type"] == "application/vnd.apple.mpegurl"
    assert playlist.text.startswith("#EXTM3U")
    segment = on_air.hls(f"/stream/{show.id}/{playlist.segments()[-1]}", token)
    assert segment.status == 200 and segment.headers["content-type"] == "video/mp2t"
    assert len(segment.body) > 10_000 and segment.body[0] == MPEG_TS_SYNC
    # The player's page is on the app's origin: nginx lets it read, and answers the preflight
    # hls.js's Authorization header needs without asking the app.
    assert segment.headers["access-control-allow-origin"] == on_air.base
    preflight = on_air.hls(f"/stream/{show.id}/index.m3u8", method="OPTIONS",
                           headers={"Origin": on_air.base, "Access-Control-Request-Method": "GET",
                                    "Access-Control-Request-Headers": "authorization"})
    assert preflight.status == 204 and preflight.body == b""
    assert "Authorization" in preflight.headers["access-control-allow-headers"]
    # The app knows the encoder is on air (the player's wording follows it).
    assert broadcasting(show.id) is not None
    assert encoder.poll() is None


def test_without_a_ticket_there_is_no_token_no_playlist_and_no_segment_not_even_copied_urls(
        on_air, show, make_fan, make_stream):
    on_air.publish(show.id, show.key)
    holder_token = token_for(on_air, show.holder, show.id)
    playlist = on_air.wait_for_segments(show.id, holder_token)
    segment_urls = [f"/stream/{show.id}/{name}" for name in playlist.segments()]
    stranger = make_fan(balance=1000)
    # The player's endpoint gives a fan without a ticket no token …
    client = fresh_client(on_air.app)
    log_in(client, stranger)
    resp = client.get(f"/streams/{show.id}/playback-token", headers=JSON)
    assert resp.status_code == 403 and resp.get_json()["code"] == "no_access"
    # … and nginx serves nothing to anyone without the holder's token: no token (URLs copied
    # out of the holder's page), a forged one, one for another stream, one of another app.
    other = make_stream(live=True)
    other_token = token_for(on_air, stranger, other.id)
    forged = holder_token[:-4] + ("AAAA" if not holder_token.endswith("AAAA") else "BBBB")
    foreign = URLSafeTimedSerializer("another-app", salt="playback-token").dumps({"s": show.id, "u": stranger.id})
    for token in (None, "", forged, other_token, foreign):
        for path in [f"/stream/{show.id}/index.m3u8", *segment_urls]:
            got = on_air.hls(path, token)
            assert got.status == 403, (token, path, got.status)
            assert got.body[:1] != bytes([MPEG_TS_SYNC]) and b"#EXTM3U" not in got.body
    # The token in a query (for players that cannot set headers) is checked the same way.
    assert on_air.hls(f"{segment_urls[-1]}?token={other_token}").status == 403
    assert on_air.hls(f"{segment_urls[-1]}?token={holder_token}").status == 200
    # Paths that try to read one stream's files with another stream's token.
    for path in (f"/stream/{other.id}/../{show.id}/index.m3u8", f"/stream/{other.id}/%2E%2E/{show.id}/index.m3u8",
                 f"/stream/{other.id}%2F..%2F{show.id}/index.m3u8", f"/stream//{show.id}/index.m3u8"):
        assert on_air.hls(path, other_token).status in (403, 404), path
    # The holder still reads.
    assert on_air.hls(segment_urls[-1], holder_token).status == 200


def test_a_wrong_or_old_stream_key_is_refused_at_publish(on_air, show):
    wrong = on_air.publish(show.id, "sk_wrong", seconds=20)
    assert wrong.wait(timeout=20) != 0
    old_key = show.key
    new_key = media.regenerate_stream_key(db.session.get(type(show.creator), show.creator.id))
    old = on_air.publish(show.id, old_key, seconds=20)
    assert old.wait(timeout=20) != 0
    token = token_for(on_air, show.holder, show.id)
    assert on_air.playlist(show.id, token).status == 404  # nothing was ever published
    assert broadcasting(show.id) is None
    on_air.publish(show.id, new_key)
    on_air.wait_for_segments(show.id, token)


def test_a_key_replaced_while_publishing_drops_the_encoder(on_air, show):
    encoder = on_air.publish(show.id, show.key)
    token = token_for(on_air, show.holder, show.id)
    on_air.wait_for_segments(show.id, token)
    media.regenerate_stream_key(db.session.get(type(show.creator), show.creator.id))
    # nginx asks again every 10 s (on_update): the old key is not good any more.
    assert encoder.wait(timeout=25) != 0


def test_another_creators_key_or_a_closed_stream_is_refused_at_publish(on_air, show, make_creator, make_stream):
    other = make_creator()
    refused = on_air.publish(show.id, media.stream_key(other), seconds=20)
    assert refused.wait(timeout=20) != 0
    ended = make_stream(show.creator, live=True)
    streams.change_status(show.creator, ended.id, "end")
    assert on_air.publish(ended.id, show.key, seconds=20).wait(timeout=20) != 0


@pytest.mark.parametrize("action", ["end", "cancel"])
def test_ending_or_canceling_the_show_refuses_segments_and_drops_the_encoder(on_air, show, action):
    encoder = on_air.publish(show.id, show.key)
    token = token_for(on_air, show.holder, show.id)
    playlist = on_air.wait_for_segments(show.id, token)
    segment = f"/stream/{show.id}/{playlist.segments()[-1]}"
    streams.change_status(show.creator, show.id, action)
    took = refused_within(on_air, segment, token)
    assert took <= PLAYBACK_TTL
    assert on_air.playlist(show.id, token).status == 403
    # The player gets no new token either, and the encoder is dropped by the next on_update.
    client = fresh_client(on_air.app)
    log_in(client, show.holder)
    assert client.get(f"/streams/{show.id}/playback-token", headers=JSON).status_code == 409
    assert encoder.wait(timeout=25) != 0
    deadline = time.monotonic() + 10
    while broadcasting(show.id) is not None:
        assert time.monotonic() < deadline, "on_publish_done never cleared the broadcast"
        time.sleep(0.2)


def refund_one_ticket(stream_id: int, fan_id: int) -> None:
    """Refund one fan's ticket while the show goes on, through the ledger exactly as
    `tickets.refund_show` refunds each ticket of a canceled show (escrow → the fan,
    debt first; the ticket marked refunded with its transfer). The product refunds
    tickets only by canceling the show, whose status the gate refuses first; this
    isolates the gate's reading of the ticket itself."""
    stream = db.session.get(Stream, stream_id)
    ticket = db.session.scalar(select(Ticket).where(Ticket.stream_id == stream_id, Ticket.fan_id == fan_id)
                               .with_for_update())
    holder = ledger.lock_holders([fan_id])[fan_id]
    legs = [ledger.Leg(ledger.escrow_account(stream.escrow_account_id), -ticket.price),
            *ledger.holder_credit(holder, ticket.price)]
    moved = ledger.transfer(ledger.TransferKind.TICKET_REFUND, f"stream:{stream_id}:refund:{ticket.id}", legs,
                            {"streamId": stream_id, "streamTitle": stream.title, "reason": "creator"})
    ticket.status, ticket.refund_transfer_id, ticket.refunded_at = "refunded", moved.transfer_id, func.now()
    db.session.commit()


def test_a_refunded_fan_stops_reading_within_one_token_lifetime_while_others_watch_on(on_air, show, make_fan):
    on_air.publish(show.id, show.key)
    token = token_for(on_air, show.holder, show.id)
    playlist = on_air.wait_for_segments(show.id, token)
    segment = f"/stream/{show.id}/{playlist.segments()[-1]}"
    other = make_fan(balance=1000)
    tickets.checkout(other, db.session.get(Stream, show.id))
    other_token = token_for(on_air, other, show.id)
    assert on_air.hls(segment, other_token).status == 200
    refund_one_ticket(show.id, show.holder.id)
    assert refused_within(on_air, segment, token) <= PLAYBACK_TTL
    client = fresh_client(on_air.app)
    log_in(client, show.holder)
    assert client.get(f"/streams/{show.id}/playback-token", headers=JSON).status_code == 403  # no new token
    assert on_air.hls(segment, other_token).status == 200  # the other holder watches on
    assert ledger.verify() == []


def test_a_token_reads_for_its_lifetime_and_a_renewed_one_goes_on(on_air, show):
    on_air.publish(show.id, show.key)
    first = token_for(on_air, show.holder, show.id)
    on_air.wait_for_segments(show.id, first)
    time.sleep(PLAYBACK_TTL / 2)
    renewed = token_for(on_air, show.holder, show.id)  # what the player does at half life
    assert renewed != first
    assert refused_within(on_air, f"/stream/{show.id}/index.m3u8", first, limit=PLAYBACK_TTL + 4) > 0
    assert on_air.playlist(show.id, renewed).status == 200


def test_a_public_stream_plays_for_a_visitor_who_is_not_logged_in(on_air, make_creator, make_stream):
    creator = make_creator()
    stream = make_stream(creator, live=True)
    on_air.publish(stream.id, media.stream_key(creator))
    token = token_for(on_air, None, stream.id)
    playlist = on_air.wait_for_segments(stream.id, token)
    segment = on_air.hls(f"/stream/{stream.id}/{playlist.segments()[-1]}", token)
    assert segment.status == 200 and segment.body[0] == MPEG_TS_SYNC
    assert on_air.playlist(stream.id, None).status == 403  # still a token, even for public streams


@pytest.fixture(autouse=True)
def _leave_streams_as_found(leave_streams_as_found):
    """Every test here leaves no open stream behind (see tests/streams/conftest.py)."""
