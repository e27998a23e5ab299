"""Production web server: `gunicorn -c gunicorn.conf.py wsgi:app` (what `make run` uses with APP_ENV=production).

Worker class: gevent by default, chosen by measurement (bench/fanout.py and
STACK-NOTES.md): flask-sock holds a thread per WebSocket (two with
simple-websocket's reader), so the gthread worker spends its CPU switching
kernel threads and stalls past --threads sockets, while gevent serves a
socket as a couple of greenlets. Override with GUNICORN_WORKER_CLASS=gthread.
Never --preload with gevent: the worker must patch before the app is imported,
and each worker runs its own realtime hub (one Redis listener per process).
"""
import gc
import os

bind = f"{os.environ.get('HOST', '0.0.0.0')}:{os.environ.get('PORT', '5000')}"
worker_class = os.environ.get("GUNICORN_WORKER_CLASS", "gevent")
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
# gevent: concurrent connections per worker (each viewer's socket is one).
worker_connections = int(os.environ.get("GUNICORN_WORKER_CONNECTIONS", "10000"))
# gthread: one thread per request *and per open WebSocket*.
threads = int(os.environ.get("GUNICORN_THREADS", "64"))
# Listen queue for connection storms (10,000 viewers joining at once): with
# gunicorn's default 2,048 the kernel dropped ~51,000 SYNs in one 10,000-viewer
# join. The kernel silently caps it at net.core.somaxconn (4,096 on the machine
# this was measured on; raise it with `sysctl -w net.core.somaxconn=8192`).
backlog = int(os.environ.get("GUNICORN_BACKLOG", "8192"))
timeout = 60
graceful_timeout = 20
keepalive = 5
control_socket_disable = True  # no ~/.gunicorn control socket
accesslog = os.environ.get("GUNICORN_ACCESS_LOG")  # off unless asked for: it costs at tip-storm rates
# Forwarded headers are believed in one place only, the app's TRUSTED_PROXIES
# (create_app): by default gunicorn takes X-Forwarded-Proto (and SCRIPT_NAME
# headers) from any local or unix-socket peer, even with TRUSTED_PROXIES=0.
secure_scheme_headers = {}
forwarder_headers = ""


def post_fork(server, worker):
    # Thousands of long-lived socket objects: freeze what exists after start-up
    # and collect the young generation less often (measured: p99 at 2,000
    # sockets ~217 ms -> ~66-93 ms).
    gc.freeze()
    gc.set_threshold(100_000, 50, 1000)
