"""Configuration rules (DESIGN.md §9): bad settings stop the app at start-up."""
import pytest

from app.config import Config, ConfigError


def test_production_refuses_demo_payments_unless_explicitly_allowed():
    with pytest.raises(ConfigError, match="ALLOW_DEMO_PAYMENTS"):
        Config.from_env({"APP_ENV": "production", "SECRET_KEY": "s"})
    cfg = Config.from_env({"APP_ENV": "production", "SECRET_KEY": "s", "ALLOW_DEMO_PAYMENTS": "1"})
    assert cfg.PAYMENTS_PROVIDER == "demo"


def test_production_requires_a_secret_key():
    with pytest.raises(ConfigError, match="SECRET_KEY"):
        Config.from_env({"APP_ENV": "production", "ALLOW_DEMO_PAYMENTS": "1"})


@pytest.mark.parametrize("env,message", [
    ({"APP_ENV": "staging"}, "APP_ENV"),
    ({"CREATOR_SHARE_PERCENT": "eighty"}, "CREATOR_SHARE_PERCENT"),
    ({"CREATOR_SHARE_PERCENT": "101"}, "CREATOR_SHARE_PERCENT"),
    ({"TOKEN_PACKS": "500,abc"}, "TOKEN_PACKS"),
    ({"TOKEN_PACKS": "0,100"}, "TOKEN_PACKS"),
    ({"PORT": "99999"}, "PORT"),
    ({"PAYMENTS_PROVIDER": "paypal"}, "PAYMENTS_PROVIDER"),
    ({"PAYMENTS_PROVIDER": "stripe"}, "STRIPE_SECRET_KEY"),
    ({"PAYMENTS_PROVIDER": "stripe", "STRIPE_SECRET_KEY": "sk_test_x"}, "STRIPE_WEBHOOK_SECRET"),
    ({"CURRENCY": "dollars"}, "CURRENCY"),
    ({"CURRENCY": "u5d"}, "CURRENCY"),
    ({"TOKEN_PRICE_CENTS": "0"}, "TOKEN_PRICE_CENTS"),
    ({"TOKEN_PRICE_CENTS": "0.5"}, "TOKEN_PRICE_CENTS"),
    ({"PAYOUT_HOLD_DAYS": "-1"}, "PAYOUT_HOLD_DAYS"),
    ({"PAYOUT_MINIMUM_TOKENS": "0"}, "PAYOUT_MINIMUM_TOKENS"),
    ({"PAYOUT_REQUIRES_APPROVAL": "yes"}, "PAYOUT_REQUIRES_APPROVAL"),
])
def test_invalid_settings_are_refused_with_the_setting_named(tmp_path, env, message):
    with pytest.raises(ConfigError, match=message):
        Config.from_env({"INSTANCE_DIR": str(tmp_path), **env})


def test_defaults_match_the_design(tmp_path):
    cfg = Config.from_env({"INSTANCE_DIR": str(tmp_path)})
    assert (cfg.TOKEN_PACKS, cfg.CREATOR_SHARE_PERCENT, cfg.MAX_TIP_TOKENS, cfg.BILLING_BLOCK_SECONDS,
            cfg.PRESENCE_GRACE_SECONDS, cfg.PORT, cfg.APP_ENV) == ((500, 1000, 2500), 80, 100_000, 30, 20, 5000,
                                                                  "development")


def test_money_settings_default_to_the_design_and_read_the_environment(tmp_path):
    cfg = Config.from_env({"INSTANCE_DIR": str(tmp_path)})
    assert (cfg.CURRENCY, cfg.TOKEN_PRICE_CENTS, cfg.PAYOUT_CENTS_PER_TOKEN, cfg.PAYOUT_MINIMUM_TOKENS,
            cfg.PAYOUT_HOLD_DAYS, cfg.PAYOUT_REQUIRES_APPROVAL, cfg.STRIPE_API_BASE) == (
        "usd", 1, 1, 2000, 7, False, "https://api.stripe.com")
    cfg = Config.from_env({"INSTANCE_DIR": str(tmp_path), "PAYMENTS_PROVIDER": "stripe", "STRIPE_SECRET_KEY": "sk",
                           "STRIPE_WEBHOOK_SECRET": "whsec", "CURRENCY": "EUR", "TOKEN_PRICE_CENTS": "5",
                           "PAYOUT_REQUIRES_APPROVAL": "1", "STRIPE_API_BASE": "http://127.0.0.1:9/"})
    assert (cfg.PAYMENTS_PROVIDER, cfg.CURRENCY, cfg.TOKEN_PRICE_CENTS, cfg.PAYOUT_REQUIRES_APPROVAL,
            cfg.STRIPE_API_BASE) == ("stripe", "eur", 5, True, "http://127.0.0.1:9")


def test_development_secret_key_is_kept_under_instance(tmp_path):
    first = Config.from_env({"INSTANCE_DIR": str(tmp_path)}).SECRET_KEY
    second = Config.from_env({"INSTANCE_DIR": str(tmp_path)}).SECRET_KEY
    assert first == second and len(first) == 64
    assert oct((tmp_path / "secret_key").stat().st_mode & 0o777) == "0o600"


def test_rate_limits_can_be_set_from_the_environment_and_are_validated(tmp_path):
    cfg = Config.from_env({"INSTANCE_DIR": str(tmp_path), "TIP_LIMIT_PER_USER": "5 per second"})
    assert cfg.TIP_LIMIT_PER_USER == "5 per second"
    with pytest.raises(ConfigError, match="TIP_LIMIT_PER_USER"):
        Config.from_env({"INSTANCE_DIR": str(tmp_path), "TIP_LIMIT_PER_USER": "lots"})


def test_trusted_proxies_defaults_to_none_and_allows_zero_to_ten(tmp_path):
    assert Config.from_env({"INSTANCE_DIR": str(tmp_path)}).TRUSTED_PROXIES == 0
    assert Config.from_env({"INSTANCE_DIR": str(tmp_path), "TRUSTED_PROXIES": "1"}).TRUSTED_PROXIES == 1
    for bad in ("-1", "11", "one"):
        with pytest.raises(ConfigError, match="TRUSTED_PROXIES"):
            Config.from_env({"INSTANCE_DIR": str(tmp_path), "TRUSTED_PROXIES": bad})
