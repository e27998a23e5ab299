"""The media server for live video, run locally: Debian's nginx with the RTMP
module (`libnginx-mod-rtmp`) and `deploy/nginx-rtmp.conf`.

`make run` starts one when both are installed (app/devserver.py), so a
newcomer can publish from OBS or ffmpeg and watch in a browser; the tests and
`bench/hls_auth.py` start their own. Each runs in the foreground under a fresh
directory of its own (pid, logs, temp files, HLS fragments), on free ports,
and dies with its owner.

The configuration is filled from the template the way README.md tells an
operator to (`fill`: every `${PM_…}` placeholder, and only those, replaced —
what `envsubst '<the README's list>'` does), so what runs here is what ships.
"""
from __future__ import annotations

import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from app import embedded

# Debian's paths; NGINX_BIN / NGINX_RTMP_MODULE point elsewhere (another build, or none).
NGINX = os.environ.get("NGINX_BIN", "/usr/sbin/nginx")
RTMP_MODULE = os.environ.get("NGINX_RTMP_MODULE", "/usr/lib/nginx/modules/ngx_rtmp_module.so")
FFMPEG = "ffmpeg"
TEMPLATE = Path(__file__).resolve().parent.parent / "deploy" / "nginx-rtmp.conf"
INSTALL_HINT = "sudo apt-get install nginx libnginx-mod-rtmp ffmpeg"
PLACEHOLDER = re.compile(r"\$\{(PM_[A-Z_]+)\}")
# How long nginx keeps a yes per token and stream (deploy/nginx-rtmp.conf): the player's
# token renewal period (half of PLAYBACK_TOKEN_TTL_SECONDS's default 120 s), so each
# token is checked about once; see auth_cache_seconds.
AUTH_CACHE_SECONDS = 60


def auth_cache_seconds(token_ttl: int) -> int:
    """The cache period for tokens living `token_ttl` seconds: half of it (the player
    renews then, and access then ends within one token lifetime)."""
    return max(1, token_ttl // 2)


def missing() -> list[str]:
    """The Debian packages live video needs here that are not installed."""
    absent = []
    if not os.access(NGINX, os.X_OK):
        absent.append("nginx")
    if not os.path.exists(RTMP_MODULE):
        absent.append("libnginx-mod-rtmp")
    return absent


def placeholders() -> list[str]:
    """Every placeholder of the template, in order of first use."""
    return list(dict.fromkeys(PLACEHOLDER.findall(TEMPLATE.read_text())))


def fill(values: dict[str, str]) -> str:
    """The template with every `${PM_…}` replaced; KeyError naming a missing value."""
    return PLACEHOLDER.sub(lambda m: str(values[m.group(1)]), TEMPLATE.read_text())


@dataclass
class MediaServer:
    """A running nginx-rtmp: where encoders publish and where players read."""
    directory: Path
    rtmp_port: int
    hls_port: int
    proc: subprocess.Popen | None = None
    _log: object = field(default=None, repr=False)

    @property
    def ingest_url(self) -> str:
        """MEDIA_INGEST_URL: OBS's server is this plus `/stream`."""
        return f"rtmp://127.0.0.1:{self.rtmp_port}"

    @property
    def hls_base_url(self) -> str:
        """MEDIA_HLS_BASE_URL: playlists are at `<this>/stream/<id>/index.m3u8`."""
        return f"http://127.0.0.1:{self.hls_port}"

    def log(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in
                         (self.directory / "stderr.log", self.directory / "error.log") if p.exists())

    def stop(self) -> None:
        embedded.stop(self.proc, 10)
        if self._log is not None:
            self._log.close()
            self._log = None
        shutil.rmtree(self.directory, ignore_errors=True)


def start(app_address: str, app_origin: str, auth_cache_seconds: int = AUTH_CACHE_SECONDS) -> MediaServer:
    """nginx-rtmp on free ports of 127.0.0.1, asking the app at `app_address`
    (host:port, plain HTTP) and letting pages of `app_origin` read HLS; listening
    when returned. RuntimeError (with nginx's words) when it cannot start."""
    absent = missing()
    if absent:
        raise RuntimeError(f"live video needs {' and '.join(absent)}: {INSTALL_HINT}")
    # Under /tmp and world-readable: run as root, nginx's workers are `nobody`, and they
    # write the HLS fragments and read the temp paths the master creates here.
    directory = Path(tempfile.mkdtemp(prefix="pm-media-"))
    directory.chmod(0o755)
    hls = directory / "hls"
    hls.mkdir()
    if os.geteuid() == 0:
        nobody = pwd.getpwnam("nobody")
        os.chown(hls, nobody.pw_uid, nobody.pw_gid)
    server = MediaServer(directory, embedded.free_port(), embedded.free_port())
    conf = directory / "nginx.conf"
    conf.write_text(fill({
        "PM_RTMP_MODULE": RTMP_MODULE, "PM_MEDIA_DIR": str(directory), "PM_RTMP_PORT": str(server.rtmp_port),
        "PM_HLS_PORT": str(server.hls_port), "PM_APP_ADDRESS": app_address, "PM_APP_ORIGIN": app_origin,
        "PM_AUTH_CACHE_SECONDS": str(auth_cache_seconds)}))
    command = [NGINX, "-p", str(directory), "-c", str(conf), "-e", str(directory / "error.log")]
    checked = subprocess.run([*command, "-t"], capture_output=True, text=True)
    if checked.returncode != 0:
        server.stop()
        raise RuntimeError(f"nginx refuses deploy/nginx-rtmp.conf:\n{checked.stderr}")
    server._log = open(directory / "stderr.log", "wb")  # noqa: SIM115 - closed by MediaServer.stop
    server.proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=server._log,
                                   stderr=subprocess.STDOUT, start_new_session=True,
                                   preexec_fn=embedded.die_with_owner())
    try:
        _wait_listening(server, (server.rtmp_port, server.hls_port))
    except BaseException:
        server.stop()
        raise
    return server


def _wait_listening(server: MediaServer, ports, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    for port in ports:
        while True:
            if server.proc.poll() is not None:
                raise RuntimeError(f"nginx exited with {server.proc.returncode}:\n{server.log()}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"nginx never listened on {port}:\n{server.log()}") from None
                time.sleep(0.05)


def publish_command(ingest_url: str, stream_id: int, key: str, seconds: float | None = None) -> list[str]:
    """ffmpeg publishing a test picture and tone as stream `stream_id`, the way OBS
    would (H.264 + AAC over RTMP, a keyframe every second so HLS cuts 1 s
    fragments), in real time; forever unless `seconds`."""
    duration = [] if seconds is None else ["-t", str(seconds)]
    return [FFMPEG, "-hide_banner", "-loglevel", "error", "-re",
            "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25",
            "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100",
            *duration, "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-pix_fmt", "yuv420p",
            "-g", "25", "-keyint_min", "25", "-sc_threshold", "0", "-b:v", "600k",
            "-c:a", "aac", "-b:a", "64k", "-f", "flv", f"{ingest_url}/stream/{stream_id}?token={key}"]
