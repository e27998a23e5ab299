"""Pushed fragments (app/realtime/fragments.py): the same HTML as the template's
plain render, from templates of their own."""
import os
from datetime import datetime, timezone
from types import SimpleNamespace

from app.realtime import fragments

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)


def _call_row(**fields):
    """A call as the meter holds it when it publishes (a plain row, no ORM object)."""
    row = dict(id=7, fan_id=1, creator_id=2, rate=60, block_seconds=60, status="active", end_reason=None,
               channel="c-x", requested_at=NOW, accepted_at=NOW, ended_at=None, active_ms=30_000,
               active_since=None, paused_by=None, blocks_charged=2, total_charged=120, low_balance_block=None,
               fan_missing_since=None, creator_missing_since=None)
    return SimpleNamespace(**{**row, **fields})


def test_a_pushed_fragment_is_exactly_the_templates_plain_render_globals_and_filters_included(ctx):
    """`calls/_figures.html` calls a global (`call_meter`, registered by a blueprint) and filters."""
    env = ctx.jinja_env
    for name, context in (("wallet/_balance_push.html", {"balance": 12_345}),
                          ("calls/_figures.html", {"call": _call_row(), "oob": True}),
                          ("calls/_state.html", {"call": _call_row(status="paused", paused_by="fan"), "oob": True})):
        pushed = fragments.render(name, **context)
        assert pushed == env.get_template(name).render(**context), name
    assert fragments.render("wallet/_balance_push.html", balance=12_345) == (
        '<span id="nav-balance" hx-swap-oob="true">12,345</span>')


def test_pushing_leaves_the_templates_pages_render_with_untouched(ctx):
    """Pushes render from templates of their own: the app's keep seeing the environment's globals."""
    name = "calls/_figures.html"
    fragments.render(name, call=_call_row(), oob=True)
    page_template = ctx.jinja_env.get_template(name)
    assert page_template is not ctx.extensions["realtime_fragments"].template(name)
    ctx.jinja_env.globals["late_global"] = "late"
    try:
        assert page_template.globals["late_global"] == "late"
    finally:
        del ctx.jinja_env.globals["late_global"]


def test_in_debug_mode_an_edited_template_is_pushed_anew(make_app):
    app = make_app()
    app.jinja_env.auto_reload = True  # what debug mode sets
    name = "wallet/_balance_push.html"
    path = os.path.join(app.root_path, app.template_folder, name)
    with app.app_context():
        pushes = app.extensions["realtime_fragments"]
        first = pushes.template(name)
        assert pushes.template(name) is first  # unchanged: the same template, no reload
        before = os.stat(path)
        try:
            os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns + 10**9))  # as an edit would
            reloaded = pushes.template(name)
        finally:
            os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
        assert reloaded is not first
        assert fragments.render(name, balance=5) == '<span id="nav-balance" hx-swap-oob="true">5</span>'
