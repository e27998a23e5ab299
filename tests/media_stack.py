"""Live video for real, for the tests: the app over HTTP, Debian's nginx with the
RTMP module in front of its media gate (deploy/nginx-rtmp.conf, filled and run
by app/mediaserver.py), and ffmpeg publishing a test picture as the creator's
OBS would. Nothing is stubbed: ffmpeg → RTMP → nginx-rtmp → on_publish → the
app; player/client → nginx → auth_request → the app → the HLS files.

Missing nginx, the RTMP module or ffmpeg fails the tests that need them (never
a skip); .ci/run installs them.
"""
from __future__ import annotations

import http.client
import re
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from flask import Flask

from app import mediaserver
from app.mediaserver import MediaServer

# Short enough that "within one token lifetime" is seconds; the player renews at half life (≥ 5 s).
# nginx caches a yes for half of it, as make run does (mediaserver.auth_cache_seconds).
PLAYBACK_TTL = 8
SEGMENT = re.compile(r"^[^#\s].*\.ts$", re.MULTILINE)


def require_media_tools() -> None:
    absent = mediaserver.missing() + ([] if shutil.which(mediaserver.FFMPEG) else ["ffmpeg"])
    if absent:
        raise AssertionError(f"live video tests need {', '.join(absent)}: {mediaserver.INSTALL_HINT} "
                             "(.ci/run installs them)")


@dataclass
class Hls:
    status: int
    body: bytes
    headers: dict

    @property
    def text(self) -> str:
        return self.body.decode(errors="replace")

    def segments(self) -> list[str]:
        return SEGMENT.findall(self.text)


@dataclass
class MediaStack:
    """The app at `base` (HTTP) and its nginx-rtmp; `publish` starts an encoder."""
    app: Flask
    base: str
    media: MediaServer
    encoders: list = field(default_factory=list)

    def publish(self, stream_id: int, key: str, seconds: float | None = None) -> subprocess.Popen:
        """ffmpeg publishing to the stream (stopped at teardown if still running)."""
        proc = subprocess.Popen(mediaserver.publish_command(self.media.ingest_url, stream_id, key, seconds),
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.encoders.append(proc)
        return proc

    def stop_encoders(self) -> None:
        for proc in self.encoders:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            if proc.stderr:
                proc.stderr.close()
        self.encoders.clear()

    def hls(self, path: str, token: str | None = None, method: str = "GET", headers: dict | None = None) -> Hls:
        """A request to nginx's HLS side, as a player would send it."""
        parts = urlsplit(self.media.hls_base_url)
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=15)
        headers = dict(headers or {})
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        try:
            conn.request(method, path, headers=headers)
            resp = conn.getresponse()
            return Hls(resp.status, resp.read(), {k.lower(): v for k, v in resp.getheaders()})
        finally:
            conn.close()

    def playlist(self, stream_id: int, token: str | None) -> Hls:
        return self.hls(f"/stream/{stream_id}/index.m3u8", token)

    def wait_for_segments(self, stream_id: int, token: str, count: int = 2, timeout: float = 30) -> Hls:
        """The stream's playlist once it lists `count` segments (the encoder is on air)."""
        deadline = time.monotonic() + timeout
        while True:
            got = self.playlist(stream_id, token)
            if got.status == 200 and len(got.segments()) >= count:
                return got
            if time.monotonic() > deadline:
                raise AssertionError(f"no playlist with {count} segments for stream {stream_id} after {timeout} s: "
                                     f"last answer {got.status} {got.text[:300]!r}\n{self.media.log()[-2000:]}")
            time.sleep(0.25)


def start(services_config, make_server_for) -> MediaStack:
    """nginx-rtmp first (it only needs the app's address), then the app configured
    with its URLs on that address."""
    require_media_tools()
    from app import embedded
    port = embedded.free_port()
    media = mediaserver.start(f"127.0.0.1:{port}", f"http://127.0.0.1:{port}",
                              mediaserver.auth_cache_seconds(PLAYBACK_TTL))
    try:
        app = services_config(MEDIA_HLS_BASE_URL=media.hls_base_url, MEDIA_INGEST_URL=media.ingest_url,
                              PLAYBACK_TOKEN_TTL_SECONDS=PLAYBACK_TTL)
        server = make_server_for(app, port)
    except BaseException:
        media.stop()
        raise
    threading.Thread(target=server.serve_forever, daemon=True).start()
    stack = MediaStack(app, f"http://127.0.0.1:{port}", media)
    stack._server = server
    return stack


def stop(stack: MediaStack) -> None:
    stack.stop_encoders()
    stack._server.shutdown()
    stack.media.stop()
