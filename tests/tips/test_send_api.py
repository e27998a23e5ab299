"""POST /api/tips/send (DESIGN.md §4 Money, §5 Tips, §7 JSON API, §10 rate limits).

Real PostgreSQL and Redis; concurrency claims use real threads.
"""
from __future__ import annotations

import uuid
from types import SimpleNamespace

import pytest
from limits import parse as parse_limit
from sqlalchemy import text

from app import ledger
from app.auth.models import User
from app.config import Config
from app.errors import InsufficientFunds
from app.extensions import db
from app.tips import service as tips
from app.wallet import service as wallet
from tests.helpers import assert_error, run_together

MAX_TIP = Config().MAX_TIP_TOKENS


# ---- helpers ----------------------------------------------------------------

def send(client, headers, body, key=None, **kw):
    key = key if key is not None else str(uuid.uuid4())
    return client.post("/api/tips/send", json=body, headers={**headers, "Idempotency-Key": key}, **kw)


def tips_of(user_id: int) -> int:
    return db.session.scalar(text("SELECT count(*) FROM tips WHERE sender_id = :u"), {"u": user_id})


def wallet_entries_of(user_id: int) -> int:
    return db.session.scalar(text(
        "SELECT count(*) FROM ledger_entries e JOIN ledger_accounts a ON a.id = e.account_id "
        "WHERE a.user_id = :u AND a.kind = 'wallet'"), {"u": user_id})


def earnings_of(user_id: int) -> int:
    return ledger.balance_of(ledger.account_for(user_id, "earnings"))


def platform_fees() -> int:
    return ledger.balance_of(ledger.system_account("platform_fees"))


def balance_of(user) -> int:
    return wallet.wallet_balance(user)




@pytest.fixture()
def scene(make_fan, make_creator, api_headers, make_stream):
    """A fan with 1,000 tokens and a bearer token, a creator with a public stream."""
    fan, creator = make_fan(balance=1000), make_creator()
    stream = make_stream(creator, title="Evening show")
    s = SimpleNamespace(fan=fan, creator=creator, stream_id=stream.id, channel=stream.channel,
                        headers=api_headers(fan), fees_before=platform_fees())
    return s


def assert_nothing_written(s, balance=1000):
    """The refused request left no tip, no ledger entry and the same balance."""
    assert tips_of(s.fan.id) == 0
    assert balance_of(s.fan) == balance
    assert wallet_entries_of(s.fan.id) == 1  # only the seeding purchase
    assert earnings_of(s.creator.id) == 0
    assert platform_fees() == s.fees_before


# ---- happy path ---------------------------------------------------------------

def test_tip_is_201_with_the_tip_and_new_balance_and_splits_80_20(client, scene):
    """201 {tip:{id, amountTokens, creatorShare, platformShare, message, streamId, …}, newBalance};
    wallet −100, creator earnings +80, platform fees +20, ledger verifies."""
    s = scene
    resp = send(client, s.headers, {"toCreatorId": s.creator.id, "amountTokens": 100, "message": "Great show!",
                                    "context": {"streamId": s.stream_id}})
    assert resp.status_code == 201, resp.get_data(as_text=True)
    body = resp.get_json()
    assert set(body) == {"tip", "newBalance"}
    assert body["newBalance"] == 900
    tip = body["tip"]
    assert isinstance(tip["id"], int)
    assert tip["amountTokens"] == 100 and tip["creatorShare"] == 80 and tip["platformShare"] == 20
    assert tip["message"] == "Great show!"
    assert tip["streamId"] == s.stream_id and tip["channel"] == s.channel and tip["callId"] is None
    assert tip["toCreatorId"] == s.creator.id and tip["fromUserId"] == s.fan.id
    assert tip["createdAt"]
    assert balance_of(s.fan) == 900
    assert earnings_of(s.creator.id) == 80
    assert platform_fees() - s.fees_before == 20
    assert tips_of(s.fan.id) == 1
    assert ledger.verify() == []


def test_tip_without_message_or_context_is_201_with_empty_message_and_no_stream(client, scene):
    s = scene
    resp = send(client, s.headers, {"toCreatorId": s.creator.id, "amountTokens": 250})
    assert resp.status_code == 201, resp.get_data(as_text=True)
    tip = resp.get_json()["tip"]
    assert tip["message"] == "" and tip["streamId"] is None and tip["channel"] is None
    assert (tip["creatorShare"], tip["platformShare"]) == (200, 50)
    assert resp.get_json()["newBalance"] == 750


@pytest.mark.parametrize("amount", [1, 2, 4, 5, 7, 99, 101, 999, 1000])
def test_split_is_ledger_split_creator_floor_80_percent_platform_the_rest(client, scene, amount):
    """creator = amount*80//100, platform = amount − creator, for every amount (1 token → 0 / 1)."""
    s = scene
    resp = send(client, s.headers, {"toCreatorId": s.creator.id, "amountTokens": amount})
    assert resp.status_code == 201, resp.get_data(as_text=True)
    tip = resp.get_json()["tip"]
    assert (tip["creatorShare"], tip["platformShare"]) == (amount * 80 // 100, amount - amount * 80 // 100)
    assert earnings_of(s.creator.id) == amount * 80 // 100
    assert platform_fees() - s.fees_before == amount - amount * 80 // 100
    assert ledger.verify() == []


def test_one_token_tip_gives_creator_0_and_platform_1_and_still_works(client, scene):
    s = scene
    with client.application.app_context():
        assert ledger.split(1) == (0, 1)
    resp = send(client, s.headers, {"toCreatorId": s.creator.id, "amountTokens": 1, "message": "tiny"})
    assert resp.status_code == 201, resp.get_data(as_text=True)
    body = resp.get_json()
    assert (body["tip"]["creatorShare"], body["tip"]["platformShare"]) == (0, 1)
    assert body["newBalance"] == 999
    assert earnings_of(s.creator.id) == 0
    assert platform_fees() - s.fees_before == 1
    # No zero entry: the transfer is wallet −1 / platform +1.
    entries = db.session.execute(text(
        "SELECT e.amount FROM ledger_entries e JOIN tips t ON t.transfer_id = e.transfer_id "
        "WHERE t.id = :t ORDER BY e.amount"), {"t": body["tip"]["id"]}).scalars().all()
    assert entries == [-1, 1]
    assert ledger.verify() == []


def test_tip_of_exactly_the_whole_balance_is_allowed(client, scene):
    s = scene
    resp = send(client, s.headers, {"toCreatorId": s.creator.id, "amountTokens": 1000})
    assert resp.status_code == 201 and resp.get_json()["newBalance"] == 0
    assert balance_of(s.fan) == 0 and earnings_of(s.creator.id) == 800


def test_max_tip_tokens_is_accepted(client, make_fan, make_creator, api_headers):
    fan, creator = make_fan(balance=MAX_TIP), make_creator()
    resp = send(client, api_headers(fan), {"toCreatorId": creator.id, "amountTokens": MAX_TIP, "confirm": True})
    assert resp.status_code == 201, resp.get_data(as_text=True)
    assert resp.get_json()["newBalance"] == 0


def test_a_creator_can_tip_another_creator(client, make_creator, api_headers):
    tipper, creator = make_creator(balance=100), make_creator()
    resp = send(client, api_headers(tipper), {"toCreatorId": creator.id, "amountTokens": 100})
    assert resp.status_code == 201, resp.get_data(as_text=True)
    assert earnings_of(creator.id) == 80


def test_session_cookie_client_can_tip_with_csrf_header(client, scene, login):
    """The API also takes the session cookie (CSRF-protected), as the design says."""
    s = scene
    csrf = login(s.fan)
    refused = client.post("/api/tips/send", json={"toCreatorId": s.creator.id, "amountTokens": 10},
                          headers={"Idempotency-Key": "cookie-1"})
    assert_error(refused, 400, "csrf_failed")
    resp = client.post("/api/tips/send", json={"toCreatorId": s.creator.id, "amountTokens": 10},
                       headers={"Idempotency-Key": "cookie-1", "X-CSRFToken": csrf})
    assert resp.status_code == 201, resp.get_data(as_text=True)
    assert tips_of(s.fan.id) == 1


def test_anonymous_tip_is_401_not_a_csrf_error(client, scene):
    s = scene
    resp = client.post("/api/tips/send", json={"toCreatorId": s.creator.id, "amountTokens": 10},
                       headers={"Idempotency-Key": "anon"})
    assert_error(resp, 401)
    assert_nothing_written(s)


# ---- validation: nothing written on failure --------------------------------------

BAD_AMOUNTS = [
    pytest.param({"amountTokens": 0}, id="zero"),
    pytest.param({"amountTokens": -1}, id="negative"),
    pytest.param({"amountTokens": 1.5}, id="fraction"),
    pytest.param({"amountTokens": 100.0}, id="float-whole"),
    pytest.param({"amountTokens": "100"}, id="numeric-string"),
    pytest.param({"amountTokens": "abc"}, id="letters"),
    pytest.param({"amountTokens": ""}, id="empty-string"),
    pytest.param({"amountTokens": True}, id="true"),
    pytest.param({"amountTokens": False}, id="false"),
    pytest.param({"amountTokens": None}, id="null"),
    pytest.param({}, id="missing"),
    pytest.param({"amountTokens": MAX_TIP + 1}, id="max-plus-one"),
    pytest.param({"amountTokens": 2 ** 63}, id="beyond-bigint"),
    pytest.param({"amountTokens": [100]}, id="list"),
    pytest.param({"amountTokens": {"value": 100}}, id="object"),
]


@pytest.mark.parametrize("amount", BAD_AMOUNTS)
def test_bad_amount_is_422_on_amountTokens_and_writes_nothing(client, scene, amount):
    s = scene
    before = tips_of(s.fan.id)
    resp = send(client, s.headers, {"toCreatorId": s.creator.id, "message": "hi", **amount})
    assert_error(resp, 422, "invalid_value", "amountTokens")
    assert tips_of(s.fan.id) == before == 0
    assert_nothing_written(s)


def test_message_of_281_characters_is_422_on_message_and_writes_nothing(client, scene):
    s = scene
    resp = send(client, s.headers, {"toCreatorId": s.creator.id, "amountTokens": 10, "message": "m" * 281})
    assert_error(resp, 422, "invalid_value", "message")
    assert_nothing_written(s)


def test_message_of_280_characters_is_accepted_and_stored_whole(client, scene):
    s = scene
    message = ("é" * 139) + ("x" * 140) + "!"
    assert len(message) == 280
    resp = send(client, s.headers, {"toCreatorId": s.creator.id, "amountTokens": 10, "message": message})
    assert resp.status_code == 201, resp.get_data(as_text=True)
    assert resp.get_json()["tip"]["message"] == message
    stored = db.session.scalar(text("SELECT message FROM tips WHERE id = :i"), {"i": resp.get_json()["tip"]["id"]})
    assert stored == message


def test_multiline_message_is_allowed(client, scene):
    s = scene
    resp = send(client, s.headers, {"toCreatorId": s.creator.id, "amountTokens": 10, "message": "line 1\nline 2"})
    assert resp.status_code == 201 and resp.get_json()["tip"]["message"] == "line 1\nline 2"


@pytest.mark.parametrize("message", [123, 1.5, True, ["hi"], {"text": "hi"}, "bell \x07"],
                         ids=["int", "float", "bool", "list", "object", "control"])
def test_non_string_or_control_character_message_is_422_on_message(client, scene, message):
    s = scene
    resp = send(client, s.headers, {"toCreatorId": s.creator.id, "amountTokens": 10, "message": message})
    assert_error(resp, 422, "invalid_value", "message")
    assert_nothing_written(s)


@pytest.mark.parametrize("message", ['<script>alert("x")</script>', '<img src=x onerror="alert(1)">',
                                     "Tom & Jerry's \"quote\""])
def test_html_in_a_message_is_stored_raw_and_returned_raw_in_json(client, scene, message):
    """Stored as typed; escaping is the templates' job, never the JSON's."""
    s = scene
    resp = send(client, s.headers, {"toCreatorId": s.creator.id, "amountTokens": 10, "message": message})
    assert resp.status_code == 201, resp.get_data(as_text=True)
    tip_id = resp.get_json()["tip"]["id"]
    assert resp.get_json()["tip"]["message"] == message
    assert db.session.scalar(text("SELECT message FROM tips WHERE id = :i"), {"i": tip_id}) == message


def test_unknown_creator_is_404_and_writes_nothing(client, scene):
    s = scene
    unknown = db.session.scalar(text("SELECT coalesce(max(id), 0) + 1000 FROM users"))
    resp = send(client, s.headers, {"toCreatorId": unknown, "amountTokens": 10})
    assert_error(resp, 404, "creator_not_found")
    assert_nothing_written(s)


def test_tipping_a_fan_is_422_not_a_creator_and_writes_nothing(client, scene, make_fan):
    s = scene
    other_fan = make_fan()
    resp = send(client, s.headers, {"toCreatorId": other_fan.id, "amountTokens": 10})
    assert_error(resp, 422, "not_a_creator", "toCreatorId")
    assert_nothing_written(s)
    assert balance_of(other_fan) == 0


def test_tipping_yourself_is_422_self_tip_and_writes_nothing(client, make_creator, api_headers):
    creator = make_creator(balance=500)
    resp = send(client, api_headers(creator), {"toCreatorId": creator.id, "amountTokens": 10})
    assert_error(resp, 422, "self_tip", "toCreatorId")
    assert tips_of(creator.id) == 0 and balance_of(creator) == 500 and earnings_of(creator.id) == 0


def test_a_fan_tipping_themselves_is_422_too(client, scene):
    s = scene
    resp = send(client, s.headers, {"toCreatorId": s.fan.id, "amountTokens": 10})
    assert resp.status_code == 422
    assert assert_error(resp, 422)["code"] in ("self_tip", "not_a_creator")
    assert_nothing_written(s)


@pytest.mark.parametrize("make_id", [str, lambda i: True, lambda i: False, float, lambda i: i + 0.5,
                                     lambda i: None, lambda i: 0, lambda i: -i, lambda i: 2 ** 63,
                                     lambda i: [i], lambda i: {"id": i}],
                         ids=["string", "true", "false", "float-whole", "float", "null", "zero", "negative",
                              "beyond-bigint", "list", "object"])
def test_creator_id_that_is_not_a_positive_integer_is_422(client, scene, make_id):
    s = scene
    resp = send(client, s.headers, {"toCreatorId": make_id(s.creator.id), "amountTokens": 10})
    assert_error(resp, 422, "invalid_value", "toCreatorId")
    assert_nothing_written(s)


def test_missing_creator_id_is_422(client, scene):
    s = scene
    assert_error(send(client, s.headers, {"amountTokens": 10}), 422, "invalid_value", "toCreatorId")
    assert_nothing_written(s)


# ---- context {streamId?, callId?, channel?} -----------------------------------------

def test_context_channel_of_the_creator_is_accepted_and_names_its_stream(client, scene):
    s = scene
    resp = send(client, s.headers, {"toCreatorId": s.creator.id, "amountTokens": 10,
                                    "context": {"channel": s.channel}})
    assert resp.status_code == 201, resp.get_data(as_text=True)
    tip = resp.get_json()["tip"]
    assert tip["streamId"] == s.stream_id and tip["channel"] == s.channel


def test_context_stream_and_matching_channel_is_accepted(client, scene):
    s = scene
    resp = send(client, s.headers, {"toCreatorId": s.creator.id, "amountTokens": 10,
                                    "context": {"streamId": s.stream_id, "channel": s.channel}})
    assert resp.status_code == 201, resp.get_data(as_text=True)


def test_empty_or_null_context_is_no_context(client, scene):
    s = scene
    for ctx in ({}, None):
        resp = send(client, s.headers, {"toCreatorId": s.creator.id, "amountTokens": 10, "context": ctx})
        assert resp.status_code == 201 and resp.get_json()["tip"]["streamId"] is None


def test_context_with_a_stream_of_another_creator_is_403_context_mismatch(client, scene, make_creator, make_stream):
    s = scene
    other = make_creator()
    other_stream = make_stream(other, title="Not yours")
    resp = send(client, s.headers, {"toCreatorId": s.creator.id, "amountTokens": 10,
                                    "context": {"streamId": other_stream.id}})
    assert_error(resp, 403, "context_mismatch")
    assert_nothing_written(s)


def test_context_with_the_channel_of_another_creator_is_403_context_mismatch(client, scene, make_stream):
    s = scene
    other_stream = make_stream(title="Not yours either")
    resp = send(client, s.headers, {"toCreatorId": s.creator.id, "amountTokens": 10,
                                    "context": {"channel": other_stream.channel}})
    assert_error(resp, 403, "context_mismatch")
    assert_nothing_written(s)


@pytest.mark.parametrize("by", ["streamId", "channel"])
def test_context_of_a_private_stream_the_fan_cannot_watch_is_403(client, scene, by, make_stream):
    """No tipping into a private show one has no access to: the message would pop up on it."""
    s = scene
    private = make_stream(s.creator, "private", title="Ticketed", ticket_price=300)
    context = {"streamId": private.id} if by == "streamId" else {"channel": private.channel}
    resp = send(client, s.headers, {"toCreatorId": s.creator.id, "amountTokens": 10, "context": context})
    assert_error(resp, 403, "no_access")
    assert_nothing_written(s)


def test_context_with_an_unknown_stream_is_404(client, scene):
    s = scene
    resp = send(client, s.headers, {"toCreatorId": s.creator.id, "amountTokens": 10,
                                    "context": {"streamId": 2 ** 62}})
    assert_error(resp, 404, "stream_not_found")
    assert_nothing_written(s)


def test_context_with_an_unknown_call_id_is_404(client, scene):
    s = scene
    resp = send(client, s.headers, {"toCreatorId": s.creator.id, "amountTokens": 10,
                                    "context": {"callId": 2 ** 62}})
    assert_error(resp, 404, "call_not_found")
    assert_nothing_written(s)


@pytest.fixture()
def running_call(scene, make_call):
    """An accepted call between the scene's fan and creator (rate 1: block 0 costs the fan
    1 token), ended afterwards (by make_call) so no other test's meter bills it."""
    from app.calls import service as calls
    call_id = make_call(rate=1, present=False, fan=scene.fan, creator=scene.creator).call_id
    return calls.get_call_for(scene.fan, call_id)


def test_a_tip_during_a_call_carries_the_call_and_pops_up_on_its_channel(client, scene, running_call):
    s = scene
    before = balance_of(s.fan)
    resp = send(client, s.headers, {"toCreatorId": s.creator.id, "amountTokens": 50, "message": "hi",
                                    "context": {"callId": running_call.id}})
    assert resp.status_code == 201, resp.get_json()
    tip = resp.get_json()["tip"]
    assert tip["callId"] == running_call.id and tip["streamId"] is None
    assert tip["channel"] == running_call.channel  # both call pages listen there
    assert balance_of(s.fan) == before - 50
    assert [v.tip.id for v in tips.recent_tips(call_id=running_call.id)] == [tip["id"]]


def test_only_the_calls_fan_tips_its_creator_during_it(client, scene, running_call, make_fan, make_creator,
                                                        api_headers):
    s = scene
    stranger = make_fan(balance=1000)
    resp = send(client, api_headers(stranger), {"toCreatorId": s.creator.id, "amountTokens": 10,
                                                "context": {"callId": running_call.id}})
    assert_error(resp, 403, "not_a_participant")
    other_creator = make_creator()
    resp = send(client, s.headers, {"toCreatorId": other_creator.id, "amountTokens": 10,
                                    "context": {"callId": running_call.id}})
    assert_error(resp, 403, "context_mismatch")
    assert tips.recent_tips(call_id=running_call.id) == []


def test_no_tip_into_a_call_that_ended_nor_into_a_call_and_a_stream_at_once(client, scene, running_call, make_stream):
    from app.calls import service as calls
    s = scene
    public = make_stream(s.creator, title="Also live")
    resp = send(client, s.headers, {"toCreatorId": s.creator.id, "amountTokens": 10,
                                    "context": {"callId": running_call.id, "streamId": public.id}})
    assert_error(resp, 422)
    calls.end(s.fan, running_call.id)
    resp = send(client, s.headers, {"toCreatorId": s.creator.id, "amountTokens": 10,
                                    "context": {"callId": running_call.id}})
    assert_error(resp, 409, "call_not_running")
    assert tips.recent_tips(call_id=running_call.id) == []


@pytest.mark.parametrize("channel", ["s-does-not-exist", "", "x" * 64])
def test_context_with_an_unknown_channel_is_404(client, scene, channel):
    s = scene
    resp = send(client, s.headers, {"toCreatorId": s.creator.id, "amountTokens": 10,
                                    "context": {"channel": channel}})
    assert_error(resp, 404, "channel_not_found")
    assert_nothing_written(s)


def test_context_with_a_channel_that_is_not_the_streams_own_is_refused(client, scene, make_creator, make_stream):
    s = scene
    other_stream = make_stream(s.creator, title="Second show")
    resp = send(client, s.headers, {"toCreatorId": s.creator.id, "amountTokens": 10,
                                    "context": {"streamId": s.stream_id, "channel": other_stream.channel}})
    assert resp.status_code in (403, 404, 422)
    assert_error(resp, resp.status_code)
    assert_nothing_written(s)


@pytest.mark.parametrize("context,field", [
    ({"streamId": 1, "extra": 1}, "context"),
    ({"stream_id": 1}, "context"),
    ({"__proto__": {}}, "context"),
    ([1], "context"),
    ("s-abc", "context"),
    (5, "context"),
    (True, "context"),
    ({"streamId": "1"}, "context.streamId"),
    ({"streamId": True}, "context.streamId"),
    ({"streamId": 1.5}, "context.streamId"),
    ({"streamId": 0}, "context.streamId"),
    ({"channel": 123}, "context.channel"),
    ({"channel": "x" * 65}, "context.channel"),
], ids=["extra-key", "snake-case-key", "proto-key", "list", "string", "number", "bool", "stream-string",
        "stream-bool", "stream-float", "stream-zero", "channel-number", "channel-too-long"])
def test_malformed_context_is_422(client, scene, context, field):
    s = scene
    resp = send(client, s.headers, {"toCreatorId": s.creator.id, "amountTokens": 10, "context": context})
    assert_error(resp, 422, "invalid_value", field)
    assert_nothing_written(s)


# ---- malformed requests -----------------------------------------------------------

@pytest.mark.parametrize("bad", ["\x00", "\ud800", "\udc00"], ids=["nul", "lone-high-surrogate", "lone-low-surrogate"])
@pytest.mark.parametrize("where", ["message", "context.channel", "context key"])
def test_a_nul_byte_or_lone_surrogate_anywhere_in_the_body_is_400_invalid_text_and_writes_nothing(
        client, scene, where, bad):
    """Once a 500 (UnicodeEncodeError, psycopg.DataError): refused before the tip is looked at."""
    s = scene
    body = {"toCreatorId": s.creator.id, "amountTokens": 10, "message": "hi"}
    if where == "message":
        body["message"] = f"hi {bad} there"
    elif where == "context.channel":
        body["context"] = {"channel": s.channel + bad}
    else:
        body["context"] = {"channel" + bad: s.channel}
    assert_error(send(client, s.headers, body), 400, "invalid_text")
    assert_nothing_written(s)


def test_a_lone_surrogate_escape_is_refused_but_an_escaped_surrogate_pair_is_an_emoji(client, scene):
    s = scene

    def tip(message_json):
        body = '{"toCreatorId": %d, "amountTokens": 10, "message": "%s"}' % (s.creator.id, message_json)
        return client.post("/api/tips/send", content_type="application/json", data=body,
                           headers={**s.headers, "Idempotency-Key": str(uuid.uuid4())})
    assert_error(tip("\\ud83c"), 400, "invalid_text")
    assert_nothing_written(s)
    resp = tip("\\ud83c\\udf89")
    assert resp.status_code == 201, resp.get_data(as_text=True)
    assert resp.get_json()["tip"]["message"] == "\U0001f389"


@pytest.mark.parametrize("kwargs", [
    {"data": "[1, 2]", "content_type": "application/json"},
    {"data": '"tip"', "content_type": "application/json"},
    {"data": "null", "content_type": "application/json"},
    {"data": "not json", "content_type": "application/json"},
    {"data": "", "content_type": "application/json"},
    {"data": "toCreatorId=1&amountTokens=10", "content_type": "application/x-www-form-urlencoded"},
], ids=["array", "string", "null", "garbage", "empty", "form"])
def test_non_object_body_is_400(client, scene, kwargs):
    s = scene
    resp = client.post("/api/tips/send", headers={**s.headers, "Idempotency-Key": str(uuid.uuid4())}, **kwargs)
    assert_error(resp, 400)
    assert_nothing_written(s)


def test_missing_idempotency_key_is_400_and_writes_nothing(client, scene):
    s = scene
    resp = client.post("/api/tips/send", json={"toCreatorId": s.creator.id, "amountTokens": 10}, headers=s.headers)
    assert_error(resp, 400, "idempotency_key_required")
    assert_nothing_written(s)


@pytest.mark.parametrize("key,code", [("", "idempotency_key_required"), ("k" * 256, "invalid_idempotency_key")])
def test_blank_or_overlong_idempotency_key_is_400(client, scene, key, code):
    s = scene
    assert_error(send(client, s.headers, {"toCreatorId": s.creator.id, "amountTokens": 10}, key=key), 400, code)
    assert_nothing_written(s)


# ---- insufficient funds -----------------------------------------------------------------

@pytest.mark.parametrize("balance,amount", [(0, 1), (30, 100), (999, 1000), (1, MAX_TIP)])
def test_tip_above_the_balance_is_402_with_the_exact_shortfall_and_moves_nothing(
        client, make_fan, make_creator, api_headers, balance, amount):
    fan, creator = make_fan(balance=balance), make_creator()
    fees_before = platform_fees()
    resp = send(client, api_headers(fan), {"toCreatorId": creator.id, "amountTokens": amount, "message": "x"})
    body = assert_error(resp, 402, "insufficient_funds")
    assert body["required"] == amount - balance
    assert tips_of(fan.id) == 0 and balance_of(fan) == balance
    assert earnings_of(creator.id) == 0 and platform_fees() == fees_before
    assert ledger.verify() == []


def test_a_refused_tip_does_not_burn_its_key_the_retry_after_topping_up_succeeds(client, scene):
    s = scene
    body = {"toCreatorId": s.creator.id, "amountTokens": 1500, "confirm": True}
    assert send(client, s.headers, body, key="retry-after-topup").status_code == 402
    wallet.purchase_tokens(s.fan, 500, f"topup-{uuid.uuid4()}")
    resp = send(client, s.headers, body, key="retry-after-topup")
    assert resp.status_code == 201, resp.get_data(as_text=True)
    assert resp.get_json()["newBalance"] == 0


# ---- idempotency --------------------------------------------------------------------------

def test_same_key_same_body_returns_the_same_tip_and_debits_once(client, scene):
    s = scene
    body = {"toCreatorId": s.creator.id, "amountTokens": 100, "message": "again?",
            "context": {"streamId": s.stream_id}}
    first = send(client, s.headers, body, key="tip-replay")
    assert first.status_code == 201
    for _ in range(3):
        again = send(client, s.headers, body, key="tip-replay")
        assert again.status_code == 201
        assert again.get_json() == first.get_json()
    assert tips_of(s.fan.id) == 1
    assert balance_of(s.fan) == 900 and earnings_of(s.creator.id) == 80
    assert platform_fees() - s.fees_before == 20


def test_replay_after_a_later_tip_still_returns_the_first_balance(client, scene):
    s = scene
    body = {"toCreatorId": s.creator.id, "amountTokens": 100}
    first = send(client, s.headers, body, key="first").get_json()
    assert send(client, s.headers, body, key="second").get_json()["newBalance"] == 800
    assert send(client, s.headers, body, key="first").get_json() == first
    assert balance_of(s.fan) == 800


@pytest.mark.parametrize("change", [{"amountTokens": 101}, {"message": "different"}, {"context": None}],
                         ids=["amount", "message", "context"])
def test_same_key_with_different_parameters_is_409_and_moves_nothing(client, scene, change):
    s = scene
    body = {"toCreatorId": s.creator.id, "amountTokens": 100, "message": "first",
            "context": {"streamId": s.stream_id}}
    assert send(client, s.headers, body, key="conflict").status_code == 201
    assert_error(send(client, s.headers, {**body, **change}, key="conflict"), 409, "idempotency_key_reused")
    assert tips_of(s.fan.id) == 1 and balance_of(s.fan) == 900


def test_same_key_to_another_creator_is_409(client, scene, make_creator):
    s = scene
    assert send(client, s.headers, {"toCreatorId": s.creator.id, "amountTokens": 100}, key="k").status_code == 201
    other = make_creator()
    assert_error(send(client, s.headers, {"toCreatorId": other.id, "amountTokens": 100}, key="k"),
                 409, "idempotency_key_reused")
    assert earnings_of(other.id) == 0 and balance_of(s.fan) == 900


def test_a_purchase_key_reused_for_a_tip_is_409(client, scene):
    """Keys are per user across request kinds: a tip cannot replay a purchase."""
    s = scene
    bought = client.post("/api/tokens/purchase", json={"amountTokens": 500},
                         headers={**s.headers, "Idempotency-Key": "shared-kind"})
    assert bought.status_code == 201
    assert_error(send(client, s.headers, {"toCreatorId": s.creator.id, "amountTokens": 100}, key="shared-kind"),
                 409, "idempotency_key_reused")
    assert tips_of(s.fan.id) == 0


# ---- concurrency (real threads) --------------------------------------------------------------

def test_20_concurrent_tips_of_100_from_1000_tokens_exactly_10_succeed(app, make_fan, make_creator):
    """Service level: 10 tips, 10 InsufficientFunds, wallet 0, creator +800, platform +200, verify clean."""
    fan, creator = make_fan(balance=1000), make_creator()
    fan_id, creator_id = fan.id, creator.id
    fees_before = platform_fees()

    def tip(i):
        sender = db.session.get(User, fan_id)
        result = tips.send_tip(sender, creator_id, 100, f"storm {i}", None, f"storm-{uuid.uuid4()}")
        return result.new_balance

    results = run_together(app, 20, tip)
    ok = [r for r in results if isinstance(r, int)]
    refused = [r for r in results if isinstance(r, InsufficientFunds)]
    assert len(ok) == 10 and len(refused) == 10, results
    assert sorted(ok) == list(range(0, 1000, 100))
    assert all(r.required == 100 for r in refused)
    assert balance_of(fan) == 0
    assert earnings_of(creator_id) == 800
    assert platform_fees() - fees_before == 200
    assert tips_of(fan_id) == 10
    assert ledger.verify() == []


def test_20_concurrent_http_tips_of_100_from_1000_tokens_exactly_10_get_201(app, make_fan, make_creator,
                                                                             api_headers):
    fan, creator = make_fan(balance=1000), make_creator()
    headers = api_headers(fan)
    fees_before = platform_fees()

    def call(i):
        resp = app.test_client().post("/api/tips/send", json={"toCreatorId": creator.id, "amountTokens": 100},
                                      headers={**headers, "Idempotency-Key": f"http-storm-{i}-{uuid.uuid4()}"})
        return resp.status_code, resp.get_json()

    results = run_together(app, 20, call)
    statuses = [status for status, _ in results]
    assert statuses.count(201) == 10 and statuses.count(402) == 10, results
    assert sorted(body["newBalance"] for status, body in results if status == 201) == list(range(0, 1000, 100))
    assert all(body["code"] == "insufficient_funds" and body["required"] == 100
               for status, body in results if status == 402)
    assert balance_of(fan) == 0
    assert earnings_of(creator.id) == 800
    assert platform_fees() - fees_before == 200
    assert tips_of(fan.id) == 10
    assert ledger.verify() == []


def test_20_concurrent_http_replays_of_one_key_make_one_tip(app, make_fan, make_creator, api_headers):
    fan, creator = make_fan(balance=1000), make_creator()
    headers = api_headers(fan, **{"Idempotency-Key": f"one-key-{uuid.uuid4()}"})

    def call(i):
        resp = app.test_client().post("/api/tips/send", json={"toCreatorId": creator.id, "amountTokens": 100},
                                      headers=headers)
        return resp.status_code, resp.get_json()

    results = run_together(app, 20, call)
    assert {status for status, _ in results} == {201}, results
    assert len({str(body) for _, body in results}) == 1
    assert results[0][1]["newBalance"] == 900
    assert tips_of(fan.id) == 1 and balance_of(fan) == 900 and earnings_of(creator.id) == 80
    assert ledger.verify() == []


def test_many_fans_tipping_one_creator_at_once_all_land(app, make_fan, make_creator, api_headers):
    """The hot earnings account takes concurrent credits without losing one."""
    creator = make_creator()
    fans = [make_fan(balance=100) for _ in range(16)]
    headers = [api_headers(f) for f in fans]

    def call(i):
        resp = app.test_client().post("/api/tips/send", json={"toCreatorId": creator.id, "amountTokens": 100},
                                      headers={**headers[i], "Idempotency-Key": str(uuid.uuid4())})
        return resp.status_code

    assert run_together(app, 16, call) == [201] * 16
    assert earnings_of(creator.id) == 16 * 80
    assert all(balance_of(f) == 0 for f in fans)
    assert ledger.verify() == []


# ---- rate limits ------------------------------------------------------------------------------
#
# Per-second limits meet a loaded test machine: each attempt uses a fresh fan (a fresh
# counter) and reads X-RateLimit-Remaining to tell whether all its requests fell in one
# window. A window that rolled over mid-attempt proves nothing either way, so the attempt
# is repeated; anything else is judged.

def _remaining(resp) -> int:
    return int(resp.headers["X-RateLimit-Remaining"])


def test_a_4th_tip_in_the_same_second_is_429_json_under_a_3_per_second_limit(make_app, make_fan, make_creator,
                                                                               api_headers):
    limited = make_app(TIP_LIMIT_PER_USER="3 per second")
    client = limited.test_client()
    creator = make_creator()
    body = {"toCreatorId": creator.id, "amountTokens": 10}
    for _attempt in range(5):
        fan = make_fan(balance=1000)
        headers = api_headers(fan)
        first = [send(client, headers, body) for _ in range(3)]
        fourth = send(client, headers, body)
        assert [r.status_code for r in first] == [201, 201, 201], [r.get_data(as_text=True) for r in first]
        if [_remaining(r) for r in first] != [2, 1, 0]:
            continue  # the window rolled over between the first three
        if fourth.status_code == 201:
            assert _remaining(fourth) == 2, "a 4th tip in the same window got through"
            continue  # it landed in the next second
        assert_error(fourth, 429, "rate_limited")
        assert fourth.headers.get("Retry-After")
        assert tips_of(fan.id) == 3 and balance_of(fan) == 970
        break
    else:
        pytest.fail("could not send 4 tips within one second in 5 attempts")
    # The limit is per user: another fan tips freely in the same second.
    assert send(client, api_headers(make_fan(balance=100)), body).status_code == 201


def test_the_default_limit_lets_one_fan_send_at_least_30_tips_a_second(make_app, make_fan, make_creator,
                                                                        api_headers):
    """§10: a tip storm from one excited fan gets through (Config default "40 per second"):
    35 tips inside one one-second window, none is 429."""
    default = Config().TIP_LIMIT_PER_USER
    item = parse_limit(default)
    assert item.amount / item.get_expiry() >= 30, default
    storm = make_app(TIP_LIMIT_PER_USER=default)
    assert storm.config["TIP_LIMIT_PER_USER"] == default
    client = storm.test_client()
    creator = make_creator()
    for _attempt in range(5):
        fan = make_fan(balance=100)
        headers = api_headers(fan)
        responses = [send(client, headers, {"toCreatorId": creator.id, "amountTokens": 1}) for _ in range(35)]
        statuses = [r.status_code for r in responses]
        assert 429 not in statuses
        assert statuses == [201] * 35
        assert tips_of(fan.id) == 35 and balance_of(fan) == 65
        if [_remaining(r) for r in responses] == list(range(item.amount - 1, item.amount - 36, -1)):
            break  # all 35 were counted in one one-second window
    else:
        pytest.fail("could not send 35 tips within one second in 5 attempts")


# ---- Redis down -------------------------------------------------------------------------------

def test_with_redis_down_the_tip_still_commits(make_app, services, make_fan, make_creator, api_headers):
    """§5: Redis down ⇒ the tip commits; only the overlay (and the rate-limit counter) is missed."""
    db_url, _ = services
    no_redis = make_app((db_url, "redis://127.0.0.1:1/0"))
    fan, creator = make_fan(balance=500), make_creator()
    fees_before = platform_fees()
    resp = send(no_redis.test_client(), api_headers(fan), {"toCreatorId": creator.id, "amountTokens": 100,
                                                           "message": "still here"})
    assert resp.status_code == 201, resp.get_data(as_text=True)
    assert resp.get_json()["newBalance"] == 400
    assert balance_of(fan) == 400 and earnings_of(creator.id) == 80
    assert platform_fees() - fees_before == 20
    assert ledger.verify() == []
