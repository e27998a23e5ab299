"""The "Alerts" section of /creator/settings (HTMX form sharing the API's service
function) and the creator's "Show on stream" / "Hide" buttons in their tip lists."""
from flask import Blueprint, render_template, request, url_for
from flask_login import current_user, login_required

from app.alerts import service
from app.auth.service import require_creator
from app.errors import AppError
from app.http import is_htmx, redirect_to

bp = Blueprint("alerts", __name__)
bp.add_app_template_global(service.room_message, "room_message")
bp.add_app_template_global(service.SOUNDS, "alert_sounds")  # type: ignore[arg-type]  (a value, not a function)


def _section(values=None, errors=None, saved=False, status=200):
    return render_template("alerts/_settings.html", **section_context(values, errors, saved)), status


def section_context(values=None, errors=None, saved=False) -> dict:
    """What alerts/_settings.html shows: `values` as typed (the saved settings if None)."""
    if values is None:
        values = service.current_settings(current_user).to_dict()
        values["minTokens"] = str(values["minTokens"])
    return {"alert_values": values, "alert_errors": errors or {}, "alert_saved": saved}


@bp.post("/creator/settings/alerts")
@login_required
def update():
    """The Alerts form: errors next to their fields (422), or the saved settings."""
    require_creator(current_user, "Only creators have alerts.")
    form = request.form
    values = {"minTokens": (form.get("minTokens") or "")[:32],
              "profanityFilter": form.get("profanityFilter") in ("1", "on", "true"),
              "requireApproval": form.get("requireApproval") in ("1", "on", "true"),
              "sound": (form.get("sound") or "")[:32] or None}
    try:
        service.update_settings(current_user, values["minTokens"], values["profanityFilter"],
                                values["requireApproval"], values["sound"], from_form=True)
    except AppError as err:
        if err.status == 403:
            raise
        errors = err.extra.get("errors") or {err.field or "minTokens": err.message}
        if not is_htmx():
            from app.creator.routes import settings_page
            return settings_page(err.status, **section_context(values, errors))
        return _section(values, errors, status=err.status)
    if not is_htmx():
        return redirect_to(url_for("creator.settings"))
    return _section(saved=True)


def _decide(tip_id, decision):
    result = service.decide_message(current_user, tip_id, decision)
    if not is_htmx():
        return redirect_to(_back())
    # The span of the list the button is in ("feed-" or "dash-"): the push updates the others.
    prefix = request.form.get("list") if request.form.get("list") in ("feed-", "dash-") else "feed-"
    return render_template("alerts/_approval.html", tip=result.tip, dom_prefix=prefix)


def _back() -> str:
    from app.validation import is_local_path
    target = request.form.get("next")
    return target if is_local_path(target) else url_for("dashboard.creator")


@bp.post("/creator/tips/<int:tip_id>/approve")
@login_required
def approve(tip_id):
    """Show the tip's message on the OBS source (it plays there as an alert of its own)."""
    return _decide(tip_id, "approve")


@bp.post("/creator/tips/<int:tip_id>/hide")
@login_required
def hide(tip_id):
    """Never show the tip's message on the OBS source."""
    return _decide(tip_id, "hide")

