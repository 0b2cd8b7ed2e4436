"""Real documents built in memory for the file tests: PDFs (fpdf2, pypdf), DOCX (python-docx), images
(Pillow)."""

from __future__ import annotations

import io
import zipfile

from docx import Document
from fpdf import FPDF
from PIL import Image
from pypdf import PdfReader, PdfWriter


def pdf_bytes(pages: list[str]) -> bytes:
    """A PDF with one page per string (Helvetica, wrapped)."""
    pdf = FPDF()
    pdf.set_font("helvetica", size=11)
    for text in pages:
        pdf.add_page()
        pdf.multi_cell(0, 6, text)
    return bytes(pdf.output())


def repeated_pdf(text: str, pages: int) -> bytes:
    """A PDF of ``pages`` copies of one page of ``text``: long to read, quick to build (laying out each
    page with fpdf2 takes ~15 ms; copying one with pypdf, well under one)."""
    page = PdfReader(io.BytesIO(pdf_bytes([text]))).pages[0]
    writer = PdfWriter()
    for _ in range(pages):
        writer.add_page(page)
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def docx_bytes(paragraphs: list[str], table: list[list[str]] | None = None) -> bytes:
    """A DOCX with these paragraphs, then a table of these rows."""
    document = Document()
    for text in paragraphs:
        document.add_paragraph(text)
    if table:
        grid = document.add_table(rows=len(table), cols=len(table[0]))
        for r, row in enumerate(table):
            for c, cell in enumerate(row):
                grid.cell(r, c).text = cell
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def zip_bomb_docx(inflated_bytes: int) -> bytes:
    """A DOCX-shaped ZIP whose word/document.xml inflates to ``inflated_bytes`` of one repeated byte."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr(
            "[Content_Types].xml",
            '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            '<Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-'
            'officedocument.wordprocessingml.document.main+xml"/></Types>',
        )
        with archive.open("word/document.xml", "w", force_zip64=True) as entry:
            block = b" " * (1024 * 1024)
            for _ in range(inflated_bytes // len(block)):
                entry.write(block)
    return buffer.getvalue()


def png_bytes(width: int = 64, height: int = 48, color: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    """A PNG of one colour."""
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buffer, format="PNG")
    return buffer.getvalue()
