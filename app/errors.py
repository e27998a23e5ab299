"""Named errors for broken rules, and the one place that maps them to HTTP.

Services raise these; routes never pick status codes for business rules.
JSON answers are `{error, code}` (plus `field` / `required` where useful);
HTML answers render `errors/error.html`. Nothing reaches the client as a 500
page with a traceback.

Nothing that runs after a commit may turn a success into an error: when the
request's action committed and building its answer then failed, the answer
says it was done (see `_completed_anyway`), never "nothing was changed".
"""
from __future__ import annotations

import logging

from urllib.parse import urlsplit

from flask import flash, g, has_request_context, jsonify, make_response, redirect, render_template, request
from flask_wtf.csrf import CSRFError
from sqlalchemy import event
from werkzeug.exceptions import HTTPException, InternalServerError

log = logging.getLogger(__name__)


class AppError(Exception):
    status = 400
    code = "bad_request"

    def __init__(self, message: str, code: str | None = None, *, field: str | None = None, **extra):
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        self.field = field
        self.extra = extra

    def to_dict(self) -> dict:
        body = {"error": self.message, "code": self.code}
        if self.field:
            body["field"] = self.field
        body.update(self.extra)
        return body


class BadRequest(AppError):
    status, code = 400, "bad_request"


class Unauthorized(AppError):
    status, code = 401, "unauthorized"


class Forbidden(AppError):
    status, code = 403, "forbidden"


class NotFound(AppError):
    status, code = 404, "not_found"


class Conflict(AppError):
    status, code = 409, "conflict"


class InvalidValue(AppError):
    status, code = 422, "invalid_value"


class AccountRestricted(Forbidden):
    """The user owes tokens (a refund or chargeback took back more than the wallet
    held) and may not spend until a purchase has repaid it; `owed` in tokens."""

    code = "account_restricted"

    def __init__(self, owed: int):
        super().__init__(f"Your account is restricted: {owed:,} tokens are owed after a refund or chargeback. "
                         "Buy tokens to repay them, then you can spend again.", owed=owed)
        self.owed = owed


class InsufficientFunds(AppError):
    """The wallet cannot pay; `required` is the shortfall in tokens."""

    status, code = 402, "insufficient_funds"

    def __init__(self, required: int, message: str | None = None):
        super().__init__(
            message or f"Not enough tokens: {required:,} more needed.", required=required
        )
        self.required = required


class ServiceUnavailable(AppError):
    status, code = 503, "service_unavailable"


_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}

_HTTP_MESSAGES = {
    401: "Please log in first.",
    404: "Not found.",
    405: "That method is not allowed here.",
    413: "The request is too large.",
    429: "Too many requests. Slow down and try again in a moment.",
}


def wants_json() -> bool:
    """API, webhook, media-server and health routes answer JSON, as does any request
    that sent JSON; pages answer HTML."""
    if request.path.startswith(("/api/", "/webhooks/", "/media/")) or request.path == "/healthz" or request.is_json:
        return True
    return request.accept_mimetypes.best == "application/json"


def error_response(err: AppError):
    if wants_json():
        return jsonify(err.to_dict()), err.status
    resp = make_response(render_template("errors/error.html", error=err), err.status)
    if request.headers.get("HX-Request") == "true":
        # An error with no form to show it in goes to the page's alert area.
        resp.headers["HX-Retarget"] = "#flash"
        resp.headers["HX-Reswap"] = "innerHTML"
    return resp


def _as_tuple(resp):
    return resp if isinstance(resp, tuple) else (resp,)


_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _mark_committed(session) -> None:
    if has_request_context():
        g.committed = True


def _forget_earlier_commits() -> None:
    # Registered after authentication's hook: bookkeeping it commits (a token's
    # last use, say) is not the action this request asked for.
    g.committed = False


def _same_site_referrer() -> str:
    """The path (and query) of the page that sent the request, when it is one of ours; else "/"."""
    from app.validation import is_local_path
    try:
        parts = urlsplit(request.referrer or "")
    except ValueError:  # "http://[" is no URL
        return "/"
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    return target if parts.netloc == request.host and is_local_path(target) else "/"


def _completed_anyway():
    """The answer when the request's action committed and then building its answer
    failed: the action happened, so the client is told so. htmx reloads the page and
    a form goes back to it (either shows the new state); an API client gets 200
    `{completed: true, …}` and reads the state again, or repeats a keyed request
    with the same Idempotency-Key to get its real answer (nothing happens twice)."""
    if wants_json():
        return jsonify(completed=True, code="completed_without_answer", message=(
            "Your request was carried out, but its answer could not be built. Read the current state to see "
            "the result, or repeat the request with the same Idempotency-Key: nothing happens twice.")), 200
    flash("Done. The page was reloaded to show the result.", "success")
    if request.headers.get("HX-Request") == "true":
        resp = make_response("", 200)
        resp.headers["HX-Refresh"] = "true"
        return resp
    return redirect(_same_site_referrer(), 303)


def register_error_handlers(app):
    """Map errors to answers. Call after authentication is registered (see `_forget_earlier_commits`)."""
    from app.extensions import db
    if not event.contains(db.session, "after_commit", _mark_committed):
        event.listen(db.session, "after_commit", _mark_committed)
    app.before_request(_forget_earlier_commits)

    @app.errorhandler(AppError)
    def _app_error(err):
        return error_response(err)

    @app.errorhandler(CSRFError)
    def _csrf_error(err):
        return error_response(BadRequest(
            "Your form expired or came from another site. Reload the page and try again.",
            "csrf_failed",
        ))

    @app.errorhandler(HTTPException)
    def _http_error(err):
        if isinstance(err, InternalServerError) and err.original_exception is not None:
            # An exception Flask caught outside the view (an after_request hook, say).
            return _unexpected(err.original_exception)
        status = err.code or 500
        code = _HTTP_CODES.get(status, "http_error")
        message = _HTTP_MESSAGES.get(status) or err.description or "Request failed."
        e = AppError(message, code)
        e.status = status
        resp = make_response(*_as_tuple(error_response(e)))
        # Keep Retry-After and friends from the original exception.
        for k, v in err.get_headers():
            if k.lower() != "content-type":
                resp.headers[k] = v
        return resp

    @app.errorhandler(Exception)
    def _unexpected(err):
        log.error("unhandled error on %s %s", request.method, request.path, exc_info=err)
        # The failed statement may have aborted the transaction; the error page
        # (its nav balance, say) must not run its queries in it and fail again.
        try:
            db.session.rollback()
        except Exception:  # noqa: BLE001 - the answer below matters more
            log.exception("rollback after unhandled error failed")
        committed = g.get("committed", False)
        if committed and request.method not in _SAFE_METHODS:
            return _completed_anyway()
        # A page that committed in passing (a secret made on first view) changed
        # something, so only an untouched database is called unchanged.
        e = AppError("Something went wrong on our side. Please try again." if committed else
                     "Something went wrong on our side and nothing was changed. Please try again.", "internal_error")
        e.status = 500
        return error_response(e)
