"""JSON API: /api/streams/…"""
from flask import Blueprint, jsonify, request
from flask_login import current_user

from app.http import public
from app.streams import service, tickets
from app.validation import json_body

bp = Blueprint("streams_api", __name__, url_prefix="/api/streams")


@bp.post("/create")
def create():
    data = json_body(request)
    stream = service.create_stream(current_user, data.get("type"), data.get("title"), data.get("ticketPrice"),
                                   data.get("startsAt"))
    return jsonify(stream=stream.to_dict()), 201


@bp.get("/<int:stream_id>")
@public
def get(stream_id):
    """Anyone may read a stream; its channel (the socket to join) only those with access."""
    stream = service.get_stream(stream_id)
    body = stream.to_dict()
    if not service.can_view(current_user, stream):
        body["channel"] = None
    return jsonify(stream=body)


@bp.post("/<int:stream_id>/<any(start, end, cancel):action>")
def change(stream_id, action):
    return jsonify(stream=service.change_status(current_user, stream_id, action).to_dict())


@bp.get("/<int:stream_id>/access")
def access(stream_id):
    return jsonify(hasAccess=service.can_view(current_user, service.get_stream(stream_id)))


@bp.post("/<int:stream_id>/tickets/checkout")
def checkout(stream_id):
    """201 with a new ticket; 200 with the same ticket when the fan already has one."""
    result = tickets.checkout(current_user, service.get_stream(stream_id))
    return jsonify(ticket=result.ticket.to_dict(), newBalance=result.new_balance), 201 if result.created else 200
