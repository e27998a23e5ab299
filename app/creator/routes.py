"""/creator/settings: the creator's call rate and whether fans may call, the OBS
overlay URL and the media-server stream key."""
from flask import Blueprint, current_app, render_template, request, url_for
from flask_login import current_user, login_required

from app.auth.service import require_creator
from app.calls import service as calls
from app.errors import AppError
from app.http import is_htmx, redirect_to
from app.streams import media
from app.tips import pushes
from app.tips import service as tips

bp = Blueprint("creator", __name__)


@bp.get("/creator/settings")
@login_required
def settings():
    require_creator(current_user)
    return _settings_page(**_call_settings_context())


def _settings_page(status: int = 200, **call_context):
    overlay_url = url_for("tips.overlay", secret=tips.overlay_secret(current_user), _external=True)
    return render_template("creator/settings.html", overlay_url=overlay_url,
                           stream_key=media.stream_key(current_user),
                           ingest_base=current_app.config["MEDIA_INGEST_URL"], **call_context), status


def _call_settings_context(values=None, errors=None, saved=False) -> dict:
    if values is None:
        current = calls.settings_of(current_user)
        values = {"callRateTokensPerMin": "" if current["callRateTokensPerMin"] is None
                  else str(current["callRateTokensPerMin"]), "callsEnabled": current["callsEnabled"]}
    return {"call_values": values, "call_errors": errors or {}, "call_saved": saved,
            "block_seconds": current_app.config["BILLING_BLOCK_SECONDS"],
            "share_percent": current_app.config["CREATOR_SHARE_PERCENT"]}


@bp.post("/creator/settings/calls")
@login_required
def call_settings():
    """The call section's form: errors next to their fields (422), or the saved settings."""
    require_creator(current_user)
    values = {"callRateTokensPerMin": (request.form.get("callRateTokensPerMin") or "")[:32],
              "callsEnabled": request.form.get("callsEnabled") in ("1", "on", "true")}
    try:
        calls.update_settings(current_user, values["callRateTokensPerMin"], values["callsEnabled"], from_form=True)
    except AppError as err:
        errors = err.extra.get("errors") or {err.field or "callRateTokensPerMin": err.message}
        context = _call_settings_context(values, errors)
        if not is_htmx():
            return _settings_page(err.status, **context)
        return render_template("creator/_call_settings.html", **context), err.status
    if not is_htmx():
        return redirect_to(url_for("creator.settings"))
    return render_template("creator/_call_settings.html", **_call_settings_context(saved=True))


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
    require_creator(current_user)
    pushes.mark_tips_seen(current_user.id)
    return render_template("tips/_badge.html", unseen=0)


def settings_page(status: int = 200, **section_context):
    """The whole page, the call section as saved, for another section's form sent
    without htmx that must show its error (app.profiles: the Profile section)."""
    return _settings_page(status, **_call_settings_context(), **section_context)
