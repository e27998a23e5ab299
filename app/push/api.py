"""JSON API: this user's push subscriptions (DESIGN.md §13).

`GET /api/me/push/subscriptions` → `{publicKey, topics, subscriptions:[{endpoint, topics, createdAt}]}`;
`POST` `{endpoint, keys:{p256dh, auth}, topics}` → 201 (new) or 200 (updated) `{subscription}`;
`DELETE` `{endpoint}` → `{deleted: true}`.
"""
from flask import Blueprint, jsonify, request
from flask_login import current_user

from app.errors import Conflict
from app.push import service
from app.validation import json_body

bp = Blueprint("push_api", __name__, url_prefix="/api/me/push")


@bp.get("/subscriptions")
def subscriptions():
    return jsonify(publicKey=service.public_key(), topics=list(service.topics_for(current_user)),
                   subscriptions=[_view(s) for s in service.subscriptions_of(current_user)])


@bp.post("/subscriptions")
def subscribe():
    data = json_body(request)
    if service.public_key() is None:
        raise Conflict("Push notifications are not set up on this site.", "push_disabled")
    subscription, created = service.subscribe(current_user, data.get("endpoint"), data.get("keys"),
                                              data.get("topics"))
    return jsonify(subscription=_view(subscription)), 201 if created else 200


@bp.delete("/subscriptions")
def unsubscribe():
    data = json_body(request)
    service.unsubscribe(current_user, data.get("endpoint"))
    return jsonify(deleted=True)


def _view(subscription) -> dict:
    return {"endpoint": subscription.endpoint, "topics": list(subscription.topics),
            "createdAt": subscription.created_at.isoformat()}
