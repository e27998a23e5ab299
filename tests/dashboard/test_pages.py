"""Dashboard pages: /dashboard (creators), /spending (anyone logged in), /platform
(operators) — who may see them, the htmx fragments, bad ranges, escaping, empty
states, and that every figure on the page is the service's figure (DESIGN.md §5, §8).

Real PostgreSQL and Redis; the money comes from the real tip, ticket and call
services, so the pages are read against the ledger the service sums.
"""
from __future__ import annotations

import html as htmllib
import re
import uuid

import pytest

from app.calls import service as calls
from app.dashboard import display
from app.dashboard import service as dashboard
from app.extensions import db
from app.streams import service as streams
from app.streams import tickets
from app.tips import service as tips

HTMX = {"HX-Request": "true"}
HOSTILE = '<script>alert("x")</script>'
BAD_RANGES = ["bogus", "7D ", "30d'--", "x" * 5000, "today,all"]
CREATOR_ONLY = "This is for creators. Become a creator from your account page."


# ---- helpers ------------------------------------------------------------------

def get(client, path, status=200, **kw) -> str:
    resp = client.get(path, **kw)
    body = resp.get_data(as_text=True)
    assert resp.status_code == status, (path, resp.status_code, body[:800])
    return body


def figure(html: str, testid: str) -> int:
    """The number shown in the element with data-testid=`testid` ("1,234 tokens" → 1234)."""
    m = re.search(rf'data-testid="{re.escape(testid)}">\s*([\d,]+)', html)
    assert m, f"no figure {testid!r} on the page"
    return int(m.group(1).replace(",", ""))


def table_rows(html: str, testid: str) -> list[list[str]]:
    """The text of each body row's cells of the table with data-testid=`testid`."""
    m = re.search(rf'<table[^>]*data-testid="{re.escape(testid)}".*?<tbody>(.*?)</tbody>', html, re.S)
    assert m, f"no table {testid!r} on the page"
    rows = []
    for row in re.findall(r"<tr>(.*?)</tr>", m.group(1), re.S):
        cells = re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", row, re.S)
        rows.append([htmllib.unescape(re.sub(r"<[^>]+>", " ", c)).split() for c in cells])
    return [[" ".join(words) for words in r] for r in rows]


def tokens(n: int) -> str:
    return f"{n:,}"


def send_tip(fan, creator, amount, message="", stream_id=None):
    context = {"streamId": stream_id} if stream_id else None
    return tips.send_tip(fan, creator.id, amount, message, context, f"t-{uuid.uuid4()}").tip


@pytest.fixture()
def history(ctx, make_creator, make_fan, make_call, make_stream):
    """A creator with tips (one during a live stream, ended once the test is done), a
    settled private show, a show still holding escrow and one paid call, from two fans."""
    creator = make_creator(name="Cleo Creator")
    fan_a = make_fan(balance=5_000, name="Fan Alpha")
    fan_b = make_fan(balance=5_000, name="Fan Beta")

    public = make_stream(creator, title="Morning stream", live=True)
    tip_in_stream = send_tip(fan_a, creator, 500, "hello", stream_id=public.id)
    send_tip(fan_b, creator, 100)

    settled = make_stream(creator, "private", title="Settled show", ticket_price=300, live=True)
    tickets.checkout(fan_a, settled)
    tickets.checkout(fan_b, settled)
    streams.change_status(creator, settled.id, "end")

    pending = make_stream(creator, "private", title="Upcoming show", ticket_price=250)
    tickets.checkout(fan_b, pending)

    call_id = make_call(rate=60, fan=fan_a, creator=creator).call_id  # block 0 charged at once
    calls.end(fan_a, call_id)
    db.session.commit()
    yield dict(creator=creator, fans=(fan_a, fan_b), public_id=public.id, settled_id=settled.id,
               pending_id=pending.id, call_id=call_id, tip_id=tip_in_stream.id)
    # Leave no live stream behind: Discover shows at most 50 live and scheduled
    # streams, live first, and later suites look for theirs there.
    db.session.rollback()
    streams.change_status(creator, public.id, "end")


# ---- who sees what -----------------------------------------------------------

@pytest.mark.parametrize("path", ["/dashboard", "/spending", "/platform"])
def test_anonymous_visitors_are_sent_to_log_in(client, path):
    resp = client.get(path)
    assert resp.status_code == 302 and "/login" in resp.headers["Location"]


def test_dashboard_is_for_creators_fans_get_the_same_403_page_as_creator_streams(ctx, browser_for, make_fan):
    fan = browser_for(make_fan())
    html = get(fan, "/dashboard", 403)
    assert CREATOR_ONLY in html
    assert get(fan, "/creator/streams", 403).count("Become a creator") == html.count("Become a creator")
    # Asked by htmx (a range link), the refusal goes to the page's alert area.
    resp = fan.get("/dashboard?range=7d", headers=HTMX)
    assert resp.status_code == 403 and resp.headers["HX-Retarget"] == "#flash"


def test_platform_is_403_for_fans_and_creators_and_open_to_operators(ctx, browser_for, make_fan, make_creator,
                                                                   operator):
    for user in (make_fan(), make_creator()):
        html = get(browser_for(user), "/platform", 403)
        assert "Platform fees" not in html
        assert get(browser_for(user), "/platform?range=7d", 403, headers=HTMX).count("Platform fees") == 0
    html = get(browser_for(operator), "/platform")
    assert "Platform fees" in html and "Days are UTC" in html


def test_spending_is_open_to_any_logged_in_user(ctx, browser_for, make_fan, make_creator):
    for user in (make_fan(), make_creator()):
        assert "Your spending" in get(browser_for(user), "/spending")


def test_nav_links_match_the_role(ctx, browser_for, make_fan, make_creator, operator):
    fan_html = get(browser_for(make_fan()), "/wallet")
    assert 'href="/spending"' in fan_html and 'href="/dashboard"' not in fan_html and 'href="/platform"' not in fan_html
    creator_html = get(browser_for(make_creator()), "/wallet")
    assert 'href="/spending"' in creator_html and 'href="/dashboard"' in creator_html
    assert 'href="/platform"' not in creator_html
    assert 'href="/platform"' in get(browser_for(operator), "/wallet")


def test_a_creator_sees_only_their_own_numbers(history, browser_for, make_creator):
    other = browser_for(make_creator())
    html = get(other, "/dashboard?range=all")
    assert figure(html, "earned-total") == 0 and figure(html, "pending-escrow") == 0
    assert "Fan Alpha" not in html and "Morning stream" not in html


# ---- htmx fragments and ranges ---------------------------------------------------

@pytest.mark.parametrize("path,body_id", [("/dashboard", "dashboard-body"), ("/spending", "spending-body"),
                                          ("/platform", "platform-body")])
def test_htmx_range_switch_returns_the_body_fragment_only(history, browser_for, operator, path, body_id):
    user = operator if path == "/platform" else history["creator"]
    c = browser_for(user)
    resp = c.get(f"{path}?range=7d", headers=HTMX)
    body = resp.get_data(as_text=True)
    assert resp.status_code == 200 and "HX-Request" in resp.headers["Vary"]
    assert body.lstrip().startswith(f'<div id="{body_id}"')
    assert "<html" not in body and 'class="topbar"' not in body and 'ws-connect' not in body
    assert f'id="{body_id}-range-7d" href="{path}?range=7d"' in body
    assert re.search(rf'id="{body_id}-range-7d"[^>]*aria-current="page"', body)
    # The links are plain links too, and htmx swaps the body in place, pushing the URL.
    for r in dashboard.RANGES:
        assert f'href="{path}?range={r}" hx-get="{path}?range={r}" hx-target="#{body_id}" hx-swap="outerHTML" ' \
               f'hx-push-url="true" hx-indicator="#{body_id}"' in body

    # htmx restoring a page it has no snapshot of asks with HX-Request too: it needs the whole page.
    full = get(c, f"{path}?range=7d", headers={**HTMX, "HX-History-Restore-Request": "true"})
    assert "<html" in full and f'<div id="{body_id}"' in full
    # The full page keeps the range across reloads.
    assert re.search(rf'id="{body_id}-range-7d"[^>]*aria-current="page"', get(c, f"{path}?range=7d"))


@pytest.mark.parametrize("bad", BAD_RANGES)
@pytest.mark.parametrize("path,body_id", [("/dashboard", "dashboard-body"), ("/spending", "spending-body"),
                                          ("/platform", "platform-body")])
def test_a_bad_range_shows_the_page_with_the_error_next_to_the_switcher_never_a_500(
        history, browser_for, operator, path, body_id, bad):
    user = operator if path == "/platform" else history["creator"]
    c = browser_for(user)
    for headers, whole in (({}, True), (HTMX, False)):
        resp = c.get(path, query_string={"range": bad}, headers=headers)
        body = resp.get_data(as_text=True)
        assert resp.status_code == 422, (bad, resp.status_code, body[:500])
        assert ("<html" in body) is whole
        error = re.search(rf'<p class="field-error range-error" id="{body_id}-range-error" role="alert">(.*?)</p>',
                          body, re.S)
        assert error and "Showing 30 days instead." in error.group(1)
        # The default range is what is shown, and marked as such.
        assert re.search(rf'id="{body_id}-range-30d"[^>]*aria-current="page"', body)
        assert "\x00" not in body and "x" * 100 not in body


@pytest.mark.parametrize("path", ["/dashboard", "/spending", "/platform"])
def test_a_nul_byte_in_the_range_is_refused_whole_as_400_invalid_text(history, browser_for, operator, path):
    """No link or form of ours carries a NUL byte: the request is refused before the page is built."""
    c = browser_for(operator if path == "/platform" else history["creator"])
    for headers in ({}, HTMX):
        resp = c.get(path, query_string={"range": "7d\x00"}, headers=headers)
        assert resp.status_code == 400, resp.status_code
        assert "NUL byte" in resp.get_data(as_text=True)


def test_an_empty_range_is_the_default_range(history, browser_for):
    html = get(browser_for(history["creator"]), "/dashboard?range=")
    assert re.search(r'id="dashboard-body-range-30d"[^>]*aria-current="page"', html)


# ---- figures: the page shows the service's numbers ------------------------------

@pytest.mark.parametrize("range_", dashboard.RANGES)
def test_dashboard_figures_are_the_service_figures(history, browser_for, range_):
    creator = history["creator"]
    html = get(browser_for(creator), f"/dashboard?range={range_}")
    earnings = dashboard.creator_earnings(creator, range_)
    assert figure(html, "earned-total") == earnings.total
    for source in dashboard.SOURCES:
        assert figure(html, f"earned-{source}") == earnings.by_source[source]
    assert figure(html, "pending-escrow") == earnings.pending_escrow
    assert "Days are UTC" in html
    assert f'href="/api/creator/earnings/export?range={range_}"' in html
    export = browser_for(creator).get(f"/api/creator/earnings/export?range={range_}")
    assert export.status_code == 200 and export.mimetype == "text/csv"  # the link works with the session

    fans = dashboard.top_fans(creator, range_)
    if fans:
        assert table_rows(html, "top-fans") == [[f.display_name, tokens(f.total)] for f in fans]
    per_stream = dashboard.stream_revenue(creator, range_)
    if per_stream:
        rows = table_rows(html, "stream-revenue")
        assert [r[1:] for r in rows] == [[tokens(s.tickets), tokens(s.tips), tokens(s.total)] for s in per_stream]
        for s in per_stream:
            assert f'<a href="/streams/{s.stream_id}">{s.title}</a>' in html
    per_call = dashboard.call_revenue(creator, range_)
    if per_call:
        rows = table_rows(html, "call-revenue")
        assert [(r[0], r[2], r[3]) for r in rows] == [(f"Call with {c.fan_name}", tokens(c.blocks), tokens(c.total))
                                                      for c in per_call]
        for c in per_call:
            assert f'href="/calls/{c.call_id}"' in html

    # One labelled bar per day (all time: per month) with money, with its figures.
    series = dashboard.earnings_series(creator, range_)
    assert series.unit == ("month" if range_ == "all" else "day")
    assert series.points == (dashboard.earnings_by_month(creator) if range_ == "all"
                             else dashboard.earnings_by_day(creator, range_))
    bars = re.findall(r'<g class="bar" role="img" aria-label="([^"]+)"><title>([^<]+)</title>', html)
    with_money = [d for d in series.points if d.total]
    assert with_money and len(bars) == len(with_money)
    for (label, title), d in zip(bars, with_money):
        assert label == title
        assert f"{d.day.year}: {tokens(d.total)} tokens (tips {tokens(d.tips)}, tickets {tokens(d.tickets)}, " \
               f"calls {tokens(d.calls)})" in htmllib.unescape(label)
        if range_ == "all":
            assert htmllib.unescape(label).startswith(display.month_label(d.day) + ":")


def test_the_history_fixture_has_money_from_every_source(history):
    """Guards the test above: it must compare non-zero figures, not zeros with zeros."""
    earnings = dashboard.creator_earnings(history["creator"], "all")
    assert all(earnings.by_source[s] > 0 for s in dashboard.SOURCES), earnings
    assert earnings.pending_escrow == 250


@pytest.mark.parametrize("range_", dashboard.RANGES)
def test_spending_figures_are_the_service_figures_and_every_line_has_a_working_receipt(history, browser_for,
                                                                                      range_):
    fan = history["fans"][0]
    c = browser_for(fan)
    html = get(c, f"/spending?range={range_}")
    spending = dashboard.fan_spending(fan, range_)
    assert spending.total > 0
    assert figure(html, "spent-total") == spending.total
    for kind in dashboard.SOURCES:
        assert figure(html, f"spent-{kind}") == spending.by_type[kind]
    assert table_rows(html, "spent-by-creator") == [[x.display_name, tokens(x.total)] for x in spending.by_creator]
    assert f'href="/api/fan/spending/export?range={range_}"' in html
    export = c.get(f"/api/fan/spending/export?range={range_}")
    assert export.status_code == 200 and export.mimetype == "text/csv"
    assert "Days are UTC" in html

    lines = dashboard.spending_lines(fan, range_, limit=50)
    assert lines
    rows = table_rows(html, "spending-lines")
    assert len(rows) == len(lines)
    for row, line in zip(rows, lines):
        assert row[2].lstrip("+−") == tokens(abs(line.amount))
    for url in {line.receipt_url for line in lines}:
        assert f'<a href="{htmllib.escape(url)}">Receipt</a>' in html
        assert c.get(url.split("#")[0]).status_code == 200, url

    months = dashboard.spending_by_month(fan)
    month_rows = table_rows(html, "spending-months")
    assert [r[4] for r in month_rows] == [tokens(m.total) for m in months]


def test_platform_figures_are_the_service_figures(history, browser_for, operator):
    html = get(browser_for(operator), "/platform?range=all")
    p = dashboard.platform_overview(operator, "all")
    for source in dashboard.SOURCES:
        assert figure(html, f"fees-{source}") == p.fees_by_source[source]
    assert figure(html, "fees-total") == sum(p.fees_by_source.values())
    assert figure(html, "tokens-sold") == p.tokens_sold
    assert figure(html, "tokens-taken-back") == p.tokens_taken_back
    assert figure(html, "tokens-outstanding") == p.tokens_outstanding
    assert figure(html, "debt-outstanding") == p.debt_outstanding
    assert figure(html, "escrow-held") == p.escrow_held
    verify = re.search(r'data-testid="last-verify">(.*?)</p>', html, re.S).group(1)
    if p.last_verify is None:
        assert "Never run." in verify
    else:
        assert p.last_verify.ran_at.strftime("%Y-%m-%d %H:%M") in verify
        assert ("OK" in verify) is p.last_verify.ok


# ---- escaping ------------------------------------------------------------------

def test_hostile_names_titles_and_messages_are_shown_as_text(ctx, browser_for, make_creator, make_fan,
                                                             make_call, make_stream):
    creator = make_creator(name=HOSTILE)
    fan = make_fan(balance=2_000, name=HOSTILE)
    stream = make_stream(creator, title=HOSTILE, live=True)
    tip = send_tip(fan, creator, 300, HOSTILE, stream_id=stream.id)
    call_id = make_call(rate=60, fan=fan, creator=creator).call_id
    calls.end(fan, call_id)  # no call left open for other tests' meters
    db.session.commit()

    escaped = "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;"
    dash = get(browser_for(creator), "/dashboard?range=all")
    spend = get(browser_for(fan), "/spending?range=all")
    for html in (dash, spend):
        assert "<script>" not in html
        assert escaped in html
    assert f'id="dash-tip-{tip.id}"' in dash  # the recent tips list, escaped like the rest
    assert "Call with " + escaped in dash


# ---- empty states ----------------------------------------------------------------

def test_a_new_creator_is_told_what_to_do_next(ctx, browser_for, make_creator):
    html = get(browser_for(make_creator()), "/dashboard")
    assert "No earnings in the last 30 days" in html
    assert '<a href="/creator/streams">Go live</a>' in html
    assert '<a href="/creator/settings">Set a call rate</a>' in html
    assert "Share your page" in html
    assert "No tips yet" in html and '<ul id="dashboard-tips" class="tip-feed" aria-live="polite" data-keep="10"></ul>' in html
    assert figure(html, "earned-total") == 0
    assert 'class="bar"' not in html  # an empty chart, still with its axes
    assert "Show the numbers as a table" not in html


def test_a_fan_who_spent_nothing_is_pointed_to_discover(ctx, browser_for, make_fan):
    html = get(browser_for(make_fan(balance=100)), "/spending")
    assert "No spending in the last 30 days" in html
    assert '<a class="button primary" href="/">Discover live creators</a>' in html
    assert "No spending in the last 12 months." in html


# ---- live recent tips ---------------------------------------------------------------

def test_the_dashboard_lists_recent_tips_newest_first_with_the_shared_tip_item(history, browser_for):
    html = get(browser_for(history["creator"]), "/dashboard")
    items = re.findall(r'<li id="dash-tip-(\d+)" class="tip-item', html)
    expected = [v.tip.id for v in tips.recent_tips(creator_id=history["creator"].id)]
    assert [int(i) for i in items] == expected and history["tip_id"] in expected
    # The list is outside the swapped body: a range switch keeps it as it is.
    assert 'id="dashboard-tips"' not in get(browser_for(history["creator"]), "/dashboard?range=7d", headers=HTMX)
