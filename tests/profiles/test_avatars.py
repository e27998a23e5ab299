"""Avatar uploads (DESIGN.md §13): PNG, JPEG and WebP are re-encoded as a square WebP
with no metadata; anything else is refused with 422 and nothing is stored."""
from __future__ import annotations

import io
import os

import pytest
from sqlalchemy import func, select

from app.auth.models import User
from app.extensions import db
from app.profiles import avatars
from app.profiles.models import Avatar
from tests.helpers import assert_error, log_in
from tests.profiles.images import SVG, decode, image_bytes, jpeg_with_exif, png_declaring


def upload(client, headers, data: bytes, filename="avatar.png", content_type="image/png"):
    return client.post("/api/creator/avatar", headers=headers,
                       data={"avatar": (io.BytesIO(data), filename, content_type)}, content_type="multipart/form-data")


def stored(user_id: int) -> tuple[int | None, int]:
    """(users.avatar_version, number of avatar rows) as the database has them now."""
    db.session.rollback()
    version = db.session.scalar(select(User.avatar_version).where(User.id == user_id))
    rows = db.session.scalar(select(func.count()).select_from(Avatar).where(Avatar.user_id == user_id))
    return version, rows


@pytest.mark.parametrize("fmt, mime, data", [
    ("PNG", "image/png", image_bytes("PNG", (300, 200), "RGBA", (10, 200, 30, 128))),
    ("JPEG", "image/jpeg", image_bytes("JPEG", (200, 500))),
    ("WEBP", "image/webp", image_bytes("WEBP", (640, 480))),
])
def test_png_jpeg_and_webp_become_a_square_256px_webp(client, make_creator, api_headers, fmt, mime, data):
    creator = make_creator()
    resp = upload(client, api_headers(creator), data, f"me.{fmt.lower()}", mime)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    profile = resp.get_json()["profile"]
    assert profile["avatarVersion"] == 1
    assert profile["avatarUrl"] == f"/avatars/{creator.id}.webp?v=1"
    img = decode(db.session.get(Avatar, creator.id).webp)
    assert (img.format, img.size) == ("WEBP", (avatars.SIZE, avatars.SIZE))


def test_jpeg_exif_is_gone_from_the_stored_avatar(client, make_creator, api_headers):
    creator = make_creator()
    data = jpeg_with_exif()
    assert b"SecretCam" in data  # the upload really carries EXIF
    assert upload(client, api_headers(creator), data, "photo.jpg", "image/jpeg").status_code == 200
    webp = db.session.get(Avatar, creator.id).webp
    assert b"SecretCam" not in webp and b"GPS-Tracker" not in webp and b"EXIF" not in webp
    img = decode(webp)
    assert not img.getexif() and "exif" not in img.info and "icc_profile" not in img.info and "xmp" not in img.info


def test_a_jpeg_named_png_is_judged_by_its_content(client, make_creator, api_headers):
    """The name and Content-Type say nothing: a real JPEG sent as "x.png"/image/png is a JPEG, and fine."""
    creator = make_creator()
    assert upload(client, api_headers(creator), image_bytes("JPEG"), "x.png", "image/png").status_code == 200


@pytest.mark.parametrize("case, data, filename, mime, code", [
    ("svg", SVG, "avatar.svg", "image/svg+xml", "unsupported_avatar"),
    ("text renamed .png", b"just some text, not an image\n" * 10, "avatar.png", "image/png", "unsupported_avatar"),
    ("gif", image_bytes("GIF", (50, 50), "P", 1), "avatar.gif", "image/gif", "unsupported_avatar"),
    ("empty file", b"", "avatar.png", "image/png", "avatar_required"),
    ("decompression bomb (30000×30000 declared)", png_declaring(30000, 30000), "bomb.png", "image/png",
     "invalid_avatar"),
    ("too many pixels (6000×5000 declared)", png_declaring(6000, 5000), "big.png", "image/png", "invalid_avatar"),
    ("truncated png", image_bytes("PNG", (400, 400))[:200], "cut.png", "image/png", "invalid_avatar"),
    ("3 MB file", os.urandom(3 * 1024 * 1024), "huge.png", "image/png", "avatar_too_large"),
    ("just over 2 MB", b"\x89PNG\r\n\x1a\n" + os.urandom(avatars.MAX_BYTES), "big.png", "image/png",
     "avatar_too_large"),
])
def test_anything_else_is_refused_with_422_and_nothing_is_stored(client, make_creator, api_headers,
                                                                  case, data, filename, mime, code):
    creator = make_creator()
    assert upload(client, api_headers(creator), image_bytes("PNG"), "ok.png").status_code == 200
    before = stored(creator.id)
    assert before == (1, 1)
    assert_error(upload(client, api_headers(creator), data, filename, mime), 422, code, field="avatar")
    assert stored(creator.id) == before
    assert decode(db.session.get(Avatar, creator.id).webp).size == (avatars.SIZE, avatars.SIZE)


def test_a_request_without_the_avatar_file_is_422(client, make_creator, api_headers):
    creator = make_creator()
    assert_error(client.post("/api/creator/avatar", headers=api_headers(creator), data={"avatar": "text"}),
                 422, "avatar_required", field="avatar")
    assert_error(client.post("/api/creator/avatar", headers=api_headers(creator), json={}), 422, "avatar_required")
    assert stored(creator.id) == (None, 0)


def test_fans_may_not_upload_an_avatar(client, make_fan, api_headers):
    fan = make_fan()
    assert_error(upload(client, api_headers(fan), image_bytes("PNG")), 403, "not_a_creator")
    assert stored(fan.id) == (None, 0)


def test_upload_needs_credentials_and_csrf_with_a_cookie(client, make_creator):
    creator = make_creator()
    assert_error(upload(client, {}, image_bytes("PNG")), 401)
    log_in(client, creator)
    assert_error(upload(client, {}, image_bytes("PNG")), 400, "csrf_failed")
    assert stored(creator.id) == (None, 0)


def test_each_upload_bumps_the_version_and_the_image_url(client, make_creator, api_headers):
    creator = make_creator()
    upload(client, api_headers(creator), image_bytes("PNG", color=(255, 0, 0)))
    second = upload(client, api_headers(creator), image_bytes("PNG", color=(0, 0, 255))).get_json()["profile"]
    assert second["avatarVersion"] == 2 and second["avatarUrl"].endswith("?v=2")
    r, g, b = decode(db.session.get(Avatar, creator.id).webp).convert("RGB").getpixel((128, 128))
    assert b > 200 and r < 50


def test_avatar_is_served_as_webp_with_long_cache_and_nosniff(client, make_creator, api_headers):
    creator = make_creator()
    url = upload(client, api_headers(creator), image_bytes("PNG")).get_json()["profile"]["avatarUrl"]
    resp = client.get(url)
    assert resp.status_code == 200
    assert resp.headers["Content-Type"] == "image/webp"
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert "max-age=31536000" in resp.headers["Cache-Control"] and "immutable" in resp.headers["Cache-Control"]
    assert decode(resp.data).format == "WEBP"
    # Another version's URL is not cached for good: it shows whatever is current.
    assert "immutable" not in client.get(f"/avatars/{creator.id}.webp?v=7").headers["Cache-Control"]


def test_no_avatar_is_a_404(client, make_creator):
    creator = make_creator()
    assert client.get(f"/avatars/{creator.id}.webp").status_code == 404
    assert client.get("/avatars/999999999999.webp").status_code == 404
    assert client.get("/avatars/99999999999999999999999.webp").status_code == 404
    assert client.get("/avatars/abc.webp").status_code == 404
