"""Leaderboards and the king (DESIGN.md §12 "Leaderboard"): a stream's top 10 tippers,
a creator's over 30 days or all time, ties to whoever got there first, the crown."""
from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import text

from app.extensions import db
from app.leaderboard import service as leaderboard
from app.realtime import fragments
from app.tips import service as tips
from tests.helpers import assert_error


def tip(fan, creator, amount, stream=None):
    return tips.send_tip(fan, creator.id, amount, "", {"streamId": stream.id} if stream else None,
                         str(uuid.uuid4())).tip


@pytest.fixture()
def board(make_creator, make_fan, make_stream):
    creator = make_creator()
    stream = make_stream(creator, live=True)
    fans = [make_fan(balance=1_000, name=f"Fan {i}") for i in range(12)]
    return creator, stream, fans


def test_stream_top_is_ten_biggest_gross_totals(client, board, api_headers):
    creator, stream, fans = board
    for i, fan in enumerate(fans):
        tip(fan, creator, 10 + i, stream)  # fan i: 10 + i
    tip(fans[0], creator, 100, stream)  # fan 0: 110, first
    tip(fans[1], creator, 500)  # not in this stream: not counted here
    resp = client.get(f"/api/streams/{stream.id}/leaderboard", headers=api_headers(fans[3]))
    assert resp.status_code == 200
    top = resp.get_json()["top"]
    assert len(top) == 10
    assert top[0] == {"userId": fans[0].id, "displayName": "Fan 0", "totalTokens": 110}
    assert [t["totalTokens"] for t in top[1:]] == [21, 20, 19, 18, 17, 16, 15, 14, 13]
    # Anonymous viewers of a public stream read it too.
    assert client.get(f"/api/streams/{stream.id}/leaderboard").get_json()["top"] == top


def test_ties_go_to_whoever_got_there_first(board):
    creator, stream, fans = board
    a, b = fans[0], fans[1]
    tip(b, creator, 5, stream)   # b tips first ...
    tip(a, creator, 10, stream)  # ... a reaches 10 first
    tip(b, creator, 5, stream)   # b reaches 10 after a
    assert [t.user_id for t in leaderboard.stream_top(stream.id)] == [a.id, b.id]


def test_empty_stream_board(client, board):
    _, stream, _ = board
    assert client.get(f"/api/streams/{stream.id}/leaderboard").get_json() == {"top": []}


def test_private_stream_board_needs_access(client, make_creator, make_stream, make_fan, api_headers):
    creator = make_creator()
    stream = make_stream(creator, type_="private", ticket_price=5)
    assert_error(client.get(f"/api/streams/{stream.id}/leaderboard", headers=api_headers(make_fan())), 403,
                 "no_access")
    assert client.get(f"/api/streams/{stream.id}/leaderboard", headers=api_headers(creator)).status_code == 200


def test_unknown_stream_board_is_404(client):
    assert_error(client.get("/api/streams/999999999/leaderboard"), 404, "stream_not_found")


def test_creator_board_30d_and_all(client, board):
    creator, stream, fans = board
    old = tip(fans[5], creator, 300)
    tip(fans[6], creator, 50, stream)
    tip(fans[7], creator, 40)
    db.session.execute(text("UPDATE tips SET created_at = now() - interval '31 days' WHERE id = :i"), {"i": old.id})
    db.session.commit()
    recent = client.get(f"/api/creators/{creator.id}/leaderboard?range=30d").get_json()["top"]
    assert [(t["userId"], t["totalTokens"]) for t in recent] == [(fans[6].id, 50), (fans[7].id, 40)]
    assert client.get(f"/api/creators/{creator.id}/leaderboard").get_json()["top"] == recent  # 30d by default
    every = client.get(f"/api/creators/{creator.id}/leaderboard?range=all").get_json()["top"]
    assert [(t["userId"], t["totalTokens"]) for t in every] == [(fans[5].id, 300), (fans[6].id, 50), (fans[7].id, 40)]


@pytest.mark.parametrize("range_", ["", "7d", "ALL", "30D", "all ", "٣٠d", "today"])
def test_creator_board_bad_range_is_422(client, board, range_):
    creator, _, _ = board
    assert_error(client.get(f"/api/creators/{creator.id}/leaderboard", query_string={"range": range_}), 422,
                 "invalid_value", "range")


def test_creator_board_of_a_fan_or_unknown_is_404(client, make_fan):
    assert_error(client.get(f"/api/creators/{make_fan().id}/leaderboard"), 404, "creator_not_found")
    assert_error(client.get("/api/creators/999999999/leaderboard"), 404, "creator_not_found")


def test_king_is_the_top_tipper_of_30_days(board):
    creator, stream, fans = board
    leaderboard.forget_kings()
    assert leaderboard.king_of(creator.id) is None
    leaderboard.forget_kings()
    old = tip(fans[0], creator, 900)
    tip(fans[1], creator, 20, stream)
    tip(fans[2], creator, 20)
    db.session.execute(text("UPDATE tips SET created_at = now() - interval '31 days' WHERE id = :i"), {"i": old.id})
    db.session.commit()
    leaderboard.forget_kings()
    assert leaderboard.king_of(creator.id) == fans[1].id  # 20 = 20: fans[1] got there first
    assert leaderboard.is_king(creator.id, fans[1].id) and not leaderboard.is_king(creator.id, fans[2].id)


def test_the_king_wears_a_crown_in_tip_pops_and_on_the_board(board):
    creator, stream, fans = board
    king_tip = tip(fans[0], creator, 100, stream)
    other_tip = tip(fans[1], creator, 5, stream)
    leaderboard.forget_kings()
    crowned = fragments.render("tips/_overlay_push.html", tip=king_tip, sender=fans[0], obs=True)
    assert 'aria-label="Top fan"' in crowned and "👑" in crowned
    plain = fragments.render("tips/_overlay_push.html", tip=other_tip, sender=fans[1], obs=True)
    assert "Top fan" not in plain
    board_html = fragments.render("leaderboard/_stream_top.html", stream=stream, top=leaderboard.stream_top(stream.id),
                                  oob=True)
    assert board_html.count('aria-label="Top fan"') == 1
    assert board_html.index("Top fan") < board_html.index(fans[0].display_name) < board_html.index(fans[1].display_name)


def test_king_is_cached_for_a_minute(board, monkeypatch):
    creator, stream, fans = board
    leaderboard.forget_kings()
    tip(fans[0], creator, 10)
    assert leaderboard.king_of(creator.id) == fans[0].id
    tip(fans[1], creator, 50)
    assert leaderboard.king_of(creator.id) == fans[0].id  # cached
    import time
    later = time.monotonic() + timedelta(seconds=leaderboard.KING_CACHE_SECONDS + 1).total_seconds()
    monkeypatch.setattr(leaderboard.time, "monotonic", lambda: later)
    assert leaderboard.king_of(creator.id) == fans[1].id
