"""A stand-in for a browser's push service (RFC 8030) on 127.0.0.1: records every
POST (path, headers, body) and answers 201, or the status set for that endpoint
with `answer(name, status)`. Threads, so a job's parallel sends all get through.

`vapid_claims` checks an `Authorization: vapid t=…, k=…` header the way a push
service does (RFC 8292): the JWT's ES256 signature against the key in `k`, with
our own code (cryptography), not the library that signed it.
"""
from __future__ import annotations

import base64
import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature


@dataclass
class Received:
    path: str
    headers: dict
    body: bytes


class PushReceiver:
    def __init__(self):
        self.received: list[Received] = []
        self.statuses: dict[str, int] = {}
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver._lock:
                    receiver.received.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()},
                                                      body))
                    status = receiver.statuses.get(self.path, 201)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.origin = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> PushReceiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def endpoint(self, name: str) -> str:
        return f"{self.origin}/push/{name}"

    def answer(self, name: str, status: int) -> None:
        self.statuses[f"/push/{name}"] = status

    def to(self, name: str) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.path == f"/push/{name}"]


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def vapid_claims(authorization: str) -> tuple[dict, str]:
    """(the verified JWT claims, the base64url public key `k`) of a `vapid t=…, k=…`
    header; AssertionError when it is malformed or the signature is not k's."""
    scheme, _, params = authorization.partition(" ")
    assert scheme.lower() == "vapid", authorization
    fields = dict(part.strip().split("=", 1) for part in params.split(","))
    token, key = fields["t"], fields["k"]
    header_b64, claims_b64, signature_b64 = token.split(".")
    assert json.loads(b64url_decode(header_b64)) == {"typ": "JWT", "alg": "ES256"}
    signature = b64url_decode(signature_b64)
    assert len(signature) == 64
    public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b64url_decode(key))
    public.verify(encode_dss_signature(int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")),
                  f"{header_b64}.{claims_b64}".encode("ascii"), ec.ECDSA(hashes.SHA256()))  # raises if forged
    return json.loads(b64url_decode(claims_b64)), key
