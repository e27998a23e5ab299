"""The production server (gunicorn -c gunicorn.conf.py) with the default
TRUSTED_PROXIES=0 believes no forwarded header (DESIGN.md §14), not even from
127.0.0.1, the address an on-host proxy would connect from."""
from __future__ import annotations

import re
import uuid
from urllib.parse import urlencode

from tests.deploy.helpers import Client, csrf_token, start_production_server

FORGED = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "evil.example", "X-Forwarded-For": "203.0.113.9"}


def test_without_trusted_proxies_forwarded_scheme_and_host_are_ignored(app, services, tmp_path):
    server = start_production_server("direct", services, tmp_path)
    try:
        browser = Client(server.base, "127.0.0.1")
        form = browser.get("/signup", headers=FORGED)
        # Believed https would demand a Referer here (Flask-WTF's strict check on https).
        signed_up = browser.post("/signup", urlencode({
            "csrf_token": csrf_token(form), "displayName": "Direct Creator", "role": "creator",
            "email": f"direct-{uuid.uuid4().hex[:12]}@example.com", "password": "correct-horse-1"}),
            headers={**FORGED, "Content-Type": "application/x-www-form-urlencoded"})
        assert signed_up.status in (302, 303), (signed_up.status, signed_up.text[:500])
        settings = browser.get("/creator/settings", headers=FORGED)
        assert settings.status == 200, settings.text[:500]
        shown = re.search(r"[a-z]+://[^/\"<\s]+/overlay/", settings.text)
        assert shown and shown.group(0) == f"{server.base}/overlay/", shown
    finally:
        server.stop()
