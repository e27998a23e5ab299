"""`/ws/me`: the user's own feed (balance, notifications) and nobody else's
(DESIGN.md §5 Tips, §6)."""
import re

from tests.realtime.helpers import handshake


def _unseen(message: str) -> int:
    """The number on the creator's unseen-tips badge (hidden = 0)."""
    match = re.search(r'<span id="notif-badge"[^>]*>(\d*)', message)
    assert match, message
    return int(match.group(1) or 0)


def test_me_socket_carries_only_the_users_own_events(live_api, people, viewers):
    creator, creator_h, [(_a, a_h), (_b, b_h)] = people(fans=2, balance=1000)
    me = live_api.ws("/ws/me")
    fan_a, fan_b, the_creator = viewers(me, a_h), viewers(me, b_h), viewers(me, creator_h)
    states = [sock.receive(5) for sock in (fan_a, fan_b, the_creator)]
    assert all('id="nav-balance"' in state for state in states), states
    # The badge counter lives in Redis, which may outlive this test's database.
    unseen_before = _unseen(states[2])

    tip = live_api.send_tip(b_h, creator.id, 250, "for you")["tip"]

    feed = the_creator.wait_for(f'id="feed-tip-{tip["id"]}"', 2)
    assert feed, the_creator.messages
    assert 'id="creator-feed"' in feed and "tipped" in feed and "250" in feed
    assert _unseen(feed) == unseen_before + 1 and '<span class="sr-only"> new tips' in feed

    balance = fan_b.wait_for('id="nav-balance"', 2)
    assert balance and '<span id="nav-balance" hx-swap-oob="true">750</span>' in balance, fan_b.messages

    assert fan_a.collect(0.3) == [], "fan A received someone else's events"
    assert not [m for m in the_creator.collect(0.1) if "nav-balance" in m], "the creator got the fan's balance"
    assert not [m for m in fan_b.collect(0.1) if "feed-tip" in m], "the fan got the creator's feed"


def test_me_socket_refuses_a_handshake_without_valid_credentials(live_server):
    for headers in ({}, {"Authorization": "Bearer not-a-token"}):
        hs = handshake(live_server, "/ws/me", headers)
        assert hs.status == 401, (hs.status, hs.body)
        assert "upgrade" not in hs.headers and b"nav-balance" not in hs.body


def test_a_creators_me_socket_carries_their_earnings_on_connect_and_after_each_tip(live_api, people, viewers,
                                                                                    run_jobs):
    """The creator's nav pill shows earnings (issue 17): the (re)connect state has them, and each
    tip pushes the new figure; a fan's socket never gets an earnings figure."""
    creator, creator_h, [(_fan, fan_h)] = people(fans=1, balance=1000)
    me = live_api.ws("/ws/me")
    the_creator, the_fan = viewers(me, creator_h), viewers(me, fan_h)
    state = the_creator.receive(5)
    assert '<span id="nav-earnings" hx-swap-oob="true">0</span>' in state, state
    assert "nav-earnings" not in the_fan.receive(5)

    live_api.send_tip(fan_h, creator.id, 250, "")
    run_jobs()  # the refresh the tip queued, as the worker runs it
    earned = the_creator.wait_for('id="nav-earnings"', 2)
    assert earned and '<span id="nav-earnings" hx-swap-oob="true">200</span>' in earned, the_creator.messages
    assert not [m for m in the_fan.collect(0.3) if "nav-earnings" in m], "the fan got the creator's earnings"
