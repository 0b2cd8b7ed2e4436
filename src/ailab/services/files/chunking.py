"""Splitting extracted text into chunks for search and for a model's context.

A chunk never crosses a page, so every search hit can cite its page. Within a page the text is split
at the widest boundary that makes the pieces small enough: paragraphs (blank lines), then lines, then
sentences, then words, and as a last resort a long word is cut; small neighbouring pieces are packed back
together up to the size limit. Each chunk after the first of a page starts with the last words (at most
``overlap_chars``) of the one before, so a sentence cut in two is still found whole in one of them.
The result depends on the text alone.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from ailab.services.files.extract import PageText

# Boundaries from widest to narrowest, each with the text that joins pieces packed back together.
_BOUNDARIES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\n[ \t]*\n\s*"), "\n\n"),  # paragraphs
    (re.compile(r"\s*\n\s*"), "\n"),  # lines (code, CSV, lists)
    (re.compile(r"(?<=[.!?;:…。！？])\s+"), " "),  # sentences
    (re.compile(r"\s+"), " "),  # words
)


@dataclass(frozen=True, slots=True)
class Chunk:
    """A piece of a document's text: its position among the document's chunks and the page it is on."""

    index: int
    page: int | None
    text: str


def chunk_pages(pages: Sequence[PageText], *, max_chars: int = 1200, overlap_chars: int = 150) -> list[Chunk]:
    """Chunks of at most ``max_chars`` characters, numbered from 0, in page order; blank text gives none."""
    if max_chars < 1 or overlap_chars < 0 or overlap_chars * 2 > max_chars:
        raise ValueError("chunking needs max_chars >= 1 and 0 <= overlap_chars <= max_chars / 2")
    # Room for the overlap and the space that joins it, so that no chunk passes max_chars.
    body_limit = max_chars - overlap_chars - 1 if overlap_chars else max_chars
    chunks: list[Chunk] = []
    for page in pages:
        previous = ""
        for body in _split(page.text.strip(), body_limit, 0):
            text = body
            if previous and overlap_chars:
                text = f"{_tail(previous, overlap_chars)} {body}"
            chunks.append(Chunk(len(chunks), page.page, text))
            previous = body
    return chunks


def _split(text: str, limit: int, level: int) -> list[str]:
    """``text`` in stripped, non-empty pieces of at most ``limit`` characters, cut at boundaries of
    ``_BOUNDARIES[level]`` or narrower ones, neighbours packed together where they fit."""
    if not text.strip():
        return []
    if len(text) <= limit:
        return [text.strip()]
    if level == len(_BOUNDARIES):
        cuts = (text[start : start + limit].strip() for start in range(0, len(text), limit))
        return [cut for cut in cuts if cut]
    pattern, joiner = _BOUNDARIES[level]
    pieces: list[str] = []
    current = ""
    for raw_part in pattern.split(text):
        part = raw_part.strip()
        if not part:
            continue
        if len(part) > limit:
            if current:
                pieces.append(current)
                current = ""
            pieces.extend(_split(part, limit, level + 1))
        elif not current:
            current = part
        elif len(current) + len(joiner) + len(part) <= limit:
            current += joiner + part
        else:
            pieces.append(current)
            current = part
    if current:
        pieces.append(current)
    return pieces


def _tail(text: str, max_chars: int) -> str:
    """The end of ``text``, at most ``max_chars`` long, starting at a word where there is one."""
    if len(text) <= max_chars:
        return text
    tail = text[-max_chars:]
    if not text[-max_chars - 1].isspace():
        first_space = re.search(r"\s", tail)
        if first_space is not None and tail[first_space.end() :].strip():
            tail = tail[first_space.end() :]
    return tail.strip()
