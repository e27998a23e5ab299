"""Realtime test helpers: a JSON API client over real HTTP, WebSocket viewers
(simple-websocket), a raw handshake probe, and app servers run as separate
processes. Nothing here is mocked: every test talks to a real server over
TCP, which talks to real PostgreSQL and real Redis pub/sub."""
from __future__ import annotations

import base64
import contextlib
import json
import os
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from simple_websocket import Client, ConnectionClosed

from app import embedded

ROOT = Path(__file__).resolve().parents[2]


# ---- JSON API over HTTP ---------------------------------------------------------

def call(base: str, method: str, path: str, body=None, headers=None, timeout: float = 30):
    """(status, json) of one real HTTP request."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method,
                                 headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, raw.decode(errors="replace")


@dataclass
class Api:
    """The endpoints these tests use, on one server (`base` = http://host:port)."""
    base: str

    def register(self, role: str) -> tuple[dict, dict]:
        """(user, headers) of a new account registered through this server."""
        status, body = call(self.base, "POST", "/api/auth/register", {
            "email": f"rt-{role}-{uuid.uuid4().hex[:12]}@example.com", "password": "correct-horse-1",
            "displayName": f"RT {role} {uuid.uuid4().hex[:4]}", "role": role})
        assert status == 201, (status, body)
        return body["user"], {"Authorization": f"Bearer {body['token']}"}

    def buy(self, headers, amount: int) -> int:
        status, body = call(self.base, "POST", "/api/tokens/purchase", {"amountTokens": amount},
                            {**headers, "Idempotency-Key": str(uuid.uuid4())})
        assert status == 201, (status, body)
        return body["newBalance"]

    def create_stream(self, headers, type_="public", **extra) -> dict:
        status, body = call(self.base, "POST", "/api/streams/create", {"type": type_, **extra}, headers)
        assert status == 201, (status, body)
        return body["stream"]

    def stream_action(self, headers, stream_id: int, action: str) -> dict:
        status, body = call(self.base, "POST", f"/api/streams/{stream_id}/{action}", {}, headers)
        assert status == 200, (status, body)
        return body["stream"]

    def live_stream(self, headers, type_="public", **extra) -> dict:
        stream = self.create_stream(headers, type_, **extra)
        return self.stream_action(headers, stream["id"], "start")

    def tip(self, headers, creator_id: int, amount: int, message: str = "", stream_id: int | None = None,
            key: str | None = None):
        body = {"toCreatorId": creator_id, "amountTokens": amount, "message": message, "confirm": True}
        if stream_id is not None:
            body["context"] = {"streamId": stream_id}
        return call(self.base, "POST", "/api/tips/send", body,
                    {**headers, "Idempotency-Key": key or str(uuid.uuid4())})

    def send_tip(self, headers, creator_id, amount, message="", stream_id=None) -> dict:
        status, body = self.tip(headers, creator_id, amount, message, stream_id)
        assert status == 201, (status, body)
        return body

    def wallet(self, headers) -> dict:
        status, body = call(self.base, "GET", "/api/wallet/me", None, headers)
        assert status == 200, (status, body)
        return body

    def ws(self, path: str) -> str:
        return "ws://" + urlsplit(self.base).netloc + path


# ---- WebSocket viewers -------------------------------------------------------------

class _Client(Client):
    """simple-websocket's client, sending Host with the port as browsers do (their
    Origin carries it too: the server's Origin check compares the two), and
    closing without pulling the socket from under its reader thread."""

    def handshake(self):
        default = 443 if isinstance(self.sock, ssl.SSLSocket) else 80
        if self.port != default:
            self.host = f"{self.host}:{self.port}"
        super().handshake()

    def close(self, reason=None, message=None):
        # Client.close releases the socket while the reader thread may still be in
        # it; a TLS socket's reader then reads (and answers pings on) whatever later
        # connection reuses the file descriptor. Send the close frame, let the thread
        # end (it closes the socket), and only cut the connection if it doesn't.
        super(Client, self).close(reason, message)
        self.thread.join(2)
        if self.thread.is_alive():
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_RDWR)
            self.thread.join(2)
        self.sock.close()


class Viewer:
    """A WebSocket client that records every message it receives (wss:// with `ssl_context`)."""

    def __init__(self, url: str, headers: dict | None = None, ssl_context: ssl.SSLContext | None = None):
        self.url = url
        self.ws = _Client.connect(url, headers=headers, ssl_context=ssl_context)
        self.messages: list[str] = []
        self.closed = False
        self._unread: tuple[str, str] | None = None  # (frame, its part after wait_for's last match)

    def receive(self, timeout: float) -> str | None:
        if self.closed:
            return None
        try:
            message = self.ws.receive(timeout=timeout)
        except ConnectionClosed:
            self.closed = True
            return None
        if message is None and not self.ws.connected:
            self.closed = True
        if message is not None:
            self.messages.append(message)
        return message

    def wait_for(self, needle: str, timeout: float = 2.0) -> str | None:
        """The first message (from now on) containing `needle`, or None at the deadline.

        A frame can carry several messages (the hub joins a round's messages to one
        stream into one frame; htmx swaps each fragment in order), so the part of a
        matched frame after the match is still unread: the next call looks there first."""
        frame, self._unread = self._unread, None
        if frame is not None and needle in frame[1]:
            self._unread = (frame[0], frame[1].split(needle, 1)[1])
            return frame[0]
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            message = self.receive(left)
            if message is not None and needle in message:
                self._unread = (message, message.split(needle, 1)[1])
                return message
            if message is None and self.closed:
                return None
        return None

    def collect(self, duration: float) -> list[str]:
        """Every message that arrives within `duration` seconds."""
        got = []
        deadline = time.monotonic() + duration
        while (left := deadline - time.monotonic()) > 0:
            message = self.receive(left)
            if message is None:
                if self.closed:
                    break
                continue
            got.append(message)
        return got

    def close(self) -> None:
        with contextlib.suppress(Exception):  # already closed by the server
            self.ws.close()


@dataclass
class Handshake:
    status: int
    headers: dict
    body: bytes


def handshake(base: str, path: str, headers: dict | None = None, timeout: float = 5,
              ssl_context: ssl.SSLContext | None = None) -> Handshake:
    """A browser-like WebSocket upgrade request (Host *with* the port, as browsers
    send it) over a raw socket (TLS with `ssl_context`): the status line, headers
    and whatever the server sends next (the HTTP error body, or for a 101 the
    first frames)."""
    netloc = urlsplit(base).netloc
    host, port = netloc.rsplit(":", 1)
    lines = [f"GET {path} HTTP/1.1", f"Host: {netloc}", "Upgrade: websocket", "Connection: Upgrade",
             f"Sec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}", "Sec-WebSocket-Version: 13"]
    # Accept JSON, as API clients do, so a refusal's body carries its machine-readable code.
    lines += [f"{k}: {v}" for k, v in {"Accept": "application/json", **(headers or {})}.items()]
    sock = socket.create_connection((host, int(port)), timeout=timeout)
    if ssl_context is not None:
        sock = ssl_context.wrap_socket(sock, server_hostname=host)
    with sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        raw = b""
        while b"\r\n\r\n" not in raw:
            chunk = sock.recv(65536)
            if not chunk:
                break
            raw += chunk
        head, _, rest = raw.partition(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        status = int(status_line.split()[1])
        hdrs = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines)}
        if status == 101:
            # Read the first frames the server pushes (the state sync), briefly.
            sock.settimeout(0.5)
            try:
                while len(rest) < 2 or b"</" not in rest:
                    chunk = sock.recv(65536)
                    if not chunk:
                        break
                    rest += chunk
            except OSError:
                pass
        else:
            length = int(hdrs.get("content-length", "0"))
            while len(rest) < length:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                rest += chunk
    return Handshake(status, hdrs, rest)


# ---- servers in their own processes ------------------------------------------

@dataclass
class ServerProcess:
    name: str
    base: str
    proc: subprocess.Popen
    log_path: Path
    _log: object = field(repr=False, default=None)

    @property
    def api(self) -> Api:
        return Api(self.base)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        embedded.stop(self.proc, 5)
        if self._log is not None:
            self._log.close()
            self._log = None


def wait_healthy(server: ServerProcess, timeout: float = 30, want=(200,)) -> dict:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise AssertionError(f"{server.name} exited with {server.proc.returncode}:\n{server.log()}")
        try:
            status, body = call(server.base, "GET", "/healthz", timeout=2)
            last = (status, body)
            if status in want:
                return body
        except OSError as exc:
            last = exc
        time.sleep(0.1)
    raise AssertionError(f"{server.name} never became healthy ({last!r}):\n{server.log()}")


