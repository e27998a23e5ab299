"""The service worker script at the site's root (`/sw.js`): served from there so its
scope is the whole site, with the header that allows it and no long caching (a new
worker must reach browsers on their next visit)."""
from pathlib import Path

from flask import Blueprint, send_file

from app.push import service

bp = Blueprint("push", __name__)

_WORKER = Path(__file__).resolve().parent.parent.parent / "static" / "sw.js"


@bp.get("/sw.js")
def service_worker():
    response = send_file(_WORKER, mimetype="application/javascript", max_age=0, conditional=True)
    response.headers["Service-Worker-Allowed"] = "/"
    response.headers["Cache-Control"] = "no-cache"
    return response


@bp.app_context_processor
def _push_globals():
    return {"push_public_key": service.public_key}
