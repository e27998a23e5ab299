"""Creator avatars: an uploaded image checked by its content, re-encoded as a square WebP.

Design note
-----------
An upload is hostile until Pillow has decoded it: the name and Content-Type say
nothing, so the format is whatever Pillow recognises among PNG, JPEG and WebP
only (`formats=` keeps every other decoder — GIF, SVG-ish text, TIFF … — out).
A small file may declare a huge canvas (a decompression bomb): the declared
size is checked against `MAX_PIXELS` before any pixel is decoded, and Pillow's
own bomb warning is turned into an error. What is stored is never the upload
but a fresh `SIZE`×`SIZE` WebP drawn from its pixels (centre-cropped), so no
EXIF, ICC or XMP metadata of the original survives. Nothing is written unless
all of that succeeded; then the row is replaced and `users.avatar_version`
bumped in one commit.
"""
from __future__ import annotations

import io
import logging
import struct
import warnings

from PIL import Image, ImageOps, UnidentifiedImageError
from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert

from app.auth import service as auth
from app.auth.models import User
from app.errors import InvalidValue
from app.extensions import db
from app.profiles.models import Avatar
from app.profiles.service import profile_of

log = logging.getLogger(__name__)

MAX_BYTES = 2 * 1024 * 1024
# Room for the multipart framing and the form's other fields around a MAX_BYTES file.
MAX_BODY_BYTES = MAX_BYTES + 64 * 1024
MAX_PIXELS = 25_000_000  # a 12-megapixel phone photo fits twice; decoding stays under ~100 MB
FORMATS = ("PNG", "JPEG", "WEBP")
SIZE = 256

_DECODE_ERRORS = (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError, struct.error,
                  IndexError, TypeError, Image.DecompressionBombError, Image.DecompressionBombWarning)


def too_large() -> InvalidValue:
    return InvalidValue("The image is larger than 2 MB. Choose a smaller one.", "avatar_too_large", field="avatar")


def reencode(data: bytes) -> bytes:
    """`data` (PNG, JPEG or WebP, ≤ MAX_BYTES) as a SIZE×SIZE WebP without metadata.
    Raises `InvalidValue` (field avatar): avatar_required for no data, avatar_too_large,
    unsupported_avatar for anything that is not one of the three formats, invalid_avatar
    for a broken image or one with too many pixels."""
    if not data:
        raise InvalidValue("Choose an image to upload.", "avatar_required", field="avatar")
    if len(data) > MAX_BYTES:
        raise too_large()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=FORMATS) as img:
                width, height = img.size
                if width < 1 or height < 1 or width * height > MAX_PIXELS:
                    raise InvalidValue(f"The image has too many pixels ({width}×{height}). "
                                       "Use one of at most 25 megapixels.", "invalid_avatar", field="avatar")
                if img.format == "JPEG":
                    img.draft("RGB", (SIZE * 2, SIZE * 2))  # decode a large JPEG at a fraction of its size
                img.load()
                img = ImageOps.exif_transpose(img)  # a phone's portrait photo stands up
                has_alpha = img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info)
                img = img.convert("RGBA" if has_alpha else "RGB")
                square = ImageOps.fit(img, (SIZE, SIZE), Image.Resampling.LANCZOS)
    except UnidentifiedImageError:
        raise InvalidValue("Upload a PNG, JPEG or WebP image.", "unsupported_avatar", field="avatar") from None
    except InvalidValue:
        raise
    except (*_DECODE_ERRORS, MemoryError) as err:
        log.info("avatar refused: %s: %s", type(err).__name__, err)
        raise InvalidValue("That image could not be read. Try another PNG, JPEG or WebP file.",
                           "invalid_avatar", field="avatar") from None
    # A new image holding only the pixels: nothing of the upload's info (EXIF, ICC, XMP) can ride along.
    clean = Image.new(square.mode, square.size)
    clean.paste(square)
    out = io.BytesIO()
    clean.save(out, "WEBP", quality=85, method=4)
    return out.getvalue()


def set_avatar(user, data: bytes) -> dict:
    """Store `data` re-encoded (`reencode`) as `user`'s avatar and bump their avatar
    version; commits and returns their profile. `Forbidden` for fans; on any
    `InvalidValue` nothing is stored."""
    auth.require_creator(user, "Only creators have a profile picture.")
    webp = reencode(data)
    db.session.execute(insert(Avatar).values(user_id=user.id, webp=webp).on_conflict_do_update(
        index_elements=[Avatar.user_id], set_={"webp": webp, "updated_at": func.now()}))
    # In SQL, so two uploads at once still make two versions.
    db.session.execute(update(User).where(User.id == user.id)
                       .values(avatar_version=func.coalesce(User.avatar_version, 0) + 1))
    db.session.commit()
    return profile_of(user)


def avatar_image(user_id: int) -> tuple[bytes, int] | None:
    """(`webp`, version) of `user_id`'s avatar, or None when they have none."""
    row = db.session.execute(
        select(Avatar.webp, User.avatar_version).join(User, User.id == Avatar.user_id)
        .where(Avatar.user_id == user_id)).first()
    return None if row is None else (row.webp, row.avatar_version or 0)
