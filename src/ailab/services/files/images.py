"""Images made fit for a model: checked, downscaled, re-encoded, stripped of their metadata.

:func:`prepare_image` opens the bytes with Pillow, restricted to the four formats every backend that sees
takes (PNG, JPEG, WebP, GIF), and refuses before decoding an image whose header claims more pixels than
``max_pixels`` (a decompression bomb: a few KB of PNG can claim gigabytes of pixels). It then decodes it
whole (a truncated or corrupt file fails here, not at the model), turns it upright by its EXIF
orientation, shrinks it so its long side is at most ``max_side`` (1568 px: Anthropic's advice, past which
it only downscales on its side; Gemini and OpenAI tile at about that size too) and encodes it again:

- PNG stays PNG, unless the result is past ``MAX_PNG_BYTES`` (a large photo saved as PNG): then JPEG;
- JPEG stays JPEG (quality 85), WebP stays WebP (quality 85);
- GIF: its first frame, as PNG (the backends take no animation).

Re-encoding drops every piece of metadata (EXIF with its GPS position and camera serial, XMP, ICC,
comments): a new image is written from the pixels alone. The work is CPU-bound (tens of milliseconds for
a photo): call it from a worker thread, not on the event loop.
"""

from __future__ import annotations

import io
from typing import Final

from PIL import Image, ImageOps, UnidentifiedImageError

from ailab.errors import InvalidInput
from ailab.providers.base import ImagePart

MEDIA_TYPES: Final = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp", "GIF": "image/gif"}
QUALITY = 85
# A PNG past this is re-encoded as JPEG: Anthropic takes at most 5 MB of base64 per image (3.75 MB of bytes).
MAX_PNG_BYTES = 3_500_000
# Pillow's own errors for bytes that are not a whole, readable image of an allowed format.
_UNREADABLE = (
    UnidentifiedImageError,
    Image.DecompressionBombError,
    Image.DecompressionBombWarning,  # raised, not warned, where warnings are errors (the tests)
    OSError,  # truncated data, a broken chunk or CRC
    SyntaxError,  # how some plugins report a malformed header
    ValueError,
    EOFError,
)


def prepare_image(data: bytes, *, max_side: int = 1568, max_pixels: int = 40_000_000) -> ImagePart:
    """``data`` checked, downscaled and re-encoded for a model (see the module docstring).

    Raises :class:`~ailab.errors.InvalidInput` for bytes that are no readable PNG, JPEG, WebP or GIF, and
    for an image of more than ``max_pixels`` pixels.
    """
    try:
        with Image.open(io.BytesIO(data), formats=tuple(MEDIA_TYPES)) as image:
            width, height = image.size
            if width * height > max_pixels:
                raise InvalidInput(
                    f"the image is too large: {width}x{height} pixels, more than {max_pixels:,} in all"
                )
            kind = str(image.format)
            image.verify()  # the file's structure (PNG checksums...), before any pixel is decoded
        with Image.open(io.BytesIO(data), formats=(kind,)) as image:
            image.seek(0)  # an animation's first frame
            if kind == "JPEG":  # decode at 1/2, 1/4 or 1/8 scale where that still leaves max_side
                image.draft(None, _box(width, height, max_side))
            image.load()
            frame = ImageOps.exif_transpose(image) or image
            frame = _normalised(frame)
    except _UNREADABLE as exc:
        raise InvalidInput(f"the image cannot be read: not a whole PNG, JPEG, WebP or GIF ({exc})") from None
    if max(frame.size) > max_side:
        frame.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    return _encoded(frame, kind)


def _box(width: int, height: int, max_side: int) -> tuple[int, int]:
    """The size the image will be shrunk to (its aspect kept): what JPEG's draft decoding may aim at."""
    scale = min(1.0, max_side / max(width, height, 1))
    return max(1, round(width * scale)), max(1, round(height * scale))


def _normalised(image: Image.Image) -> Image.Image:
    """The pixels in a mode every encoder here takes: L, RGB or RGBA (alpha kept where there is some)."""
    if image.mode in ("L", "RGB", "RGBA"):
        return image.copy()  # a copy: the file's image is closed when its ``with`` ends
    if image.mode in ("LA", "PA") or "transparency" in image.info:
        return image.convert("RGBA")
    return image.convert("RGB")


def _encoded(image: Image.Image, kind: str) -> ImagePart:
    image.info.clear()  # nothing of the original's metadata (EXIF, ICC, text chunks) is written out
    if kind in ("PNG", "GIF"):
        png = _save(image, "PNG")
        if len(png) <= MAX_PNG_BYTES:
            return ImagePart("image/png", png)
        kind = "JPEG"
    if kind == "WEBP":
        return ImagePart("image/webp", _save(image, "WEBP", quality=QUALITY))
    if image.mode == "RGBA":  # JPEG has no alpha: flatten onto white, as viewers show it
        flat = Image.new("RGB", image.size, (255, 255, 255))
        flat.paste(image, mask=image.getchannel("A"))
        image = flat
    return ImagePart("image/jpeg", _save(image, "JPEG", quality=QUALITY))


def _save(image: Image.Image, kind: str, **options: int) -> bytes:
    out = io.BytesIO()
    image.save(out, format=kind, **options)
    return out.getvalue()
