"""A browser's side of a push subscription, for tests: a real P-256 key pair and
16-byte auth secret (what `PushManager.subscribe` makes), and decryption of what
the push service received (RFC 8291, aes128gcm)."""
from __future__ import annotations

import base64
import json
import os

import http_ece
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


class Device:
    """One browser's subscription keys."""

    def __init__(self, endpoint: str):
        self.endpoint = endpoint
        self.private_key = ec.generate_private_key(ec.SECP256R1())
        self.auth_secret = os.urandom(16)
        self.p256dh = b64url(self.private_key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint))
        self.auth = b64url(self.auth_secret)

    def subscription(self, topics) -> dict:
        """The body of POST /api/me/push/subscriptions."""
        return {"endpoint": self.endpoint, "keys": {"p256dh": self.p256dh, "auth": self.auth}, "topics": list(topics)}

    def decrypt(self, body: bytes) -> dict:
        """The JSON payload of a push this device received."""
        plain = http_ece.decrypt(body, private_key=self.private_key, auth_secret=self.auth_secret,
                                 version="aes128gcm")
        return json.loads(plain)
