"""app/validation.py: the one layer for text and integers (ASCII digits only, ids fit a
BIGINT, no NUL byte or lone surrogate in any text)."""
from __future__ import annotations

import pytest

from app import validation
from app.errors import InvalidValue

NON_ASCII_DIGITS = ["\u00b2", "\u00b9\u00b2", "\u0663", "\u0661\u0662", "\uff11\uff12", "\u2460", "1\u0663"]


@pytest.mark.parametrize("raw,expected", [("0", 0), ("7", 7), ("0042", 42), ("9223372036854775807", 2**63 - 1),
                                          ("0" * 40 + "5", 5)])
def test_ascii_int_reads_ascii_digits(raw, expected):
    assert validation.ascii_int(raw) == expected


@pytest.mark.parametrize("raw", [*NON_ASCII_DIGITS, "", " 1", "1 ", "-1", "+1", "1.5", "1e3", "0x10", "1_000",
                                 "9223372036854775808", "9" * 5000, None, 5, True])
def test_ascii_int_refuses_everything_else(raw):
    assert validation.ascii_int(raw) is None


def test_ascii_int_honours_its_maximum():
    assert validation.ascii_int("999999", maximum=999_999) == 999_999
    assert validation.ascii_int("1000000", maximum=999_999) is None


@pytest.mark.parametrize("typed", NON_ASCII_DIGITS)
def test_a_form_amount_in_non_ascii_digits_is_invalid(typed):
    with pytest.raises(InvalidValue) as err:
        validation.token_amount(typed, "amountTokens", maximum=100_000, from_form=True)
    assert err.value.message == "Enter a whole number of tokens, like 1000." and err.value.field == "amountTokens"


@pytest.mark.parametrize("text", ["a\x00b", "\ud800", "x\udfff", "\udbff\udc00"[0]])
def test_text_value_refuses_nul_bytes_and_lone_surrogates(text):
    with pytest.raises(InvalidValue):
        validation.text_value(text, "message", label="Message", max_length=100, single_line=False)


@pytest.mark.parametrize("value,unsafe", [("fine", False), ("", False), ("\U0001f389", False), ("\x00", True),
                                          ("a\ud800", True), ("\udc00z", True), ("\x01\x1b", False)])
def test_is_unsafe_text(value, unsafe):
    assert validation.is_unsafe_text(value) is unsafe
