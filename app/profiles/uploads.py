"""The avatar upload's request body: its own size limit, and an answer of 422
`avatar_too_large` (not the app-wide 413) when a body goes over it."""
from __future__ import annotations

from flask import request
from werkzeug.exceptions import RequestEntityTooLarge

from app.errors import InvalidValue
from app.profiles import avatars


def limit_avatar_bodies(bp, endpoints: set[str], on_too_large=None) -> None:
    """Let `endpoints` of `bp` take bodies up to `avatars.MAX_BODY_BYTES` (the app's
    MAX_CONTENT_LENGTH is 64 KB), and answer a larger one as `avatars.too_large()`,
    or with `on_too_large(err)` when given (an HTML form re-rendering itself)."""

    # A URL value preprocessor, because these run before every before_request hook, and
    # the first of those (app.http.refuse_unsafe_text), then CSRF, already read the form.
    @bp.url_value_preprocessor
    def _raise_limit(endpoint, _values):
        if endpoint in endpoints:
            request.max_content_length = avatars.MAX_BODY_BYTES

    @bp.errorhandler(RequestEntityTooLarge)
    def _too_large(_err):
        from app.errors import error_response
        err = avatars.too_large()
        if on_too_large is not None and request.endpoint in endpoints:
            return on_too_large(err)
        return error_response(err)


def avatar_bytes() -> bytes:
    """The uploaded `avatar` file's bytes (b"" when none was sent); `InvalidValue`
    avatar_too_large beyond `avatars.MAX_BYTES` (checked while reading)."""
    upload = request.files.get("avatar")
    if upload is None:
        if "avatar" in request.form:  # a text field named avatar is not a file
            raise InvalidValue("Send the image as a file upload (multipart/form-data).", "avatar_required",
                               field="avatar")
        return b""
    data = upload.stream.read(avatars.MAX_BYTES + 1)
    if len(data) > avatars.MAX_BYTES:
        raise avatars.too_large()
    return data
