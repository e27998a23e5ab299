"""Pages: the creator's goal form on their stream page (set, replace, clear) and the
goal's OBS browser source (/overlay/<secret>/goal)."""
from flask import Blueprint, g, make_response, render_template, request, url_for
from flask_login import current_user, login_required

from app.errors import AppError, NotFound
from app.goals import service
from app.http import is_htmx, redirect_to
from app.streams.service import get_stream
from app.tips.service import creator_for_overlay

bp = Blueprint("goals", __name__)


def _editor(stream, status=200, **context):
    """The editor again (errors or the outcome), and on success the bar out of band."""
    state = service.current_goal(stream.id)
    html = render_template("goals/_editor.html", stream=stream, goal=state, **context)
    if status == 200:
        html += render_template("goals/_goal.html", goal=state, oob=True, obs=False)
    return html, status


@bp.post("/streams/<int:stream_id>/goal")
@login_required
def set_goal(stream_id):
    values = {k: (request.form.get(k) or "")[:200] for k in ("title", "targetTokens")}
    try:
        state = service.set_goal(current_user, stream_id, request.form.get("title"),
                                 request.form.get("targetTokens"), from_form=True)
    except AppError as err:
        stream = get_stream(stream_id)  # 404 before anything else
        if not is_htmx() or err.status in (403, 404):
            raise
        errors = err.extra.get("errors") or {err.field or "form": err.message}
        return _editor(stream, err.status, goal_values=values, goal_errors=errors, goal_saved=None)
    if not is_htmx():
        return redirect_to(url_for("streams.show", stream_id=stream_id))
    return _editor(get_stream(stream_id), goal_values={}, goal_errors={},
                   goal_saved=f"Goal set: {state.goal.target_tokens:,} tokens. Everyone watching sees it now.")


@bp.post("/streams/<int:stream_id>/goal/clear")
@login_required
def clear_goal(stream_id):
    try:
        service.clear_goal(current_user, stream_id)
    except AppError as err:
        if not is_htmx() or err.status in (403, 404):
            raise
        return _editor(get_stream(stream_id), err.status, goal_values={}, goal_errors={"form": err.message},
                       goal_saved=None)
    if not is_htmx():
        return redirect_to(url_for("streams.show", stream_id=stream_id))
    return _editor(get_stream(stream_id), goal_values={}, goal_errors={}, goal_saved="Goal cleared.")


@bp.get("/overlay/<secret>/goal")
def overlay(secret):
    """The goal's OBS browser source: transparent, the goal of the creator's live stream.
    Framable like the tip overlay (same secret)."""
    creator = creator_for_overlay(secret)
    if creator is None:
        raise NotFound("No such overlay.", "overlay_not_found")
    resp = make_response(render_template("goals/overlay.html", secret=secret, goal=service.obs_goal(creator.id)))
    g.framable = True  # no X-Frame-Options and CSP frame-ancestors *: OBS embeds it
    resp.headers["Referrer-Policy"] = "no-referrer"  # the URL is the secret
    return resp
