"""Small request helpers shared by routes: endpoint markers, HTMX detection, keys."""
from __future__ import annotations

from flask import request

from app import validation


def public(view):
    """Mark an /api/ endpoint as callable without credentials (and CSRF-exempt:
    it acts on no existing session, e.g. register or token)."""
    view.public = True
    view.csrf_exempt = True
    return view


def is_htmx() -> bool:
    return request.headers.get("HX-Request") == "true"


def request_idempotency_key() -> str:
    """`Idempotency-Key` header (API) or the form's hidden `idempotency_key` field."""
    raw = request.headers.get("Idempotency-Key")
    if raw is None:
        raw = request.form.get("idempotency_key")
    return validation.idempotency_key(raw)


def redirect_to(url: str):
    """Post-redirect-get for plain forms; `HX-Redirect` for htmx so the whole page changes."""
    from flask import make_response, redirect
    if is_htmx():
        resp = make_response("", 200)
        resp.headers["HX-Redirect"] = url
        return resp
    return redirect(url, 303)


def render(page: str, fragment: str, status: int = 200, **context):
    """Render the whole page, or only its fragment for an htmx request
    (the page includes the same fragment template, so both stay one source)."""
    from flask import render_template
    return render_template(fragment if is_htmx() else page, **context), status


def int_arg(source, name: str, default=None, max_digits: int = 18):
    """A non-negative integer from query/form args, or `default` when absent or not one
    (bounded so it always fits a BIGINT id)."""
    raw = source.get(name, "")
    return int(raw) if raw.isdigit() and len(raw) <= max_digits else default
