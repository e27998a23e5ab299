"""Configuration from the environment (DESIGN.md §9).

`Config.from_env()` reads every setting once; nothing else in the app reads
`os.environ`. Integer settings are validated here so a typo fails at start-up
with a clear message instead of at the first tip.
"""
from __future__ import annotations

import os
import secrets
import time
from dataclasses import dataclass, field, fields


class ConfigError(RuntimeError):
    """A setting is missing or invalid; the app refuses to start."""


def _int(env, name, default, minimum=None, maximum=None):
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
    if minimum is not None and value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ConfigError(f"{name} must be at most {maximum}, got {value}")
    return value


def _packs(raw):
    try:
        packs = tuple(int(p) for p in raw.split(",") if p.strip())
    except ValueError:
        raise ConfigError(f"TOKEN_PACKS must be comma-separated integers, got {raw!r}") from None
    if not packs or any(p < 1 or p > 100_000 for p in packs):
        raise ConfigError("TOKEN_PACKS entries must be between 1 and 100,000")
    return packs


def _currency(raw):
    code = raw.strip().lower()
    if not (len(code) == 3 and code.isascii() and code.isalpha()):
        raise ConfigError(f"CURRENCY must be a three-letter ISO code like usd, got {raw!r}")
    return code


def _flag(env, name):
    raw = env.get(name, "0")
    if raw not in ("0", "1", ""):
        raise ConfigError(f"{name} must be 0 or 1, got {raw!r}")
    return raw == "1"


def instance_file(instance_dir: str, name: str, make) -> str:
    """Development and test only: the secret kept in instance/<name> (0600), made with
    `make()` on first use, so sessions and browsers' push subscriptions survive a restart.
    Safe when several processes start at once: one creates it, the others read it."""
    path = os.path.join(instance_dir, name)
    try:
        for _ in range(50):  # a process that just created the file may not have written it yet
            with open(path) as fh:
                value = fh.read().strip()
            if value:
                return value
            time.sleep(0.02)
        return value
    except FileNotFoundError:
        os.makedirs(instance_dir, exist_ok=True)
        value = make()
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process won the race
            return instance_file(instance_dir, name, make)
        with os.fdopen(fd, "w") as fh:
            fh.write(value)
        return value


RATE_LIMIT_SETTINGS = ("LOGIN_LIMIT_PER_ACCOUNT_CLIENT", "LOGIN_LIMIT_PER_ACCOUNT", "LOGIN_LIMIT_PER_IP",
                       "SIGNUP_LIMIT_PER_IP", "PURCHASE_LIMIT_PER_USER", "TIP_LIMIT_PER_USER",
                       "CHAT_LIMIT_PER_USER")


@dataclass
class Config:
    APP_ENV: str = "development"
    SECRET_KEY: str = ""
    DATABASE_URL: str | None = None
    REDIS_URL: str | None = None
    PORT: int = 5000
    # Per process. Keep workers × (size + overflow) under PostgreSQL's
    # max_connections (100 by default): a connection storm (a thousand viewers
    # joining at once) then queues for the pool instead of failing.
    DB_POOL_SIZE: int = 10
    DB_MAX_OVERFLOW: int = 10
    PAYMENTS_PROVIDER: str = "demo"
    ALLOW_DEMO_PAYMENTS: bool = False
    STRIPE_SECRET_KEY: str = ""
    STRIPE_WEBHOOK_SECRET: str = ""
    # Events of connected accounts (account.updated) may come from a separate
    # Connect endpoint with its own signing secret; empty = the platform secret.
    STRIPE_CONNECT_WEBHOOK_SECRET: str = ""
    # Where the stripe SDK sends its requests: Stripe itself, or (tests) a local stand-in.
    STRIPE_API_BASE: str = "https://api.stripe.com"
    # Money (DESIGN.md §11): integer cents, lower-case ISO currency.
    CURRENCY: str = "usd"
    TOKEN_PRICE_CENTS: int = 1
    PAYOUT_CENTS_PER_TOKEN: int = 1
    PAYOUT_MINIMUM_TOKENS: int = 2000
    PAYOUT_HOLD_DAYS: int = 7
    PAYOUT_REQUIRES_APPROVAL: bool = False
    # A Checkout purchase still pending after this long is looked up at Stripe (lost webhooks).
    RECONCILE_AFTER_MINUTES: int = 30
    BILLING_WEBHOOK_SECRET: str = ""
    BILLING_BLOCK_SECONDS: int = 30
    BILLING_TICK_SECONDS: int = 5
    PRESENCE_GRACE_SECONDS: int = 20
    METER_THREADS: int = 2
    CREATOR_SHARE_PERCENT: int = 80
    MAX_TIP_TOKENS: int = 100_000
    # A tip above this many tokens needs `"confirm": true` (the modal asks first); DESIGN.md §12.
    CONFIRM_TIP_OVER_TOKENS: int = 1_000
    MAX_PURCHASE_TOKENS: int = 100_000
    TOKEN_PACKS: tuple = (500, 1000, 2500)
    NO_SHOW_GRACE_MINUTES: int = 15
    ICE_SERVERS: str = ""
    MEDIA_HLS_BASE_URL: str = ""
    # Where creators point OBS (e.g. rtmp://media.example.com:1935); shown with their stream key.
    MEDIA_INGEST_URL: str = ""
    # Lifetime of a viewer's signed media-server read token; the player renews it before then.
    PLAYBACK_TOKEN_TTL_SECONDS: int = 120
    # Reverse proxies in front of the app (DESIGN.md §14): how many hops of
    # X-Forwarded-For/-Proto/-Host to believe. 0 ignores them all.
    TRUSTED_PROXIES: int = 0
    # Rate limits (Flask-Limiter syntax; "a; b" stacks windows). Log-in
    # attempts (app/auth/limits.py): tightly per account and client, with
    # windows that grow (a success from that client clears them); loosely per
    # account for clients this account never logged in from (a browser the
    # owner logged in from is exempt, so strangers can't lock them out); and
    # per IP over all accounts. Purchases per user.
    LOGIN_LIMIT_PER_ACCOUNT_CLIENT: str = "5 per minute; 20 per hour; 50 per day"
    LOGIN_LIMIT_PER_ACCOUNT: str = "50 per hour; 200 per day"
    LOGIN_LIMIT_PER_IP: str = "60 per minute"
    SIGNUP_LIMIT_PER_IP: str = "30 per hour"
    PURCHASE_LIMIT_PER_USER: str = "30 per minute"
    # A tip storm from one excited fan must get through: at least 30/s.
    TIP_LIMIT_PER_USER: str = "40 per second"
    # Chat messages per user, over all rooms (DESIGN.md §12).
    CHAT_LIMIT_PER_USER: str = "5 per 10 seconds"
    RATELIMIT_ENABLED: bool = True
    RATELIMIT_KEY_PREFIX: str = ""
    # X-RateLimit-* headers cost a Redis read after every limited request; off by default.
    RATELIMIT_HEADERS_ENABLED: bool = False
    # Namespace of every realtime key and pub/sub channel in Redis, so several
    # deployments (or test runs) can share one Redis without hearing each other.
    REDIS_PREFIX: str = "pm:"
    # Redis connections per process and client (the app's, the realtime hub's):
    # commands queue for a free one (1 s at most, then a clear "pool exhausted"
    # error, handled like Redis being down) instead of opening one per busy
    # greenlet. 50 serves thousands of sockets; keep processes × 2 × this under
    # Redis's maxclients (10,000 by default).
    REDIS_MAX_CONNECTIONS: int = 50
    # Serve a stream socket's connect state from a Redis-cached snapshot kept current by
    # the publishers (app/realtime/snapshot.py); 0 reads it from PostgreSQL on every join.
    SNAPSHOT_CACHE: bool = True
    # API tokens stop working this many days after they were issued.
    API_TOKEN_TTL_DAYS: int = 30
    # A browser session unused for this many days has ended.
    SESSION_IDLE_DAYS: int = 30
    # A form's CSRF token is accepted for this long after the page was rendered.
    CSRF_TOKEN_TTL_SECONDS: int = 12 * 3600
    # werkzeug's scrypt by default; tests may choose a cheaper method.
    PASSWORD_HASH_METHOD: str = "scrypt"
    # Web Push (VAPID, RFC 8292; app/push): base64url keys as `flask push keys` prints them.
    # Development and test make one pair under INSTANCE_DIR when unset; production without
    # them runs with push off (PUSH_ENABLED False, the settings pages say so).
    VAPID_PUBLIC_KEY: str = ""
    VAPID_PRIVATE_KEY: str = ""
    # Who the push services may contact about our pushes: mailto:… or https://….
    VAPID_SUBJECT: str = ""
    PUSH_ENABLED: bool = False
    # Where embedded PostgreSQL/Redis keep their data (git-ignored).
    INSTANCE_DIR: str = field(default_factory=lambda: os.path.abspath("instance"))

    @classmethod
    def from_env(cls, env=None, **overrides) -> "Config":
        env = os.environ if env is None else env
        app_env = env.get("APP_ENV", "development")
        if app_env not in ("development", "production", "test"):
            raise ConfigError(f"APP_ENV must be development, production or test, got {app_env!r}")
        cfg = cls(
            APP_ENV=app_env,
            SECRET_KEY=env.get("SECRET_KEY", ""),
            DATABASE_URL=env.get("DATABASE_URL") or None,
            REDIS_URL=env.get("REDIS_URL") or None,
            PORT=_int(env, "PORT", 5000, 1, 65535),
            DB_POOL_SIZE=_int(env, "DB_POOL_SIZE", 10, 1, 1000),
            DB_MAX_OVERFLOW=_int(env, "DB_MAX_OVERFLOW", 10, 0, 1000),
            PAYMENTS_PROVIDER=env.get("PAYMENTS_PROVIDER", "demo"),
            ALLOW_DEMO_PAYMENTS=env.get("ALLOW_DEMO_PAYMENTS") == "1",
            STRIPE_SECRET_KEY=env.get("STRIPE_SECRET_KEY", ""),
            STRIPE_WEBHOOK_SECRET=env.get("STRIPE_WEBHOOK_SECRET", ""),
            STRIPE_CONNECT_WEBHOOK_SECRET=env.get("STRIPE_CONNECT_WEBHOOK_SECRET", ""),
            STRIPE_API_BASE=(env.get("STRIPE_API_BASE") or "https://api.stripe.com").rstrip("/"),
            CURRENCY=_currency(env.get("CURRENCY", "usd")),
            TOKEN_PRICE_CENTS=_int(env, "TOKEN_PRICE_CENTS", 1, 1, 100_000),
            PAYOUT_CENTS_PER_TOKEN=_int(env, "PAYOUT_CENTS_PER_TOKEN", 1, 0, 100_000),
            PAYOUT_MINIMUM_TOKENS=_int(env, "PAYOUT_MINIMUM_TOKENS", 2000, 1),
            PAYOUT_HOLD_DAYS=_int(env, "PAYOUT_HOLD_DAYS", 7, 0, 365),
            PAYOUT_REQUIRES_APPROVAL=_flag(env, "PAYOUT_REQUIRES_APPROVAL"),
            RECONCILE_AFTER_MINUTES=_int(env, "RECONCILE_AFTER_MINUTES", 30, 1, 7 * 24 * 60),
            BILLING_WEBHOOK_SECRET=env.get("BILLING_WEBHOOK_SECRET", ""),
            BILLING_BLOCK_SECONDS=_int(env, "BILLING_BLOCK_SECONDS", 30, 1, 3600),
            BILLING_TICK_SECONDS=_int(env, "BILLING_TICK_SECONDS", 5, 1, 3600),
            PRESENCE_GRACE_SECONDS=_int(env, "PRESENCE_GRACE_SECONDS", 20, 0, 3600),
            METER_THREADS=_int(env, "METER_THREADS", 2, 1, 16),
            CREATOR_SHARE_PERCENT=_int(env, "CREATOR_SHARE_PERCENT", 80, 0, 100),
            MAX_TIP_TOKENS=_int(env, "MAX_TIP_TOKENS", 100_000, 1),
            CONFIRM_TIP_OVER_TOKENS=_int(env, "CONFIRM_TIP_OVER_TOKENS", 1_000, 1),
            TOKEN_PACKS=_packs(env.get("TOKEN_PACKS", "500,1000,2500")),
            NO_SHOW_GRACE_MINUTES=_int(env, "NO_SHOW_GRACE_MINUTES", 15, 0),
            ICE_SERVERS=env.get("ICE_SERVERS", ""),
            MEDIA_HLS_BASE_URL=env.get("MEDIA_HLS_BASE_URL", ""),
            MEDIA_INGEST_URL=env.get("MEDIA_INGEST_URL", ""),
            PLAYBACK_TOKEN_TTL_SECONDS=_int(env, "PLAYBACK_TOKEN_TTL_SECONDS", 120, 10, 86400),
            API_TOKEN_TTL_DAYS=_int(env, "API_TOKEN_TTL_DAYS", 30, 1, 3650),
            SESSION_IDLE_DAYS=_int(env, "SESSION_IDLE_DAYS", 30, 1, 3650),
            CSRF_TOKEN_TTL_SECONDS=_int(env, "CSRF_TOKEN_TTL_SECONDS", 12 * 3600, 60, 30 * 86400),
            TRUSTED_PROXIES=_int(env, "TRUSTED_PROXIES", 0, 0, 10),
            INSTANCE_DIR=os.path.abspath(env.get("INSTANCE_DIR", "instance")),
            REDIS_PREFIX=env.get("REDIS_PREFIX") or "pm:",
            REDIS_MAX_CONNECTIONS=_int(env, "REDIS_MAX_CONNECTIONS", 50, 2, 10_000),
            SNAPSHOT_CACHE=_flag(env, "SNAPSHOT_CACHE") if "SNAPSHOT_CACHE" in env else True,
            RATELIMIT_KEY_PREFIX=env.get("RATELIMIT_KEY_PREFIX", ""),
            VAPID_PUBLIC_KEY=env.get("VAPID_PUBLIC_KEY", "").strip(),
            VAPID_PRIVATE_KEY=env.get("VAPID_PRIVATE_KEY", "").strip(),
            VAPID_SUBJECT=env.get("VAPID_SUBJECT", "").strip(),
        )
        for name in RATE_LIMIT_SETTINGS:
            if env.get(name):
                setattr(cfg, name, env[name])
        for name, value in overrides.items():
            setattr(cfg, name, value)
        cfg.validate()
        return cfg

    def validate(self) -> None:
        from limits import parse_many
        for name in RATE_LIMIT_SETTINGS:
            try:
                parse_many(getattr(self, name))
            except ValueError:
                raise ConfigError(f"{name} must be a rate limit like '10 per minute', got {getattr(self, name)!r}") from None
        if self.PAYMENTS_PROVIDER not in ("demo", "stripe"):
            raise ConfigError(f"PAYMENTS_PROVIDER must be demo or stripe, got {self.PAYMENTS_PROVIDER!r}")
        if self.PAYMENTS_PROVIDER == "stripe" and not (self.STRIPE_SECRET_KEY and self.STRIPE_WEBHOOK_SECRET):
            raise ConfigError("PAYMENTS_PROVIDER=stripe needs STRIPE_SECRET_KEY and STRIPE_WEBHOOK_SECRET")
        if self.APP_ENV == "production":
            if not self.SECRET_KEY:
                raise ConfigError("SECRET_KEY must be set in production")
            if self.PAYMENTS_PROVIDER == "demo" and not self.ALLOW_DEMO_PAYMENTS:
                raise ConfigError(
                    "PAYMENTS_PROVIDER=demo credits tokens without payment; refusing to start in "
                    "production. Set ALLOW_DEMO_PAYMENTS=1 to allow it explicitly."
                )
        if not self.SECRET_KEY:
            self.SECRET_KEY = instance_file(self.INSTANCE_DIR, "secret_key", lambda: secrets.token_hex(32))
        self._validate_vapid()

    def _validate_vapid(self) -> None:
        """Both VAPID keys or neither, a matching pair, and a subject. Without keys, development
        and test use the pair kept under INSTANCE_DIR; production turns push off."""
        from app.push import keys
        if bool(self.VAPID_PRIVATE_KEY) != bool(self.VAPID_PUBLIC_KEY):
            raise ConfigError("Set both VAPID_PRIVATE_KEY and VAPID_PUBLIC_KEY (flask push keys prints a pair), "
                              "or neither")
        if not self.VAPID_PRIVATE_KEY and self.APP_ENV != "production":
            self.VAPID_PRIVATE_KEY = instance_file(self.INSTANCE_DIR, keys.PRIVATE_KEY_FILE,
                                                   lambda: keys.generate_pair()[0])
            self.VAPID_PUBLIC_KEY = keys.public_key_for(self.VAPID_PRIVATE_KEY)
        self.PUSH_ENABLED = bool(self.VAPID_PRIVATE_KEY)
        if not self.PUSH_ENABLED:
            return
        try:
            public = keys.public_key_for(self.VAPID_PRIVATE_KEY)
        except ValueError:
            raise ConfigError("VAPID_PRIVATE_KEY must be a base64url P-256 private key (32 bytes), "
                              "as `flask push keys` prints it") from None
        if public != self.VAPID_PUBLIC_KEY.rstrip("="):
            raise ConfigError("VAPID_PUBLIC_KEY is not the public key of VAPID_PRIVATE_KEY")
        self.VAPID_PUBLIC_KEY = public
        if not self.VAPID_SUBJECT:
            if self.APP_ENV == "production":
                raise ConfigError("VAPID_SUBJECT must be set with the VAPID keys: mailto:you@example.com "
                                  "or https://your.site")
            self.VAPID_SUBJECT = "mailto:push@localhost"
        if not self.VAPID_SUBJECT.startswith(("mailto:", "https://")) or len(self.VAPID_SUBJECT) > 200 \
                or any(c.isspace() for c in self.VAPID_SUBJECT):
            raise ConfigError(f"VAPID_SUBJECT must be a mailto: or https:// address, got {self.VAPID_SUBJECT!r}")

    def as_flask(self) -> dict:
        """The mapping handed to `app.config.update`."""
        return {f.name: getattr(self, f.name) for f in fields(self)}
