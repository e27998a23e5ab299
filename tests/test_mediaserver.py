"""app/mediaserver.py: deploy/nginx-rtmp.conf is filled exactly as README.md tells an
operator to fill it, and what that gives is a configuration Debian's nginx accepts.
Running it with real traffic is tests/streams/test_live_video.py's."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from app import mediaserver

README = Path(__file__).resolve().parent.parent / "README.md"
VALUES = {"PM_RTMP_MODULE": mediaserver.RTMP_MODULE, "PM_MEDIA_DIR": "/var/lib/pm-media", "PM_RTMP_PORT": "1935",
          "PM_HLS_PORT": "8088", "PM_APP_ADDRESS": "127.0.0.1:5000", "PM_APP_ORIGIN": "https://fans.example.com",
          "PM_AUTH_CACHE_SECONDS": "2"}


def readme_variables() -> str:
    match = re.search(r"^envsubst '([^']+)' \\\n\s+< deploy/nginx-rtmp\.conf", README.read_text(), re.MULTILINE)
    assert match, "README.md shows no `envsubst '<variables>' < deploy/nginx-rtmp.conf` command"
    return match.group(1)


def test_the_readmes_envsubst_list_names_every_placeholder_and_fills_like_make_run():
    assert sorted(readme_variables().split()) == sorted(f"${{{name}}}" for name in mediaserver.placeholders())
    assert shutil.which("envsubst"), "envsubst is missing (Debian: gettext-base; .ci/run installs it)"
    done = subprocess.run(["envsubst", readme_variables()], input=mediaserver.TEMPLATE.read_text(),
                          env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **VALUES},
                          capture_output=True, text=True, check=True)
    assert done.stdout == mediaserver.fill(VALUES)
    assert "${PM_" not in done.stdout
    # nginx's own variables are left for nginx.
    assert "$http_authorization" in done.stdout and "$pm_uri" in done.stdout


def test_a_missing_value_is_an_error_not_an_empty_string():
    values = dict(VALUES)
    del values["PM_APP_ORIGIN"]
    try:
        mediaserver.fill(values)
    except KeyError as err:
        assert "PM_APP_ORIGIN" in str(err)
    else:
        raise AssertionError("fill() left a placeholder empty")


def test_debians_nginx_accepts_the_filled_configuration(tmp_path):
    assert not mediaserver.missing(), f"{mediaserver.INSTALL_HINT} (.ci/run installs them)"
    directory = Path(str(tmp_path))
    (directory / "hls").mkdir()
    conf = directory / "nginx.conf"
    conf.write_text(mediaserver.fill({**VALUES, "PM_MEDIA_DIR": str(directory)}))
    checked = subprocess.run([mediaserver.NGINX, "-p", str(directory), "-c", str(conf), "-e",
                              str(directory / "error.log"), "-t"], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr


def test_the_encoder_command_publishes_the_stream_with_its_key():
    command = mediaserver.publish_command("rtmp://127.0.0.1:1935", 12, "sk_abc", seconds=3)
    assert command[0] == "ffmpeg" and command[-1] == "rtmp://127.0.0.1:1935/stream/12?token=sk_abc"
    assert ["-t", "3"] == command[command.index("-t"):command.index("-t") + 2]
