"""The Follow / Following button (templates/follows/_button.html) on creator and stream pages."""
from flask import Blueprint, render_template, request, url_for
from flask_login import current_user, login_required

from app.follows import service
from app.http import is_htmx, redirect_to
from app.validation import is_local_path

bp = Blueprint("follows", __name__)


@bp.post("/creators/<int:creator_id>/<any(follow, unfollow):action>")
@login_required
def change(creator_id, action):
    """htmx swaps the button (and its follower count); a plain form goes back to `next`."""
    creator = getattr(service, action)(current_user, creator_id)
    if not is_htmx():
        next_url = request.form.get("next")
        fallback = url_for("profiles.page", handle=creator.handle) if creator.handle else url_for("main.discover")
        return redirect_to(next_url if is_local_path(next_url) else fallback)
    return render_template("follows/_button.html", creator=creator, follow=service.state(current_user, creator.id))


@bp.app_template_global()
def follow_state(creator) -> dict:
    """`{following, followers}` of the current user and `creator`, for the button."""
    return service.state(current_user, creator.id)
