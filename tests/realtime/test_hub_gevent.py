"""The hub under gevent, as production runs it (gunicorn's gevent worker
monkey-patches before the app is imported): greenlets join and leave channels
concurrently, Redis ends up holding exactly the channels with local sockets,
and a message published right after subscribe() returns is delivered. In a
process of its own, since monkey-patching cannot be undone."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import uuid

from tests.realtime.helpers import ROOT

SCRIPT = textwrap.dedent("""
    from gevent import monkey
    monkey.patch_all()

    import json, random, sys, time
    import gevent, redis
    from app.realtime.hub import WAKE, Hub, frame_payload

    url, prefix, tag = sys.argv[1:4]
    hub = Hub(url, prefix=prefix)
    r = redis.Redis.from_url(url)
    channels = [f"gev-{tag}-{i}" for i in range(6)]
    kept = []

    def churn(seed):
        rng = random.Random(seed)
        mine = []
        for _ in range(20):
            if mine and rng.random() < 0.5:
                hub.unsubscribe(mine.pop(rng.randrange(len(mine))))
            else:
                mine.append(hub.subscribe((rng.choice(channels),)))
        kept.extend(mine)

    gevent.joinall([gevent.spawn(churn, i) for i in range(100)], timeout=60, raise_error=True)
    for sub in [s for s in kept if s.channels[0] in channels[:2]]:
        hub.unsubscribe(sub)
        kept.remove(sub)

    def first_text(sub, timeout=2.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            item = sub.queue.get(timeout=max(deadline - time.monotonic(), 0.001))
            if item is not WAKE:
                return frame_payload(item).decode()

    gaps = 0
    for i in range(20):
        channel = f"gevgap-{tag}-{i}"
        sub = hub.subscribe((channel,))
        r.publish(prefix + channel, "hello")
        gaps += first_text(sub) != "hello"
        hub.unsubscribe(sub)

    expected = {c: 1 for c in channels if hub.local_count(c)}
    deadline = time.monotonic() + 3
    while True:
        names = [c.decode() for c in r.pubsub_channels(prefix + f"gev-{tag}-*")]
        got = {(n.decode() if isinstance(n, bytes) else n)[len(prefix):]: k
               for n, k in (r.pubsub_numsub(*names) if names else [])}
        if got == expected or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    delivered = 0
    for c in expected:
        r.publish(prefix + c, "to " + c)
    for sub in kept:
        delivered += first_text(sub) == "to " + sub.channels[0]
    print(json.dumps({"expected": expected, "got": got, "gaps": gaps,
                      "kept": len(kept), "delivered": delivered}))
""")


def test_refcounts_and_no_gap_hold_under_gevent_greenlets(services, app):
    tag = uuid.uuid4().hex[:8]
    done = subprocess.run([sys.executable, "-c", SCRIPT, services[1], app.config["REDIS_PREFIX"], tag],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["expected"] and result["got"] == result["expected"], result
    assert result["gaps"] == 0, result
    assert result["kept"] > 0 and result["delivered"] == result["kept"], result
