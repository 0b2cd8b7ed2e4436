"""The images of a chat completions request, for the backends the gateway translates for.

An OpenAI ``image_url`` content part carries its image inline, ``data:image/png;base64,...``; it becomes
an :class:`~ailab.providers.base.ImagePart` with the bytes decoded. The media type is read from the
bytes, not from the URL: OpenAI itself takes a PNG labelled ``image/jpeg``, and Anthropic would refuse
the mismatch, so clients written for OpenAI keep working. Bytes that are no PNG, JPEG, WebP or GIF are
refused. Their size is bounded by the request's own (``AILAB_MAX_BODY_BYTES``), and they are passed on
as they came, as OpenAI's own wire would pass them: the gateway decodes no pixels.

An ``http(s)`` URL is refused: AI-Lab fetches no URL on a caller's behalf (that would let any key holder
make the server reach its own network: SSRF). Backends that speak OpenAI's wire get the request as it
came, and fetch such URLs themselves, as OpenAI does.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

from ailab.providers.base import ImagePart
from ailab.services.gateway.request import BadRequest

_DATA_URL = re.compile(r"data:image/[\w.+-]+(?:;[\w.+-]+=[^;,]*)*;base64,", re.IGNORECASE)
_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)


def sniffed_media_type(data: bytes) -> str | None:
    """``image/png``, ``image/jpeg``, ``image/webp`` or ``image/gif`` by the bytes' signature; None else."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return next((kind for magic, kind in _SIGNATURES if data.startswith(magic)), None)


def image_of(part: dict[str, Any], where: str) -> ImagePart:
    """The image of an ``image_url`` content part (``where`` names it in errors: ``messages[0].content[1]``).

    Raises :class:`BadRequest` (400) for a remote URL, a URL that is no base64 ``data:image/`` URL, bytes
    that are not base64, or an image of another format.
    """
    spec = part.get("image_url")
    url = spec.get("url") if isinstance(spec, dict) else None
    if not isinstance(url, str):
        raise BadRequest(f"'{where}.image_url.url' is required (a data:image/...;base64, URL)")
    if url[:8].lower().startswith(("http://", "https://")):
        raise BadRequest(
            f"'{where}.image_url.url': AI-Lab does not fetch URLs on a caller's behalf; send the image "
            "inline as a data URL (data:image/png;base64,...)"
        )
    header = _DATA_URL.match(url)
    if header is None:
        raise BadRequest(f"'{where}.image_url.url' must be a base64 data URL: data:image/png;base64,...")
    try:
        data = base64.b64decode(url[header.end() :], validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest(f"'{where}.image_url.url': the data after 'base64,' is not valid base64") from None
    media_type = sniffed_media_type(data)
    if media_type is None:
        raise BadRequest(f"'{where}.image_url.url': the image must be a PNG, JPEG, WebP or GIF")
    return ImagePart(media_type, data)
