"""Small request helpers shared by routes: endpoint markers, HTMX detection, keys,
and the request-wide input rules of `app.validation` (text, integers in URLs)."""
from __future__ import annotations

from flask import request
from werkzeug.routing import IntegerConverter

from app import validation
from app.errors import BadRequest, error_response


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


def int_arg(source, name: str, default=None, maximum: int = validation.BIGINT_MAX):
    """A non-negative integer from query/form args (ASCII digits, at most `maximum`:
    by default anything a BIGINT id can be), or `default` when absent or not one."""
    value = validation.ascii_int(source.get(name, ""), maximum)
    return default if value is None else value


class IdConverter(IntegerConverter):
    """The app's `<int:…>`: ASCII digits only (werkzeug's own `\\d+` matches "٣",
    so /streams/٣ was stream 3) and at most a BIGINT (a larger number names no
    row, and PostgreSQL refuses to compare with it). Anything else is a 404."""

    regex = r"[0-9]+"

    def __init__(self, map, *args, **kwargs):
        kwargs.setdefault("max", validation.BIGINT_MAX)
        super().__init__(map, *args, **kwargs)


_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def refuse_unsafe_text():
    """`before_request`, the app's first: 400 `invalid_text` for a request with a NUL
    byte or a lone surrogate in its path, query, form fields or JSON (strings and
    keys), before rate limits, authentication or a view read any of it.

    No browser form can send such text, so refusing it wholesale costs no form
    its inline errors. The JSON body is parsed here once; `request.get_json`
    returns the same parsed body to the view."""
    where = None
    if validation.is_unsafe_text(request.path):
        where = "address"
    elif request.query_string and _has_unsafe_text(request.args.items(multi=True)):
        where = "query string"
    elif request.mimetype in _FORM_TYPES and _has_unsafe_text(request.form.items(multi=True)):
        where = "form"
    elif request.is_json and _json_has_unsafe_text(request.get_json(silent=True)):
        where = "JSON body"
    if where is None:
        return None
    return error_response(BadRequest(f"The {where} holds a NUL byte or an unpaired surrogate, "
                                     "which no text here may contain.", "invalid_text"))


def _has_unsafe_text(pairs) -> bool:
    return any(validation.is_unsafe_text(k) or validation.is_unsafe_text(v) for k, v in pairs)


def _json_has_unsafe_text(data) -> bool:
    """Walks the parsed body without recursion (it may be nested as deep as the parser allows)."""
    pending = [data]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if validation.is_unsafe_text(item):
                return True
        elif isinstance(item, dict):
            for key, value in item.items():
                if validation.is_unsafe_text(key):
                    return True
                pending.append(value)
        elif isinstance(item, list):
            pending.extend(item)
    return False
