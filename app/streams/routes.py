"""Pages: /streams/<id>, /creator/streams (create, go live, end, cancel)."""
from flask import Blueprint, render_template, request, url_for
from flask_login import current_user, login_required

from app.auth.models import User
from app.auth.service import require_creator
from app.errors import AppError
from app.extensions import db
from app.http import redirect_to, render
from app.streams import service
from app.tips.service import recent_tips

bp = Blueprint("streams", __name__)


@bp.get("/streams/<int:stream_id>")
def show(stream_id):
    stream = service.get_stream(stream_id)
    creator = db.session.get(User, stream.creator_id)
    return render_template("streams/show.html", stream=stream, creator=creator,
                           has_access=service.can_view(current_user, stream),
                           recent=recent_tips(stream_id=stream.id))




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
    return render("creator/streams.html", "creator/_stream_form.html", status,
                  streams=service.streams_of(current_user), values=values, errors=errors)


@bp.post("/creator/streams/<int:stream_id>/<any(start, end, cancel):action>")
@login_required
def change(stream_id, action):
    service.change_status(current_user, stream_id, action)
    return redirect_to(request.form.get("next") if request.form.get("next") == f"/streams/{stream_id}"
                       else url_for("streams.manage"))
