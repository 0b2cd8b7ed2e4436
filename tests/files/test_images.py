"""prepare_image: what a model gets of an uploaded image, and what is refused."""

from __future__ import annotations

import io
import random
import struct
import zlib

import pytest
from PIL import Image

from ailab.errors import InvalidInput
from ailab.services.files.images import MAX_PNG_BYTES, prepare_image
from tests.support.images import image_bytes, png


def opened(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def with_claimed_size(data: bytes, width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` (its CRC fixed): what a decompression bomb shows."""
    ihdr = data[12:16] + struct.pack(">II", width, height) + data[24:29]
    return data[:8] + data[8:12] + ihdr + struct.pack(">I", zlib.crc32(ihdr)) + data[33:]


def test_a_small_png_stays_a_png_of_the_same_pixels() -> None:
    part = prepare_image(png((40, 30)))
    assert part.media_type == "image/png"
    image = opened(part.data)
    assert (image.format, image.size) == ("PNG", (40, 30))


@pytest.mark.parametrize(
    ("kind", "media_type", "mode"),
    [("JPEG", "image/jpeg", "RGB"), ("WEBP", "image/webp", "RGBA"), ("PNG", "image/png", "RGBA")],
)
def test_each_format_keeps_its_format_and_the_long_side_is_brought_to_max_side(
    kind: str, media_type: str, mode: str
) -> None:
    part = prepare_image(image_bytes(kind, (3000, 1200), mode), max_side=1568)
    assert part.media_type == media_type
    image = opened(part.data)
    assert image.format == kind
    assert image.size == (1568, 627)  # the aspect ratio kept


def test_a_large_photo_decoded_at_a_reduced_scale_still_fills_max_side() -> None:
    part = prepare_image(image_bytes("JPEG", (4000, 3000)), max_side=1568)  # decoded at 1/2: 2000x1500
    assert opened(part.data).size == (1568, 1176)


def test_a_gif_becomes_its_first_frame_as_png() -> None:
    frames = [Image.new("P", (20, 10), colour) for colour in (1, 2, 3)]
    out = io.BytesIO()
    frames[0].save(out, format="GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    part = prepare_image(out.getvalue())
    assert part.media_type == "image/png"
    image = opened(part.data)
    assert (image.format, image.size, getattr(image, "n_frames", 1)) == ("PNG", (20, 10), 1)


def test_metadata_is_stripped_and_the_image_turned_upright() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotated, to be shown turned 90 degrees clockwise
    exif[0x010F] = "SecretCam"  # Make
    exif[0x8825] = {1: "N", 2: (48.0, 51.0, 24.0)}  # GPS
    out = io.BytesIO()
    Image.new("RGB", (60, 20), (10, 200, 30)).save(out, format="JPEG", exif=exif, comment=b"private note")
    assert b"SecretCam" in out.getvalue()
    part = prepare_image(out.getvalue())
    assert b"SecretCam" not in part.data and b"private note" not in part.data
    image = opened(part.data)
    assert not image.getexif()
    assert image.size == (20, 60)  # the EXIF orientation applied to the pixels, then dropped


def test_a_huge_png_is_sent_as_jpeg() -> None:
    noise = Image.frombytes("RGB", (1500, 1500), random.Random(7).randbytes(1500 * 1500 * 3))
    out = io.BytesIO()
    noise.save(out, format="PNG")  # noise does not compress: about 6.8 MB
    assert len(out.getvalue()) > MAX_PNG_BYTES
    part = prepare_image(out.getvalue())
    assert part.media_type == "image/jpeg"
    assert opened(part.data).size == (1500, 1500)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"GIF89a but nothing after",
        b"%PDF-1.7 not an image",
        png((50, 50))[:-40],  # truncated
        png((50, 50))[:60] + b"\0" * 8 + png((50, 50))[68:],  # a broken chunk
        image_bytes("BMP", (8, 8)),  # a real image, of a format no backend takes
    ],
    ids=["empty", "gif-header-only", "pdf", "truncated", "corrupt", "bmp"],
)
def test_bytes_that_are_no_whole_image_are_refused(data: bytes) -> None:
    with pytest.raises(InvalidInput, match="the image cannot be read"):
        prepare_image(data)


def test_a_decompression_bomb_is_refused_before_it_is_decoded() -> None:
    small = png((8, 8))
    with pytest.raises(InvalidInput, match="too large: 8000x8000 pixels"):
        prepare_image(with_claimed_size(small, 8000, 8000))  # 64 MP: past max_pixels
    with pytest.raises(InvalidInput):
        prepare_image(with_claimed_size(small, 100_000, 100_000))  # past Pillow's own bomb limit
    with pytest.raises(InvalidInput, match="too large"):
        prepare_image(png((40, 30)), max_pixels=1000)
