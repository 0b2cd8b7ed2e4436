"""Text extraction in worker processes: right text on the right page, and clean failures for broken,
hostile, slow or memory-hungry documents, after which the extractor keeps working."""

from __future__ import annotations

import asyncio
import io
import os
import signal
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path

import psutil
import pypdfium2  # type: ignore[import-untyped]
import pytest
from fpdf import FPDF

from ailab.services.files import readers
from ailab.services.files.extract import ExtractionFailed, ExtractionLimits, Extractor, MiB, PageText
from ailab.services.files.kinds import DOCX, HTML, PDF, PLAIN_TEXT, PNG
from tests.support.documents import docx_bytes, pdf_bytes

CONTENT_TYPES = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="xml" ContentType="application/xml"/>'
    '<Override PartName="/word/document.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/>'
    "</Types>"
)
DOCUMENT_START = (
    b'<?xml version="1.0" encoding="UTF-8"?>'
    b'<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>'
)
DOCUMENT_END = b"</w:body></w:document>"


@pytest.fixture
async def extractor() -> AsyncIterator[Extractor]:
    extractor = Extractor(ExtractionLimits(timeout_s=20))
    yield extractor
    await extractor.aclose()


def write(folder: Path, name: str, data: bytes) -> Path:
    path = folder / name
    path.write_bytes(data)
    return path


def slow_html(folder: Path) -> Path:
    """An HTML page that takes html.parser well over a second: tens of thousands of elements."""
    return write(folder, "slow.html", b"<div><p>word <b>bold</b> <i>it</i></p></div>\n" * 120_000)


def docx_with_document(document_xml: bytes, extra_entries: int = 0) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        archive.writestr("[Content_Types].xml", CONTENT_TYPES)
        archive.writestr("word/document.xml", document_xml)
        for index in range(extra_entries):
            archive.writestr(f"word/media/empty{index}.bin", b"")
    return buffer.getvalue()


async def test_pdf_pages_keep_their_numbers_and_progress_ends_at_one(
    extractor: Extractor, tmp_path: Path
) -> None:
    path = write(tmp_path, "three.pdf", pdf_bytes(["Alpha page text.", "Beta page\nsecond line.", "Gamma."]))
    progress: list[float] = []
    pages = await extractor.extract(path, PDF, on_progress=progress.append)
    assert pages == [
        PageText(1, "Alpha page text."),
        PageText(2, "Beta page\nsecond line."),
        PageText(3, "Gamma."),
    ]
    assert progress[0] == 0.0
    assert progress[-1] == 1.0
    assert progress == sorted(progress)


def test_pypdf_reads_a_pdf_that_pdfium_refuses(tmp_path: Path) -> None:
    # Comment lines before the header push it past the 1 KiB where PDFium looks for it; pypdf, reading
    # from the end of the file and rebuilding the cross-reference table, still finds every page.
    path = write(tmp_path, "prefixed.pdf", b"%junk\n" * 500 + pdf_bytes(["First.", "Second."]))
    with pytest.raises(pypdfium2.PdfiumError):
        pypdfium2.PdfDocument(str(path))
    assert readers.read_pdf(path, ExtractionLimits()) == [PageText(1, "First."), PageText(2, "Second.")]


def test_the_pypdf_reader_on_its_own(tmp_path: Path) -> None:
    path = write(tmp_path, "two.pdf", pdf_bytes(["One.", "Two."]))
    done: list[tuple[int, int]] = []
    pages = readers.read_pdf_with_pypdf(
        path, ExtractionLimits(), lambda page, total: done.append((page, total))
    )
    assert pages == [PageText(1, "One."), PageText(2, "Two.")]
    assert done == [(1, 2), (2, 2)]


async def test_a_truncated_pdf_fails_and_the_extractor_still_works(
    extractor: Extractor, tmp_path: Path
) -> None:
    data = pdf_bytes(["Some text.", "More text."])
    truncated = write(tmp_path, "truncated.pdf", data[: len(data) // 2])
    with pytest.raises(ExtractionFailed) as failed:
        await extractor.extract(truncated, PDF)
    assert failed.value.status == 422
    assert failed.value.message.startswith("the PDF could not be read: ")
    assert await extractor.extract(write(tmp_path, "fine.pdf", data), PDF) == [
        PageText(1, "Some text."),
        PageText(2, "More text."),
    ]


async def test_a_password_protected_pdf_is_refused(extractor: Extractor, tmp_path: Path) -> None:
    pdf = FPDF()
    pdf.set_font("helvetica", size=11)
    pdf.add_page()
    pdf.cell(0, 10, "secret")
    pdf.set_encryption(owner_password="owner", user_password="user")
    path = write(tmp_path, "locked.pdf", bytes(pdf.output()))
    with pytest.raises(ExtractionFailed, match="the PDF is protected by a password"):
        await extractor.extract(path, PDF)


async def test_a_pdf_past_the_page_limit_is_refused_whole(tmp_path: Path) -> None:
    extractor = Extractor(ExtractionLimits(max_pages=2))
    try:
        path = write(tmp_path, "long.pdf", pdf_bytes(["a", "b", "c"]))
        with pytest.raises(ExtractionFailed, match="the PDF has 3 pages; the limit is 2"):
            await extractor.extract(path, PDF)
    finally:
        await extractor.aclose()


async def test_a_slow_document_times_out_and_the_next_one_is_read(tmp_path: Path) -> None:
    extractor = Extractor(ExtractionLimits(timeout_s=0.2))
    try:
        await extractor.extract(write(tmp_path, "warm.html", b"<p>warm</p>"), HTML)
        [slow_worker] = extractor.worker_pids
        with pytest.raises(ExtractionFailed) as failed:
            await extractor.extract(slow_html(tmp_path), HTML)
        assert failed.value.message == "the document took longer than 0.2 s to read"
        assert not psutil.pid_exists(slow_worker)  # killed, not left parsing
        pages = await extractor.extract(write(tmp_path, "next.html", b"<p>next</p>"), HTML)
        assert pages == [PageText(None, "next")]
        assert extractor.worker_pids != [slow_worker]
    finally:
        await extractor.aclose()


async def test_a_document_needing_too_much_memory_fails_cleanly(tmp_path: Path) -> None:
    # Headroom over an idle worker (~70 MiB here); the page alone needs twice its size (bytes, then text).
    extractor = Extractor(ExtractionLimits(memory_bytes=128 * MiB))
    try:
        huge = write(tmp_path, "huge.html", b"<p>" + b"a" * (64 * MiB) + b"</p>")
        with pytest.raises(ExtractionFailed) as failed:
            await extractor.extract(huge, HTML)
        assert failed.value.message == "reading the document needed more than 128 MiB of memory"
        pages = await extractor.extract(write(tmp_path, "small.html", b"<p>small</p>"), HTML)
        assert pages == [PageText(None, "small")]
    finally:
        await extractor.aclose()


async def test_docx_paragraphs_and_table_in_document_order(extractor: Extractor, tmp_path: Path) -> None:
    data = docx_bytes(["First paragraph.", "Second paragraph."], [["Name", "Age"], ["Ada", "36"]])
    pages = await extractor.extract(write(tmp_path, "doc.docx", data), DOCX)
    assert pages == [PageText(None, "First paragraph.\n\nSecond paragraph.\n\nName | Age\nAda | 36")]


def test_docx_runs_tabs_breaks_nested_tables_and_alternate_content(tmp_path: Path) -> None:
    body = (
        b"<w:p><w:pPr><w:tabs><w:tab w:val='left' w:pos='720'/></w:tabs></w:pPr>"
        b"<w:r><w:t>Left</w:t><w:tab/><w:t>right</w:t><w:br/><w:t>next line</w:t></w:r></w:p>"
        b"<w:tbl><w:tr><w:tc><w:p><w:r><w:t>outer</w:t></w:r></w:p>"
        b"<w:tbl><w:tr><w:tc><w:p><w:r><w:t>inner</w:t></w:r></w:p></w:tc></w:tr></w:tbl>"
        b"</w:tc><w:tc><w:p><w:r><w:t>second cell</w:t></w:r></w:p></w:tc></w:tr></w:tbl>"
        b"<mc:AlternateContent xmlns:mc='http://schemas.openxmlformats.org/markup-compatibility/2006'>"
        b"<mc:Choice Requires='wps'><w:p><w:r><w:t>boxed</w:t></w:r></w:p></mc:Choice>"
        b"<mc:Fallback><w:p><w:r><w:t>boxed</w:t></w:r></w:p></mc:Fallback></mc:AlternateContent>"
        b"<w:p><w:r><w:delText>deleted</w:delText><w:t xml:space='preserve'>kept </w:t></w:r></w:p>"
    )
    path = write(tmp_path, "rich.docx", docx_with_document(DOCUMENT_START + body + DOCUMENT_END))
    assert readers.read_docx(path, ExtractionLimits()) == [
        PageText(None, "Left\tright\nnext line\n\nouter inner | second cell\n\nboxed\n\nkept")
    ]


async def test_a_zip_bomb_docx_fails_at_the_inflate_cap(tmp_path: Path) -> None:
    extractor = Extractor(ExtractionLimits(max_inflated_bytes=1 * MiB))
    try:
        bomb = docx_with_document(DOCUMENT_START + b" " * (48 * MiB) + DOCUMENT_END)
        assert len(bomb) * 100 < 48 * MiB  # a bomb: it inflates more than a hundredfold
        with pytest.raises(ExtractionFailed) as failed:
            await extractor.extract(write(tmp_path, "bomb.docx", bomb), DOCX)
        assert failed.value.message == "the DOCX inflates past 1 MiB"
    finally:
        await extractor.aclose()


def test_a_docx_with_too_many_entries_is_refused(tmp_path: Path) -> None:
    data = docx_with_document(DOCUMENT_START + DOCUMENT_END, extra_entries=200)
    with pytest.raises(ExtractionFailed, match="the DOCX holds 202 files; the limit is 100"):
        readers.read_docx(write(tmp_path, "many.docx", data), ExtractionLimits(max_zip_entries=100))


def test_a_docx_declaring_entities_is_refused(tmp_path: Path) -> None:
    laughs = (
        b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>'
        b'<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">'
        b"<w:body><w:p><w:r><w:t>&lol2;</w:t></w:r></w:p></w:body></w:document>"
    )
    with pytest.raises(ExtractionFailed, match="declares a DTD"):
        readers.read_docx(write(tmp_path, "laughs.docx", docx_with_document(laughs)), ExtractionLimits())


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"PK\x03\x04 this is no zip at all", "the DOCX could not be read: it is not a valid ZIP archive"),
        (b"", "the DOCX could not be read: it is not a valid ZIP archive"),
    ],
)
def test_a_broken_zip_is_refused(tmp_path: Path, data: bytes, message: str) -> None:
    with pytest.raises(ExtractionFailed) as failed:
        readers.read_docx(write(tmp_path, "broken.docx", data), ExtractionLimits())
    assert failed.value.message == message


def test_a_zip_that_is_not_a_word_document_is_refused(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(
            "[Content_Types].xml", CONTENT_TYPES.replace("wordprocessingml.document", "spreadsheetml")
        )
        archive.writestr("word/document.xml", DOCUMENT_START + DOCUMENT_END)
    with pytest.raises(ExtractionFailed, match="a ZIP archive but not a Word document"):
        readers.read_docx(write(tmp_path, "sheet.docx", buffer.getvalue()), ExtractionLimits())


async def test_html_loses_scripts_and_keeps_paragraphs(extractor: Extractor, tmp_path: Path) -> None:
    page = (
        b"<!doctype html><html><head><title>The title</title><style>p { color: red }</style>"
        b"<script>var secret = '<p>not text</p>';</script></head><body>"
        b"<p>One &amp; two&nbsp;&lt;three&gt;</p><p>Line<br>break</p>"
        b"<template><p>hidden</p></template><ul><li>first</li><li>second</li></ul>"
        b"<pre>  keep\n  spacing</pre></body></html>"
    )
    pages = await extractor.extract(write(tmp_path, "page.html", page), HTML)
    assert pages == [
        PageText(None, "The title\n\nOne & two <three>\n\nLine\nbreak\n\nfirst\nsecond\n\nkeep\nspacing")
    ]


async def test_a_worker_killed_mid_job_is_replaced(extractor: Extractor, tmp_path: Path) -> None:
    killed: list[int] = []

    def kill_the_worker(fraction: float) -> None:
        if fraction == 0.0:  # the worker has the document and is reading it
            [pid] = extractor.worker_pids
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    with pytest.raises(ExtractionFailed) as failed:
        await extractor.extract(slow_html(tmp_path), HTML, on_progress=kill_the_worker)
    # How it ended is "stopped by SIGKILL", or "exited with status 255" when asyncio's child watcher
    # lost the race to read the status (seen here under load): the job's failure is what matters.
    assert failed.value.message.startswith("the reader process stopped while reading the document (it ")
    pages = await extractor.extract(write(tmp_path, "after.html", b"<p>after</p>"), HTML)
    assert pages == [PageText(None, "after")]
    assert extractor.worker_pids != killed


async def test_a_worker_that_died_idle_does_not_fail_the_next_job(
    extractor: Extractor, tmp_path: Path
) -> None:
    first = await extractor.extract(write(tmp_path, "a.html", b"<p>a</p>"), HTML)
    [pid] = extractor.worker_pids
    os.kill(pid, signal.SIGKILL)
    second = await extractor.extract(write(tmp_path, "b.html", b"<p>b</p>"), HTML)
    assert (first, second) == ([PageText(None, "a")], [PageText(None, "b")])
    assert extractor.worker_pids != [pid]


async def test_a_cancelled_extraction_stops_its_worker(extractor: Extractor, tmp_path: Path) -> None:
    started = asyncio.Event()
    job = asyncio.create_task(
        extractor.extract(slow_html(tmp_path), HTML, on_progress=lambda _f: started.set())
    )
    await started.wait()
    [pid] = extractor.worker_pids
    job.cancel()
    with pytest.raises(asyncio.CancelledError):
        await job
    assert not psutil.pid_exists(pid)
    assert await extractor.extract(write(tmp_path, "c.html", b"<p>c</p>"), HTML) == [PageText(None, "c")]


async def test_two_workers_read_two_documents_at_once(tmp_path: Path) -> None:
    extractor = Extractor(workers=2)
    try:
        paths = [write(tmp_path, f"{name}.pdf", pdf_bytes([name])) for name in ("left", "right")]
        results = await asyncio.gather(*(extractor.extract(path, PDF) for path in paths))
        assert results == [[PageText(1, "left")], [PageText(1, "right")]]
        assert len(extractor.worker_pids) == 2
    finally:
        await extractor.aclose()
    assert extractor.worker_pids == []


async def test_text_is_read_in_process_and_images_have_none(extractor: Extractor, tmp_path: Path) -> None:
    text = write(tmp_path, "notes.txt", b"\xef\xbb\xbfline one\r\nline two\rline three\xff\x00\n")
    assert await extractor.extract(text, PLAIN_TEXT) == [
        PageText(None, "line one\nline two\nline three\ufffd\n")
    ]
    assert await extractor.extract(write(tmp_path, "x.png", b"\x89PNG"), PNG) == []
    assert extractor.worker_pids == []  # neither needed a worker
