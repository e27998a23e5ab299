"""Images built in the test with Pillow, good and hostile, for avatar uploads."""
from __future__ import annotations

import io
import struct
import zlib

from PIL import Image

EXIF_MAKE, EXIF_MODEL = 0x010F, 0x0110


def image_bytes(fmt: str, size=(300, 200), mode="RGB", color=(200, 40, 90), **save) -> bytes:
    out = io.BytesIO()
    Image.new(mode, size, color).save(out, fmt, **save)
    return out.getvalue()


def jpeg_with_exif(size=(400, 300)) -> bytes:
    exif = Image.Exif()
    exif[EXIF_MAKE] = "SecretCam"
    exif[EXIF_MODEL] = "GPS-Tracker 9000"
    return image_bytes("JPEG", size, exif=exif.tobytes())


def png_declaring(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width×height pixels (a decompression bomb's shape)."""
    png = bytearray(image_bytes("PNG", (1, 1)))
    # IHDR is the first chunk: 8-byte signature, 4-byte length, b"IHDR", then width and height.
    struct.pack_into(">II", png, 16, width, height)
    struct.pack_into(">I", png, 29, zlib.crc32(bytes(png[12:29])))
    return bytes(png)


SVG = (b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="10" height="10">'
       b'<script>alert(1)</script><rect width="10" height="10"/></svg>')


def decode(webp: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(webp))
    img.load()
    return img
