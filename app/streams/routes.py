"""Pages: /streams/<id> (the show, or its ticket gate), /creator/streams (create,
go live, end, cancel), the player's playback token, and the media server's
auth hook (/media/auth)."""
from flask import Blueprint, flash, jsonify, render_template, request, url_for
from flask_login import current_user, login_required

from app import ledger
from app.auth.models import User
from app.auth.service import require_creator
from app.chat import service as chat_service  # issue 18: chat
from app.errors import AccountRestricted, AppError, Conflict, InsufficientFunds
from app.extensions import db
from app.http import is_htmx, redirect_to, render
from app.streams import media, service, tickets
from app.goals.service import current_goal
from app.leaderboard.service import stream_top
from app.tips.service import recent_tips
from app.wallet.service import wallet_balance

bp = Blueprint("streams", __name__)


def _show_context(stream, **extra) -> dict:
    """Everything `streams/_show.html` needs, for the page and for the swap after a checkout."""
    ticket = tickets.ticket_of(current_user, stream)
    has_access = service.can_view(current_user, stream, ticket)
    return dict(stream=stream, creator=db.session.get(User, stream.creator_id), has_access=has_access,
                recent=recent_tips(stream_id=stream.id) if has_access else [], ticket=ticket,
                balance=wallet_balance(current_user) if current_user.is_authenticated else None,
                chat=chat_service.page_history(stream) if has_access else None,  # issue 18: chat
                goal=current_goal(stream.id) if has_access else None,  # app/goals (issue 18)
                top=stream_top(stream.id) if has_access else [],  # app/leaderboard (issue 18)
                **extra)


@bp.get("/streams/<int:stream_id>")
def show(stream_id):
    """The page; for htmx only its body (the gate re-renders itself after a top-up)."""
    return render("streams/show.html", "streams/_show.html", **_show_context(service.get_stream(stream_id)))


@bp.post("/streams/<int:stream_id>/ticket")
@login_required
def buy_ticket(stream_id):
    """The gate's "Buy ticket": on success the page becomes the show (htmx swaps
    `#show`; without JS, back to the page). Errors re-render the gate in place."""
    stream = service.get_stream(stream_id)
    try:
        tickets.checkout(current_user, stream)
    except InsufficientFunds as err:
        return render_template("streams/_show.html", **_show_context(
            stream, gate_error=err.message, shortfall=err.required)), 402
    except AccountRestricted as err:
        return render_template("streams/_show.html", **_show_context(stream, owed=err.owed)), err.status
    except AppError as err:
        context = _show_context(stream, gate_error=err.message)
        if not is_htmx() or context["has_access"]:
            raise  # no gate on the page to show it in (the creator's own show): the page's alert area
        return render_template("streams/_show.html", **context), err.status
    if not is_htmx():
        return redirect_to(url_for("streams.show", stream_id=stream.id))
    return render_template("streams/_show.html", **_show_context(stream), balance_oob=True)


@bp.get("/streams/<int:stream_id>/playback-token")
def playback_token(stream_id):
    """A fresh media-server read token for the player (it renews before expiry)."""
    return jsonify(media.issue_playback(current_user, service.get_stream(stream_id)))


@bp.post("/media/auth")
def media_auth():
    """MediaMTX's external HTTP auth hook (authMethod: http): 2xx lets the
    publisher/reader in, anything else keeps them out. Server to server: no
    session, no CSRF."""
    payload = request.get_json(silent=True)
    allowed, reason = media.authorize(payload if isinstance(payload, dict) else {})
    if allowed:
        return jsonify(ok=True)
    return jsonify(error="Not allowed by the app.", code=reason), 401


media_auth.csrf_exempt = True


# nginx-rtmp's callbacks and auth_request (deploy/nginx-rtmp.conf). Server to
# server like /media/auth: no session, no CSRF. nginx only looks at the status.

@bp.post("/media/nginx/publish")
def nginx_publish():
    """on_publish / on_update: 2xx lets the encoder publish (or keep publishing)."""
    allowed, reason = media.nginx_publish(request.form)
    if allowed:
        return "", 204
    return jsonify(error="Not allowed by the app.", code=reason), 403


@bp.post("/media/nginx/publish-done")
def nginx_publish_done():
    """on_publish_done: the encoder went away (harmless: only the player's wording)."""
    media.nginx_publish_done(request.form)
    return "", 204


@bp.get("/media/nginx/play")
def nginx_play():
    """auth_request for each HLS playlist or segment: 2xx serves it, 403 refuses it."""
    allowed, reason = media.nginx_read(request.headers.get("X-Original-URI"), request.headers.get("Authorization"),
                                       request.headers.get("X-Playback-Token"))
    if allowed:
        return "", 200
    return jsonify(error="Not allowed by the app.", code=reason), 403


for _view in (nginx_publish, nginx_publish_done):
    _view.csrf_exempt = True


@bp.route("/creator/streams", methods=["GET", "POST"])
@login_required
def manage():
    require_creator(current_user)
    values, errors, status = {}, {}, 200
    if request.method == "POST":
        values = {k: (request.form.get(k) or "")[:200] for k in ("type", "title", "ticketPrice", "startsAt")}
        try:
            service.create_stream(current_user, values["type"] or "public", values["title"],
                                  values["ticketPrice"] or None, values["startsAt"] or None, from_form=True)
            return redirect_to(url_for("streams.manage"))
        except AppError as err:
            errors, status = err.extra.get("errors") or {err.field or "type": err.message}, err.status
    streams = service.streams_of(current_user)
    return render("creator/streams.html", "creator/_stream_form.html", status, streams=streams, values=values,
                  errors=errors, figures=tickets.show_figures([s.id for s in streams]),
                  obs={s.id: media.obs_settings(s, current_user) for s in streams if s.status in ("scheduled", "live")},
                  creator_share=lambda gross: ledger.split(gross)[0])


@bp.post("/creator/streams/<int:stream_id>/<any(start, end, cancel):action>")
@login_required
def change(stream_id, action):
    page = f"/streams/{stream_id}"
    back = page if request.form.get("next") == page else url_for("streams.manage")
    try:
        service.change_status(current_user, stream_id, action)
    except Conflict as err:
        # A page older than the stream's status (another tab or device ended it, say): back to
        # the page, which shows the status as it is now, saying why nothing happened.
        flash(err.message, "error")
    return redirect_to(back)
