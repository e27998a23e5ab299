"""HLS reads through nginx's `auth_request` gate versus the same nginx serving the same files ungated.

What is measured
----------------
Requests per second that Debian's nginx (+ libnginx-mod-rtmp) answers for a
live stream's HLS playlist and 1 s segments, as deploy/nginx-rtmp.conf ships
it (app/mediaserver.py fills and runs it), with every request checked by
`auth_request` against the app's `GET /media/nginx/play` — versus nginx
serving the very same files with no gate, in the same run.

The app is the production server (gunicorn with gunicorn.conf.py, gevent, its
2 workers) on a fresh database, with one creator's public stream LIVE and
`--viewers` fans (default 10,000, the issue's figure; created by one SQL
insert, they never log in). Every request carries the `Authorization: Bearer`
playback token of one of them (`app.streams.media.playback_token`, signed
with the server's SECRET_KEY), so nginx's decision cache (per token and
stream) sees as many keys as there are viewers.

How often the app is asked is what decides the result, so it is modelled as
in production. There, nginx keeps a yes for half a token's lifetime
(`mediaserver.auth_cache_seconds`: 60 s for the default 120 s tokens) and the
player renews its token at half life: each viewer costs one check per 60 s,
at its new token's first use. Here the tokens are signed once, with a
lifetime longer than the bench (the server runs with
PLAYBACK_TOKEN_TTL_SECONDS=3600), and nginx keeps a yes for the shipped 60 s
(`mediaserver.AUTH_CACHE_SECONDS`): each viewer's entry expires and is asked
again once per 60 s — the same one check per viewer per 60 s. Before each
gated run every viewer's token is used once (the warm-up: a stream's viewers
arrived earlier, not all in the measured second), and each gated and baseline
run lasts 60 s, so the measured window holds every viewer's next check. The
implied requests per token per second are printed next to a real viewer's
(~2: a playlist and a 1 s segment a second).

The segments are real: ffmpeg publishes the test picture (mediaserver's
`publish_command`, the creator's stream key, through `on_publish` to the app)
for 8 s into the gated nginx, and is then stopped. nginx-rtmp's
`hls_cleanup` deletes fragments by age even after the publisher is gone
(measured: all of them 15-25 s after ffmpeg stopped), so the bench moves the
files' modification times a day ahead, which its cleanup skips; the same
bytes are copied (same future times) into the other gated nginx's directory.
Each file is checked to still be there after the rounds, and every response's
status counts: a non-200 makes the run fail, never a fast one.

Three nginx servers, each with the template's `worker_processes auto` (one
worker per core), all up for the whole run; one is loaded at a time:

* gated — `mediaserver.start(...)` with the shipped cache period
  (`AUTH_CACHE_SECONDS`, 60 s), the configuration `make run` runs, to which
  the target applies;
* gated, cache off — the same with `auth_cache_seconds=0`, so every request
  reaches the app (says what the app's check alone carries; short runs);
* baseline — a copy of the gated server's filled nginx.conf, written by the
  bench, that differs in exactly this: no `auth_request` line, no `rtmp {}`
  block (its ports are the gated one's), its own listen port, pid, logs,
  temp and (unused) auth-cache paths. Its `alias` still points at the gated
  server's HLS directory: same files, same headers (CORS, Cache-Control,
  types), same `sendfile`/keepalive settings; the requests carry the same
  Authorization headers, which it ignores.

With `--private` a fourth mode measures a private show (ticket price 10) the
viewers each bought a ticket to (real purchases and checkouts, in-process):
the check then also reads the ticket.

The load generator is `wrk` (Debian's package); the bench stops if it is
missing. Its Lua script cycles the viewers: every viewer's playlist, then
every viewer's segment, so a viewer's two requests are never in flight
together (a player's come one after the other). `--threads` threads,
`--connections` keep-alive connections (default 256: real viewers each have
their own, and a connection waiting on a check idles only itself). Rounds
alternate the order of the modes (baseline, gated, cache off, …, then
reversed) so drift hits all alike; each run has a 1 s warm-up first (gated
runs: every viewer once, see above). Per run
it prints the cores used by the client (wrk's own CPU), nginx, gunicorn,
PostgreSQL and the whole machine, and for gated runs about how many checks
reached the app (PostgreSQL transactions on the bench database, one per
check, sampled under load, so ≈), i.e. the cache's hit rate, and the web CPU
per check.

Target (issue 16): gated ≥ 0.5× the baseline, medians of the rounds, at
10,000 viewers. The cache-off rate is the app's check capacity, from which
the bench derives how many playing viewers the cache period lets the app
carry. `--viewers 20` (nearly every request a cache hit) shows nginx's own
cost of the gate. nginx, gunicorn, PostgreSQL and wrk share the
machine's cores, so absolute numbers move with load (`uptime` is printed):
compare within a run.

Usage::

    .venv/bin/python bench/hls_auth.py [--viewers N] [--seconds S] [--rounds R] [--cache-seconds C]
                                       [--connections 256] [--threads 2] [--private]
"""
from __future__ import annotations

import argparse
import json
import os
import random
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import WebServer, api, fresh_services, libpq_url, register, server_url, tree_cpu  # noqa: E402

import psutil  # noqa: E402
import psycopg  # noqa: E402

from app import embedded, mediaserver  # noqa: E402

TARGET = 0.5
WRK_HINT = "apt-get install -y wrk"
SECRET_KEY = "bench-secret-key"  # what _common.WebServer gives gunicorn: the tokens must be signed with it
PUBLISH_SECONDS = 8
REAL_VIEWER_RATE = 2.0  # requests per second per viewer: a playlist and a 1 s segment
TICKET_PRICE = 10
LOG = "/tmp/pm-bench-hls-auth.log"

# One viewer = one token. Each wrk thread cycles through its share of the
# viewers, alternating one viewer's playlist with another's segment: a viewer's
# two requests are half a cycle apart, never in flight together (a player's come
# one after the other, and a second request on a key nginx has not cached yet
# waits on `proxy_cache_lock`, which nginx re-checks only every 500 ms). Each run
# starts at a random point of the cycle: a short run at a low rate must not ask
# for the same first viewers every time (the warm-up would then have cached them).
# The requests are built once per thread (wrk.format per request costs the client).
WRK_SCRIPT = r"""
local counter = 0
function setup(thread)
  thread:set("thread_id", counter)
  counter = counter + 1
end

function init(args)
  local tokens, segments = {}, {}
  for line in io.lines(args[1]) do tokens[#tokens + 1] = line end
  for line in io.lines(args[2]) do segments[#segments + 1] = line end
  local playlist, threads, seed = args[3], tonumber(args[4]), tonumber(args[5])
  local mine = {}
  for v = thread_id + 1, #tokens, threads do mine[#mine + 1] = v end
  local n, half = #mine, math.floor(#mine / 2)
  reqs = {}
  for k = 1, n do
    local v, w = mine[k], mine[(k - 1 + half) % n + 1]
    reqs[#reqs + 1] = wrk.format("GET", playlist, { ["Authorization"] = "Bearer " .. tokens[v] })
    reqs[#reqs + 1] = wrk.format("GET", segments[w % #segments + 1], { ["Authorization"] = "Bearer " .. tokens[w] })
  end
  math.randomseed(seed + thread_id)
  i = math.random(0, #reqs - 1)
end

function request()
  i = i % #reqs + 1
  return reqs[i]
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'PMRESULT {"requests": %d, "duration_us": %d, "bytes": %d, "non_2xx": %d, "connect": %d, "read": %d, ' ..
    '"write": %d, "timeout": %d, "p50_us": %d, "p99_us": %d}\n',
    summary.requests, summary.duration, summary.bytes, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


def in_process_app(db_url: str, redis: str):
    """The app in this process on the bench database, signing as the server does."""
    from app import create_app
    from app.config import Config
    return create_app(Config.from_env({"APP_ENV": "test", "DATABASE_URL": db_url, "REDIS_URL": redis,
                                       "SECRET_KEY": SECRET_KEY, "ALLOW_DEMO_PAYMENTS": "1"},
                                      PASSWORD_HASH_METHOD="pbkdf2:sha256:1"))


def create_viewers(app, n: int) -> list[int]:
    """`n` fans in one INSERT (they only need to exist: the check looks each one up)."""
    from sqlalchemy import text
    from werkzeug.security import generate_password_hash

    from app.extensions import db
    run = uuid.uuid4().hex[:8]
    with app.app_context():
        ids = db.session.scalars(text(
            "INSERT INTO users (email, password_hash, display_name, role) "
            "SELECT 'viewer-' || g || '-' || :run || '@example.com', :hash, 'Viewer ' || g, 'fan' "
            "FROM generate_series(1, :n) g RETURNING id"),
            {"run": run, "hash": generate_password_hash(uuid.uuid4().hex, method="pbkdf2:sha256:1"), "n": n}).all()
        db.session.commit()
    return list(ids)


def buy_tickets(app, viewer_ids: list[int], stream_id: int) -> None:
    """Each viewer gets a wallet, buys tokens (demo provider) and a ticket to the show: the app's own code."""
    from app import ledger
    from app.auth.models import User
    from app.extensions import db
    from app.streams import tickets
    from app.streams.models import Stream
    from app.wallet.service import purchase_tokens

    t0 = time.monotonic()
    with app.app_context():
        for n, uid in enumerate(viewer_ids, 1):
            ledger.open_account("wallet", uid)
            db.session.commit()
            fan = db.session.get(User, uid)
            purchase_tokens(fan, TICKET_PRICE, uuid.uuid4().hex)
            tickets.checkout(fan, db.session.get(Stream, stream_id))
            db.session.remove()
            if n % 1000 == 0:
                print(f"    {n:,} tickets ({time.monotonic() - t0:.0f} s)", flush=True)


def sign_tokens(app, viewer_ids: list[int], stream_id: int, path: Path) -> None:
    """A fresh playback token per viewer for this stream, one per line."""
    from app.extensions import db
    from app.streams import media
    from app.streams.models import Stream
    with app.app_context():
        stream = db.session.get(Stream, stream_id)
        path.write_text("".join(media.playback_token(SimpleNamespace(id=uid, is_authenticated=True), stream) + "\n"
                                for uid in viewer_ids))


def creator_key(app, creator_id: int) -> str:
    from app.auth.models import User
    from app.extensions import db
    from app.streams import media
    with app.app_context():
        return media.stream_key(db.session.get(User, creator_id))


def publish(server: mediaserver.MediaServer, stream_id: int, key: str) -> list[str]:
    """Really publish for PUBLISH_SECONDS; then pin the fragments (future mtime) and
    return the segment names of the final playlist."""
    folder = server.directory / "hls" / str(stream_id)
    proc = subprocess.Popen(mediaserver.publish_command(server.ingest_url, stream_id, key, PUBLISH_SECONDS),
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True, preexec_fn=embedded.die_with_owner())
    try:
        _, err = proc.communicate(timeout=PUBLISH_SECONDS + 30)
    finally:
        embedded.stop(proc)
    if proc.returncode != 0:
        raise RuntimeError(f"ffmpeg failed ({proc.returncode}): {err.decode(errors='replace')[-1500:]}\n"
                           f"{server.log()[-1500:]}")
    time.sleep(1)  # nginx-rtmp closes the last fragment and rewrites the playlist on publish-done
    pin(folder)
    playlist = folder / "index.m3u8"
    if not playlist.exists():
        raise RuntimeError(f"no playlist in {folder} after publishing: {sorted(os.listdir(folder))}\n{server.log()}")
    segments = [line.strip() for line in playlist.read_text().splitlines() if line.strip().endswith(".ts")]
    missing = [s for s in segments if not (folder / s).exists()]
    if not segments or missing:
        raise RuntimeError(f"playlist lists {segments}, missing {missing}")
    return segments


def pin(folder: Path) -> None:
    """nginx-rtmp's hls_cleanup deletes fragments and the playlist by their age (mtime), publisher
    or not (measured: all gone 15-25 s after ffmpeg stopped); dated a day ahead, they are left alone."""
    ahead = time.time() + 86400
    for f in folder.iterdir():
        os.utime(f, (ahead, ahead))


def copy_fragments(src: Path, dst: Path) -> None:
    dst.mkdir(parents=True, exist_ok=True)
    for f in src.iterdir():
        shutil.copy2(f, dst / f.name)  # copy2 keeps the future mtimes
    pin(dst)


def baseline_config(gated: mediaserver.MediaServer, directory: Path, port: int) -> str:
    """The gated server's filled nginx.conf without the gate: see the module docstring."""
    conf = (gated.directory / "nginx.conf").read_text()
    start = conf.index("\nrtmp {")
    depth, i = 0, conf.index("{", start)
    while True:
        depth += {"{": 1, "}": -1}.get(conf[i], 0)
        if depth == 0:
            break
        i += 1
    conf = conf[:start] + "\n# (rtmp block removed: the baseline serves HTTP only)\n" + conf[i + 1:]
    hls = str(gated.directory / "hls") + "/"
    assert conf.count(f"alias {hls};") == 1, "the template's alias line changed"
    conf = conf.replace(f"alias {hls};", "alias @HLS@;")
    conf = conf.replace(str(gated.directory), str(directory)).replace("@HLS@", hls)
    for old, new in ((f"listen {gated.hls_port};", f"listen {port};"),
                     ("auth_request /_pm_playback_auth;", "# no auth_request: the baseline")):
        assert conf.count(old) == 1, f"expected one {old!r} in the filled template"
        conf = conf.replace(old, new)
    return conf


class Baseline:
    """A second nginx serving the gated server's HLS directory without auth_request."""

    def __init__(self, gated: mediaserver.MediaServer):
        self.directory = Path(tempfile.mkdtemp(prefix="pm-media-baseline-"))
        self.directory.chmod(0o755)
        self.port = embedded.free_port()
        self.proc = None
        conf = self.directory / "nginx.conf"
        conf.write_text(baseline_config(gated, self.directory, self.port))
        command = [mediaserver.NGINX, "-p", str(self.directory), "-c", str(conf),
                   "-e", str(self.directory / "error.log")]
        checked = subprocess.run([*command, "-t"], capture_output=True, text=True)
        if checked.returncode != 0:
            self.stop()
            raise RuntimeError(f"nginx refuses the baseline config:\n{checked.stderr}")
        self._log = open(self.directory / "stderr.log", "wb")  # noqa: SIM115 - closed in stop
        self.proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True, preexec_fn=embedded.die_with_owner())
        self.hls_base_url = f"http://127.0.0.1:{self.port}"
        try:
            mediaserver._wait_listening(self, (self.port,))
        except BaseException:
            self.stop()
            raise

    def log(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in
                         (self.directory / "stderr.log", self.directory / "error.log") if p.exists())

    def stop(self) -> None:
        embedded.stop(self.proc, 10)
        if getattr(self, "_log", None):
            self._log.close()
        shutil.rmtree(self.directory, ignore_errors=True)


def status_of(url: str, token: str | None = None) -> int:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            resp.read()
            return resp.status
    except urllib.error.HTTPError as err:
        return err.code


def postgres_cpu() -> dict[int, float]:
    """CPU seconds of each PostgreSQL server process (read only; not ours to manage)."""
    found = {}
    for p in psutil.process_iter(["name", "cpu_times"]):
        if p.info["name"] in ("postgres", "postmaster") and p.info["cpu_times"]:
            found[p.pid] = p.info["cpu_times"].user + p.info["cpu_times"].system
    return found


def postgres_cpu_since(before: dict[int, float]) -> float:
    """CPU seconds PostgreSQL used since `before` (backends that exited meanwhile are lost)."""
    return sum(cpu - before.get(pid, 0.0) for pid, cpu in postgres_cpu().items())


def machine_busy() -> float:
    t = psutil.cpu_times()
    return t.user + t.nice + t.system + t.irq + t.softirq + t.steal


class Transactions:
    """Transactions committed or rolled back on the bench database: one per check that reached the app."""

    def __init__(self, base_url: str, name: str):
        self.conn = psycopg.connect(libpq_url(base_url), autocommit=True)
        self.name = name

    def count(self) -> int:
        self.conn.execute("SELECT pg_stat_clear_snapshot()")
        return self.conn.execute("SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = %s",
                                 (self.name,)).fetchone()[0]

    def close(self) -> None:
        self.conn.close()


class Load:
    """wrk against one nginx with the viewers' tokens (WRK_SCRIPT)."""

    def __init__(self, url: str, script: Path, tokens: Path, segments: Path, playlist: str, args):
        self.url, self.script, self.tokens, self.segments, self.playlist = url, script, tokens, segments, playlist
        self.args = args

    def run(self, seconds: float) -> dict:
        a = self.args
        command = ["wrk", "-t", str(a.threads), "-c", str(a.connections), "-d", f"{seconds:g}s", "--timeout", "10s",
                   "-s", str(self.script), self.url, "--", str(self.tokens), str(self.segments), self.playlist,
                   str(a.threads), str(random.randrange(1 << 30))]
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                start_new_session=True, preexec_fn=embedded.die_with_owner())
        try:
            out, err = proc.communicate(timeout=seconds + 60)
        finally:
            embedded.stop(proc)
        found = re.search(r"^PMRESULT (\{.*\})$", out, re.M)
        if proc.returncode != 0 or not found:
            raise RuntimeError(f"wrk failed ({proc.returncode}):\n{out}\n{err}")
        res = json.loads(found.group(1))
        res["rate"] = res["requests"] / (res["duration_us"] / 1e6)
        return res


def warm_up(load: "Load", viewers: int) -> dict:
    """A 1 s run; for a gated server, runs until every viewer's playlist and segment were
    asked for at least once (each wrk thread cycles its viewers in order, so two full
    cycles' worth of requests cover them all), as a stream's audience arrived before
    the measured window. Returns the runs' summed counts (their failures count too)."""
    total = load.run(1)
    while total["requests"] < 4 * viewers:
        more = load.run(5)
        total = {k: total[k] + more[k] if isinstance(total[k], int) else total[k] for k in total}
    return total


def failed(res: dict) -> int:
    """Responses that were not 200 (wrk: non-2xx/3xx) and socket errors: a gated 403 is a failure, not speed."""
    return res["non_2xx"] + res["connect"] + res["read"] + res["write"] + res["timeout"]


def measured(load: Load, seconds: float, nginx_pid: int, server: WebServer, txn: "Transactions",
             gated: bool) -> tuple[dict, str]:
    """One measured run, and its line: rate, response size, latency, errors, where the CPU went, and for
    gated runs how many checks reached the app."""
    nginx0, web0, pg0, busy0 = tree_cpu(nginx_pid), server.cpu_seconds(), postgres_cpu(), machine_busy()
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)  # wrk is a waited-for child: its own CPU lands here
    x0, t0 = txn.count(), time.perf_counter()
    res = load.run(seconds)
    wall = time.perf_counter() - t0
    x1 = txn.count()
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    client = (ru.ru_utime + ru.ru_stime - ru0.ru_utime - ru0.ru_stime) / wall
    web = server.cpu_seconds() - web0
    line = (f"{res['rate']:8.0f} req/s  {res['bytes'] / max(res['requests'], 1) / 1024:4.1f} KiB/resp  "
            f"p50 {res['p50_us'] / 1000:5.1f} ms p99 {res['p99_us'] / 1000:6.1f} ms  non-200 {failed(res)}  "
            f"| cores: wrk {client:.2f}, nginx {(tree_cpu(nginx_pid) - nginx0) / wall:.2f}, web {web / wall:.2f}, "
            f"pg {postgres_cpu_since(pg0) / wall:.2f}, machine {(machine_busy() - busy0) / wall:.2f}/"
            f"{psutil.cpu_count()}")
    if gated:
        checks = res["checks"] = (x1 - x0) / wall
        line += (f"  | app checks ≈ {checks:.0f}/s (cache hits ≈ {max(0.0, 1 - checks / res['rate']) * 100:.0f}%), "
                 f"web {web / max(x1 - x0, 1) * 1000:.2f} ms CPU/check")
    return res, line


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--viewers", type=int, default=10_000, help="distinct playback tokens (default 10,000)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--cache-seconds", type=int, default=mediaserver.AUTH_CACHE_SECONDS,
                        help=f"how long nginx keeps a yes (default {mediaserver.AUTH_CACHE_SECONDS}: the shipped period)")
    parser.add_argument("--seconds", type=float, default=None,
                        help="measured seconds per gated or baseline run (default: the cache period, so each "
                             "viewer's next check falls in it)")
    parser.add_argument("--off-seconds", type=float, default=5.0, help="measured seconds per cache-off run")
    parser.add_argument("--connections", type=int, default=256,
                        help="wrk's keep-alive connections (default 256: one waiting on a check idles only itself)")
    parser.add_argument("--threads", type=int, default=2, help="wrk's threads")
    parser.add_argument("--private", action="store_true",
                        help="also measure a private show whose viewers hold tickets (the check reads the ticket)")
    args = parser.parse_args()
    if args.viewers < args.threads:
        parser.error("--viewers must be at least --threads")

    if not shutil.which("wrk"):
        print(f"bench/hls_auth.py needs wrk, the load generator (a Python client would be the bottleneck):\n"
              f"    {WRK_HINT}", file=sys.stderr)
        return 2
    absent = mediaserver.missing() + ([] if shutil.which(mediaserver.FFMPEG) else ["ffmpeg"])
    if absent:
        print(f"bench/hls_auth.py needs {' and '.join(absent)}: {mediaserver.INSTALL_HINT}", file=sys.stderr)
        return 2
    embedded.exit_on_sigterm()  # SIGTERM unwinds through the finally blocks like Ctrl-C

    per_run = args.seconds or float(args.cache_seconds)
    with fresh_services() as (db_name, db_url, redis), tempfile.TemporaryDirectory(prefix="pm-bench-hls-") as tmp:
        tmp = Path(tmp)
        started: list = []  # stopped in reverse order, whatever happens
        txn = None
        try:
            # Tokens outlive the bench: each viewer is asked once per cache period (see the docstring).
            server = WebServer(db_url, redis, log_path=LOG, extra_env={"PLAYBACK_TOKEN_TTL_SECONDS": "3600"})
            started.append(server)
            app = in_process_app(db_url, redis)
            creator = register(server.base, "creator", "Hot Creator")
            streams = {}
            for kind in ("public", "private") if args.private else ("public",):
                body = {"type": kind, "title": f"bench {kind}"}
                if kind == "private":
                    body["ticketPrice"] = TICKET_PRICE
                status, created = api(server.base, "POST", "/api/streams/create", body, creator["token"])
                assert status == 201, created
                sid = created["stream"]["id"]
                status, started_body = api(server.base, "POST", f"/api/streams/{sid}/start", None, creator["token"])
                assert status == 200 and started_body["stream"]["status"] == "live", started_body
                streams[kind] = sid
            t0 = time.monotonic()
            viewers = create_viewers(app, args.viewers)
            print(f"database {db_name}; {len(viewers):,} viewers created in {time.monotonic() - t0:.1f} s; "
                  f"gunicorn gevent (gunicorn.conf.py)", flush=True)
            if args.private:
                print(f"  buying {len(viewers):,} tickets to private show {streams['private']} …", flush=True)
                buy_tickets(app, viewers, streams["private"])

            app_address = f"127.0.0.1:{server.port}"
            gated = mediaserver.start(app_address, server.base, auth_cache_seconds=args.cache_seconds)
            started.append(gated)
            uncached = mediaserver.start(app_address, server.base, auth_cache_seconds=0)
            started.append(uncached)
            public = streams["public"]
            print(f"publishing {PUBLISH_SECONDS} s of ffmpeg's test picture to stream {public} …", flush=True)
            segments = publish(gated, public, creator_key(app, creator["user"]["id"]))
            source = gated.directory / "hls" / str(public)
            copy_fragments(source, uncached.directory / "hls" / str(public))
            if args.private:
                for srv in (gated, uncached):
                    copy_fragments(source, srv.directory / "hls" / str(streams["private"]))
            baseline = Baseline(gated)
            started.append(baseline)
            sizes = [(source / s).stat().st_size for s in segments]
            print(f"segments {', '.join(segments)} ({min(sizes) // 1024}-{max(sizes) // 1024} KiB), playlist "
                  f"{(source / 'index.m3u8').stat().st_size} B; kept past hls_cleanup (mtime a day ahead)")

            modes = {"baseline": (baseline, public), "gated": (gated, public),
                     "cache off": (uncached, public)}
            if args.private:
                modes["private"] = (gated, streams["private"])

            # Sanity: the gate really gates, the baseline really does not.
            tokens = tmp / "tokens.txt"
            sign_tokens(app, viewers[:1], public, tokens)
            one = tokens.read_text().strip()
            path = f"/stream/{public}/{segments[-1]}"
            checks = {"baseline, no token": (status_of(baseline.hls_base_url + path), 200),
                      "gated, no token": (status_of(gated.hls_base_url + path), 403),
                      "gated, token": (status_of(gated.hls_base_url + path, one), 200),
                      "cache off, token": (status_of(uncached.hls_base_url + path, one), 200)}
            if args.private:
                sign_tokens(app, viewers[:1], streams["private"], tokens)
                ppath = f"/stream/{streams['private']}/{segments[-1]}"
                checks["private, ticket holder"] = (status_of(gated.hls_base_url + ppath, tokens.read_text().strip()),
                                                    200)
                checks["private, public stream's token"] = (status_of(gated.hls_base_url + ppath, one), 403)
            print("sanity: " + ", ".join(f"{k} {got}" for k, (got, _) in checks.items()))
            wrong = {k: v for k, v in checks.items() if v[0] != v[1]}
            if wrong:
                raise RuntimeError(f"unexpected statuses (got, expected): {wrong}\n{gated.log()[-2000:]}")

            script = tmp / "viewers.lua"
            script.write_text(WRK_SCRIPT)
            seg_file = tmp / "segments.txt"
            txn = Transactions(server_url(), db_name)
            print(f"\nwrk: {args.threads} threads, {args.connections} connections, {per_run:g} s per run "
                  f"(+1 s warm-up); {args.viewers:,} viewers, each asking for the playlist and a segment\n")

            token_files = {sid: tmp / f"tokens-{sid}.txt" for sid in streams.values()}
            for sid, path in token_files.items():
                sign_tokens(app, viewers, sid, path)  # once: they outlive the bench (see the docstring)
            rates: dict[str, list[float]] = {m: [] for m in modes}
            checks_seen: list[float] = []
            failures: list[str] = []
            for r in range(args.rounds):
                order = list(modes) if r % 2 == 0 else list(reversed(modes))
                for mode in order:
                    srv, sid = modes[mode]
                    tokens = token_files[sid]
                    seg_file.write_text("".join(f"/stream/{sid}/{s}\n" for s in segments))
                    playlist = f"/stream/{sid}/index.m3u8"
                    load = Load(srv.hls_base_url, script, tokens, seg_file, playlist, args)
                    warm = warm_up(load, args.viewers if srv is gated else 0)
                    seconds = args.off_seconds if mode == "cache off" else per_run
                    res, line = measured(load, seconds, srv.proc.pid, server, txn, gated=mode != "baseline")
                    rates[mode].append(res["rate"])
                    if mode == "gated":
                        checks_seen.append(res["checks"])
                    print(f"  round {r + 1}  {mode:<11} {line}", flush=True)
                    bad, bad_warm = failed(res), failed(warm)
                    if bad or bad_warm:
                        failures.append(f"round {r + 1} {mode}: {res} (warm-up {warm})")

            # The files served must still be the ones published: not cleaned up, not 404s counted as fast.
            for srv, sid in modes.values():
                folder = (gated if srv is baseline else srv).directory / "hls" / str(sid)
                gone = [s for s in [*segments, "index.m3u8"] if not (folder / s).exists()]
                if gone:
                    failures.append(f"{folder}: {gone} disappeared during the run")

            med = {m: statistics.median(v) for m, v in rates.items()}
            ratio = med["gated"] / med["baseline"]
            print("\nmedians: " + ", ".join(f"{m} {v:.0f}/s" for m, v in med.items()))
            print(f"gated (cache {args.cache_seconds} s) / baseline = {ratio:.3f} (target ≥ {TARGET})  "
                  f"{'PASS' if ratio >= TARGET and not failures else 'FAIL'}")
            print(f"gated (cache OFF) / baseline = {med['cache off'] / med['baseline']:.3f} "
                  f"(every request asks the app; for the README, not the target)")
            if args.private:
                print(f"private show (ticket read) / baseline = {med['private'] / med['baseline']:.3f}")
            per_token = med["gated"] / args.viewers
            asked = statistics.median(checks_seen) if checks_seen else 0.0
            print(f"implied requests per token per second (gated): {per_token:.2f} vs a real viewer's "
                  f"~{REAL_VIEWER_RATE:g}; what loads the app does not depend on it: one check per viewer per "
                  f"{args.cache_seconds} s, expected {args.viewers / args.cache_seconds:.0f}/s, measured ≈ {asked:.0f}/s")
            # What the app can carry: with the cache, each playing viewer costs one check per cache period.
            capacity = med["cache off"]
            cache_s = args.cache_seconds
            print(f"the app answers ≈ {capacity:.0f} checks/s (cache-off rate: one check per request); with a "
                  f"{cache_s} s cache each playing viewer costs one check per {cache_s} s, so {args.viewers:,} viewers "
                  f"need ≈ {args.viewers / cache_s:.0f}/s and ≈ {capacity * cache_s:,.0f} viewers fit "
                  f"(10,000 need {10_000 / cache_s:,.0f}/s)")
            print(f"uptime: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")
            if failures:
                print("\nFAILED runs (non-200 responses or errors count as failures, not speed):")
                for f in failures:
                    print(f"  {f}")
            return 0 if ratio >= TARGET and not failures else 1
        finally:
            if txn is not None:
                txn.close()
            for thing in reversed(started):
                thing.stop()


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("\ninterrupted: nginx, gunicorn, wrk, ffmpeg and the database were stopped and removed", file=sys.stderr)
        sys.exit(130)
