"""The stream page's chat (HTMX): post a message, load earlier ones, delete one and ban
its author (the creator), unban (from the chat or /creator/settings). Each calls the
service function the JSON API calls (api.py)."""
from flask import Blueprint, render_template, request, url_for
from flask_limiter.errors import RateLimitExceeded
from flask_login import current_user, login_required

from app.auth.service import require_creator
from app.chat import service
from app.chat.limits import chat_limit
from app.errors import AppError, error_response
from app.http import int_arg, is_htmx, redirect_to
from app.streams.service import get_stream

bp = Blueprint("chat", __name__)


@bp.app_template_global("chat_bans")
def chat_bans():
    """The current creator's bans in force (the ban list on /creator/settings)."""
    return service.bans_of(current_user)


@bp.post("/streams/<int:stream_id>/chat")
@login_required
@chat_limit
def post(stream_id):
    """The chat form: cleared, with the new message for the list; or the error by the field."""
    stream = get_stream(stream_id)
    raw = request.form.get("text")
    try:
        line = service.post_message(current_user, stream.id, raw)
    except AppError as err:
        if not is_htmx():
            raise
        return _form(stream, raw, err.message), err.status
    if not is_htmx():
        return redirect_to(url_for("streams.show", stream_id=stream.id))
    return render_template("chat/_form.html", stream=stream, chat_value="", chat_error=None) + \
        render_template("chat/_message_push.html", line=line)


@bp.errorhandler(RateLimitExceeded)
def _rate_limited(err):
    """Too many messages (only the chat form is limited here): said next to the chat's
    field, like any other refusal; 429 `rate_limited` either way."""
    refusal = AppError("You're sending messages too fast. Wait a few seconds and try again.", "rate_limited")
    refusal.status = 429
    stream_id = (request.view_args or {}).get("stream_id")
    if not is_htmx() or stream_id is None:
        return error_response(refusal)
    try:
        stream = get_stream(stream_id)
    except AppError as missing:
        return error_response(missing)
    return _form(stream, request.form.get("text"), refusal.message), 429


def _form(stream, raw, error):
    value = raw[:2000] if isinstance(raw, str) else ""
    return render_template("chat/_form.html", stream=stream, chat_value=value, chat_error=error)


@bp.get("/streams/<int:stream_id>/chat")
def earlier(stream_id):
    """"Load earlier messages": the older lines, above the others, and the control again."""
    stream = service.viewable_stream(current_user, stream_id)
    before = int_arg(request.args, "before")
    return render_template("chat/_earlier_answer.html", history=service.page_history(stream, before))


@bp.post("/streams/<int:stream_id>/chat/<int:message_id>/delete")
@login_required
def delete(stream_id, message_id):
    """The creator's Delete: the message leaves every page in the room, this one included, by
    the room's socket (which may well beat this answer, taking the button with it: so no
    content here, app.js removes the line if it is still there)."""
    service.delete_message(current_user, stream_id, message_id)
    if not is_htmx():
        return redirect_to(url_for("streams.show", stream_id=stream_id))
    return "", 204


@bp.post("/creator/bans")
@login_required
def ban():
    """The creator's Ban on a message: until unbanned, with Undo beside what happened."""
    try:
        found, _ = service.ban_user(current_user, int_arg(request.form, "userId", default=0))
    except AppError as err:
        if not is_htmx():
            raise
        return render_template("chat/_ban_status.html", error=err.message), err.status
    if not is_htmx():
        return redirect_to(url_for("creator.settings"))
    return render_template("chat/_ban_status.html", banned=True, ban=found, name=found.display_name)


@bp.post("/creator/bans/<int:user_id>/delete")
@login_required
def unban(user_id):
    """Unban: from the chat's Undo (what happened) or the settings list (the list again)."""
    require_creator(current_user)
    name = service.unban_user(current_user, user_id)
    if not is_htmx():
        return redirect_to(url_for("creator.settings"))
    if request.headers.get("HX-Target") == "chat-bans":
        return render_template("chat/_bans.html", bans=service.bans_of(current_user))
    return render_template("chat/_ban_status.html", name=name)
