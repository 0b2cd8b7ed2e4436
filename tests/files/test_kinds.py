"""Recognising uploads from their bytes: every accepted kind, and refusals for lying names and binaries."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from ailab.errors import UnsupportedType
from ailab.services.files.kinds import DOCX_TYPE, HEAD_BYTES, detect
from tests.support.documents import docx_bytes, pdf_bytes

ELF_HEADER = b"\x7fELF\x02\x01\x01\x00" + bytes(8) + b"\x02\x00\x3e\x00" + bytes(44)
WINDOWS_EXECUTABLE = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + bytes(48) + b"PE\x00\x00"


def image_bytes(image_format: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (16, 12), (10, 120, 200)).save(buffer, format=image_format)
    return buffer.getvalue()


def head(data: bytes) -> bytes:
    return data[:HEAD_BYTES]


@pytest.mark.parametrize(
    ("image_format", "filename", "content_type"),
    [
        ("PNG", "chart.png", "image/png"),
        ("JPEG", "photo.jpg", "image/jpeg"),
        ("JPEG", "photo.JPEG", "image/jpeg"),
        ("WEBP", "sticker.webp", "image/webp"),
        ("GIF", "anim.gif", "image/gif"),
    ],
)
def test_images_are_recognised(image_format: str, filename: str, content_type: str) -> None:
    kind = detect(head(image_bytes(image_format)), filename)
    assert (kind.content_type, kind.family) == (content_type, "image")


def test_pdf_and_docx_are_recognised() -> None:
    pdf = detect(head(pdf_bytes(["hello"])), "Report.PDF")
    assert (pdf.content_type, pdf.family) == ("application/pdf", "pdf")
    docx = detect(head(docx_bytes(["hello"])), "notes.docx")
    assert (docx.content_type, docx.family) == (DOCX_TYPE, "docx")


def test_binary_kinds_without_an_extension_are_accepted() -> None:
    assert detect(head(pdf_bytes(["hello"])), "upload").family == "pdf"
    assert detect(head(image_bytes("PNG")), "").content_type == "image/png"


@pytest.mark.parametrize(
    ("text", "filename", "content_type"),
    [
        (b"# Title\n\nSome *markdown*.\n", "README.md", "text/markdown"),
        (b"name,age\nada,36\n", "people.csv", "text/csv"),
        (b"def main() -> None:\n    pass\n", "tool.py", "text/x-python"),
        (b"fn main() {}\n", "main.rs", "text/x-rust"),
        (b'{"a": 1}\n', "data.json", "application/json"),
        (b"key: value\n", "config.yml", "application/yaml"),
        (b"plain words\n", "notes.txt", "text/plain"),
        (b"plain words\n", "notes.weird-extension", "text/plain"),
        (b"plain words\n", "Makefile", "text/plain"),
        (b"", "empty.txt", "text/plain"),
        ("caf\u00e9 na\u00efve \u2603\n".encode(), "unicode", "text/plain"),
    ],
)
def test_text_kinds(text: bytes, filename: str, content_type: str) -> None:
    kind = detect(text, filename)
    assert (kind.content_type, kind.family) == (content_type, "text")


def test_a_multibyte_character_cut_at_the_end_of_the_head_is_still_text() -> None:
    data = ("a" * (HEAD_BYTES - 1) + "\u00e9 and more").encode()
    assert data[HEAD_BYTES - 1 : HEAD_BYTES] == b"\xc3"  # the head ends inside "é"
    assert detect(head(data), "long.txt").family == "text"


@pytest.mark.parametrize(
    ("text", "filename"),
    [
        (b"<!DOCTYPE html><html><body><p>Hi</p></body></html>", "page.html"),
        (b"<p>fragment</p>", "fragment.htm"),
        (b"\xef\xbb\xbf  \n<!doctype HTML>\n<title>t</title>", "saved"),
        (b"<html><body>x</body></html>", "page.txt"),
    ],
)
def test_html_by_name_or_by_its_opening(text: bytes, filename: str) -> None:
    kind = detect(text, filename)
    assert (kind.content_type, kind.family) == ("text/html", "html")


def test_markup_in_a_markdown_file_stays_markdown() -> None:
    assert detect(b"<html> is a tag\n", "tags.md").content_type == "text/markdown"


@pytest.mark.parametrize(
    ("data", "filename", "bytes_are", "name_says"),
    [
        (image_bytes("PNG"), "report.pdf", "a PNG image", "its name says .pdf"),
        (pdf_bytes(["x"]), "photo.png", "a PDF document", "its name says .png"),
        (image_bytes("JPEG"), "scan.gif", "a JPEG image", "its name says .gif"),
        (b"just some text\n", "photo.png", "text", "its name says .png"),
        (b"just some text\n", "report.pdf", "text", "its name says .pdf"),
        (b"just some text\n", "setup.exe", "text", "its name says .exe"),
        (docx_bytes(["x"]), "notes.txt", "a Word document (DOCX)", "its name says .txt"),
    ],
)
def test_a_name_that_contradicts_the_bytes_is_refused(
    data: bytes, filename: str, bytes_are: str, name_says: str
) -> None:
    with pytest.raises(UnsupportedType) as refused:
        detect(head(data), filename)
    assert refused.value.status == 415
    assert refused.value.message == f"the file's bytes are {bytes_are}, but {name_says}"


@pytest.mark.parametrize(
    ("data", "filename", "named"),
    [
        (WINDOWS_EXECUTABLE, "report.pdf", "a Windows executable"),
        (WINDOWS_EXECUTABLE, "x.exe", "a Windows executable"),
        (ELF_HEADER, "tool", "an ELF executable"),
        (b"PK\x03\x04" + bytes(26) + b"data.bin" + bytes(100), "archive.zip", "a ZIP archive"),
        (image_bytes("BMP"), "picture.bmp", "a BMP image"),
    ],
)
def test_binary_types_off_the_list_are_refused_by_name(data: bytes, filename: str, named: str) -> None:
    with pytest.raises(UnsupportedType) as refused:
        detect(head(data), filename)
    assert refused.value.message.startswith(f"the file's bytes are {named}, which is not accepted")


def test_an_empty_file_with_a_binary_name_is_refused() -> None:
    with pytest.raises(UnsupportedType, match=r"the file is empty, but its name says \.pdf"):
        detect(b"", "empty.pdf")


def test_unknown_binary_is_refused() -> None:
    with pytest.raises(UnsupportedType, match="not a type that is accepted"):
        detect(bytes(range(256)) * 4, "blob.dat")


def test_text_in_another_encoding_is_refused_with_advice() -> None:
    with pytest.raises(UnsupportedType, match="not UTF-8"):
        detect("Prix: 12 \u20ac, caf\u00e9 cr\u00e8me\n".encode("cp1252"), "prices.csv")


def test_text_that_happens_to_start_like_a_refused_signature_is_text() -> None:
    # "MZ" opens Windows executables; text that starts with it is still text.
    assert detect(b"MZ Holdings annual report\n", "report.txt").family == "text"


def test_a_zip_named_docx_is_left_to_the_extractor() -> None:
    # The head of a ZIP need not show that it is a Word document; the extractor decides later.
    zip_head = b"PK\x03\x04" + bytes(26) + b"something.xml" + bytes(100)
    assert detect(zip_head, "odd.docx").family == "docx"
