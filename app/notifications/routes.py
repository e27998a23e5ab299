"""Pages: /notifications (newest first, "Mark all as read") and each notification's
link, which marks it read on the way to where it points."""
from flask import Blueprint, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from app.http import int_arg, is_htmx, render
from app.notifications import service

bp = Blueprint("notifications", __name__)


def _page_context(before=None) -> dict:
    items = service.list_for(current_user.id, before=before)
    older = items[-1].id if len(items) == service.PAGE_SIZE else None
    return dict(notifications=items, unread=service.unread_count(current_user.id), before=before, older=older)


@bp.get("/notifications")
@login_required
def page():
    """The list. Visiting it marks nothing read: new ones stay marked until opened or
    "Mark all as read" (a bad `before` shows the first page)."""
    return render_template("notifications/page.html", **_page_context(int_arg(request.args, "before") or None))


@bp.post("/notifications/read")
@login_required
def read_all():
    """"Mark all as read": htmx gets the list back, a plain form the page again."""
    service.mark_read(current_user)
    if not is_htmx():
        return redirect(url_for("notifications.page"), 303)
    return render("notifications/page.html", "notifications/_list.html", **_page_context(), bell_oob=True)


@bp.get("/notifications/<int:notification_id>")
@login_required
def open_(notification_id):
    """Follow a notification's link; it is marked read on the way."""
    return redirect(service.open_notification(current_user, notification_id), 303)
