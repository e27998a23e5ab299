"""Pages: the creator page /c/<handle>, avatar images, and the "Profile" section of
/creator/settings (handle, bio, avatar), sharing the API's service functions."""
from flask import Blueprint, abort, make_response, render_template, request, url_for
from flask_login import current_user, login_required
from markupsafe import Markup, escape

from app.errors import AppError, NotFound
from app.http import is_htmx, redirect_to
from app.profiles import avatars, service
from app.profiles.uploads import avatar_bytes, limit_avatar_bodies
from app.streams.service import live_and_upcoming_of

bp = Blueprint("profiles", __name__)

AVATAR_CACHE = "public, max-age=31536000, immutable"


@bp.get("/c/<handle>")
def page(handle):
    """A creator's page: avatar, bio, followers, live and upcoming shows, call rate; 404 for
    a handle no creator has (or one that cannot be a handle)."""
    creator = service.creator_by_handle(handle)
    if creator is None:
        raise NotFound("No creator has that handle.", "creator_not_found")
    streams = live_and_upcoming_of(creator.id)
    return render_template("profiles/page.html", creator=creator,
                           live=[s for s in streams if s.status == "live"],
                           upcoming=[s for s in streams if s.status == "scheduled"])


@bp.get("/avatars/<int:user_id>.webp")
def avatar(user_id):
    """The avatar as stored (always a WebP we encoded). The URL names its version
    (`?v=`): that one is cached for a year; any other is revalidated."""
    found = avatars.avatar_image(user_id)
    if found is None:
        abort(404)
    webp, version = found
    resp = make_response(webp)
    resp.headers["Content-Type"] = "image/webp"
    resp.headers["X-Content-Type-Options"] = "nosniff"
    resp.headers["Cache-Control"] = AVATAR_CACHE if request.args.get("v") == str(version) else "no-cache"
    resp.set_etag(f"{user_id}-{version}")
    return resp.make_conditional(request)


# ---- /creator/settings: the Profile section ------------------------------------------------

def _details(values=None, errors=None, saved=False, status=200):
    values = values or {"handle": current_user.handle or "", "bio": current_user.bio or ""}
    return render_template("profiles/_details_form.html", values=values, errors=errors or {},
                           saved=saved), status


def _avatar_form(error=None, saved=False, status=200):
    return render_template("profiles/_avatar_form.html", error=error, saved=saved), status


def _avatar_too_large(err):
    if is_htmx():
        return _avatar_form(err.message, status=err.status)
    return _settings_page(err.status, avatar_error=err.message)


limit_avatar_bodies(bp, {"profiles.upload_avatar"}, on_too_large=_avatar_too_large)


def _settings_page(status, **context):
    """The whole settings page with an error in the Profile section (a form sent without htmx)."""
    from app.creator.routes import settings_page
    return settings_page(status, **context)


@bp.post("/creator/settings/profile")
@login_required
def update_details():
    """Handle and bio: errors next to their fields (422 / 409), or the saved values."""
    values = {"handle": (request.form.get("handle") or "")[:64], "bio": (request.form.get("bio") or "")[:2000]}
    try:
        service.update_profile(current_user, handle=values["handle"], bio=values["bio"])
    except AppError as err:
        if err.status == 403:
            raise
        errors = err.extra.get("errors") or {err.field or "handle": err.message}
        if not is_htmx():
            return _settings_page(err.status, profile_values=values, profile_errors=errors)
        return _details(values, errors, status=err.status)
    if not is_htmx():
        return redirect_to(url_for("creator.settings"))
    return _details(saved=True)


@bp.post("/creator/settings/avatar")
@login_required
def upload_avatar():
    try:
        avatars.set_avatar(current_user, avatar_bytes())
    except AppError as err:
        if err.status == 403:
            raise
        if not is_htmx():
            return _settings_page(err.status, avatar_error=err.message)
        return _avatar_form(err.message, status=err.status)
    if not is_htmx():
        return redirect_to(url_for("creator.settings"))
    return _avatar_form(saved=True)


@bp.app_template_global()
def creator_link(user_or_name, handle=None) -> Markup:
    """A creator's name as a link to their page, escaped; a name without a handle (a fan,
    or a bare name with none given) stays plain text. `creator_link(user)` or
    `creator_link(name, handle)`."""
    if user_or_name is None or isinstance(user_or_name, str):
        name = user_or_name or ""
    else:
        name = user_or_name.display_name
        handle = handle or getattr(user_or_name, "handle", None)
    if not handle:
        return escape(name)
    return Markup('<a class="creator-link" href="{}">{}</a>').format(url_for("profiles.page", handle=handle), name)


bp.add_app_template_global(service.avatar_url, "avatar_url")
