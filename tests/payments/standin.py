"""A local stand-in of the few Stripe HTTP endpoints the app calls, for the real
`stripe` SDK to talk to (STRIPE_API_BASE), and the real webhook signing scheme.

Stripe's HTTP API is the one outside service tests may stand in for (DEVELOPERS'
non-negotiable 3). To stay honest the stand-in:

* checks the API key (Bearer) and the parameters each endpoint needs, and refuses
  what Stripe would refuse (400 with Stripe's error shape);
* honours `Idempotency-Key` like Stripe: the same key with the same parameters
  replays the first answer, with other parameters is a 400 idempotency error;
* records every request (`requests`: method, path, parsed params, idempotency
  key) so tests can assert on amount, currency, key and destination;
* builds events (`event`) and signs them (`sign`) with HMAC-SHA256 over
  "<t>.<payload>", exactly as Stripe does, and can deliver them itself to
  `webhook_url` (browser tests: the hosted Checkout and onboarding pages).

Hosted pages: `/pay/<session>` (Checkout: "Pay" marks the session paid, sends
`checkout.session.completed` unless `drop_webhooks`, and redirects to the
success URL) and `/onboard/<account>` (enables payouts, sends `account.updated`
signed with the Connect secret, redirects to the return URL).
"""
from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from html import escape
from urllib.parse import parse_qsl

import requests
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

API_KEY = "sk_test_standin"
WEBHOOK_SECRET = "whsec_standin_platform"
CONNECT_WEBHOOK_SECRET = "whsec_standin_connect"


def sign(payload: str | bytes, secret: str, timestamp: int | None = None) -> str:
    """The Stripe-Signature header for `payload` (Stripe's scheme: v1 = HMAC-SHA256 of "<t>.<payload>")."""
    if isinstance(payload, bytes):
        payload = payload.decode()
    t = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{t}.{payload}".encode(), hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def nested(pairs) -> dict:
    """Stripe's form encoding (`a[b][0][c]=v`) back into dicts and lists."""
    root: dict = {}
    for key, value in pairs:
        parts = key.replace("]", "").split("[")
        node = root
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            if isinstance(node, list):
                index = int(part)
                while len(node) <= index:
                    node.append({})
                if last:
                    node[index] = value
                else:
                    if not isinstance(node[index], (dict, list)) or node[index] == {}:
                        node[index] = [] if parts[i + 1].isdigit() else {}
                    node = node[index]
            else:
                if last:
                    node[part] = value
                else:
                    node = node.setdefault(part, [] if parts[i + 1].isdigit() else {})
    return root


class StripeRefusal(Exception):
    def __init__(self, message: str, status: int = 400, code: str = "parameter_invalid", type_: str =
                 "invalid_request_error"):
        super().__init__(message)
        self.status, self.code, self.type = status, code, type_


@dataclass
class Recorded:
    method: str
    path: str
    params: dict
    idempotency_key: str | None


@dataclass
class StandIn:
    url: str = ""
    webhook_url: str | None = None
    # Hosted pages pay but their webhooks are lost (a reconciliation test).
    drop_webhooks: bool = False
    # Transfers to these destinations fail, like a closed account would.
    failing_destinations: set = field(default_factory=set)
    # While set, every API request fails with a 500 (Stripe having a bad day).
    outage: bool = False
    # While an Event, a newly made transfer's answer waits for it to be set (the transfer
    # exists, its caller has no answer yet: a fault test kills the caller meanwhile);
    # `transfer_made` is set when one is waiting. A replay of its key is answered at once.
    hold_transfers: threading.Event | None = None
    transfer_made: threading.Event = field(default_factory=threading.Event)
    requests: list = field(default_factory=list)
    sessions: dict = field(default_factory=dict)
    charges: dict = field(default_factory=dict)  # payment_intent id -> charge
    accounts: dict = field(default_factory=dict)
    transfers: dict = field(default_factory=dict)
    refunds: dict = field(default_factory=dict)
    delivered: list = field(default_factory=list)
    _idempotency: dict = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # ---- what tests use ---------------------------------------------------

    def calls(self, method: str, path_prefix: str) -> list[Recorded]:
        return [r for r in self.requests if r.method == method and r.path.startswith(path_prefix)]

    def event(self, type_: str, obj: dict, *, account: str | None = None, event_id: str | None = None,
              created: int | None = None) -> dict:
        body = {"id": event_id or f"evt_{uuid.uuid4().hex[:24]}", "object": "event", "type": type_,
                "api_version": "2025-01-01", "created": created or int(time.time()), "livemode": False,
                "data": {"object": obj}}
        if account:
            body["account"] = account
        return body

    def deliver(self, event: dict, *, secret: str = WEBHOOK_SECRET) -> requests.Response:
        """POST the signed event to `webhook_url`, as Stripe would."""
        payload = json.dumps(event)
        resp = requests.post(self.webhook_url, data=payload, timeout=30,
                             headers={"Content-Type": "application/json", "Stripe-Signature": sign(payload, secret)})
        self.delivered.append((event, resp.status_code))
        return resp

    def pay(self, session_id: str, *, async_payment: bool = False) -> dict:
        """The buyer paid at Checkout: the session completes and its charge exists.
        Returns the `checkout.session.completed` event (not delivered)."""
        session = self.sessions[session_id]
        intent = f"pi_{uuid.uuid4().hex[:24]}"
        session.update(status="complete", payment_status="unpaid" if async_payment else "paid",
                       payment_intent=intent)
        self.charges[intent] = {"id": f"ch_{uuid.uuid4().hex[:24]}", "object": "charge", "payment_intent": intent,
                                "amount": session["amount_total"], "amount_refunded": 0,
                                "currency": session["currency"], "refunded": False,
                                "metadata": dict(session["metadata"])}
        return self.event("checkout.session.completed", dict(session))

    def expire(self, session_id: str) -> dict:
        session = self.sessions[session_id]
        session.update(status="expired")
        return self.event("checkout.session.expired", dict(session))

    def charge_refunded(self, intent: str, amount_refunded: int) -> dict:
        charge = self.charges[intent]
        charge.update(amount_refunded=amount_refunded, refunded=amount_refunded >= charge["amount"])
        return self.event("charge.refunded", dict(charge))

    def dispute(self, intent: str, type_: str = "charge.dispute.created", status: str = "needs_response",
                dispute_id: str | None = None) -> dict:
        charge = self.charges[intent]
        return self.event(type_, {"id": dispute_id or f"dp_{uuid.uuid4().hex[:24]}", "object": "dispute",
                                  "amount": charge["amount"], "currency": charge["currency"],
                                  "charge": charge["id"], "payment_intent": intent, "status": status})

    def account_updated(self, account_id: str, payouts_enabled: bool = True) -> dict:
        account = self.accounts[account_id]
        account.update(payouts_enabled=payouts_enabled, details_submitted=True, charges_enabled=payouts_enabled)
        return self.event("account.updated", dict(account), account=account_id)

    # ---- the HTTP side ----------------------------------------------------

    def __call__(self, environ, start_response):
        request = Request(environ)
        try:
            if request.path.startswith("/v1/"):
                response = self._api(request)
            else:
                response = self._hosted(request)
        except StripeRefusal as err:
            response = Response(json.dumps({"error": {"type": err.type, "code": err.code, "message": str(err)}}),
                                err.status, content_type="application/json")
        return response(environ, start_response)

    def _api(self, request: Request) -> Response:
        if request.headers.get("Authorization") != f"Bearer {API_KEY}":
            raise StripeRefusal("Invalid API Key provided.", 401, "api_key_invalid", "authentication_error")
        if request.method == "POST" and request.content_type != "application/x-www-form-urlencoded":
            raise StripeRefusal(f"unexpected content type {request.content_type}")
        params = nested(parse_qsl(request.get_data(as_text=True), keep_blank_values=True))
        if request.method == "GET":
            params = nested(request.args.items(multi=True))
        key = request.headers.get("Idempotency-Key")
        with self._lock:
            self.requests.append(Recorded(request.method, request.path, params, key))
            if self.outage:
                raise StripeRefusal("Stripe is having a bad day.", 500, "api_error", "api_error")
            if request.method == "POST" and key:
                seen = self._idempotency.get(key)
                if seen is not None:
                    if seen[0] != (request.path, params):
                        raise StripeRefusal("Keys for idempotent requests can only be used with the same "
                                            "parameters they were first used with.", 400, "idempotency_error",
                                            "idempotency_error")
                    return self._json(seen[1])
            body = self._route(request.method, request.path, params)
            if request.method == "POST" and key:
                self._idempotency[key] = ((request.path, params), body)
        if request.method == "POST" and request.path == "/v1/transfers" and self.hold_transfers is not None:
            self.transfer_made.set()
            self.hold_transfers.wait(60)
        return self._json(body)

    @staticmethod
    def _json(body: dict) -> Response:
        return Response(json.dumps(body), 200, content_type="application/json")

    def _route(self, method: str, path: str, p: dict) -> dict:
        parts = path.strip("/").split("/")[1:]
        if method == "POST" and parts == ["checkout", "sessions"]:
            return self._create_session(p)
        if method == "GET" and parts[:2] == ["checkout", "sessions"] and len(parts) == 3:
            return self._found(self.sessions, parts[2])
        if method == "POST" and parts == ["refunds"]:
            return self._create_refund(p)
        if method == "POST" and parts == ["accounts"]:
            return self._create_account(p)
        if method == "GET" and parts[0] == "accounts" and len(parts) == 2:
            return self._found(self.accounts, parts[1])
        if method == "POST" and parts == ["account_links"]:
            return self._create_link(p)
        if method == "POST" and parts == ["transfers"]:
            return self._create_transfer(p)
        raise StripeRefusal(f"Unrecognized request URL ({method}: {path}).", 404, "resource_missing")

    @staticmethod
    def _found(table: dict, key: str) -> dict:
        if key not in table:
            raise StripeRefusal(f"No such object: '{key}'", 404, "resource_missing")
        return table[key]

    @staticmethod
    def _need(p: dict, *names: str) -> None:
        for name in names:
            node = p
            for part in name.split("."):
                node = node.get(part) if isinstance(node, dict) else (
                    node[int(part)] if isinstance(node, list) and part.isdigit() and int(part) < len(node) else None)
                if node in (None, ""):
                    raise StripeRefusal(f"Missing required param: {name}.", 400, "parameter_missing")

    @staticmethod
    def _amount(raw: str, name: str) -> int:
        if not (raw.isascii() and raw.isdigit()) or int(raw) < 1 or int(raw) > 99_999_999:
            raise StripeRefusal(f"Invalid integer: {raw}", 400, "parameter_invalid_integer")
        return int(raw)

    def _create_session(self, p: dict) -> dict:
        self._need(p, "mode", "success_url", "cancel_url", "line_items.0.quantity",
                   "line_items.0.price_data.currency", "line_items.0.price_data.unit_amount",
                   "line_items.0.price_data.product_data.name")
        if p["mode"] != "payment":
            raise StripeRefusal("mode must be payment here")
        item = p["line_items"][0]
        amount = self._amount(item["price_data"]["unit_amount"], "unit_amount") * int(item["quantity"])
        session_id = f"cs_test_{uuid.uuid4().hex}"
        session = {"id": session_id, "object": "checkout.session", "mode": "payment", "status": "open",
                   "payment_status": "unpaid", "amount_total": amount,
                   "currency": item["price_data"]["currency"].lower(),
                   "client_reference_id": p.get("client_reference_id"), "metadata": p.get("metadata", {}),
                   "payment_intent": None, "success_url": p["success_url"], "cancel_url": p["cancel_url"],
                   "url": f"{self.url}/pay/{session_id}"}
        self.sessions[session_id] = session
        return session

    def _create_refund(self, p: dict) -> dict:
        self._need(p, "payment_intent")
        charge = self.charges.get(p["payment_intent"])
        if charge is None:
            raise StripeRefusal(f"No such payment_intent: '{p['payment_intent']}'", 404, "resource_missing")
        amount = self._amount(p["amount"], "amount") if "amount" in p else charge["amount"] - charge["amount_refunded"]
        if amount > charge["amount"] - charge["amount_refunded"]:
            raise StripeRefusal("Refund amount is greater than unrefunded amount on charge.", 400,
                                "amount_too_large")
        refund = {"id": f"re_{uuid.uuid4().hex[:24]}", "object": "refund", "amount": amount,
                  "payment_intent": p["payment_intent"], "charge": charge["id"], "status": "succeeded",
                  "metadata": p.get("metadata", {})}
        self.refunds[refund["id"]] = refund
        charge["amount_refunded"] += amount
        charge["refunded"] = charge["amount_refunded"] >= charge["amount"]
        if self.webhook_url and not self.drop_webhooks:
            event = self.event("charge.refunded", dict(charge))
            threading.Thread(target=self.deliver, args=(event,), daemon=True).start()
        return refund

    def _create_account(self, p: dict) -> dict:
        self._need(p, "type")
        if p["type"] != "express":
            raise StripeRefusal("type must be express here")
        account_id = f"acct_{uuid.uuid4().hex[:16]}"
        account = {"id": account_id, "object": "account", "type": "express", "email": p.get("email"),
                   "metadata": p.get("metadata", {}), "payouts_enabled": False, "charges_enabled": False,
                   "details_submitted": False}
        self.accounts[account_id] = account
        return account

    def _create_link(self, p: dict) -> dict:
        self._need(p, "account", "type", "refresh_url", "return_url")
        self._found(self.accounts, p["account"])
        self.accounts[p["account"]]["_return_url"] = p["return_url"]
        return {"object": "account_link", "url": f"{self.url}/onboard/{p['account']}",
                "expires_at": int(time.time()) + 300}

    def _create_transfer(self, p: dict) -> dict:
        self._need(p, "amount", "currency", "destination")
        amount = self._amount(p["amount"], "amount")
        account = self._found(self.accounts, p["destination"])
        if p["destination"] in self.failing_destinations or not account.get("payouts_enabled"):
            raise StripeRefusal("Your destination account needs to have at least one of the following "
                                "capabilities enabled: transfers", 400, "insufficient_capabilities_for_transfer")
        transfer = {"id": f"tr_{uuid.uuid4().hex[:24]}", "object": "transfer", "amount": amount,
                    "currency": p["currency"], "destination": p["destination"], "metadata": p.get("metadata", {})}
        self.transfers[transfer["id"]] = transfer
        return transfer

    def _hosted(self, request: Request) -> Response:
        if request.path == "/favicon.ico":  # the browser asks on every hosted page; a 404 is a console error
            return Response(status=204)
        parts = request.path.strip("/").split("/")
        if len(parts) == 2 and parts[0] == "pay" and parts[1] in self.sessions:
            session = self.sessions[parts[1]]
            if request.method == "POST":
                event = self.pay(parts[1])
                if self.webhook_url and not self.drop_webhooks:
                    self.deliver(event)
                return Response("", 303, headers={"Location": session["success_url"]})
            return self._page(f"Pay {session['amount_total'] / 100:.2f} {session['currency'].upper()}",
                              f"/pay/{parts[1]}", "Pay", session["cancel_url"])
        if len(parts) == 2 and parts[0] == "onboard" and parts[1] in self.accounts:
            account = self.accounts[parts[1]]
            if request.method == "POST":
                event = self.account_updated(parts[1])
                if self.webhook_url and not self.drop_webhooks:
                    self.deliver(event, secret=CONNECT_WEBHOOK_SECRET)
                return Response("", 303, headers={"Location": account["_return_url"]})
            return self._page("Set up your payouts", f"/onboard/{parts[1]}", "Finish setup", None)
        return Response("not found", 404)

    @staticmethod
    def _page(title: str, action: str, button: str, cancel: str | None) -> Response:
        back = f'<a href="{escape(cancel)}">Back</a>' if cancel else ""
        # An icon of its own, as Stripe's pages have: else the browser asks for /favicon.ico (a 404 console error).
        html = (f"<!doctype html><html lang=en><title>{escape(title)}</title><link rel=icon href='data:,'>"
                f"<main><h1>{escape(title)}</h1>"
                f"<form method=post action='{escape(action)}'><button>{escape(button)}</button></form>{back}"
                "</main></html>")
        return Response(html, 200, content_type="text/html")


def start() -> tuple[StandIn, callable]:
    """Serve a fresh stand-in on a free port; returns it and its stop function."""
    standin = StandIn()
    server = make_server("127.0.0.1", 0, standin, threaded=True)
    standin.url = f"http://127.0.0.1:{server.server_port}"
    # A short poll interval: `stop` (shutdown) waits up to one interval, once per test.
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()

    def stop():
        server.shutdown()
    return standin, stop
