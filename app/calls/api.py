"""JSON API: /api/creator/settings, /api/calls/…, /api/billing/… (DESIGN.md §7) and the
operators' /api/platform/calls/<id>/refund (§11)."""
import secrets

from flask import Blueprint, current_app, jsonify, request
from flask_login import current_user

from app.auth.service import require_operator
from app.calls import refunds, service
from app.errors import Forbidden, Unauthorized
from app.http import public, request_idempotency_key
from app.validation import json_body

bp = Blueprint("calls_api", __name__, url_prefix="/api")


@bp.post("/creator/settings")
def settings():
    data = json_body(request)
    return jsonify(settings=service.update_settings(current_user, data.get("callRateTokensPerMin"),
                                                    data.get("callsEnabled")))


@bp.post("/calls/init")
def init():
    data = json_body(request)
    call = service.init_call(current_user, data.get("creatorId"), data.get("rate_tokens_per_min"))
    return jsonify(call=call.to_dict()), 201


@bp.get("/calls/<int:call_id>")
def get(call_id):
    return jsonify(call=service.get_call_for(current_user, call_id).to_dict())


@bp.post("/calls/<int:call_id>/<any(accept, decline, end):action>")
def change(call_id, action):
    return jsonify(call=getattr(service, action)(current_user, call_id).to_dict())


@bp.post("/billing/<int:call_id>/<any(pause, active, stop):action>")
def billing(call_id, action):
    act = {"pause": service.pause, "active": service.resume, "stop": service.stop}[action]
    return jsonify(call=act(current_user, call_id).to_dict())


@bp.get("/billing/calls/<int:call_id>/history")
def history(call_id):
    return jsonify(events=[e.to_dict() for e in service.history(current_user, call_id)])


@bp.post("/platform/calls/<int:call_id>/refund")
def refund(call_id):
    """Operators: `{blocks?: [blockIndex]}` (left out: every charged block not refunded yet)
    → `{call, refunded: [blockIndex]}`; `Idempotency-Key` required. An empty body counts as `{}`."""
    require_operator(current_user, "Refunding calls")  # before the body and key: others learn nothing more
    data = json_body(request) if request.get_data() else {}
    result = refunds.refund_blocks(current_user, call_id, data.get("blocks"), request_idempotency_key())
    return jsonify(call=result.call.to_dict(), refunded=result.refunded)


@bp.post("/billing/meter")
@public
def meter():
    """The metering tick over HTTP (an external scheduler's alternative to the
    worker's cron): the same service, guarded by the shared secret."""
    expected = current_app.config["BILLING_WEBHOOK_SECRET"]
    given = request.headers.get("X-Billing-Secret")
    if not given:
        raise Unauthorized("Send the X-Billing-Secret header.", "missing_billing_secret")
    if not expected or not secrets.compare_digest(given.encode("utf-8", "replace"), expected.encode()):
        raise Forbidden("Wrong billing secret.", "bad_billing_secret")
    return jsonify(service.meter().to_dict())
