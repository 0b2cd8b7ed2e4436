"""Small real images for tests, made with Pillow: each call gives distinct bytes (its own colour)."""

from __future__ import annotations

import io
import itertools
from typing import Any

from PIL import Image

_colours = itertools.count(1)


def image_bytes(
    kind: str = "PNG", size: tuple[int, int] = (4, 3), mode: str = "RGB", **options: Any
) -> bytes:
    """A ``size`` image of one colour, encoded as ``kind`` (PNG, JPEG, WEBP, GIF)."""
    shade = next(_colours) * 37 % 256
    colour: Any = {"RGB": (shade, 255 - shade, 90), "RGBA": (shade, 20, 200, 128), "L": shade}.get(mode, 0)
    out = io.BytesIO()
    Image.new(mode, size, colour).save(out, format=kind, **options)
    return out.getvalue()


def png(size: tuple[int, int] = (4, 3)) -> bytes:
    """A small PNG."""
    return image_bytes("PNG", size)
