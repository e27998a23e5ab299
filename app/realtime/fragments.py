"""Pushed fragments: a template rendered for a message that goes to other people.

Features render what they publish with `render`, from the *same* partial
templates their pages use, so an item looks identical whether it arrived by
page load, htmx swap or WebSocket.
"""
from __future__ import annotations

from flask import Flask, current_app
from jinja2 import Template


def render(template: str, **context) -> str:
    """Render a pushed fragment from the template alone. Flask's context
    processors (the current user's balance, CSRF token, …) are skipped on
    purpose: a message goes to other people, so it must never depend on who
    caused it, and skipping them is measurably cheaper on the tip path (a
    metering tick renders two per call). See `Fragments` for the rest."""
    return current_app.extensions["realtime_fragments"].template(template).render(context)


class Fragments:
    """One app's pushed-fragment templates, through Jinja's public API only.

    `Template.render` copies the template's globals into every new context.
    Jinja keeps them as a ChainMap (the template's own over the environment's),
    walked key by key in Python: more than half the cost of these small
    fragments. So each is loaded once into an overlay of the app's environment
    (the same loader, filters and globals, its own cache: these template
    objects are ours alone), and given its globals as one plain dict, which
    Jinja copies in one C call. Measured on a balance push: 4.5 µs, against 4.9 µs
    for the Jinja internals this replaced, 13 µs for `Template.render` as
    loaded, 21 µs for Flask's `render_template`.

    The globals are snapshot at a template's first push: every one is
    registered when the app is created. In debug mode, where Jinja reloads an
    edited template, the new one is taken (and its globals merged) again."""

    def __init__(self, app: Flask):
        self._app = app
        self._env = None
        self._templates: dict[str, Template] = {}

    def template(self, name: str) -> Template:
        template = self._templates.get(name)
        if template is None or self._env.auto_reload and self._env.get_template(name) is not template:
            if self._env is None:
                # An overlay is made once the environment is set up (Jinja's advice), i.e. not
                # at app creation; a size given, so it gets a cache of its own, not a copy.
                self._env = self._app.jinja_env.overlay(cache_size=-1)
            template = self._env.get_template(name)
            template.globals = dict(template.globals)
            self._templates[name] = template
        return template
