"""Chunking: pages kept, sizes bounded, overlap between neighbours, boundaries preferred, no empty chunks."""

from __future__ import annotations

import itertools

import pytest

from ailab.services.files.chunking import Chunk, chunk_pages
from ailab.services.files.extract import PageText

SENTENCE = "The quick brown fox jumps over the lazy dog near the river bank. "


def test_short_pages_give_one_chunk_each_with_their_page() -> None:
    chunks = chunk_pages([PageText(1, "Page one."), PageText(2, "  "), PageText(3, "Page three.")])
    assert chunks == [Chunk(0, 1, "Page one."), Chunk(1, 3, "Page three.")]


def shared_overlap(previous: str, current: str) -> str:
    """The longest end of ``previous`` that ``current`` starts with."""
    for size in range(min(len(previous), len(current)), 0, -1):
        if current.startswith(previous[-size:]):
            return previous[-size:]
    return ""


def numbered_sentences(count: int, page: int) -> str:
    return " ".join(f"Sentence {n} of page {page} says something." for n in range(count))


def test_long_text_is_bounded_paged_and_overlapping() -> None:
    pages = [
        PageText(1, numbered_sentences(60, 1)),
        PageText(2, numbered_sentences(30, 2)),
        PageText(None, ""),
    ]
    chunks = chunk_pages(pages, max_chars=300, overlap_chars=60)
    assert [chunk.index for chunk in chunks] == list(range(len(chunks)))
    assert all(0 < len(chunk.text) <= 300 for chunk in chunks)
    assert {chunk.page for chunk in chunks} == {1, 2}
    page_one = [chunk for chunk in chunks if chunk.page == 1]
    assert len(page_one) > 5
    for previous, current in itertools.pairwise(page_one):
        # Each chunk starts with the last words of the one before it (numbered sentences never repeat).
        overlap = shared_overlap(previous.text, current.text)
        assert 20 <= len(overlap) <= 60
        assert previous.text[-len(overlap) - 1] == " "  # the overlap starts at a word
    # No overlap across pages: page 2's first chunk starts at page 2's own start.
    first_of_page_two = next(chunk for chunk in chunks if chunk.page == 2)
    assert first_of_page_two.text.startswith("Sentence 0 of page 2 ")


def test_paragraphs_are_kept_whole_when_they_fit() -> None:
    paragraphs = [f"Paragraph {n}. " + "word " * 30 for n in range(6)]
    chunks = chunk_pages([PageText(None, "\n\n".join(paragraphs))], max_chars=400, overlap_chars=0)
    texts = [chunk.text for chunk in chunks]
    for paragraph in paragraphs:
        assert sum(paragraph.strip() in text for text in texts) == 1  # each paragraph whole, exactly once
    assert all(len(text) <= 400 for text in texts)


def test_sentences_split_before_words() -> None:
    text = " ".join(f"Sentence number {n} has a few words in it." for n in range(20))
    chunks = chunk_pages([PageText(1, text)], max_chars=120, overlap_chars=0)
    assert all(chunk.text.endswith(".") for chunk in chunks)
    assert " ".join(chunk.text for chunk in chunks) == text


def test_a_very_long_word_is_still_split() -> None:
    word = "x" * 1000
    chunks = chunk_pages([PageText(4, f"before {word} after")], max_chars=300, overlap_chars=50)
    assert all(len(chunk.text) <= 300 for chunk in chunks)
    assert all(chunk.page == 4 for chunk in chunks)
    assert "".join(chunk.text for chunk in chunks).count("x") >= 1000  # nothing of the word is lost


def test_chunking_is_deterministic() -> None:
    pages = [PageText(1, SENTENCE * 40 + "\n\n" + SENTENCE * 10)]
    assert chunk_pages(pages, max_chars=250, overlap_chars=50) == chunk_pages(
        pages, max_chars=250, overlap_chars=50
    )


@pytest.mark.parametrize(("max_chars", "overlap_chars"), [(0, 0), (100, 60), (100, -1)])
def test_impossible_settings_are_refused(max_chars: int, overlap_chars: int) -> None:
    with pytest.raises(ValueError, match="max_chars"):
        chunk_pages([PageText(1, "text")], max_chars=max_chars, overlap_chars=overlap_chars)
