"""VAPID settings (app/config.py, app/push/keys.py): a matching pair or none; development
keeps one pair under instance/; production without keys runs with push off."""
import os
import subprocess
import sys

import pytest

from app.config import Config, ConfigError
from app.push import keys

PRIVATE, PUBLIC = keys.generate_pair()
PRODUCTION = {"APP_ENV": "production", "SECRET_KEY": "s", "ALLOW_DEMO_PAYMENTS": "1"}


def test_development_makes_one_pair_under_the_instance_dir_and_keeps_it_across_restarts(tmp_path):
    first = Config.from_env({"INSTANCE_DIR": str(tmp_path)})
    again = Config.from_env({"INSTANCE_DIR": str(tmp_path)})
    assert first.PUSH_ENABLED and first.VAPID_PRIVATE_KEY == again.VAPID_PRIVATE_KEY
    assert first.VAPID_PUBLIC_KEY == keys.public_key_for(first.VAPID_PRIVATE_KEY)
    assert first.VAPID_SUBJECT.startswith("mailto:")
    path = tmp_path / keys.PRIVATE_KEY_FILE
    assert path.read_text() == first.VAPID_PRIVATE_KEY and (path.stat().st_mode & 0o777) == 0o600


def test_production_without_keys_runs_with_push_off(tmp_path):
    cfg = Config.from_env({**PRODUCTION, "INSTANCE_DIR": str(tmp_path)})
    assert not cfg.PUSH_ENABLED and cfg.VAPID_PRIVATE_KEY == ""
    assert not (tmp_path / keys.PRIVATE_KEY_FILE).exists()  # never invents keys in production


def test_production_with_keys_and_a_subject_turns_push_on(tmp_path):
    cfg = Config.from_env({**PRODUCTION, "INSTANCE_DIR": str(tmp_path), "VAPID_PRIVATE_KEY": PRIVATE,
                           "VAPID_PUBLIC_KEY": PUBLIC, "VAPID_SUBJECT": "mailto:ops@example.com"})
    assert cfg.PUSH_ENABLED and cfg.VAPID_PUBLIC_KEY == PUBLIC


OTHER_PUBLIC = keys.generate_pair()[1]


@pytest.mark.parametrize("env,message", [
    ({"VAPID_PRIVATE_KEY": PRIVATE}, "both"),
    ({"VAPID_PUBLIC_KEY": PUBLIC}, "both"),
    ({"VAPID_PRIVATE_KEY": PRIVATE, "VAPID_PUBLIC_KEY": OTHER_PUBLIC}, "not the public key"),
    ({"VAPID_PRIVATE_KEY": "not-a-key", "VAPID_PUBLIC_KEY": PUBLIC}, "VAPID_PRIVATE_KEY must be"),
    ({"VAPID_PRIVATE_KEY": "A" * 43, "VAPID_PUBLIC_KEY": PUBLIC}, "VAPID_PRIVATE_KEY must be"),  # zero scalar
    ({"VAPID_PRIVATE_KEY": PRIVATE, "VAPID_PUBLIC_KEY": PUBLIC}, "VAPID_SUBJECT must be set"),
    ({"VAPID_PRIVATE_KEY": PRIVATE, "VAPID_PUBLIC_KEY": PUBLIC, "VAPID_SUBJECT": "ops@example.com"}, "VAPID_SUBJECT"),
    ({"VAPID_PRIVATE_KEY": PRIVATE, "VAPID_PUBLIC_KEY": PUBLIC, "VAPID_SUBJECT": "http://example.com"},
     "VAPID_SUBJECT"),
])
def test_bad_vapid_settings_stop_production_at_start_up(tmp_path, env, message):
    with pytest.raises(ConfigError, match=message):
        Config.from_env({**PRODUCTION, "INSTANCE_DIR": str(tmp_path), **env})


def test_the_cli_prints_a_new_matching_pair_the_config_accepts(tmp_path):
    out = subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", "push", "keys"], capture_output=True,
                         text=True, check=True, env={**os.environ, "APP_ENV": "test", "INSTANCE_DIR": str(tmp_path)},
                         cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__)))).stdout
    pair = dict(line.split("=", 1) for line in out.split())
    assert pair["VAPID_PUBLIC_KEY"] == keys.public_key_for(pair["VAPID_PRIVATE_KEY"])
    assert pair["VAPID_PRIVATE_KEY"] != Config.from_env({"INSTANCE_DIR": str(tmp_path)}).VAPID_PRIVATE_KEY
    cfg = Config.from_env({**PRODUCTION, "INSTANCE_DIR": str(tmp_path), "VAPID_SUBJECT": "https://example.com",
                           **pair})
    assert cfg.PUSH_ENABLED
