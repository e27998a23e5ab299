"""No input yields a 500, and bad input changes nothing (DESIGN.md §7, issue 13).

Walks every route of `app.url_map` — JSON bodies, form fields, query args, path
parameters, the headers routes read, and the WebSocket handshakes of /ws/* over
real TCP — with hostile values: lone surrogates, NUL bytes, non-ASCII digits
("²", "¹²", "٣", "１２"), huge and negative numbers, floats, booleans, nulls,
lists and objects where scalars belong, empty and blank strings, 10,000
characters, markup and `http://[`. It does so as an anonymous client, a
logged-in fan and a logged-in creator (with a valid CSRF token, so requests get
past CSRF into the views), and with their API tokens on /api/ and /ws/.

Which fields a route reads is found by asking it: one probe request per route
and identity, with every field the API knows, records the keys the code reads
(`get`, `[]`, `in`); each of those is then made hostile in turn while the others
keep their base values. The base values are chosen so that no request can
complete an action: tips ask for more than the wallet holds, the stream form
carries two bad fields, the creator called takes no calls, path ids name other
people's things, sign-ups use a taken e-mail address. So everything sent here
must be refused, and afterwards the books are exactly as before.
"""
from __future__ import annotations

import json
import re
import uuid
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import quote, urlencode

import pytest
from sqlalchemy import literal, select, text
from werkzeug.datastructures import ImmutableMultiDict

from app.calls import service as calls
from app.extensions import db
from app.ledger.verify import verify
from app.streams.media import stream_key
from app.tips.service import overlay_secret
from app.wallet import service as wallet
from tests.conftest import csrf_from, fresh_client
from tests.realtime.helpers import handshake

# ---- the hostile values -------------------------------------------------------------------

HOSTILE_TEXT = [
    "\ud800", "x\udfffy", "\x00", "s-abc\x00def",  # lone surrogates, NUL bytes
    "\u00b2", "\u00b9\u00b2", "\u0663", "\uff11\uff12",  # ², ¹², Arabic-Indic 3, fullwidth 12
    str(10**30), str(2**63), "-1", "0", "1.5", "1e3",
    "", " ", "\t\r\n", "x" * 10_000, "<script>alert(1)</script>", "http://[", "true", "null",
]
HOSTILE_JSON = [*HOSTILE_TEXT, 10**30, 2**63, -1, 0, 1.5, float("nan"), True, False, None, [], ["x"], {},
                {"k": "\ud800"}]
# Header values must be Latin-1 without line breaks; these are the ones routes read.
HOSTILE_HEADERS = {"HX-Current-URL": "http://[", "HX-Target": "call-state-\u00b2", "Referer": "http://[",
                   "HX-History-Restore-Request": "true", "X-Billing-Secret": "http://[", "Origin": "http://["}
SKIP_ENDPOINTS = {"static"}
# Actions that take no input at all; done by a logged-in user they log out or change the role.
NO_INPUT_SESSION_ACTIONS = {"auth.logout", "auth.logout_everywhere", "auth.become_creator"}
# Likewise for a bearer client: revokes the token it is sent with.
NO_INPUT_TOKEN_ACTIONS = {"auth_api.revoke_current_token"}
NESTED = ("streamId", "callId", "channel")  # `context` in a tip
_ARG = re.compile(r"<(?:(?P<converter>\w+)(?:\((?P<options>[^)]*)\))?:)?(?P<name>\w+)>")


def as_query(pairs) -> str:
    """URL-encode text that may hold lone surrogates (sent as the bytes a broken client would)."""
    return urlencode([(k, v.encode("utf-8", "surrogatepass") if isinstance(v, str) else str(v)) for k, v in pairs])


def as_path_value(value: str) -> str:
    return quote(value.encode("utf-8", "surrogatepass"), safe="")


def form_text(value) -> str:
    return value if isinstance(value, str) else json.dumps(value)


# ---- recording which fields a route reads -------------------------------------------------------

READ: set[str] = set()


class _RecordingDict(dict):
    def get(self, key, default=None):
        READ.add(key)
        return super().get(key, default)

    def __getitem__(self, key):
        READ.add(key)
        return super().__getitem__(key)

    def __contains__(self, key):
        READ.add(key)
        return super().__contains__(key)


class _RecordingMultiDict(ImmutableMultiDict):
    def get(self, key, default=None, type=None):
        READ.add(key)
        return super().get(key, default, type)

    def __getitem__(self, key):
        READ.add(key)
        return super().__getitem__(key)

    def getlist(self, key, type=None):
        READ.add(key)
        return super().getlist(key, type)

    def __contains__(self, key):
        READ.add(key)
        return super().__contains__(key)


@pytest.fixture()
def recording(app, monkeypatch):
    """Make the app's parsed JSON objects, query args and form fields note the keys read."""
    class RecordingRequest(app.request_class):
        parameter_storage_class = _RecordingMultiDict

    provider = app.json
    monkeypatch.setattr(app, "request_class", RecordingRequest)
    monkeypatch.setattr(provider, "loads", lambda s, **kw: json.loads(s, object_hook=_RecordingDict, **kw))


# ---- the people and things the requests name --------------------------------------------------------

@dataclass
class Actor:
    name: str
    client: object
    headers: dict
    bearer: bool = False
    session: bool = False


@dataclass
class Outcome:
    sent: int = 0
    failures: list = field(default_factory=list)

    def check(self, status: int, who: str, method: str, url: str, what: str, endpoint: str) -> None:
        self.sent += 1
        if status >= 500:
            self.failures.append((endpoint, f"{status} {who} {method} {url[:160]!r} {what[:200]}"))

    def report(self, what: str) -> str:
        """Which routes failed how often, then the first failures in full (route and input)."""
        counts = Counter(endpoint for endpoint, _ in self.failures)
        return (f"{len(self.failures)} of {self.sent} {what} got a 5xx, by route: {dict(counts)}\n"
                + "\n".join(line for _, line in self.failures[:40]))


@pytest.fixture()
def world(app, ctx, make_fan, make_creator, make_call, api_headers, make_stream):
    """Our fan (1,000 tokens) and creator, and another creator's stream, overlay and call
    (with another fan) that path parameters name: ours may look, never act."""
    fan, creator = make_fan(balance=1000), make_creator()
    other_creator, other_fan = make_creator(), make_fan(balance=1000)
    stream = make_stream(other_creator, title="Their show", live=True)
    stream_key(other_creator)  # so the media hook reads the credentials it is sent
    call_id = make_call(rate=60, present=False, accept=False, fan=other_fan, creator=other_creator).call_id
    calls.update_settings(other_creator, 60, False)  # so our fan's call requests are refused (409)
    transfer_id = db.session.scalar(text("SELECT transfer_id FROM purchases WHERE user_id = :u LIMIT 1"),
                                    {"u": other_fan.id})
    api_headers(other_fan)  # a token of theirs, and a browser session of theirs, for the paths to name
    other_browser = fresh_client(app)
    other_browser.post("/login", data={"email": other_fan.email, "password": other_fan.test_password,
                                       "csrf_token": csrf_from(other_browser, "/login")})
    their = {kind: db.session.scalar(text(f"SELECT max(id) FROM {table} WHERE user_id = :u"), {"u": other_fan.id})
             for kind, table in (("session_id", "user_sessions"), ("token_id", "api_tokens"))}
    purchase_id = db.session.scalar(text("SELECT id FROM purchases WHERE user_id = :u LIMIT 1"), {"u": other_fan.id})
    payout_id = _their_payout(app, other_creator, make_fan)
    message_id = _their_chat(stream, other_fan, other_creator, (fan, creator))
    from app.tipmenu.service import replace_menu
    (their_item,) = replace_menu(other_creator, [{"label": "Their song", "priceTokens": 50}])
    real = {"stream_id": str(stream.id), "call_id": str(call_id), "transfer_id": str(transfer_id),
            "purchase_id": str(purchase_id), "payout_id": str(payout_id),
            "channel": stream.channel, "secret": overlay_secret(other_creator), "filename": "css/app.css",
            # A fan is no creator: following them is refused (404); the page and avatar are read-only.
            "creator_id": str(fan.id), "handle": other_creator.handle, "user_id": str(other_creator.id),
            **{kind: str(value) for kind, value in their.items()}}
    real["notification_id"] = str(_their_notification(other_fan))
    # A tip to the other creator whose message waits for their approval: ours may not decide it.
    from app.alerts.service import update_settings as set_alerts
    set_alerts(other_creator, 0, False, True)
    real["tip_id"] = str(send_tip_for_world(other_fan, other_creator))
    real["message_id"] = str(message_id)  # a chat message in their show

    def session_actor(name, user):
        client = fresh_client(app)
        csrf = csrf_from(client, "/login")
        resp = client.post("/login", data={"email": user.email, "password": user.test_password, "csrf_token": csrf})
        assert resp.status_code == 303
        return Actor(name, client, {"X-CSRFToken": csrf_from(client, "/wallet")}, session=True)

    anonymous = fresh_client(app)
    actors = [Actor("anonymous", anonymous, {"X-CSRFToken": csrf_from(anonymous, "/login")}),
              session_actor("fan", fan), session_actor("creator", creator),
              Actor("fan-bearer", fresh_client(app), api_headers(fan), bearer=True),
              Actor("creator-bearer", fresh_client(app), api_headers(creator), bearer=True)]
    base = {
        "email": fan.email, "password": "wrong-password-1", "displayName": "Fuzz", "role": "fan",
        "amountTokens": 5000,  # more than either wallet holds: a tip is refused 402 at the very end
        "toCreatorId": other_creator.id, "message": "hi", "context": {"streamId": stream.id},
        "type": "private", "title": "Fuzz", "ticketPrice": 0, "startsAt": "soon",  # two bad fields
        "callRateTokensPerMin": 0, "callsEnabled": "yes",  # two bad fields
        "creatorId": other_creator.id, "rate_tokens_per_min": 60, "rate": "60",  # not taking calls: 409
        "customAmount": "", "streamId": stream.id, "callId": "", "idempotency_key": str(uuid.uuid4()),
        "range": "7d", "page": "1", "topup": "100", "creator": other_creator.id, "stream": stream.id,
        "call": call_id, "next": "/wallet",
        "action": "publish", "path": f"stream/{stream.id}", "token": "wrong", "user": "u", "query": "",
        "handle": "x", "bio": "x" * 501, "q": "fuzz",  # a profile with two bad fields
        "minTokens": -1, "profanityFilter": "yes", "requireApproval": "no", "sound": "kazoo",  # alerts: all bad
        "list": "x",
        # Chat: ours are banned from their rooms (every message refused); a ban names oneself.
        "text": "hi", "userId": creator.id, "minutes": 0,
        "targetTokens": 0,  # a goal's target: refused (and only a stream's creator may set one)
        # The live room (issue 18): a menu tip at a price that isn't the item's (409), a menu row
        # with two bad fields, a spending cap of 0.
        "menuItemId": their_item.id, "confirm": False, "items": [{"label": "", "priceTokens": 0}],
        "label": "", "priceTokens": "0", "op": "save", "dailySpendTokens": 0,
    }
    # Kept in every request: an empty stream form is a valid one (a public show with a default
    # title), so "every field hostile" would create streams without this one bad field.
    anchors = {"startsAt": "soon", "bio": "x" * 501}  # and "true" is a valid handle
    # A purchase has one field, and any valid amount buys: its base amount is refused too.
    base_for = {"wallet_api.purchase": {"amountTokens": 0}, "wallet.purchase": {"amountTokens": "0"}}
    yield dict(fan=fan, creator=creator, actors=actors, real=real, base=base, base_for=base_for, anchors=anchors)


def send_tip_for_world(fan, creator) -> int:
    from app.tips.service import send_tip
    return send_tip(fan, creator.id, 10, "waiting", None, str(uuid.uuid4())).tip.id


def _their_payout(app, creator, make_fan) -> int:
    """A payout of `creator`'s, awaiting its transfer (no worker runs here): 2,000 tokens
    earned by a tip, a ready payout account, and the clock past the hold while asking."""
    from app.payouts.models import PayoutAccount
    from app.payouts.service import request_payout
    from app.tips.service import send_tip
    from tests.clock import Clock, install_clock, restore_clock
    send_tip(make_fan(balance=2500), creator.id, 2500, "", None, str(uuid.uuid4()), confirmed=True)
    db.session.add(PayoutAccount(user_id=creator.id, stripe_account_id=f"acct_hostile_{creator.id}",
                                 payouts_enabled=True, details_submitted=True))
    db.session.commit()
    clock = Clock()
    previous = install_clock(app, clock)
    try:
        clock.advance(days=30)
        return request_payout(creator, 2000, str(uuid.uuid4())).payout.id
    finally:
        restore_clock(app, previous)


def _their_chat(stream, author, creator, banned) -> int:
    """A message of `author`'s in `stream`'s chat, and `creator`'s bans of each of `banned`
    (so no chat message of theirs can be posted there)."""
    from app.chat import service as chat
    for user in banned:
        chat.ban_user(creator, user.id)
    return chat.post_message(author, stream.id, "their message").id


def _their_notification(user) -> int:
    """A notification of `user`'s (unread), for /notifications/<id> to name."""
    from app.notifications import service as notifications
    notifications.notify_many(select(literal(user.id)), "live", "Their show is live", "/", f"hostile:{user.id}")
    return db.session.scalar(text("SELECT max(id) FROM notifications WHERE user_id = :u"), {"u": user.id})


def snapshot(fan) -> dict:
    db.session.rollback()
    counts = {t: db.session.scalar(text(f"SELECT count(*) FROM {t}"))
              for t in ("ledger_transfers", "ledger_entries", "tips", "purchases", "tickets", "calls", "streams",
                        "users", "idempotency_keys", "user_sessions", "api_tokens", "payouts",
                        "chat_messages", "chat_bans", "stream_goals")}
    unread = db.session.scalar(text("SELECT count(*) FROM notifications WHERE read_at IS NULL"))
    return {"fan balance": wallet.wallet_balance(fan), **counts, "unread notifications": unread}


# ---- building and sending requests -------------------------------------------------------------

def targets(app):
    """(rule, method) for every HTTP route (WebSocket routes are walked over TCP below)."""
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        if rule.endpoint in SKIP_ENDPOINTS or rule.websocket:
            continue
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            yield rule, method


def build_path(rule, real: dict, hostile: dict | None = None) -> str:
    def value(m):
        name = m["name"]
        if hostile and name in hostile:
            return hostile[name]
        if m["converter"] == "any":
            return m["options"].split(",")[0].strip()
        return real[name]
    return _ARG.sub(value, rule.rule)


def path_values(real: str) -> list[str]:
    """Hostile path segments: each hostile text instead of the real value, and after it
    (a real overlay secret or channel with a NUL byte still fits the lookup)."""
    whole = [*HOSTILE_TEXT, str(2**63 - 1), str(-(2**63))]
    suffixes = ["\x00", "\ud800", "\u00b2", "\u0663", "\uff11"]
    return ([as_path_value(v) for v in whole] + [as_path_value(real + v) for v in suffixes]
            + ["%2e%2e%2f%2e%2e%2fetc%2fpasswd"])


def speaks_json(rule) -> bool:
    return rule.rule.startswith("/api/") or rule.endpoint == "streams.media_auth"


def actors_for(rule, actors):
    """Bearer tokens count on /api/ only; anywhere else they are the anonymous client again."""
    return [a for a in actors if (not a.bearer or rule.rule.startswith("/api/"))
            and not (a.session and rule.endpoint in NO_INPUT_SESSION_ACTIONS)
            and not (a.bearer and rule.endpoint in NO_INPUT_TOKEN_ACTIONS)]


def send(outcome: Outcome, actor: Actor, rule, method: str, path: str, fields: dict | None, *, htmx: bool,
         headers: dict | None = None, as_json: bool | None = None):
    """One request: `fields` go in the query (GET), else in a JSON or form body."""
    as_json = speaks_json(rule) if as_json is None else as_json
    all_headers = {**actor.headers, **(headers or {})}
    if htmx:
        all_headers["HX-Request"] = "true"
    kwargs = {}
    url = path
    if method == "GET":
        if fields:
            url = f"{path}?{as_query((k, form_text(v)) for k, v in fields.items())}"
    elif as_json:
        kwargs = dict(data=json.dumps(fields or {}), content_type="application/json")
        all_headers.setdefault("Idempotency-Key", str(uuid.uuid4()))
    else:
        kwargs = dict(data=as_query((k, form_text(v)) for k, v in (fields or {}).items()),
                      content_type="application/x-www-form-urlencoded")
    resp = actor.client.open(url, method=method, headers=all_headers, **kwargs)
    outcome.check(resp.status_code, actor.name, method, url, f"fields={fields!r:.150} headers={headers!r:.100}",
                  rule.endpoint)
    return resp


# ---- the walk -------------------------------------------------------------------------------------

def test_no_route_answers_any_hostile_input_with_a_5xx_and_none_changes_anything(app, world, recording):
    w = world
    before = snapshot(w["fan"])
    outcome = Outcome()
    for rule, method in targets(app):
        base = {**w["base"], **w["base_for"].get(rule.endpoint, {})}
        values = HOSTILE_JSON if speaks_json(rule) and method != "GET" else HOSTILE_TEXT

        def all_hostile(value):
            return {**{k: value for k in base}, **w["anchors"]}
        for actor in actors_for(rule, w["actors"]):
            path = build_path(rule, w["real"])
            # Every field hostile at once, with the hostile headers routes read.
            for i, value in enumerate(values):
                send(outcome, actor, rule, method, path, all_hostile(value), htmx=i % 2 == 0,
                     headers=HOSTILE_HEADERS if i % 3 == 0 else None)
            # The body in the other encoding (a JSON page post, a form API post); only values
            # refused whatever the route: the route itself sees an empty form or no JSON.
            if method != "GET":
                for value in ("\x00", "\ud800", "x" * 10_000):
                    send(outcome, actor, rule, method, path, all_hostile(value), htmx=False,
                         as_json=not speaks_json(rule))
            # Each field the route reads, hostile in turn, the others as in the base.
            READ.clear()
            send(outcome, actor, rule, method, path, base, htmx=False)
            fields = sorted(READ - {"csrf_token"})
            if "context" in fields:
                fields += [f"context.{k}" for k in NESTED]
            for name in fields:
                for i, value in enumerate(values):
                    body = dict(base)
                    if name.startswith("context."):
                        body["context"] = {**base["context"], name.split(".", 1)[1]: value}
                    else:
                        body[name] = value
                    send(outcome, actor, rule, method, path, body, htmx=i % 2 == 1)
        # Path parameters, one at a time (an anonymous client and a fan with its token where it counts).
        for m in _ARG.finditer(rule.rule):
            for actor in [a for a in actors_for(rule, w["actors"]) if a.name in ("anonymous", "fan", "fan-bearer")]:
                for raw in path_values(w["real"].get(m["name"], "")):
                    send(outcome, actor, rule, method, build_path(rule, w["real"], {m["name"]: raw}), None,
                         htmx=False)

    assert not outcome.failures, outcome.report("requests")
    assert snapshot(w["fan"]) == before
    assert verify() == []


def test_no_websocket_handshake_answers_hostile_input_with_a_5xx_and_none_changes_anything(
        app, live_server, world):
    w = world
    before = snapshot(w["fan"])
    fan_session = next(a for a in w["actors"] if a.name == "fan").client.get_cookie("session").value
    identities = {"anonymous": {}, "fan-cookie": {"Cookie": f"session={fan_session}"},
                  **{a.name: {"Authorization": a.headers["Authorization"]} for a in w["actors"] if a.bearer}}
    outcome = Outcome()
    ws_rules = [r for r in app.url_map.iter_rules() if r.websocket]
    assert {r.endpoint for r in ws_rules} >= {"realtime.channel_socket", "realtime.me_socket",
                                              "tips_live.overlay_socket", "calls_live.call_signal_socket"}
    for rule in ws_rules:
        requests = []
        for m in _ARG.finditer(rule.rule):
            for raw in path_values(w["real"][m["name"]]):
                requests.append((build_path(rule, w["real"], {m["name"]: raw}), {}))
        path = build_path(rule, w["real"])
        for value in ("\x00", "\ud800", "\u00b2"):
            requests.append((f"{path}?{as_query([('x', value), ('channel', value)])}", {}))
        for origin in ("http://[", "http://[::1", "null", "http://evil.example", "\u00e9"):
            requests.append((path, {"Origin": origin}))
        for url, headers in requests:
            for name, identity in identities.items():
                hs = handshake(live_server, url, {**identity, **headers})
                outcome.check(hs.status, name, "GET", url, f"headers={headers} answer={hs.body[:200]!r}",
                              rule.endpoint)
    assert not outcome.failures, outcome.report("handshakes")
    assert snapshot(w["fan"]) == before
    assert verify() == []
