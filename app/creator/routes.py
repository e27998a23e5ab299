"""/creator/settings: the creator's OBS overlay URL and media-server stream key
(and, later, call settings)."""
from flask import Blueprint, current_app, render_template, url_for
from flask_login import current_user, login_required

from app.auth.service import require_creator
from app.http import redirect_to
from app.streams import media
from app.tips import service as tips

bp = Blueprint("creator", __name__)


@bp.get("/creator/settings")
@login_required
def settings():
    require_creator(current_user)
    overlay_url = url_for("tips.overlay", secret=tips.overlay_secret(current_user), _external=True)
    return render_template("creator/settings.html", overlay_url=overlay_url,
                           stream_key=media.stream_key(current_user),
                           ingest_base=current_app.config["MEDIA_INGEST_URL"])


@bp.post("/creator/settings/stream-key/regenerate")
@login_required
def regenerate_stream_key():
    media.regenerate_stream_key(current_user)
    return redirect_to(url_for("creator.settings"))


@bp.post("/creator/settings/overlay/regenerate")
@login_required
def regenerate_overlay():
    require_creator(current_user)
    tips.regenerate_overlay_secret(current_user)
    return redirect_to(url_for("creator.settings"))


@bp.post("/creator/tips/seen")
@login_required
def tips_seen():
    """Opening the tips menu clears the unseen-tips badge."""
    from app.realtime import events
    require_creator(current_user)
    events.mark_tips_seen(current_user.id)
    return render_template("tips/_badge.html", unseen=0)
