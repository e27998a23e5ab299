"""Pages: /dashboard (a creator's earnings), /spending (anyone's own spending)
and /platform (operators).

Each page has a range switcher (`?range=today|7d|30d|all`, plain links that
htmx turns into swaps of the page's body, pushing the URL). An htmx request
gets the body fragment only; any other request the whole page. A bad range
never fails the page: it shows the default range with the error next to the
switcher, answered 422. Every figure comes from `app.dashboard.service`; the
routes only pick which ones a page shows.
"""
from __future__ import annotations

from flask import Blueprint, render_template, request
from flask_login import current_user, login_required

from app.auth.service import require_creator
from app.dashboard import display, service
from app.errors import InvalidValue
from app.tips.service import recent_tips

bp = Blueprint("dashboard", __name__)

DEFAULT_RANGE = "30d"
# The page's tables are capped: a creator with thousands of shows and calls gets the most
# recent ones, and a note pointing to the CSV export (every entry) instead of a page that
# grows with the history.
TOP_FANS = 10
STREAMS_SHOWN = 20
CALLS_SHOWN = 20
SPENDING_LINES = 50


@bp.get("/dashboard")
@login_required
def creator():
    """The creator's earnings. Fans get the same 403 page as /creator/streams."""
    require_creator(current_user)
    range_, error = _range_arg()
    service.keep_current(current_user)
    series = service.earnings_series(current_user, range_)
    context = dict(
        earnings=service.creator_earnings(current_user, range_),
        chart=display.bar_chart(series.points, series.unit),
        fans=service.top_fans(current_user, range_, limit=TOP_FANS),
        streams=service.stream_revenue(current_user, range_, limit=STREAMS_SHOWN),
        calls=service.call_revenue(current_user, range_, limit=CALLS_SHOWN),
        streams_shown=STREAMS_SHOWN, calls_shown=CALLS_SHOWN,
    )
    return _render("dashboard/creator.html", "dashboard/_creator_body.html", range_, error,
                   recent=None if _fragment() else recent_tips(creator_id=current_user.id),
                   **context)


@bp.get("/spending")
@login_required
def spending():
    """Where the user's tokens went (any logged-in user: their own wallet only)."""
    range_, error = _range_arg()
    return _render("dashboard/spending.html", "dashboard/_spending_body.html", range_, error,
                   spending=service.fan_spending(current_user, range_),
                   lines=service.spending_lines(current_user, range_, limit=SPENDING_LINES), lines_limit=SPENDING_LINES,
                   months=None if _fragment() else service.spending_by_month(current_user))


@bp.get("/platform")
@login_required
def platform():
    """Platform fees, token supply, escrow and the last books check: operators only."""
    range_, error = _range_arg()
    overview = service.platform_overview(current_user, range_)  # Forbidden unless an operator
    return _render("dashboard/platform.html", "dashboard/_platform_body.html", range_, error,
                   platform=overview, chart=display.bar_chart(overview.fees_by_day))


def _range_arg() -> tuple[str, str | None]:
    """The requested range, or the default one and the message saying why the
    requested one was refused."""
    try:
        return service.parse_range(request.args.get("range"), DEFAULT_RANGE), None
    except InvalidValue as err:
        return DEFAULT_RANGE, err.message


def _fragment() -> bool:
    """An htmx swap of the page's body. Not when htmx restores history it had no
    snapshot of: that request wants the whole page."""
    return (request.headers.get("HX-Request") == "true"
            and request.headers.get("HX-History-Restore-Request") != "true")


def _render(page: str, fragment: str, range_: str, error: str | None, **context):
    html = render_template(fragment if _fragment() else page, range=range_, range_error=error,
                           ranges=service.RANGES, display=display, endpoint=request.endpoint, **context)
    # The same URL answers a page or a fragment: caches must tell them apart.
    return html, 422 if error else 200, {"Vary": "HX-Request"}
