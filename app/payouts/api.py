"""JSON API: /api/payouts (+ account, statement) for creators, and the operators'
approve / reject of /api/platform/payouts/<id>."""
from flask import Blueprint, Response, jsonify, request, url_for
from flask_login import current_user

from app.http import request_idempotency_key
from app.payouts import service, statement
from app.validation import json_body

bp = Blueprint("payouts_api", __name__, url_prefix="/api")


def onboarding_urls() -> dict:
    """Where Stripe's onboarding sends the creator back: absolute URLs of /payouts."""
    return {"refresh_url": url_for("payouts.page", onboarding="refresh", _external=True),
            "return_url": url_for("payouts.page", onboarding="done", _external=True)}


@bp.get("/payouts/account")
def account():
    return jsonify(service.account_state(current_user))


@bp.post("/payouts/account")
def start_account():
    return jsonify(onboardingUrl=service.start_onboarding(current_user, **onboarding_urls()))


@bp.get("/payouts")
def payouts():
    return jsonify(service.overview(current_user))


@bp.post("/payouts")
def request_payout():
    data = json_body(request)
    result = service.request_payout(current_user, data.get("amountTokens"), request_idempotency_key())
    return jsonify(payout=result.payout.to_dict()), 201  # a replay answers as the first request did


@bp.get("/payouts/statement")
def statement_csv():
    body, filename = statement.statement_csv(current_user, request.args.get("month"))
    return Response(body, mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


@bp.post("/platform/payouts/<int:payout_id>/approve")
def approve(payout_id):
    return jsonify(payout=service.approve(current_user, payout_id).to_dict())


@bp.post("/platform/payouts/<int:payout_id>/reject")
def reject(payout_id):
    data = json_body(request)
    return jsonify(payout=service.reject(current_user, payout_id, data.get("reason")).to_dict())
