"""The parsers proper: PDF, DOCX and HTML bytes to text. They run inside ``extract_worker`` processes.

Each reader raises ``ExtractionFailed`` with a message for people, and trusts nothing it is given:

- PDF: pypdfium2 (fast, PDFium) first; pypdf when PDFium cannot open the file, since pypdf repairs some
  damaged cross-reference tables that PDFium refuses. A password-protected PDF is refused, never guessed.
- DOCX: a ZIP guard first. The sizes in a ZIP's directory can lie, so nothing is believed: the entries
  are counted, and the parts read are inflated in chunks against a cap on the bytes actually produced.
  The main document part is then parsed as it inflates, with expat and no DTD allowed (Word never writes
  one), so no entity can expand and the whole XML is never held in memory.
- HTML: html.parser, dropping script, style and template, keeping paragraph and line breaks.

They are plain functions, callable in-process by tests; the memory and time limits are the worker's.
"""

from __future__ import annotations

import codecs
import contextlib
import html.parser
import re
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO
from xml.parsers import expat

import pypdf
import pypdfium2  # type: ignore[import-untyped]
import pypdfium2.raw  # type: ignore[import-untyped]

from ailab.services.files.extract import ExtractionFailed, ExtractionLimits, MiB, PageText, normalise_text

ProgressCallback = Callable[[int, int], None]  # pages done, pages in all

_PDFIUM_REASONS = {
    pypdfium2.raw.FPDF_ERR_FILE: "the file could not be opened",
    pypdfium2.raw.FPDF_ERR_FORMAT: "it is not a PDF, or it is damaged",
    pypdfium2.raw.FPDF_ERR_SECURITY: "it uses an unsupported security handler",
    pypdfium2.raw.FPDF_ERR_PAGE: "a page could not be read",
}
_PASSWORD_MESSAGE = "the PDF is protected by a password; remove the protection and upload it again"  # noqa: S105 (a message, not a password)
_CHUNK = 64 * 1024


def _no_progress(done: int, total: int) -> None:
    pass


# PDF --------------------------------------------------------------------------------------------------


def read_pdf(
    path: Path, limits: ExtractionLimits, on_page: ProgressCallback = _no_progress
) -> list[PageText]:
    """The text of each page of the PDF at ``path``, numbered from 1 (pypdfium2, then pypdf)."""
    try:
        document = pypdfium2.PdfDocument(str(path))
    except pypdfium2.PdfiumError as error:
        if error.err_code == pypdfium2.raw.FPDF_ERR_PASSWORD:
            raise ExtractionFailed(_PASSWORD_MESSAGE) from None
        reason = _PDFIUM_REASONS.get(error.err_code, "PDFium could not open it")
        try:
            return read_pdf_with_pypdf(path, limits, on_page)
        except _PdfUnreadable as fallback_error:
            raise ExtractionFailed(f"the PDF could not be read: {reason} ({fallback_error.reason})") from None
    with contextlib.closing(document):
        count = len(document)
        _check_page_count(count, limits)
        pages: list[PageText] = []
        characters = 0
        for index in range(count):
            try:
                page = document[index]
                try:
                    textpage = page.get_textpage()
                    try:
                        text = normalise_text(textpage.get_text_range())
                    finally:
                        textpage.close()
                finally:
                    page.close()
            except pypdfium2.PdfiumError:
                raise ExtractionFailed(f"the PDF could not be read: page {index + 1} is damaged") from None
            characters += len(text)
            _check_text_size(characters, limits)
            pages.append(PageText(index + 1, text))
            on_page(index + 1, count)
        return pages


def read_pdf_with_pypdf(
    path: Path, limits: ExtractionLimits, on_page: ProgressCallback = _no_progress
) -> list[PageText]:
    """The pypdf reader behind ``read_pdf``: slower, pure Python, more forgiving of damaged files."""
    try:
        reader = pypdf.PdfReader(path, strict=False)
        if reader.is_encrypted and not reader.decrypt(""):
            raise ExtractionFailed(_PASSWORD_MESSAGE)  # an empty user password is no protection; others are
        count = len(reader.pages)
        _check_page_count(count, limits)
        pages: list[PageText] = []
        characters = 0
        for index in range(count):
            text = normalise_text(reader.pages[index].extract_text())
            characters += len(text)
            _check_text_size(characters, limits)
            pages.append(PageText(index + 1, text))
            on_page(index + 1, count)
    except (ExtractionFailed, MemoryError, RecursionError):
        raise
    # pypdf raises many kinds (PdfReadError, KeyError, ValueError, struct.error...) on hostile input.
    except Exception as error:  # noqa: BLE001
        raise _PdfUnreadable(_short(error)) from None
    return pages


class _PdfUnreadable(ExtractionFailed):
    """pypdf could not parse the file (as opposed to refusing it for its password or its length)."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"the PDF could not be read: {reason}")
        self.reason = reason


def _check_page_count(count: int, limits: ExtractionLimits) -> None:
    if count > limits.max_pages:
        raise ExtractionFailed(
            f"the PDF has {count:,} pages; the limit is {limits.max_pages:,} (split it and upload the parts)"
        )


def _check_text_size(characters: int, limits: ExtractionLimits) -> None:
    if characters > limits.max_text_chars:
        raise ExtractionFailed(f"the document holds more than {limits.max_text_chars:,} characters of text")


def _short(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text if len(text) <= 200 else text[:197] + "..."


# DOCX -------------------------------------------------------------------------------------------------

_W = frozenset(
    {
        "http://schemas.openxmlformats.org/wordprocessingml/2006/main",
        "http://purl.oclc.org/ooxml/wordprocessingml/main",
    }
)
_MARKUP_COMPATIBILITY = "http://schemas.openxmlformats.org/markup-compatibility/2006"
_OFFICE_DOCUMENT = "/officeDocument"  # the end of the relationship type naming the main part
_SMALL_PART_BYTES = 1 * MiB  # [Content_Types].xml and _rels/.rels are a few KiB in real documents


def read_docx(path: Path, limits: ExtractionLimits) -> list[PageText]:
    """The text of the DOCX at ``path``: paragraphs and table cells in document order, as one entry."""
    budget = _InflateBudget(limits.max_inflated_bytes)
    try:
        with zipfile.ZipFile(path) as archive:
            entries = archive.infolist()
            if len(entries) > limits.max_zip_entries:
                raise ExtractionFailed(
                    f"the DOCX holds {len(entries):,} files; the limit is {limits.max_zip_entries:,}"
                )
            names = {entry.filename for entry in entries}
            main_part = _main_document_part(archive, names, budget)
            collector = _DocumentText(limits.max_text_chars)
            parser = collector.parser()
            with archive.open(main_part) as stream:
                for chunk in budget.inflate(stream):
                    parser.Parse(chunk, False)
                parser.Parse(b"", True)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError):  # ValueError: bad offsets
        raise ExtractionFailed("the DOCX could not be read: it is not a valid ZIP archive") from None
    except expat.ExpatError as error:
        raise ExtractionFailed(f"the DOCX could not be read: its XML is malformed ({error})") from None
    except RuntimeError as error:  # zipfile: an encrypted entry, or an unsupported compression method
        raise ExtractionFailed(f"the DOCX could not be read: {_short(error)}") from None
    return [PageText(None, collector.text())]


class _InflateBudget:
    """Counts the bytes actually inflated from a ZIP against a cap, whatever its directory claims."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.used = 0

    def inflate(self, stream: IO[bytes], part_cap: int | None = None) -> Iterator[bytes]:
        part_used = 0
        while chunk := stream.read(_CHUNK):
            self.used += len(chunk)
            part_used += len(chunk)
            if self.used > self.max_bytes:
                raise ExtractionFailed(f"the DOCX inflates past {_size(self.max_bytes)}")
            if part_cap is not None and part_used > part_cap:
                raise ExtractionFailed(
                    f"the DOCX could not be read: a package part is larger than {_size(part_cap)}"
                )
            yield chunk

    def read_all(self, archive: zipfile.ZipFile, name: str) -> bytes:
        with archive.open(name) as stream:
            return b"".join(self.inflate(stream, _SMALL_PART_BYTES))


def _size(count: int) -> str:
    return f"{count // MiB} MiB" if count % MiB == 0 else f"{count:,} bytes"


def _main_document_part(archive: zipfile.ZipFile, names: set[str], budget: _InflateBudget) -> str:
    """The ZIP entry holding the Word document's body (``word/document.xml`` in practice), refusing a ZIP
    that is some other kind of package (a spreadsheet renamed .docx, or no Office file at all)."""
    not_word = "the file is a ZIP archive but not a Word document"
    if "[Content_Types].xml" not in names:
        raise ExtractionFailed(not_word)
    main_part = "word/document.xml"
    if "_rels/.rels" in names:
        for relation in _elements(budget.read_all(archive, "_rels/.rels"), "Relationship"):
            if relation.get("Type", "").endswith(_OFFICE_DOCUMENT) and relation.get("Target"):
                main_part = relation["Target"].lstrip("/")
    if main_part not in names:
        raise ExtractionFailed(not_word)
    defaults: dict[str, str] = {}
    overrides: dict[str, str] = {}
    content_types = budget.read_all(archive, "[Content_Types].xml")
    for element in _elements(content_types, "Default"):
        defaults[element.get("Extension", "").lower()] = element.get("ContentType", "")
    for element in _elements(content_types, "Override"):
        overrides[element.get("PartName", "").lstrip("/")] = element.get("ContentType", "")
    content_type = overrides.get(main_part) or defaults.get(main_part.rpartition(".")[2].lower(), "")
    if "wordprocessingml" not in content_type and "ms-word" not in content_type:
        raise ExtractionFailed(not_word)
    return main_part


def _elements(xml: bytes, local_name: str) -> list[dict[str, str]]:
    """The attributes of every element called ``local_name`` (any namespace) in a small XML part."""
    found: list[dict[str, str]] = []

    def start(name: str, attributes: dict[str, str]) -> None:
        if name.rpartition(" ")[2] == local_name:
            found.append(attributes)

    parser = expat.ParserCreate(namespace_separator=" ")
    parser.StartDoctypeDeclHandler = _refuse_doctype
    parser.EntityDeclHandler = _refuse_doctype
    parser.StartElementHandler = start
    parser.Parse(xml, True)
    return found


def _refuse_doctype(*_args: object) -> None:
    # Entities can only be declared in a DTD; refusing any DTD rules out entity expansion ("billion
    # laughs") and external entities at once. Word never writes one.
    raise ExtractionFailed("the DOCX could not be read: its XML declares a DTD, which Word never writes")


class _DocumentText:
    """Collects the text of a WordprocessingML body from expat's events, in document order: paragraphs
    (runs' text, tabs and breaks) and tables (a row per line, cells separated by " | "), nested tables
    included. Alternative content that Word writes twice (``mc:Fallback``) is read once."""

    def __init__(self, max_chars: int) -> None:
        self.max_chars = max_chars
        self.characters = 0
        self._containers: list[list[str]] = [[]]  # the body, then each open table cell: finished blocks
        self._paragraphs: list[list[str]] = []  # open paragraphs: their pieces of text
        self._tables: list[list[str]] = []  # open tables: their finished rows
        self._rows: list[list[str]] = []  # open rows: their finished cells
        self._runs = 0  # depth of w:r, where w:tab and w:br are text (elsewhere they are properties)
        self._in_text = 0
        self._skipping = 0

    def parser(self) -> expat.XMLParserType:
        parser = expat.ParserCreate(namespace_separator=" ")
        parser.StartDoctypeDeclHandler = _refuse_doctype
        parser.EntityDeclHandler = _refuse_doctype
        parser.StartElementHandler = self._start
        parser.EndElementHandler = self._end
        parser.CharacterDataHandler = self._characters
        return parser

    def text(self) -> str:
        return "\n\n".join(block.strip() for block in self._containers[0] if block.strip())

    def _start(self, name: str, _attributes: dict[str, str]) -> None:
        if self._skipping:
            self._skipping += 1
            return
        namespace, _, local = name.rpartition(" ")
        if namespace == _MARKUP_COMPATIBILITY and local == "Fallback":
            self._skipping = 1
        elif namespace in _W:
            if local == "p":
                self._paragraphs.append([])
            elif local == "r":
                self._runs += 1
            elif local == "t":
                self._in_text += 1
            elif local == "tab" and self._runs and self._paragraphs:
                self._paragraphs[-1].append("\t")
            elif local in ("br", "cr") and self._runs and self._paragraphs:
                self._paragraphs[-1].append("\n")
            elif local == "tbl":
                self._tables.append([])
            elif local == "tr":
                self._rows.append([])
            elif local == "tc":
                self._containers.append([])

    def _end(self, name: str) -> None:
        if self._skipping:
            self._skipping -= 1
            return
        namespace, _, local = name.rpartition(" ")
        if namespace not in _W:
            return
        if local == "p":
            self._containers[-1].append("".join(self._paragraphs.pop()))
        elif local == "r":
            self._runs -= 1
        elif local == "t":
            self._in_text -= 1
        elif local == "tc":
            cell = "\n".join(block for block in self._containers.pop() if block.strip())
            (self._rows[-1] if self._rows else self._containers[-1]).append(cell)
        elif local == "tr":
            row = " | ".join(cell.replace("\n", " ") for cell in self._rows.pop())
            (self._tables[-1] if self._tables else self._containers[-1]).append(row)
        elif local == "tbl":
            self._containers[-1].append("\n".join(row for row in self._tables.pop() if row.strip(" |")))

    def _characters(self, data: str) -> None:
        if self._in_text and self._paragraphs and not self._skipping:
            self.characters += len(data)
            if self.characters > self.max_chars:
                raise ExtractionFailed(f"the document holds more than {self.max_chars:,} characters of text")
            self._paragraphs[-1].append(data)


# HTML -------------------------------------------------------------------------------------------------

_DROPPED = frozenset({"script", "style", "template", "noscript"})  # content that is not text
_PARAGRAPH_TAGS = frozenset(
    {"p", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre", "table", "ul", "ol", "dl", "hr"}
    | {"section", "article", "header", "footer", "main", "nav", "aside", "figure", "form", "address", "title"}
)
_LINE_TAGS = frozenset({"div", "figcaption", "caption", "details", "summary"})
_LINE_START_TAGS = frozenset({"br", "li", "tr", "dt", "dd"})  # a break before them only: items stay together
_CELL_TAGS = frozenset({"td", "th"})


class _HtmlText(html.parser.HTMLParser):
    """Readable text from HTML: visible text with whitespace collapsed (except in <pre>), blank lines
    between paragraph-level elements, line breaks for <br>, list items and rows, entities unescaped."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.pieces: list[str] = []
        self._dropping: list[str] = []  # open elements whose content is not text (script, style...)
        self._preformatted = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self._dropping or tag in _DROPPED:
            if tag in _DROPPED:
                self._dropping.append(tag)
            return
        self._break(tag)
        if tag in _LINE_START_TAGS:
            self.pieces.append("\n")
        elif tag == "pre":
            self._preformatted += 1

    def handle_endtag(self, tag: str) -> None:
        if self._dropping:
            if tag == self._dropping[-1]:
                self._dropping.pop()
            return
        if tag == "pre" and self._preformatted:
            self._preformatted -= 1
        self._break(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if not self._dropping:
            self.pieces.append("\n" if tag in _LINE_START_TAGS else "")
            self._break(tag)

    def handle_data(self, data: str) -> None:
        if not self._dropping:
            self.pieces.append(data if self._preformatted else re.sub(r"\s+", " ", data))

    def _break(self, tag: str) -> None:
        if tag in _PARAGRAPH_TAGS:
            self.pieces.append("\n\n")
        elif tag in _LINE_TAGS:
            self.pieces.append("\n")
        elif tag in _CELL_TAGS:
            self.pieces.append("\t")

    def compact(self) -> None:
        """Joins the pieces so far: one string costs far less memory than millions of small ones."""
        self.pieces = ["".join(self.pieces)]

    def text(self) -> str:
        text = re.sub(r"[ \t]*\n[ \t]*", "\n", "".join(self.pieces))
        return re.sub(r"\n{3,}", "\n\n", text).strip()


def warm_up() -> None:
    """Loads PDFium's library and expat, so that a worker's first job is timed on the job alone."""
    html_to_text(b"<p>ready</p>", ExtractionLimits())
    with contextlib.suppress(pypdfium2.PdfiumError):
        pypdfium2.PdfDocument(b"%PDF-1.1\n%%EOF\n").close()


def html_to_text(data: bytes, limits: ExtractionLimits) -> list[PageText]:
    """The readable text of an HTML page given as UTF-8 bytes (bad bytes replaced), as one entry."""
    parser = _HtmlText()
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    start = 3 if data.startswith(codecs.BOM_UTF8) else 0
    # Fed in slices, so that the decoded page and the parser's pieces are never all in memory at once.
    for offset in range(start, len(data), _CHUNK * 16):
        parser.feed(decoder.decode(data[offset : offset + _CHUNK * 16]))
        parser.compact()
        _check_text_size(len(parser.pieces[0]), limits)
    parser.feed(decoder.decode(b"", final=True))
    parser.close()
    text = normalise_text(parser.text())
    _check_text_size(len(text), limits)
    return [PageText(None, text)]
