"""Pro Monetization: the Flask application factory."""
from __future__ import annotations

import logging

from flask import Flask, g, request
from flask.json.provider import DefaultJSONProvider

from app import redis_client
from app.config import Config
from app.extensions import csrf, db, limiter, login_manager, migrate, sock

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def create_app(config: Config | None = None) -> Flask:
    """Build the app. With no `DATABASE_URL` the embedded PostgreSQL under
    `instance/` is started (or reused), so `flask …` commands in this checkout
    see the same data as `make run`."""
    config = config or Config.from_env()
    app = Flask(__name__, template_folder="../templates", static_folder="../static",
                instance_path=config.INSTANCE_DIR)
    app.config.update(config.as_flask())
    _resolve_services(app)
    _trust_proxies(app, app.config["TRUSTED_PROXIES"])
    app.config.update(
        SQLALCHEMY_DATABASE_URI=app.config["DATABASE_URL"],
        # No pre-ping: it costs a round trip per request (measured in bench/ledger.py);
        # a dropped connection is discarded on its first error and recycled hourly.
        SQLALCHEMY_ENGINE_OPTIONS={"pool_size": app.config["DB_POOL_SIZE"],
                                   "max_overflow": app.config["DB_MAX_OVERFLOW"], "pool_recycle": 3600},
        WTF_CSRF_CHECK_DEFAULT=False,  # checked in `_authenticate` so bearer clients skip it
        # A CSRF token also dies with its session (logout clears it, see auth.sessions).
        WTF_CSRF_TIME_LIMIT=app.config["CSRF_TOKEN_TTL_SECONDS"],
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        # Not in development, on purpose: it serves plain http, where only Chrome and Firefox send a
        # Secure cookie back, and only to loopback (not Safari; not a phone on the LAN via HOST=0.0.0.0).
        SESSION_COOKIE_SECURE=app.config["APP_ENV"] == "production",
        REMEMBER_COOKIE_HTTPONLY=True,
        REMEMBER_COOKIE_SAMESITE="Lax",
        REMEMBER_COOKIE_SECURE=app.config["APP_ENV"] == "production",
        MAX_CONTENT_LENGTH=64 * 1024,
        RATELIMIT_STORAGE_URI=_limits_uri(app.config["REDIS_URL"]),
        # Bounded like the app's own pool (app/redis_client): a tip storm queues for
        # REDIS_MAX_CONNECTIONS connections instead of opening one per waiting request.
        RATELIMIT_STORAGE_OPTIONS={"connection_pool": redis_client.rate_limit_pool(
            app.config["REDIS_URL"], app.config["REDIS_MAX_CONNECTIONS"])},
        # A Redis outage must take neither logins and purchases nor their limits
        # down: counting moves to this process's memory (Flask-Limiter logs the
        # outage once and checks Redis again every few seconds).
        RATELIMIT_IN_MEMORY_FALLBACK_ENABLED=True,
        RATELIMIT_SWALLOW_ERRORS=True,
        RATELIMIT_ENABLED=app.config["RATELIMIT_ENABLED"],
    )
    app.json = _JSONProvider(app)
    app.json.sort_keys = False
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    _register_input_rules(app)

    db.init_app(app)
    migrate.init_app(app, db, directory=str(_root() / "migrations"))
    login_manager.init_app(app)
    csrf.init_app(app)
    limiter.init_app(app)
    sock.init_app(app)
    redis_client.init_app(app)
    _init_realtime(app)

    _import_models()
    _register_blueprints(app)
    _register_auth(app)
    _register_templates(app)
    from app.errors import register_error_handlers
    register_error_handlers(app)
    from app.security import register_security_headers
    register_security_headers(app)
    from app.ledger.cli import ledger_cli
    app.cli.add_command(ledger_cli)
    from app.seed import seed_cli
    app.cli.add_command(seed_cli)
    from app.dashboard.cli import rollups_cli
    app.cli.add_command(rollups_cli)
    from app.push.cli import push_cli
    app.cli.add_command(push_cli)
    _register_live(app)
    _register_payments(app)
    return app


def _register_input_rules(app: Flask) -> None:
    """Before any route or hook exists: `<int:…>` takes ASCII ids that fit a BIGINT,
    and the first hook refuses NUL bytes and lone surrogates (app/validation.py)."""
    from app.http import IdConverter, refuse_unsafe_text
    app.url_map.converters["int"] = IdConverter
    app.before_request(refuse_unsafe_text)


class _JSONProvider(DefaultJSONProvider):
    def loads(self, s, **kwargs):
        try:
            return super().loads(s, **kwargs)
        except RecursionError:
            # Absurdly nested bodies are malformed input (400), not a crash.
            raise ValueError("JSON nested too deeply") from None


def _trust_proxies(app: Flask, hops: int) -> None:
    """Behind `hops` reverse proxies (DESIGN.md §14), take the client's address,
    scheme and host from the X-Forwarded-For/-Proto/-Host entries those proxies
    wrote (the last `hops` of each), so per-IP limits key on the real client,
    external URLs and the CSRF referrer check see https, and the WebSocket Origin
    check compares with the public host. With 0 nothing forwarded is believed.

    X-Forwarded-Port is not trusted: X-Forwarded-Host carries the port as the
    browser sent it (deploy/nginx.conf passes `$http_host`), which is right even
    behind port mapping, and a proxy that doesn't set X-Forwarded-Port would let
    any client choose it."""
    if hops:
        from werkzeug.middleware.proxy_fix import ProxyFix
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)


def _init_realtime(app: Flask) -> None:
    """One hub (one Redis listener thread, started on the first socket) per process, the
    registry of the channels features serve (they fill it in `_register_live`), and the
    templates of pushed fragments."""
    from app.realtime.channels import Registry
    from app.realtime.fragments import Fragments
    from app.realtime.hub import Hub

    app.extensions["realtime_fragments"] = Fragments(app)
    channels = app.extensions["realtime_channels"] = Registry(app)
    app.extensions["realtime_hub"] = Hub(app.config["REDIS_URL"], channels.audience, app.config["REDIS_PREFIX"],
                                         app.config["REDIS_MAX_CONNECTIONS"])
    # Ping idle sockets so dead peers are noticed and proxies keep them open.
    # No client message may exceed 64 KB (only call signaling reads any): bigger closes with 1009.
    app.config.setdefault("SOCK_SERVER_OPTIONS", {"ping_interval": 25, "max_message_size": 64 * 1024})


def _root():
    from pathlib import Path
    return Path(__file__).resolve().parent.parent


def _resolve_services(app: Flask) -> None:
    from app import embedded
    if not app.config["DATABASE_URL"]:
        app.config["DATABASE_URL"] = embedded.postgres_url(app.config["INSTANCE_DIR"])
    if not app.config["REDIS_URL"]:
        app.config["REDIS_URL"] = embedded.redis_url(app.config["INSTANCE_DIR"])


def _limits_uri(redis_url: str) -> str:
    # The `limits` package spells unix-socket Redis as redis+unix://.
    return "redis+unix://" + redis_url[len("unix://"):] if redis_url.startswith("unix://") else redis_url


def _import_models() -> None:
    # Register every table with the metadata (Alembic and relationships need them).
    from app.auth import models as _auth  # noqa: F401
    from app.calls import models as _calls  # noqa: F401
    from app.chat import models as _chat  # noqa: F401
    from app.dashboard import models as _dashboard  # noqa: F401
    from app.follows import models as _follows  # noqa: F401
    from app.goals import models as _goals  # noqa: F401
    from app.idempotency import IdempotencyKey  # noqa: F401
    from app.ledger import models as _ledger  # noqa: F401
    from app.notifications import models as _notifications  # noqa: F401
    from app.payments import models as _payments  # noqa: F401
    from app.payouts import models as _payouts  # noqa: F401
    from app.profiles import models as _profiles  # noqa: F401
    from app.push import models as _push  # noqa: F401
    from app.streams import models as _streams  # noqa: F401
    from app.tipmenu import models as _tipmenu  # noqa: F401
    from app.tips import models as _tips  # noqa: F401
    from app.wallet import models as _wallet  # noqa: F401


def _register_blueprints(app: Flask) -> None:
    from app.alerts.api import bp as alerts_api
    from app.alerts.routes import bp as alerts_routes
    from app.auth.api import bp as auth_api
    from app.auth.routes import bp as auth_routes
    from app.calls.api import bp as calls_api
    from app.calls.routes import bp as calls_routes
    from app.chat.api import bp as chat_api  # issue 18: chat
    from app.chat.routes import bp as chat_routes  # issue 18: chat
    from app.creator.routes import bp as creator_routes
    from app.dashboard.api import bp as dashboard_api
    from app.dashboard.routes import bp as dashboard_routes
    from app.follows.api import bp as follows_api
    from app.follows.routes import bp as follows_routes
    from app.goals.api import bp as goals_api
    from app.goals.routes import bp as goals_routes
    from app.leaderboard.api import bp as leaderboard_api
    from app.main.routes import bp as main_routes
    from app.notifications.api import bp as notifications_api
    from app.notifications.routes import bp as notifications_routes
    from app.payments.webhooks import bp as payments_webhooks
    from app.payouts.api import bp as payouts_api
    from app.payouts.routes import bp as payouts_routes
    from app.profiles.api import bp as profiles_api
    from app.profiles.routes import bp as profiles_routes
    from app.protections.api import bp as protections_api
    from app.protections.routes import bp as protections_routes
    from app.push.api import bp as push_api
    from app.push.routes import bp as push_routes
    from app.streams.api import bp as streams_api
    from app.streams.routes import bp as streams_routes
    from app.tipmenu.api import bp as tipmenu_api
    from app.tipmenu.routes import bp as tipmenu_routes
    from app.tips.api import bp as tips_api
    from app.tips.routes import bp as tips_routes
    from app.wallet.api import bp as wallet_api
    from app.wallet.platform_routes import bp as wallet_platform
    from app.wallet.routes import bp as wallet_routes

    for bp in (main_routes, auth_routes, auth_api, wallet_routes, wallet_api, streams_routes, streams_api,
               tips_routes, tips_api, creator_routes, calls_routes, calls_api, dashboard_routes, dashboard_api,
               payments_webhooks, payouts_routes, payouts_api, wallet_platform, notifications_routes,
               notifications_api, profiles_routes, profiles_api, follows_routes, follows_api, push_routes, push_api,
               alerts_routes, alerts_api, chat_routes, chat_api, goals_routes, goals_api, leaderboard_api):
        app.register_blueprint(bp)
    # The live room (issue 18), one feature per line.
    for bp in (tipmenu_routes, tipmenu_api):
        app.register_blueprint(bp)
    for bp in (protections_routes, protections_api):
        app.register_blueprint(bp)


def _register_live(app: Flask) -> None:
    """The WebSocket transport, then each feature's live behaviour (STYLE.md 9): its
    channels, its share of `/ws/me` (sent in this order) and its own sockets. Last,
    so the transport's checks run after every other `before_request` hook: a
    socket's Origin and access are checked once its credentials are known."""
    from app.calls import live as calls_live
    from app.chat import live as chat_live  # issue 18: chat
    from app.goals import live as goals_live
    from app.leaderboard import live as leaderboard_live
    from app.notifications import live as notifications_live
    from app.realtime import sockets
    from app.streams import live as streams_live
    from app.tips import live as tips_live
    from app.wallet import live as wallet_live

    sockets.init_app(app)
    for feature in (wallet_live, tips_live, calls_live, streams_live, goals_live, leaderboard_live,
                    notifications_live, chat_live):
        feature.init_app(app)


def _register_payments(app: Flask) -> None:
    """Each feature's share of Stripe's webhook events (app/payments/webhooks.py)."""
    from app.payouts import stripe_events as payouts_events
    from app.wallet import reversals
    from app.wallet import stripe_events as wallet_events

    for feature in (wallet_events, reversals, payouts_events):
        feature.init_app(app)


def _register_auth(app: Flask) -> None:
    from app.auth.service import authenticate_token
    from app.auth.sessions import start_request as start_session_request
    from app.auth.sessions import user_for_session
    from app.errors import Unauthorized, error_response

    login_manager.login_view = "auth.login"
    login_manager.login_message = "Log in to continue."
    login_manager.login_message_category = "info"
    # The session cookie counts only while its server-side session lives (auth.sessions).
    login_manager.user_loader(user_for_session)

    @app.before_request
    def _authenticate():
        """Bearer tokens for API clients; 401 before CSRF for anonymous API calls;
        CSRF for every cookie-authenticated state change."""
        g.bearer = False
        view = app.view_functions.get(request.endpoint)
        public = getattr(view, "public", False)
        header = request.headers.get("Authorization")
        if header and request.path.startswith(("/api/", "/ws/")):
            scheme, _, token = header.partition(" ")
            found = authenticate_token(token.strip()) if scheme.lower() == "bearer" else None
            if found is None:
                return error_response(Unauthorized("The API token is missing, invalid, expired or revoked.",
                                                   "invalid_token"))
            # Identity for this request only; nothing is written to the session.
            login_manager._update_request_context_with_user(found[0])
            g.bearer, g.api_token_id = True, found[1]
            return None
        if request.endpoint != "static":
            start_session_request()
        if request.path.startswith("/api/") and not public:
            from flask_login import current_user
            if not current_user.is_authenticated:
                return error_response(Unauthorized("Log in or send an API token.", "unauthorized"))
        if request.method not in SAFE_METHODS and not getattr(view, "csrf_exempt", False):
            csrf.protect()
        return None


def _register_templates(app: Flask) -> None:
    from app.payments.providers import format_money, test_mode
    from app.wallet.service import earnings_figure, wallet_balance

    from app.streams.media import playback_url
    # A global, not a context processor: pushed fragments (rendered without one) use it too.
    app.jinja_env.globals["playback_url"] = playback_url

    @app.template_filter("tokens")
    def tokens_filter(n):
        """1000 → "1,000": the one way tokens are written."""
        return "—" if n is None else f"{int(n):,}"

    @app.template_filter("money")
    def money_filter(cents, currency):
        """500, "usd" → "$5.00"; 500, "eur" → "5.00 EUR" (app.payments.providers.format_money)."""
        return "—" if cents is None else format_money(cents, currency)

    @app.context_processor
    def _globals():
        return {"payments_test_mode": test_mode(), "app_env": app.config["APP_ENV"],
                "nav_balance": wallet_balance, "nav_earnings": earnings_figure}
