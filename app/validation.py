"""Input checks shared by the HTML forms and the JSON API.

Services call these so a rule is written once. Each collector raises one
`InvalidValue` carrying every field error (`errors`), so a form can show all
of them next to their fields and the API can name the first.

Two rules hold for every input, whoever reads it:

* **Text** never contains a NUL byte (PostgreSQL cannot store one) or a lone
  surrogate (`"\\ud800"`: JSON allows it, UTF-8 cannot carry it). No browser
  form can send either, so `app.http.refuse_unsafe_text` turns the whole
  request away before anything reads it; `text_value` refuses them again.
* **Integers** are ASCII digits only (`str.isdigit()`, `int()` and the regex
  `\\d` also take "²", "٣" and "１２"), and an id fits a BIGINT.
"""
from __future__ import annotations

import re

from email_validator import EmailNotValidError, validate_email

from app.errors import BadRequest, InvalidValue

BIGINT_MAX = 2**63 - 1  # ids are PostgreSQL BIGINT

# A form amount: ASCII digits, optionally grouped by commas or spaces ("1,000", "1 000").
_DIGITS = re.compile(r"^\s*[0-9][0-9,\s]*\s*$")
_ASCII_DIGITS = re.compile(r"[0-9]+")
# Python's json decodes an escaped surrogate *pair* into one character, so any
# surrogate left in a str is a lone one.
_UNSAFE_TEXT = re.compile("[\x00\ud800-\udfff]")
# Control characters other than tab/newline have no place in names or messages.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# Single-line values (names) also refuse line breaks, tabs and the bidi
# overrides that let a name display reversed ("Trojan Source" style).
_CONTROL_SINGLE_LINE = re.compile(r"[\x00-\x1f\x7f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def is_unsafe_text(value: str) -> bool:
    """True when `value` holds a NUL byte or a lone surrogate: text no person
    types and neither PostgreSQL nor UTF-8 can take."""
    return _UNSAFE_TEXT.search(value) is not None


def ascii_int(raw, maximum: int = BIGINT_MAX) -> int | None:
    """`raw` (text from a URL or a form) as an integer in [0, maximum], or None
    when it is anything but ASCII digits or is larger."""
    if not isinstance(raw, str) or not _ASCII_DIGITS.fullmatch(raw):
        return None
    significant = raw.lstrip("0")
    # Bound the length first: int() of thousands of digits is slow (or refused).
    if len(significant) > len(str(maximum)):
        return None
    value = int(raw)
    return value if value <= maximum else None


def is_local_path(value) -> bool:
    """True for a path on this site ("/wallet?page=2") that is safe to redirect to:
    not "//evil.com" nor "/\\evil.com" (browsers read both as another host), and no
    whitespace or control characters (URL parsers drop some, turning "/\\t/x" into "//x")."""
    return (isinstance(value, str) and value.startswith("/") and not value.startswith("//") and "\\" not in value
            and value.isprintable() and not any(c.isspace() for c in value))


def has_control_characters(value: str, single_line: bool = True) -> bool:
    return bool((_CONTROL_SINGLE_LINE if single_line else _CONTROL).search(value))


class Errors:
    """Collects field errors; `raise_if_any()` raises one InvalidValue for all of them."""

    def __init__(self):
        self.errors: dict[str, str] = {}

    def add(self, field: str, message: str) -> None:
        self.errors.setdefault(field, message)

    def check(self, field: str, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except InvalidValue as err:
            self.add(err.field or field, err.message)
            return None

    def raise_if_any(self) -> None:
        if self.errors:
            field, message = next(iter(self.errors.items()))
            raise InvalidValue(message, field=field, errors=dict(self.errors))


def token_amount(value, field: str, *, maximum: int, minimum: int = 1, from_form: bool = False) -> int:
    """A whole number of tokens in [minimum, maximum].

    JSON must send a number; forms send text, where ASCII digits with thousands
    separators ("1,000") are accepted. Booleans, floats, "1.5", "abc" and
    out-of-range values raise `InvalidValue`.
    """
    if value is None or value == "":
        raise InvalidValue("Enter an amount of tokens.", field=field)
    if from_form and isinstance(value, str):
        digits = re.sub(r"[,\s]", "", value) if len(value) <= 32 and _DIGITS.match(value) else ""
        value = ascii_int(digits)
        if value is None:
            raise InvalidValue("Enter a whole number of tokens, like 1000.", field=field)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidValue("The amount must be a whole number of tokens.", field=field)
    if value < minimum:
        raise InvalidValue(f"The amount must be at least {minimum:,} token{'s' if minimum != 1 else ''}.", field=field)
    if value > maximum:
        raise InvalidValue(f"The amount can be at most {maximum:,} tokens.", field=field)
    return value


def is_record_id(value) -> bool:
    """A JSON integer that can be a row id (a positive BIGINT; `true` is not 1)."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value <= BIGINT_MAX


def record_id(value, field: str, message: str) -> int:
    """`value` as a row id, or `InvalidValue` on `field` with `message`."""
    if not is_record_id(value):
        raise InvalidValue(message, field=field)
    return value


def text_value(value, field: str, *, label: str, max_length: int, required: bool = True,
               min_length: int = 0, strip: bool = True, single_line: bool = True) -> str:
    """A string of bounded length without control characters, NUL bytes or lone
    surrogates (stored raw, escaped on output)."""
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise InvalidValue(f"{label} must be text.", field=field)
    if strip:
        value = value.strip()
    if not value:
        if required:
            raise InvalidValue(f"{label} is required.", field=field)
        return ""
    if has_control_characters(value, single_line) or is_unsafe_text(value):
        raise InvalidValue(f"{label} contains characters that are not allowed.", field=field)
    if len(value) > max_length:
        raise InvalidValue(f"{label} can be at most {max_length:,} characters.", field=field)
    if len(value) < min_length:
        raise InvalidValue(f"{label} must be at least {min_length} characters.", field=field)
    return value


def email_address(value, field: str = "email") -> str:
    """Normalised e-mail address; checks the form only, never deliverability."""
    raw = text_value(value, field, label="Email", max_length=254)
    try:
        info = validate_email(raw, check_deliverability=False)
    except EmailNotValidError:
        raise InvalidValue("Enter a valid email address, like name@example.com.", field=field) from None
    return info.normalized.lower()


def choice(value, field: str, options: tuple[str, ...], *, label: str) -> str:
    if not isinstance(value, str) or value not in options:
        raise InvalidValue(f"{label} must be one of: {', '.join(options)}.", field=field)
    return value


def json_body(request) -> dict:
    """The request's JSON object, or `BadRequest` when the body is not one."""
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise BadRequest("Send a JSON object body with Content-Type: application/json.", "invalid_json")
    return data


def idempotency_key(value, field: str = "idempotency_key") -> str:
    """A client-chosen key: 1–255 visible ASCII characters."""
    if not isinstance(value, str) or not value.strip():
        raise BadRequest("An Idempotency-Key is required for this request.", "idempotency_key_required")
    value = value.strip()
    if len(value) > 255 or not value.isascii() or not value.isprintable():
        raise BadRequest("The Idempotency-Key must be 1–255 printable ASCII characters.", "invalid_idempotency_key")
    return value
