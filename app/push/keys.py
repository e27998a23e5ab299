"""VAPID key pairs (RFC 8292) in the form every Web Push library prints them:
the private key as the base64url of its 32-byte P-256 scalar, the public key as
the base64url of its 65-byte uncompressed point (what a browser's
`pushManager.subscribe({applicationServerKey})` takes).

Development and test keep one pair under instance/ (like the dev SECRET_KEY),
so subscriptions made by a browser survive restarts; production reads them
from the environment (app/config.py).
"""
from __future__ import annotations

import base64
import binascii

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

PRIVATE_KEY_FILE = "vapid_private_key"


def b64url_encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Strict base64url (padding optional); ValueError for anything else."""
    if not isinstance(text, str) or not text.isascii():
        raise ValueError("not base64url text")
    stripped = text.rstrip("=")
    if any(c not in _B64URL for c in stripped) or len(stripped) % 4 == 1:
        raise ValueError("not base64url text")
    if stripped != text and (len(text) % 4 or len(text) - len(stripped) > 2):
        raise ValueError("wrong base64 padding")
    try:
        return base64.urlsafe_b64decode(stripped + "=" * (-len(stripped) % 4))
    except (binascii.Error, ValueError):
        raise ValueError("not base64url text") from None


_B64URL = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def generate_pair() -> tuple[str, str]:
    """A new (private, public) pair, both base64url."""
    key = ec.generate_private_key(ec.SECP256R1())
    return b64url_encode(key.private_numbers().private_value.to_bytes(32, "big")), _public_of(key)


def public_key_for(private: str) -> str:
    """The public key of a base64url private key; ValueError when it is not one."""
    raw = b64url_decode(private)
    if len(raw) != 32:
        raise ValueError("a VAPID private key is 32 bytes")
    value = int.from_bytes(raw, "big")
    try:
        key = ec.derive_private_key(value, ec.SECP256R1())
    except ValueError:
        raise ValueError("not a P-256 private key") from None
    return _public_of(key)


def is_public_point(raw: bytes) -> bool:
    """True for a 65-byte uncompressed point that lies on P-256."""
    if len(raw) != 65 or raw[0] != 4:
        return False
    try:
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), raw)
    except ValueError:
        return False
    return True


def _public_of(key: ec.EllipticCurvePrivateKey) -> str:
    return b64url_encode(key.public_key().public_bytes(serialization.Encoding.X962,
                                                       serialization.PublicFormat.UncompressedPoint))


if __name__ == "__main__":  # `python -m app.push.keys`: the same pair as `flask push keys`, without the app
    _private, _public = generate_pair()
    print(f"VAPID_PRIVATE_KEY={_private}\nVAPID_PUBLIC_KEY={_public}")
