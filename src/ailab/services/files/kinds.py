"""What an uploaded file is, decided from its bytes, against an allow-list.

The client's Content-Type is never read and the file's name is only a witness: the first ``HEAD_BYTES``
bytes decide. Binary formats are recognised by their signatures (the ``filetype`` package); anything
else must be UTF-8 text without NUL bytes. The name then has to agree with the bytes, so a PNG called
``report.pdf`` or a text file called ``photo.png`` is refused (415) with a message naming both, rather
than reaching a parser or a model that expects something else. A text file with an unknown or missing
extension is plain text; a binary file with no extension is accepted when its bytes are on the list.

DOCX is a ZIP archive whose central directory lies at the end of the file, out of sight of the head: a
ZIP named ``.docx`` is accepted here and the extractor rejects one that turns out not to be a Word
document.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass
from typing import Literal

import filetype  # type: ignore[import-untyped]

from ailab.errors import UnsupportedType

HEAD_BYTES = 8192
"""How many leading bytes of an upload ``detect`` needs (it reads no more than these)."""

Family = Literal["pdf", "docx", "html", "text", "image"]

DOCX_TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


@dataclass(frozen=True, slots=True)
class FileKind:
    """An accepted kind of file: the media type stored with it and the family that decides how it is read."""

    content_type: str
    family: Family
    description: str  # for people: "a PDF document"


PDF = FileKind("application/pdf", "pdf", "a PDF document")
DOCX = FileKind(DOCX_TYPE, "docx", "a Word document (DOCX)")
HTML = FileKind("text/html", "html", "an HTML page")
PLAIN_TEXT = FileKind("text/plain", "text", "plain text")
PNG = FileKind("image/png", "image", "a PNG image")
JPEG = FileKind("image/jpeg", "image", "a JPEG image")
WEBP = FileKind("image/webp", "image", "a WebP image")
GIF = FileKind("image/gif", "image", "a GIF image")

# Accepted binary kinds by the media type filetype reports, with the extensions a truthful name may carry.
_BINARY: dict[str, tuple[FileKind, frozenset[str]]] = {
    "application/pdf": (PDF, frozenset({".pdf"})),
    DOCX_TYPE: (DOCX, frozenset({".docx"})),
    "image/png": (PNG, frozenset({".png"})),
    "image/jpeg": (JPEG, frozenset({".jpg", ".jpeg", ".jpe", ".jfif"})),
    "image/webp": (WEBP, frozenset({".webp"})),
    "image/gif": (GIF, frozenset({".gif"})),
}
_ZIP_TYPE = "application/zip"

_HTML_EXTENSIONS = frozenset({".html", ".htm", ".xhtml"})

# Text kinds by extension. Source code keeps a specific type where one is in common use, so a caller
# can label or highlight it; everything else that is text is text/plain.
_TEXT_TYPES: dict[str, str] = {
    ".txt": "text/plain",
    ".text": "text/plain",
    ".log": "text/plain",
    ".md": "text/markdown",
    ".markdown": "text/markdown",
    ".csv": "text/csv",
    ".tsv": "text/tab-separated-values",
    ".py": "text/x-python",
    ".pyi": "text/x-python",
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".cjs": "text/javascript",
    ".jsx": "text/javascript",
    ".ts": "text/x-typescript",
    ".tsx": "text/x-typescript",
    ".java": "text/x-java",
    ".kt": "text/x-kotlin",
    ".scala": "text/x-scala",
    ".c": "text/x-c",
    ".h": "text/x-c",
    ".cc": "text/x-c++",
    ".cpp": "text/x-c++",
    ".cxx": "text/x-c++",
    ".hpp": "text/x-c++",
    ".cs": "text/x-csharp",
    ".go": "text/x-go",
    ".rs": "text/x-rust",
    ".rb": "text/x-ruby",
    ".php": "text/x-php",
    ".pl": "text/x-perl",
    ".lua": "text/x-lua",
    ".r": "text/x-r",
    ".swift": "text/x-swift",
    ".sh": "text/x-shellscript",
    ".bash": "text/x-shellscript",
    ".zsh": "text/x-shellscript",
    ".ps1": "text/plain",
    ".bat": "text/plain",
    ".sql": "application/sql",
    ".json": "application/json",
    ".jsonl": "application/jsonl",
    ".yaml": "application/yaml",
    ".yml": "application/yaml",
    ".toml": "application/toml",
    ".ini": "text/plain",
    ".cfg": "text/plain",
    ".conf": "text/plain",
    ".env": "text/plain",
    ".xml": "application/xml",
    ".svg": "text/plain",  # text here: an SVG is never served or shown as an image (it can carry script)
    ".css": "text/css",
    ".scss": "text/x-scss",
    ".tex": "text/x-tex",
    ".rst": "text/x-rst",
    ".ipynb": "application/json",
}

# Extensions that promise binary content: text bytes under one of these names are refused as a lie.
_BINARY_EXTENSIONS = frozenset(
    {ext for _kind, exts in _BINARY.values() for ext in exts}
    | {".exe", ".dll", ".so", ".dylib", ".bin", ".msi", ".dmg", ".iso", ".apk", ".jar", ".class", ".wasm"}
    | {".zip", ".gz", ".tgz", ".bz2", ".xz", ".zst", ".7z", ".rar", ".tar"}
    | {".doc", ".xls", ".xlsx", ".ppt", ".pptx", ".odt", ".ods", ".odp", ".rtf", ".epub"}
    | {".bmp", ".tif", ".tiff", ".ico", ".heic", ".avif", ".psd"}
    | {".mp3", ".wav", ".ogg", ".flac", ".m4a", ".mp4", ".mov", ".avi", ".mkv", ".webm"}
    | {".sqlite", ".db", ".woff", ".woff2", ".ttf", ".otf"}
)

# Descriptions of common refused types, by filetype's media type; others are named by their extension.
_REFUSED_NAMES: dict[str, str] = {
    "application/x-msdownload": "a Windows executable",
    "application/x-executable": "an ELF executable",
    "application/zip": "a ZIP archive",
    "application/gzip": "a gzip archive",
    "application/x-tar": "a tar archive",
    "application/x-7z-compressed": "a 7-Zip archive",
    "application/vnd.rar": "a RAR archive",
    "application/x-rar-compressed": "a RAR archive",
    "application/msword": "a legacy Word document (.doc)",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "an Excel workbook (XLSX)",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation": "a PowerPoint deck (PPTX)",
    "application/epub+zip": "an EPUB book",
    "image/bmp": "a BMP image",
    "image/tiff": "a TIFF image",
    "image/heic": "a HEIC image",
    "image/avif": "an AVIF image",
}

ACCEPTED = "PDF, DOCX, HTML, plain text, Markdown, CSV, source code, PNG, JPEG, WebP and GIF"


def detect(head: bytes, filename: str) -> FileKind:
    """The kind of the file whose first bytes are ``head`` (up to ``HEAD_BYTES``) and whose name is
    ``filename``; raises ``UnsupportedType`` (415) when the bytes are not on the allow-list or the name's
    extension contradicts them."""
    head = head[:HEAD_BYTES]
    extension = _extension(filename)
    said = f"its name says {extension}" if extension else "it has no extension"
    guess = filetype.guess(head)
    mime: str | None = None if guess is None else str(guess.mime)
    if mime == "image/apng":
        mime = "image/png"  # filetype names animated PNGs apart; they are PNGs to every reader
    if mime is not None and mime in _BINARY:
        kind, extensions = _BINARY[mime]
        if extension and extension not in extensions:
            raise UnsupportedType(f"the file's bytes are {kind.description}, but {said}")
        return kind
    if mime == _ZIP_TYPE and extension == ".docx":
        return DOCX  # the extractor checks that this ZIP really holds a Word document
    is_text = _is_utf8_text(head)
    if mime is not None and not is_text:
        what = _REFUSED_NAMES.get(mime, f"a {str(guess.extension).upper()} file ({mime})")
        raise UnsupportedType(f"the file's bytes are {what}, which is not accepted (accepted: {ACCEPTED})")
    if not is_text:
        if b"\x00" not in head and _looks_like_other_text(head):
            raise UnsupportedType(
                "the file looks like text but is not UTF-8; save it as UTF-8 and upload it again"
            )
        raise UnsupportedType(f"the file's bytes are not a type that is accepted (accepted: {ACCEPTED})")
    if extension in _BINARY_EXTENSIONS:
        raise UnsupportedType(
            f"the file is empty, but {said}" if not head else f"the file's bytes are text, but {said}"
        )
    # Text (a signature filetype saw in text, such as "MZ" or "%!", was a coincidence and is ignored).
    if extension in _HTML_EXTENSIONS:
        return HTML
    content_type = _TEXT_TYPES.get(extension, "text/plain")
    if content_type != "text/plain":
        return FileKind(content_type, "text", f"text ({content_type})")
    # Plain text by its name (.txt, unknown or none): HTML if the text announces itself as HTML.
    return HTML if _starts_like_html(head) else PLAIN_TEXT


def _extension(filename: str) -> str:
    """``.pdf`` for ``Report.PDF`` (lower-case, with its dot); ``""`` for ``README`` or ``.bashrc``."""
    base = filename.replace("\\", "/").rsplit("/", 1)[-1].strip().rstrip(".")
    stem, dot, suffix = base.rpartition(".")
    if not dot or not stem or not suffix or " " in suffix:
        return ""
    return "." + suffix.lower()


def _is_utf8_text(head: bytes) -> bool:
    """Whether ``head`` is UTF-8 without NUL bytes; a multi-byte sequence cut off at its end is allowed,
    since the head may stop in the middle of a character."""
    if b"\x00" in head:
        return False
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        decoder.decode(head, final=False)
    except UnicodeDecodeError:
        return False
    return True


def _looks_like_other_text(head: bytes) -> bool:
    """Whether ``head`` reads as text in a single-byte encoding (Latin-1, Windows-1252): mostly printable
    ASCII, so the refusal can tell the user what to do instead of calling the file binary."""
    if not head:
        return False
    printable = sum(1 for byte in head if byte >= 0x20 or byte in (0x09, 0x0A, 0x0D))
    ascii_share = sum(1 for byte in head if 0x20 <= byte < 0x7F) / len(head)
    return printable == len(head) and ascii_share > 0.7


def _starts_like_html(head: bytes) -> bool:
    start = head.lstrip(b"\xef\xbb\xbf").lstrip()[:64].lower()
    return start.startswith((b"<!doctype html", b"<html"))
