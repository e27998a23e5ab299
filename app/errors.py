"""Named errors for broken rules, and the one place that maps them to HTTP.

Services raise these; routes never pick status codes for business rules.
JSON answers are `{error, code}` (plus `field` / `required` where useful);
HTML answers render `errors/error.html`. Nothing reaches the client as a 500
page with a traceback.
"""
from __future__ import annotations

import logging

from flask import jsonify, make_response, render_template, request
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

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
    """API and health routes answer JSON, as does any request that sent JSON (the
    media server's hook); pages answer HTML."""
    if request.path.startswith("/api/") or request.path == "/healthz" or request.is_json:
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


def register_error_handlers(app):
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
        log.exception("unhandled error on %s %s", request.method, request.path)
        # The failed statement may have aborted the transaction; the error page
        # (its nav balance, say) must not run its queries in it and fail again.
        try:
            from app.extensions import db
            db.session.rollback()
        except Exception:  # noqa: BLE001 - the answer below matters more
            log.exception("rollback after unhandled error failed")
        e = AppError("Something went wrong on our side and nothing was changed. Please try again.", "internal_error")
        e.status = 500
        return error_response(e)
