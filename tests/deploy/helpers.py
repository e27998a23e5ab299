"""Deployment test helpers: the production server (gunicorn, APP_ENV=production)
in its own process, Debian's real nginx in front of it with deploy/nginx.conf
filled the documented way (envsubst), a self-signed certificate, and an HTTPS
client that speaks from a chosen loopback address (all of 127.0.0.0/8 is this
machine on Linux) with its own cookie jar."""
from __future__ import annotations

import datetime
import http.client
import ipaddress
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path

from app import embedded
from app.config import RATE_LIMIT_SETTINGS
from tests.realtime.helpers import ROOT, ServerProcess, wait_healthy

NGINX = "/usr/sbin/nginx"
ENVSUBST = "envsubst"
SITE_TEMPLATE = ROOT / "deploy" / "nginx.conf"
README = ROOT / "README.md"
SECRET_KEY = "deploy-test-secret"


# ---- the production server ---------------------------------------------------------

def start_production_server(name: str, services, workdir: Path, **settings: str) -> ServerProcess:
    """`gunicorn -c gunicorn.conf.py wsgi:app` (gevent, one worker) with APP_ENV=production
    on 127.0.0.1:<free port>, on the session's database and Redis; healthy when returned.
    Rate limits are generous unless `settings` set them."""
    port = embedded.free_port()
    env = embedded.env_with_services(*services)
    env.pop("FLASK_DEBUG", None)
    env.update({name_: "10000 per minute" for name_ in RATE_LIMIT_SETTINGS})
    env.update(APP_ENV="production", SECRET_KEY=SECRET_KEY, ALLOW_DEMO_PAYMENTS="1", HOST="127.0.0.1",
               PORT=str(port), WEB_CONCURRENCY="1", INSTANCE_DIR=str(workdir / f"instance-{name}"),
               PYTHONUNBUFFERED="1", **settings)
    log_path = workdir / f"{name}.log"
    log = open(log_path, "wb")  # noqa: SIM115 - closed by ServerProcess.stop
    proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"],
                            cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    server = ServerProcess(name, f"http://127.0.0.1:{port}", proc, log_path, log)
    try:
        wait_healthy(server)
    except BaseException:
        server.stop()
        raise
    return server


# ---- deploy/nginx.conf, filled as the README says ----------------------------------------

def documented_variables() -> str:
    """The variable list of the envsubst command README.md tells operators to run."""
    match = re.search(r"^envsubst '([^']+)' \\\n\s+< deploy/nginx\.conf", README.read_text(), re.MULTILINE)
    assert match, "README.md shows no `envsubst '<variables>' < deploy/nginx.conf` command"
    return match.group(1)


def fill_site(values: dict[str, str]) -> str:
    """deploy/nginx.conf filled by the documented command: envsubst with the documented list."""
    if shutil.which(ENVSUBST) is None:
        raise AssertionError("envsubst is missing: the nginx site is filled with it as the README says "
                             "(Debian: apt-get install gettext-base; .ci/run installs it)")
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **values}
    done = subprocess.run([ENVSUBST, documented_variables()], input=SITE_TEMPLATE.read_text(), env=env,
                          capture_output=True, text=True, check=True)
    assert "${" not in done.stdout, "a placeholder of deploy/nginx.conf is missing from the README's list"
    return done.stdout


# ---- TLS -----------------------------------------------------------------------------------

def self_signed_certificate(directory: Path, ip: str = "127.0.0.1") -> tuple[Path, Path]:
    """(certificate, key) PEM files for `ip`, valid for a day."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ip)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_path.chmod(0o600)
    return cert_path, key_path


def client_tls(cert_path: Path) -> ssl.SSLContext:
    """A client context that trusts only the test's certificate (hostname checked)."""
    return ssl.create_default_context(cafile=str(cert_path))


# ---- nginx -----------------------------------------------------------------------------------

MAIN_CONF = """\
daemon off;
worker_processes 1;
pid {prefix}/nginx.pid;
lock_file {prefix}/nginx.lock;
error_log {prefix}/error.log info;
events {{ worker_connections 256; }}
http {{
    access_log {prefix}/access.log;
    client_body_temp_path {prefix}/client_body_temp;
    proxy_temp_path {prefix}/proxy_temp;
    fastcgi_temp_path {prefix}/fastcgi_temp;
    uwsgi_temp_path {prefix}/uwsgi_temp;
    scgi_temp_path {prefix}/scgi_temp;
    include {site};
}}
"""


@dataclass
class Nginx:
    """Debian's nginx in the foreground under its own temporary prefix."""
    prefix: Path
    http_port: int
    https_port: int
    proc: subprocess.Popen | None = None
    _log: object = field(default=None, repr=False)

    @property
    def origin(self) -> str:
        return f"https://127.0.0.1:{self.https_port}"

    def log(self) -> str:
        parts = [p.read_text(errors="replace") for p in (self.prefix / "stderr.log", self.prefix / "error.log")
                 if p.exists()]
        return "\n".join(parts)

    def stop(self) -> None:
        embedded.stop(self.proc, 10)  # SIGTERM: fast shutdown of master and workers
        if self._log is not None:
            self._log.close()
            self._log = None
        shutil.rmtree(self.prefix, ignore_errors=True)


def require_nginx() -> None:
    """Fail (never skip) when Debian's nginx is missing."""
    if not os.access(NGINX, os.X_OK):
        raise AssertionError(f"the reverse-proxy test needs Debian's nginx at {NGINX} "
                             "(apt-get install nginx; .ci/run installs it)")


def start_nginx(upstream: str, cert_path: Path, key_path: Path) -> Nginx:
    """nginx serving deploy/nginx.conf (filled with envsubst) on free ports of this
    machine, proxying to `upstream`; listening when returned."""
    require_nginx()
    # Under /tmp, not pytest's 0700 tmp_path: as root, nginx's workers run as `nobody`
    # and must reach the temp paths the master creates (and chowns) here.
    prefix = Path(tempfile.mkdtemp(prefix="pm-nginx-"))
    prefix.chmod(0o755)
    nginx = Nginx(prefix, embedded.free_port(), embedded.free_port())
    site = prefix / "pro-monetization.conf"
    site.write_text(fill_site({
        "PM_SERVER_NAME": "127.0.0.1", "PM_HTTP_PORT": str(nginx.http_port),
        "PM_HTTPS_PORT": str(nginx.https_port), "PM_UPSTREAM": upstream,
        "PM_SSL_CERTIFICATE": str(cert_path), "PM_SSL_CERTIFICATE_KEY": str(key_path)}))
    conf = prefix / "nginx.conf"
    conf.write_text(MAIN_CONF.format(prefix=prefix, site=site))
    command = [NGINX, "-p", str(prefix), "-c", str(conf), "-e", "stderr"]
    checked = subprocess.run([*command, "-t"], capture_output=True, text=True)
    if checked.returncode != 0:
        nginx.stop()
        raise AssertionError(f"nginx -t refuses the filled deploy/nginx.conf:\n{checked.stderr}\n{site.read_text()}")
    nginx._log = open(prefix / "stderr.log", "wb")  # noqa: SIM115 - closed by Nginx.stop
    nginx.proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=nginx._log, stderr=subprocess.STDOUT,
                                  start_new_session=True)
    deadline = time.monotonic() + 15
    while True:
        if nginx.proc.poll() is not None:
            log = nginx.log()
            nginx.stop()
            raise AssertionError(f"nginx exited with {nginx.proc.returncode}:\n{log}")
        try:
            socket.create_connection(("127.0.0.1", nginx.https_port), timeout=1).close()
            return nginx
        except OSError:
            if time.monotonic() > deadline:
                log = nginx.log()
                nginx.stop()
                raise AssertionError(f"nginx never listened on {nginx.https_port}:\n{log}") from None
            time.sleep(0.05)


# ---- clients -----------------------------------------------------------------------------------

@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)

    def all(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]

    @property
    def text(self) -> str:
        return self.body.decode(errors="replace")

    def json(self):
        return json.loads(self.body)


class Client:
    """One person's browser or API client: speaks from `source` (a loopback
    address), trusts `tls` (None: plain HTTP), keeps the cookies it is given."""

    def __init__(self, base: str, source: str = "127.0.0.1", tls: ssl.SSLContext | None = None):
        self.base = base
        self.source = source
        self.tls = tls
        self.cookies: dict[str, str] = {}

    def request(self, method: str, path: str, body: bytes | str | dict | None = None,
                headers: dict | None = None) -> Response:
        scheme, _, netloc = self.base.partition("://")
        host, port = netloc.rsplit(":", 1)
        headers = dict(headers or {})
        if isinstance(body, dict):
            body, headers["Content-Type"] = json.dumps(body), "application/json"
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if scheme == "https":
            conn = http.client.HTTPSConnection(host, int(port), timeout=30, context=self.tls,
                                               source_address=(self.source, 0))
        else:
            conn = http.client.HTTPConnection(host, int(port), timeout=30, source_address=(self.source, 0))
        try:
            conn.request(method, path, body=body, headers=headers)
            resp = conn.getresponse()
            result = Response(resp.status, resp.getheaders(), resp.read())
        finally:
            conn.close()
        for raw in result.all("Set-Cookie"):
            for name, morsel in SimpleCookie(raw).items():
                self.cookies[name] = morsel.value
        return result

    def get(self, path: str, **kw) -> Response:
        return self.request("GET", path, **kw)

    def post(self, path: str, body=None, **kw) -> Response:
        return self.request("POST", path, body, **kw)


_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_token(page: Response) -> str:
    match = _CSRF.search(page.text)
    assert match, f"no CSRF token in the page ({page.status}):\n{page.text[:500]}"
    return match.group(1)
