"""Server-rendered call pages (DESIGN.md §5 Calls, §8 Pages, §10): the creator's call
settings form, the Call modal and request (409 on a changed rate, 402 with the
shortfall), the creator's notification, the call page and its buttons, the fan's
low-balance warning, and who may open a call's sockets."""
from __future__ import annotations

import html as htmllib
import re
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import func, select

from app.auth.models import User
from app.calls import service
from app.calls.models import Call
from app.extensions import db
from tests.calls.helpers import fresh_call
from tests.conftest import csrf_from
from tests.helpers import log_in, visible

HTMX = {"HX-Request": "true"}


# ---- helpers ----------------------------------------------------------------

def get(client, path, status=200, **kw) -> str:
    resp = client.get(path, **kw)
    assert resp.status_code == status, (path, resp.status_code, resp.get_data(as_text=True)[:600])
    return resp.get_data(as_text=True)


def post(client, path, csrf, data=None, htmx=True, target=None):
    headers = dict(HTMX) if htmx else {}
    headers["X-CSRFToken"] = csrf
    if target:
        headers["HX-Target"] = target
    return client.post(path, data=data or {}, headers=headers)


def calls_of(fan) -> int:
    db.session.rollback()
    return db.session.scalar(select(func.count()).select_from(Call).where(Call.fan_id == fan.id))


def by_testid(html: str, name: str) -> str:
    m = re.search(rf'data-testid="{name}"[^>]*>(.*?)</', html, re.S)
    assert m, (name, html[:2000])
    return visible(m.group(1))


# ---- /creator/settings: the call settings form ------------------------------------------------

def test_settings_page_shows_the_call_form_with_current_values(client, make_creator):
    creator = make_creator()
    service.update_settings(creator, 45, True)
    log_in(client, creator)
    html = get(client, "/creator/settings")
    assert 'id="call-settings"' in html
    assert re.search(r'<label for="call-rate">Rate \(tokens per minute\)</label>', html)
    assert re.search(r'<input id="call-rate"[^>]*name="callRateTokensPerMin"[^>]*value="45"', html, re.S)
    assert re.search(r'<input id="calls-enabled" type="checkbox" name="callsEnabled" value="1" checked', html)
    assert 'hx-post="/creator/settings/calls"' in html and 'hx-indicator="this"' in html
    assert "Accept calls" in html


@pytest.mark.parametrize("rate, message", [
    ("abc", "Enter a whole number of tokens, like 1000."),
    ("0", "The amount must be at least 1 token."),
    ("100001", "The amount can be at most 100,000 tokens."),
    ("", "Enter an amount of tokens."),
    ("\u0663", "Enter a whole number of tokens, like 1000."),  # Arabic-Indic 3 was saved as 3
    ("\uff11\uff12", "Enter a whole number of tokens, like 1000."),  # fullwidth 12 was saved as 12
    ("\u00b2", "Enter a whole number of tokens, like 1000."),  # superscript 2
])
def test_settings_form_shows_a_bad_rate_next_to_the_field_and_keeps_the_settings(client, make_creator, rate,
                                                                                   message):
    creator = make_creator()
    service.update_settings(creator, 30, False)
    csrf = log_in(client, creator)
    resp = post(client, "/creator/settings/calls", csrf, {"callRateTokensPerMin": rate, "callsEnabled": "1"})
    assert resp.status_code == 422, resp.get_data(as_text=True)
    html = resp.get_data(as_text=True)
    assert "<html" not in html and 'id="call-settings"' in html
    assert re.search(r'<input id="call-rate"[^>]*aria-invalid="true"', html, re.S), html
    assert 'aria-describedby="call-rate-error"' in html
    error = re.search(r'<p class="field-error" id="call-rate-error" role="alert">(.*?)</p>', html)
    assert error and visible(error.group(1)) == message, html
    assert f'value="{htmllib.escape(rate)}"' in html  # what they typed stays in the field
    assert " checked" in html  # and so does the checkbox
    assert 'data-testid="call-settings-saved"' not in html
    db.session.refresh(creator)
    assert (creator.call_rate_tokens_per_min, creator.calls_enabled) == (30, False)


def test_settings_form_saves_rate_and_switch_and_answers_the_saved_form(client, make_creator):
    creator = make_creator()
    csrf = log_in(client, creator)
    resp = post(client, "/creator/settings/calls", csrf, {"callRateTokensPerMin": "1,200", "callsEnabled": "1"})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    html = resp.get_data(as_text=True)
    assert "<html" not in html and 'id="call-settings"' in html
    assert by_testid(html, "call-settings-saved").startswith("Saved: fans can call you at 1,200 tokens per minute")
    assert "aria-invalid" not in html
    db.session.refresh(creator)
    assert (creator.call_rate_tokens_per_min, creator.calls_enabled) == (1200, True)

    resp = post(client, "/creator/settings/calls", csrf, {"callRateTokensPerMin": "1200"})  # box unchecked
    assert resp.status_code == 200
    assert "calls are off" in by_testid(resp.get_data(as_text=True), "call-settings-saved")
    db.session.refresh(creator)
    assert creator.calls_enabled is False


def test_settings_form_without_htmx_redirects_or_renders_the_whole_page(client, make_creator):
    creator = make_creator()
    csrf = log_in(client, creator)
    resp = post(client, "/creator/settings/calls", csrf, {"callRateTokensPerMin": "25", "callsEnabled": "on"},
                htmx=False)
    assert resp.status_code == 303 and urlsplit(resp.headers["Location"]).path == "/creator/settings"
    resp = post(client, "/creator/settings/calls", csrf, {"callRateTokensPerMin": "x"}, htmx=False)
    assert resp.status_code == 422
    html = resp.get_data(as_text=True)
    assert "<html" in html and 'id="call-rate-error"' in html and 'data-testid="stream-key"' in html


def test_settings_form_needs_csrf_and_a_creator(client, make_creator, make_fan):
    creator = make_creator()
    log_in(client, creator)
    resp = client.post("/creator/settings/calls", data={"callRateTokensPerMin": "10", "callsEnabled": "1"},
                       headers=HTMX)
    assert resp.status_code == 400
    db.session.refresh(creator)
    assert creator.calls_enabled is False
    fan = make_fan()
    client.post("/logout", data={"csrf_token": csrf_from(client, "/wallet")})
    csrf = log_in(client, fan)
    resp = post(client, "/creator/settings/calls", csrf, {"callRateTokensPerMin": "10", "callsEnabled": "1"})
    assert resp.status_code == 403


# ---- the Call button and modal ------------------------------------------------------------------

def test_the_call_button_shows_for_logged_in_fans_when_the_creator_takes_calls(client, new_client, make_creator,
                                                                             make_fan, make_stream):
    creator = make_creator(name="Ada Calls")
    stream = make_stream(creator, title="Evening")
    path = f"/streams/{stream.id}"
    assert 'data-testid="call-button"' not in get(client, path)  # logged out
    fan_client = new_client()
    log_in(fan_client, make_fan())
    assert 'data-testid="call-button"' not in get(fan_client, path)  # calls off
    service.update_settings(creator, 60, True)
    html = get(fan_client, path)
    button = re.search(r'<button[^>]*hx-get="([^"]+)"[^>]*data-testid="call-button">(.*?)</button>', html, re.S)
    assert button, html
    assert urlsplit(button.group(1)).path == "/calls/new"
    assert parse_qs(urlsplit(button.group(1)).query) == {"creator": [str(creator.id)]}
    assert visible(button.group(2)) == "Video call · 60 tokens/min"
    creator_client = new_client()
    log_in(creator_client, creator)
    assert 'data-testid="call-button"' not in get(creator_client, path)  # not on one's own page


def test_the_call_modal_shows_the_rate_the_minimum_and_the_balance(client, make_creator, make_fan):
    creator = make_creator(name="Ada Calls")
    service.update_settings(creator, 25, True)
    log_in(client, make_fan(balance=700))
    html = get(client, f"/calls/new?creator={creator.id}", headers=HTMX)
    assert 'role="dialog"' in html and "Video call with Ada Calls" in html
    assert by_testid(html, "call-rate") == "25"
    assert "25 tokens per minute" in visible(html)
    assert by_testid(html, "call-minimum") == "25 tokens in your wallet (the first two blocks)"  # 13 + 12
    assert by_testid(html, "call-modal-balance") == "700 tokens"
    assert '<input type="hidden" name="rate" value="25">' in html
    assert f'<input type="hidden" name="creatorId" value="{creator.id}">' in html
    assert "Call now · 25 tokens/min" in html


def test_requesting_a_call_redirects_to_the_call_page(client, make_creator, make_fan):
    creator = make_creator()
    service.update_settings(creator, 60, True)
    fan = make_fan(balance=1000)
    csrf = log_in(client, fan)
    resp = post(client, "/calls", csrf, {"creatorId": creator.id, "rate": "60"})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    call = db.session.scalar(select(Call).where(Call.fan_id == fan.id))
    assert resp.headers["HX-Redirect"] == f"/calls/{call.id}"
    assert (call.status, call.rate, call.creator_id) == ("requested", 60, creator.id)
    service.end(fan, call.id)


def test_a_changed_rate_answers_409_in_the_modal_with_the_new_rate_to_confirm(client, make_creator, make_fan):
    creator = make_creator()
    service.update_settings(creator, 60, True)
    fan = make_fan(balance=1000)
    csrf = log_in(client, fan)
    get(client, f"/calls/new?creator={creator.id}", headers=HTMX)  # the fan saw 60 …
    service.update_settings(creator, 90, True)  # … the creator raised it meanwhile
    resp = post(client, "/calls", csrf, {"creatorId": creator.id, "rate": "60"})
    assert resp.status_code == 409, resp.get_data(as_text=True)
    html = resp.get_data(as_text=True)
    assert "HX-Redirect" not in resp.headers
    assert by_testid(html, "call-error") == "The rate is now 90 tokens per minute; confirm the new rate to call."
    assert by_testid(html, "call-rate") == "90"
    assert '<input type="hidden" name="rate" value="90">' in html  # confirming again posts the new rate
    assert calls_of(fan) == 0

    resp = post(client, "/calls", csrf, {"creatorId": creator.id, "rate": "90"})
    assert resp.status_code == 200 and resp.headers["HX-Redirect"].startswith("/calls/")
    assert calls_of(fan) == 1
    service.end(fan, db.session.scalar(select(Call.id).where(Call.fan_id == fan.id)))


def test_too_few_tokens_answers_402_with_the_shortfall_and_a_prefilled_topup(client, make_creator, make_fan):
    creator = make_creator()
    service.update_settings(creator, 60, True)  # a call needs 30 + 30
    fan = make_fan(balance=45)
    csrf = log_in(client, fan)
    resp = post(client, "/calls", csrf, {"creatorId": creator.id, "rate": "60"})
    assert resp.status_code == 402, resp.get_data(as_text=True)
    html = resp.get_data(as_text=True)
    assert "15 more needed" in by_testid(html, "call-error")
    link = re.search(r'<a href="([^"]+)" hx-get="([^"]+)" hx-target="#call-topup-sheet" data-testid="topup-link">'
                     r'Buy 15 tokens</a>', html)
    assert link, html
    assert parse_qs(urlsplit(link.group(1)).query) == {"topup": ["15"]}
    assert urlsplit(link.group(2)).path == "/wallet/buy" and parse_qs(urlsplit(link.group(2)).query) == {
        "amount": ["15"]}
    assert 'id="call-topup-sheet"' in html
    assert calls_of(fan) == 0


def test_closed_calls_and_a_call_in_progress_are_409_in_the_modal(client, make_call):
    s = make_call(rate=60, present=False, accept=False)
    csrf = log_in(client, s.fan)
    resp = post(client, "/calls", csrf, {"creatorId": s.creator.id, "rate": "60"})
    assert resp.status_code == 409
    html = resp.get_data(as_text=True)
    assert by_testid(html, "call-error").startswith("You already have a call in progress.")
    assert re.search(rf'href="/calls/{s.call_id}" data-testid="open-call-link"', html)

    service.update_settings(s.creator, 60, False)
    html = get(client, f"/calls/new?creator={s.creator.id}", headers=HTMX)
    assert "is not taking calls right now" in by_testid(html, "calls-closed")
    assert 'data-testid="call-confirm"' not in html


def test_the_request_needs_the_rate_and_csrf(client, make_creator, make_fan):
    creator = make_creator()
    service.update_settings(creator, 60, True)
    fan = make_fan(balance=1000)
    csrf = log_in(client, fan)
    resp = post(client, "/calls", csrf, {"creatorId": creator.id})
    assert resp.status_code == 422
    assert by_testid(resp.get_data(as_text=True), "call-error") == "Confirm the rate to call."
    resp = client.post("/calls", data={"creatorId": creator.id, "rate": "60"}, headers=HTMX)
    assert resp.status_code == 400
    assert calls_of(fan) == 0


@pytest.mark.parametrize("digits", ["\u00b2", "\u00b9\u00b2", "\u0663", "\uff16\uff10"],
                         ids=["superscript-2", "superscript-12", "arabic-indic-3", "fullwidth-60"])
def test_ids_and_rates_in_non_ascii_digits_are_refused_in_the_modal_not_a_crash(client, make_creator, make_fan,
                                                                                 digits):
    """`int_arg` took "²" for a number (`str.isdigit()`), then `int()` raised: a 500."""
    creator = make_creator()
    service.update_settings(creator, 60, True)
    fan = make_fan(balance=1000)
    csrf = log_in(client, fan)
    get(client, f"/calls/new?creator={digits}", status=404, headers=HTMX)
    assert post(client, "/calls", csrf, {"creatorId": digits, "rate": "60"}).status_code == 404
    resp = post(client, "/calls", csrf, {"creatorId": creator.id, "rate": digits})
    assert resp.status_code == 422, resp.get_data(as_text=True)
    assert by_testid(resp.get_data(as_text=True), "call-error") == "Confirm the rate to call."
    assert calls_of(fan) == 0


# ---- the creator's notification -------------------------------------------------------------------

def test_a_creators_pages_list_pending_requests_with_accept_and_decline(client, make_call, make_fan):
    s = make_call(present=False, accept=False, fan=make_fan(balance=1000, name="Caller"))
    log_in(client, s.creator)
    html = get(client, "/")
    item = re.search(rf'<div id="call-request-{s.call_id}" class="call-request card" data-testid="call-request">'
                     r'(.*?)</div>\s*</div>', html, re.S)
    assert item, html
    assert visible(item.group(1)).startswith("Caller wants a video call · 60 tokens/min")
    assert f'hx-post="/calls/{s.call_id}/accept"' in item.group(1)
    assert f'hx-post="/calls/{s.call_id}/decline"' in item.group(1)


def test_accepting_from_the_notification_goes_to_the_call_page(client, make_call):
    s = make_call(present=False, accept=False)
    csrf = log_in(client, s.creator)
    resp = post(client, f"/calls/{s.call_id}/accept", csrf)
    assert resp.status_code == 200 and resp.headers["HX-Redirect"] == f"/calls/{s.call_id}"
    assert fresh_call(s.call_id).status == "active"
    assert f'id="call-request-{s.call_id}"' not in get(client, "/")  # no longer pending


def test_declining_from_the_notification_answers_the_updated_notification(client, make_call, make_fan):
    s = make_call(present=False, accept=False, fan=make_fan(balance=1000, name="Caller"))
    csrf = log_in(client, s.creator)
    resp = post(client, f"/calls/{s.call_id}/decline", csrf, target=f"call-request-{s.call_id}")
    assert resp.status_code == 200 and "HX-Redirect" not in resp.headers
    assert visible(resp.get_data(as_text=True)) == "You declined Caller 's call. Dismiss"
    assert fresh_call(s.call_id).status == "declined"


def test_a_fan_cannot_accept_and_a_stale_accept_goes_to_the_alert_area(client, new_client, make_call):
    s = make_call(present=False, accept=False)
    csrf = log_in(client, s.fan)
    resp = post(client, f"/calls/{s.call_id}/accept", csrf)
    assert resp.status_code == 403 and resp.headers.get("HX-Retarget") == "#flash"
    service.end(s.fan, s.call_id)  # withdrawn before the creator clicked
    creator = new_client()
    csrf = log_in(creator, s.creator)
    resp = post(creator, f"/calls/{s.call_id}/accept", csrf)
    assert resp.status_code == 409 and resp.headers.get("HX-Retarget") == "#flash"
    assert "This call is ended." in visible(resp.get_data(as_text=True))


# ---- the call page --------------------------------------------------------------------------------

def test_the_call_page_is_for_its_two_participants_only(client, new_client, make_call, make_fan, make_creator):
    s = make_call(present=False)
    for user in (s.fan, s.creator):
        c = new_client()
        log_in(c, user)
        html = get(c, f"/calls/{s.call_id}")
        assert f'ws-connect="/ws/channels/{fresh_call(s.call_id).channel}"' in html
    for outsider in (make_fan(), make_creator()):
        c = new_client()
        log_in(c, outsider)
        html = get(c, f"/calls/{s.call_id}", status=403)
        assert "Only the two people on a call can see or change it." in html
        assert fresh_call(s.call_id).channel not in html
    c = new_client()
    log_in(c, make_fan())
    get(c, "/calls/999999999", status=404)
    resp = client.get(f"/calls/{s.call_id}")
    assert resp.status_code == 302 and urlsplit(resp.headers["Location"]).path == "/login"


def test_the_call_page_shows_the_meter_from_the_timeline(client, new_client, make_call, make_fan, make_creator,
                                                          clock):
    s = make_call(rate=60, fan=make_fan(balance=1000, name="Caller"),
                  creator=make_creator(name="Call Host"))  # block 0 (30) charged at acceptance
    clock.advance(12)
    fan = new_client()
    log_in(fan, s.fan)
    html = get(fan, f"/calls/{s.call_id}")
    assert 'data-party="fan"' in html and "Call with Call Host" in html
    assert by_testid(html, "call-status") == "Live"
    assert by_testid(html, "call-blocks") == "1"
    assert by_testid(html, "call-spent") == "30"
    assert by_testid(html, "call-balance") == "970"
    assert by_testid(html, "call-elapsed") == "0:12"
    assert re.search(r'data-clock="up" data-seconds="12" data-running="1"', html)
    assert by_testid(html, "call-next-charge-seconds") == "18"  # block 1 starts at 30 s of talk
    assert "30 tokens in 18 s" in visible(html)
    assert 'data-testid="call-pause"' in html and 'data-testid="call-end"' in html
    receipts = re.search(r'data-testid="call-receipts">(.*?)</ol>', html, re.S).group(1)
    assert visible(receipts).startswith("Block 1 −30 ")
    assert 'data-testid="call-earned"' not in html
    assert 'data-testid="tip-button"' in html and f"/tips/new?creator={s.creator.id}" in html
    assert 'data-signal-path="/ws/calls/%d/signal"' % s.call_id in html
    assert "data-ice-servers='[]'" in html
    assert 'data-testid="low-balance"' not in html

    creator = new_client()
    log_in(creator, s.creator)
    html = get(creator, f"/calls/{s.call_id}")
    assert 'data-party="creator"' in html and "Call with Caller" in html
    assert by_testid(html, "call-earned") == "24"
    assert by_testid(html, "call-spent") == "30"  # what the fan paid, gross
    receipts = re.search(r'data-testid="call-receipts">(.*?)</ol>', html, re.S).group(1)
    assert visible(receipts).startswith("Block 1 +24 of 30 ")
    assert 'id="call-balance"' not in html and 'data-testid="tip-button"' not in html


def test_the_activity_fragment_follows_the_audit_log(new_client, make_call, clock):
    """What the page re-fetches when its panel changes: receipts newest first, the
    creator's earnings (sum of each block's creator share), the fan's warning out of band."""
    s = make_call(rate=25, balance=1000)  # blocks cost 13, 12, 13, …
    clock.advance(30)
    service.meter()
    service.pause(s.fan, s.call_id)
    creator = new_client()
    log_in(creator, s.creator)
    html = get(creator, f"/calls/{s.call_id}/activity", headers=HTMX)
    assert html.lstrip().startswith('<div id="call-activity"') and "<html" not in html
    assert by_testid(html, "call-earned") == str(13 * 80 // 100 + 12 * 80 // 100)  # 10 + 9
    items = [visible(li) for li in re.findall(r"<li[^>]*>(.*?)</li>", html, re.S)]
    assert [i.rsplit(" ", 2)[0] for i in items] == ["Paused by the fan", "Block 2 +9 of 12", "Block 1 +10 of 13"]
    assert 'id="call-topup"' not in html
    fan = new_client()
    log_in(fan, s.fan)
    html = get(fan, f"/calls/{s.call_id}/activity", headers=HTMX)
    assert 'data-testid="call-earned"' not in html and "Block 2 −12" in visible(html)
    assert '<div id="call-topup" hx-swap-oob="true">' in html


def test_pause_resume_and_end_buttons_answer_the_state_panel(client, make_call, clock):
    s = make_call()
    csrf = log_in(client, s.creator)
    target = f"call-state-{s.call_id}"
    resp = post(client, f"/calls/{s.call_id}/pause", csrf, target=target)
    assert resp.status_code == 200
    html = resp.get_data(as_text=True)
    assert '<div class="call-meter" data-status="paused"' in html
    assert "Billing paused by the creator." in visible(html)
    assert 'data-testid="call-resume"' in html and 'data-testid="call-pause"' not in html
    assert (fresh_call(s.call_id).status, fresh_call(s.call_id).paused_by) == ("paused", "creator")

    resp = post(client, f"/calls/{s.call_id}/resume", csrf, target=target)
    assert '<div class="call-meter" data-status="active"' in resp.get_data(as_text=True)
    resp = post(client, f"/calls/{s.call_id}/end", csrf, target=target)
    html = resp.get_data(as_text=True)
    assert '<div class="call-meter" data-status="ended"' in html and "The creator ended the call." in visible(html)
    assert 'data-testid="call-end"' not in html
    resp = post(client, f"/calls/{s.call_id}/pause", csrf, target=target)
    assert resp.status_code == 409 and resp.headers.get("HX-Retarget") == "#flash"


def test_the_fans_low_balance_warning_has_the_shortfall_and_a_prefilled_topup(client, new_client, make_call):
    s = make_call(rate=60, balance=75)  # 45 left after block 0: next two need 60
    fan = new_client()
    log_in(fan, s.fan)
    html = get(fan, f"/calls/{s.call_id}/activity", headers=HTMX)
    assert "Your tokens won't cover the next two blocks: 15 more needed" in visible(html)
    link = re.search(r'<a href="([^"]+)" hx-get="([^"]+)" hx-target="#call-topup-sheet" data-testid="topup-link">'
                     r'Buy 15 tokens</a>', html)
    assert link, html
    assert parse_qs(urlsplit(link.group(2)).query) == {"amount": ["15"]}
    page = get(fan, f"/calls/{s.call_id}")
    assert 'data-testid="low-balance"' in page
    assert 'hx-trigger="call-updated from:body, balance-changed from:body"' in page

    from app.wallet import service as wallet
    wallet.purchase_tokens(s.fan, 15, "topup-for-call")
    html = get(fan, f"/calls/{s.call_id}/activity", headers=HTMX)
    assert '<div id="call-topup" hx-swap-oob="true">' in html and 'data-testid="low-balance"' not in html
    creator = new_client()
    log_in(creator, s.creator)
    assert 'data-testid="low-balance"' not in get(creator, f"/calls/{s.call_id}")  # the fan's own


# ---- the pushed fragments ---------------------------------------------------------------------------

def test_pushed_state_needs_no_request_no_query_and_has_no_per_user_data(app, make_call):
    from sqlalchemy import event
    from app.calls import pushes
    s = make_call(present=False)
    call = fresh_call(s.call_id)
    call.status  # loaded: what the meter holds when it publishes
    statements = []

    def count(*args):
        statements.append(args[2])
    engine = db.engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        [(channel, html)] = pushes.call_messages(call)  # app context only, as the worker renders it
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert statements == [], statements  # the meter renders this for every call it charges
    assert channel == call.channel
    assert f'hx-swap-oob="innerHTML:#call-state-{call.id},#call-sink"' in html
    assert 'data-status="active"' in html
    assert "csrf" not in html.lower() and "nav-balance" not in html and "970" not in html


def test_the_request_push_is_the_whole_pending_list(app, make_call, make_fan):
    s = make_call(present=False, accept=False, fan=make_fan(balance=1000, name="Caller"))
    call = fresh_call(s.call_id)
    html = app.jinja_env.get_template("calls/_request_push.html").render(call=call)
    assert '<div id="call-requests"' in html and 'hx-swap-oob="true"' in html
    assert f'id="call-request-{call.id}"' in html and "Caller wants a video call" in visible(html)


def outcome_titles(html: str) -> dict[str, str]:
    """The outcome headings of a state panel, by the party they are for ("" = both)."""
    return {party: htmllib.unescape(text) for party, text in
            re.findall(r'<h2 class="call-outcome-title(?: for-(fan|creator))?">(.*?)</h2>', html)}


def test_an_answered_request_is_pushed_as_its_own_new_text_not_the_pending_list(app, make_call, make_fan):
    """The pending list would drop a declined request: the creator who pressed Decline saw it
    vanish. Its new text goes to that request (or the sink on pages without it)."""
    s = make_call(present=False, accept=False, fan=make_fan(balance=1000, name="Caller"))
    service.decline(s.creator, s.call_id)
    html = app.jinja_env.get_template("calls/_request_push.html").render(call=fresh_call(s.call_id))
    assert 'id="call-requests"' not in html
    assert f'hx-swap-oob="innerHTML:#call-request-{s.call_id},#call-sink"' in html
    assert re.search(r"You declined\s*Caller\s*'s call\.", visible(html)) and "data-dismiss-request" in html


@pytest.mark.parametrize("how,fan_says,creator_says", [
    ("declined", "Host declined the call", "You declined Caller's call"),
    ("withdrawn", "You withdrew the call request", "Caller withdrew the call request"),
    ("ended", "Call ended — 45 s, 60 tokens", "Call ended — 45 s, 60 tokens"),  # two 30 s blocks started
])
def test_a_call_that_is_over_says_how_it_went_to_each_party_with_next_steps(app, make_call, make_fan, make_creator,
                                                                           clock, how, fan_says, creator_says):
    creator = make_creator(name="Host")
    s = make_call(rate=60, present=how == "ended", accept=how == "ended", fan=make_fan(balance=1000, name="Caller"),
                  creator=creator)
    if how == "declined":
        service.decline(creator, s.call_id)
    elif how == "withdrawn":
        service.end(s.fan, s.call_id)
    else:
        clock.advance(45)
        service.end(s.fan, s.call_id)
    html = app.jinja_env.get_template("calls/_meter.html").render(call=fresh_call(s.call_id))
    assert outcome_titles(html) == ({"": fan_says} if fan_says == creator_says else
                                    {"fan": fan_says, "creator": creator_says})
    assert f'hx-get="/calls/new?creator={creator.id}"' in html  # call again: the creator takes calls
    assert f'href="/c/{creator.handle}"' in html and 'href="/wallet"' in html and 'href="/"' in html
    assert "call-end" not in html and "call-pause" not in html
    service.update_settings(creator, 60, False)
    html = app.jinja_env.get_template("calls/_meter.html").render(call=fresh_call(s.call_id))
    assert "/calls/new" not in html and 'href="/wallet"' in html


@pytest.mark.parametrize("seconds,words", [(0, "0 s"), (45, "45 s"), (60, "1 min"), (200, "3 min 20 s"),
                                           (3600, "1 h"), (3725, "1 h 2 min"), (-5, "0 s"), (None, "0 s")])
def test_talk_time_reads_in_words(seconds, words):
    from app.calls.display import talk_time
    assert talk_time(seconds) == words


def test_a_running_call_has_no_outcome(app, make_call):
    html = app.jinja_env.get_template("calls/_meter.html").render(call=fresh_call(make_call().call_id))
    assert "call-outcome" not in html and "call-end" in html


def test_a_hostile_fan_name_is_escaped_in_the_notification(client, make_creator, make_fan):
    creator = make_creator()
    service.update_settings(creator, 10, True)
    fan = make_fan(balance=500, name="<img src=x onerror=alert(1)>")
    call = service.init_call(fan, creator.id, 10)
    log_in(client, creator)
    html = get(client, "/")
    assert "<img src=x" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    service.end(fan, call.id)
    assert db.session.get(User, fan.id) is not None


def test_a_routine_charge_pushes_the_figures_alone_from_the_same_template_as_the_panel(app, make_call, clock):
    from app.calls import pushes
    s = make_call(rate=60)
    clock.advance(30)
    service.meter()
    call = fresh_call(s.call_id)
    [(channel, html)] = pushes.call_messages(call, figures_only=True)
    assert channel == call.channel
    assert html.startswith(f'<div id="call-figures-{call.id}"')
    assert f'hx-swap-oob="innerHTML:#call-figures-{call.id},#call-sink"' in html
    assert by_testid(html, "call-blocks") == "2" and by_testid(html, "call-spent") == "60"
    assert "call-pause" not in html and "call-status" not in html  # the status line and buttons stay
    # The panel holds exactly these figures (one template), with no oob swap nested inside it.
    [(_, panel)] = pushes.call_messages(call)
    inner = html[html.index("<dl"):html.rindex("</dl>")]
    assert inner in panel
    assert panel.count("hx-swap-oob") == 1


def test_the_meter_pushes_figures_for_a_charge_and_the_whole_panel_when_the_call_ends(app, services, make_call,
                                                                                    clock):
    import time
    import redis as redis_lib
    s = make_call(rate=60, balance=90)  # 60 left: blocks 1 and 2, then dry
    call = fresh_call(s.call_id)
    prefix = app.config["REDIS_PREFIX"]
    client = redis_lib.Redis.from_url(services[1])
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(prefix + call.channel, prefix + f"user:{s.fan.id}")
    try:
        time.sleep(0.1)
        clock.advance(30)
        service.meter()  # block 1: routine
        clock.advance(60)
        service.meter()  # block 2 charged, block 3 can't be paid: the call ends
        got, deadline = [], time.monotonic() + 3
        while len(got) < 5 and time.monotonic() < deadline:
            message = pubsub.get_message(timeout=0.5)
            if message is not None:
                got.append((message["channel"].decode()[len(prefix):], message["data"].decode()))
    finally:
        pubsub.close()
        client.close()
    on_call = [html for channel, html in got if channel == call.channel]
    balances = [html for channel, html in got if channel == f"user:{s.fan.id}"]
    assert len(on_call) == 2 and len(balances) == 2, got
    assert on_call[0].startswith(f'<div id="call-figures-{call.id}"')
    assert on_call[1].startswith(f'<div id="call-state-{call.id}"') and 'data-status="ended"' in on_call[1]
    assert [visible(b) for b in balances] == ["30", "0"]
