"""JSON API of the chat (DESIGN.md §12):

* `POST /api/streams/:id/chat {text}` → 201 `{message:{id, userId, displayName, text, createdAt}}`;
* `GET /api/streams/:id/chat?before=<id>` → `{messages}` (newest 50, oldest first);
* `POST /api/streams/:id/chat/:msgId/delete` → `{message:{id, deletedAt}}` (the stream's creator);
* `POST /api/creator/bans {userId, minutes?}` → 201 (new) or 200 (replaced) `{ban:{userId,
  displayName, expiresAt}}`; `DELETE /api/creator/bans/:userId` → 204, whether or not there
  was a ban; `GET /api/creator/bans` → `{bans}`, those in force.
"""
from flask import Blueprint, jsonify, request
from flask_login import current_user

from app.auth.service import require_creator
from app.chat import service
from app.chat.limits import chat_limit
from app.http import public
from app.validation import json_body

bp = Blueprint("chat_api", __name__, url_prefix="/api")


@bp.post("/streams/<int:stream_id>/chat")
@chat_limit
def post(stream_id):
    data = json_body(request)
    line = service.post_message(current_user, stream_id, data.get("text"))
    return jsonify(message=line.to_dict()), 201


@bp.get("/streams/<int:stream_id>/chat")
@public
def history(stream_id):
    """Whoever may watch the stream may read its chat (anyone, for a public one)."""
    before = service.before_id(request.args.get("before"))
    return jsonify(messages=[line.to_dict() for line in service.messages_before(current_user, stream_id, before)])


@bp.post("/streams/<int:stream_id>/chat/<int:message_id>/delete")
def delete(stream_id, message_id):
    message = service.delete_message(current_user, stream_id, message_id)
    return jsonify(message={"id": message.id, "deletedAt": message.deleted_at.isoformat()})


@bp.get("/creator/bans")
def bans():
    require_creator(current_user, "Only creators can ban people from their chat.")
    return jsonify(bans=[ban.to_dict() for ban in service.bans_of(current_user)])


@bp.post("/creator/bans")
def ban():
    data = json_body(request)
    found, created = service.ban_user(current_user, data.get("userId"), data.get("minutes"))
    return jsonify(ban=found.to_dict()), 201 if created else 200


@bp.delete("/creator/bans/<int:user_id>")
def unban(user_id):
    service.unban_user(current_user, user_id)
    return "", 204
