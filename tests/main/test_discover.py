"""Discover `/` (DESIGN.md §13): live streams with avatar, title, linked creator and
viewer count, then what starts soon, then a search by creator name or handle."""
from __future__ import annotations

import re
import uuid

import pytest

from app.profiles import avatars
from app.profiles import service as profiles
from app.realtime.sockets import hub
from tests.helpers import visible
from tests.profiles.images import image_bytes

HTMX = {"HX-Request": "true"}


def card(html: str, title: str) -> str:
    for m in re.finditer(r'<li class="card stream-card">.*?</li>', html, re.S):
        if title in m.group(0):
            return m.group(0)
    raise AssertionError(f"no card for {title!r}")


def test_live_card_has_avatar_linked_creator_and_viewer_count(app, client, make_creator, make_stream):
    creator = make_creator(name="Card Person")
    avatars.set_avatar(creator, image_bytes("PNG"))
    stream = make_stream(creator=creator, title=f"Card show {uuid.uuid4().hex[:6]}", live=True)
    h = hub()
    subs = [h.subscribe((stream.channel,)) for _ in range(3)]  # three viewers' sockets
    try:
        html = card(client.get("/").get_data(as_text=True), stream.title)
    finally:
        for sub in subs:
            h.unsubscribe(sub)
    assert f'src="/avatars/{creator.id}.webp?v=1"' in html
    assert f'<a class="creator-link" href="/c/{creator.handle}">Card Person</a>' in html
    assert "3 watching" in visible(html)


def test_a_creator_without_avatar_gets_their_initial(client, make_creator, make_stream):
    stream = make_stream(creator=make_creator(name="quinn"), title=f"Q {uuid.uuid4().hex[:6]}", live=True)
    assert 'avatar-placeholder" aria-hidden="true">Q<' in card(client.get("/").get_data(as_text=True), stream.title)


def test_viewer_counts_are_read_in_one_round_trip(app, client, make_stream, monkeypatch):
    """However many live cards, Discover asks Redis for their counts once (a pipeline)."""
    for _ in range(3):
        make_stream(live=True)
    calls = []
    original = type(hub()).viewer_counts
    monkeypatch.setattr(type(hub()), "viewer_counts", lambda self, ch: calls.append(list(ch)) or original(self, ch))
    monkeypatch.setattr(type(hub()), "viewer_count", lambda self, ch: pytest.fail("one count per card"))
    assert client.get("/").status_code == 200
    assert len(calls) == 1 and len(calls[0]) >= 3


def test_sections_keep_their_ids(client, make_stream):
    make_stream(live=True)
    make_stream()
    html = client.get("/").get_data(as_text=True)
    assert 'data-testid="live-now"' in html and 'data-testid="starting-soon"' in html
    assert 'id="upcoming-heading"' in html and 'id="search-heading"' in html
    assert html.index('data-testid="live-now"') < html.index('data-testid="starting-soon"') < html.index('id="search"')


# ---- search -------------------------------------------------------------------------------

def search(client, q, htmx=True) -> str:
    resp = client.get("/search", query_string={"q": q}, headers=HTMX) if htmx else client.get("/", query_string={"q": q})
    assert resp.status_code == 200, resp.get_data(as_text=True)[:300]
    return resp.get_data(as_text=True)


def test_search_finds_creators_by_name_or_handle_case_insensitively(client, make_creator):
    tag = uuid.uuid4().hex[:6]
    by_name = make_creator(name=f"Aurora {tag}")
    by_handle = make_creator(name="Someone")
    profiles.update_profile(by_handle, handle=f"aur_{tag}")
    html = search(client, f"AURORA {tag}")
    assert f"/c/{by_name.handle}" in html
    html = search(client, tag.upper())
    assert f"/c/{by_name.handle}" in html and f"/c/aur_{tag}" in html


def test_search_without_javascript_renders_discover_with_results(client, make_creator):
    creator = make_creator(name=f"Plain {uuid.uuid4().hex[:6]}")
    html = search(client, creator.display_name, htmx=False)
    assert "<h1>Live now</h1>" in html and f"/c/{creator.handle}" in html
    assert f'value="{creator.display_name}"' in html
    resp = client.get("/search", query_string={"q": "x"})
    assert resp.status_code == 302 and "/?q=x" in resp.headers["Location"]


def test_search_wildcards_are_literal(client, make_creator):
    tag = uuid.uuid4().hex[:6]
    make_creator(name=f"Percent {tag}")
    # Unescaped, each of these would match "Percent <tag>".
    assert "No creator matches" in visible(search(client, f"%{tag}"))
    assert "No creator matches" in visible(search(client, f"P_rcent {tag}"))
    assert "No creator matches" in visible(search(client, f"Percent\\ {tag}"))
    pct = make_creator(name=f"100% {tag}")
    html = search(client, f"100% {tag}")
    assert f"/c/{pct.handle}" in html


def test_fans_are_not_found(client, make_fan):
    fan = make_fan(name=f"Fanny {uuid.uuid4().hex[:6]}")
    assert "No creator matches" in visible(search(client, fan.display_name))


@pytest.mark.parametrize("q", ['<script>alert(1)</script>', '" onmouseover="x', "x" * 5000, "١٢٣", "'; DROP TABLE users;--"])
def test_hostile_queries_are_safe_text(client, q):
    html = search(client, q)
    assert "<script>alert" not in html and '" onmouseover' not in html
    assert "No creator matches" in visible(html)
    assert "<script>alert" not in search(client, q, htmx=False)


def test_an_empty_query_shows_no_results_and_no_complaint(client):
    assert visible(search(client, "   ")) == ""


def test_nul_bytes_in_the_query_are_400(client):
    assert client.get("/search?q=a%00b", headers=HTMX).status_code == 400


def test_discover_works_with_redis_down_and_shows_no_counts(services, make_app, make_stream):
    """Viewer counts live in Redis: without it the cards still show, just without a count."""
    stream = make_stream(title=f"No redis {uuid.uuid4().hex[:6]}", live=True)
    app = make_app((services[0], "redis://127.0.0.1:1/0"))
    resp = app.test_client().get("/")
    assert resp.status_code == 200
    html = card(resp.get_data(as_text=True), stream.title)
    assert "watching" not in html
