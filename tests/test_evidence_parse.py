"""Parsing files into text with sections, and chunking that text: no model, no database."""

from __future__ import annotations

import codecs
from pathlib import Path

import pytest

from manyminds.evidence.chunk import TARGET_MAX, chunk_document
from manyminds.evidence.parse import (
    ParseError,
    detect_kind,
    parse_bytes,
    parse_html,
    parse_markdown,
    parse_text,
)

DOCS = Path(__file__).parent / "data" / "docs"
CORPUS = DOCS / "corpus"


def parse_file(path: Path):
    return parse_bytes(path, path.read_bytes())


def section_of(doc, needle: str):
    at = doc.text.index(needle)
    return next(s for s in doc.sections if s.start <= at < s.end)


# --- Markdown ------------------------------------------------------------------------------


def test_markdown_heading_paths_title_and_code_fences():
    doc = parse_file(CORPUS / "tea-guide.md")
    assert doc.kind == "markdown"
    assert doc.title == "A Field Guide to Mountain Tea"  # front matter wins over the first H1
    assert section_of(doc, "seven minutes").headings == ("Mountain Tea", "Brewing", "Water")
    assert section_of(doc, "eighteen months").headings == ("Mountain Tea", "Brewing", "Storage")
    # A "#" line inside a fenced block is code, not a heading.
    assert section_of(doc, "This line is code").headings == ("Mountain Tea", "Brewing", "Storage")
    # Level 2 after level 3 pops back up the stack.
    assert section_of(doc, "controlled trial").headings == ("Mountain Tea", "Health claims")
    # Front matter is not a setext heading, and not content: no section (so no chunk) holds it.
    assert all("title:" not in " ".join(s.headings) for s in doc.sections)
    assert doc.sections[0].start == doc.text.index("# Mountain Tea")
    assert all("title:" not in c.text for c in chunk_document(doc))


def test_markdown_setext_headings_and_first_h1_title():
    text = "Guide\n=====\n\nIntro.\n\nDetails\n-------\n\nMore text.\n\n- item\n---\n\nAfter the rule.\n"
    doc = parse_markdown(text)
    assert doc.title == "Guide"
    assert section_of(doc, "Intro").headings == ("Guide",)
    assert section_of(doc, "More text").headings == ("Guide", "Details")
    # "- item" over "---" is a list and a rule, not a heading.
    assert section_of(doc, "After the rule").headings == ("Guide", "Details")


def test_markdown_inline_markup_is_dropped_from_headings():
    doc = parse_markdown("# The *bold* `code` [link](http://x.org) heading\n\ntext\n")
    assert doc.sections[0].headings == ("The bold code link heading",)


# --- HTML ----------------------------------------------------------------------------------


def test_html_visible_text_headings_and_title():
    doc = parse_file(CORPUS / "observatory.html")
    assert doc.kind == "html" and doc.title == "Kestrel Ridge Observatory"
    for hidden in ("tracking", "font-family", "Home", "Visit"):  # script, style, nav
        assert hidden not in doc.text
    assert "2,350 metres" in doc.text  # &nbsp; decoded, and collapsed like any space (quotes match)
    assert "variable stars & near-Earth asteroids" in doc.text
    assert "1.2-metre reflecting telescope" in doc.text  # inline tags do not break words
    assert section_of(doc, "second Friday").headings == ("Kestrel Ridge Observatory", "Telescopes", "Public nights")
    assert section_of(doc, "14 asteroids").headings == ("Kestrel Ridge Observatory", "Research")
    assert "A 40 cm refractor for public nights\nTwo solar telescopes" in doc.text  # list items on lines


def test_html_broken_markup_still_parses():
    doc = parse_html("<h2>Unclosed <i>heading</h2><p>First<p>Second <b>bold<div>block</span></html></p>")
    assert doc.sections[0].headings == ("Unclosed heading",)
    for word in ("First", "Second", "bold", "block"):
        assert word in doc.text
    assert doc.title == "Unclosed heading" or doc.title is None


def test_html_head_left_open_does_not_hide_the_body():
    doc = parse_html("<html><head><title>Page</title><p>Body text survives.<svg><title>icon</title></svg>")
    assert doc.title == "Page" and doc.text == "Body text survives."


def test_html_without_headings_locates_by_characters():
    doc = parse_html("<p>" + "Plain paragraph text. " * 5 + "</p>")
    chunks = chunk_document(doc)
    assert chunks[0].location == f"characters 0–{chunks[0].end}"


def test_html_charset_declared_in_meta():
    data = '<html><head><meta charset="iso-8859-1"></head><body><p>Caf\xe9</p></body></html>'.encode("latin-1")
    doc = parse_bytes("page.html", data)
    assert "Café" in doc.text


def test_html_undeclared_non_utf8_is_refused():
    with pytest.raises(ParseError, match="not valid UTF-8"):
        parse_bytes("page.html", "<p>Caf\xe9</p>".encode("latin-1"))


# --- PDF -----------------------------------------------------------------------------------


def test_pdf_pages_and_title():
    doc = parse_file(CORPUS / "bridge-report.pdf")
    assert doc.kind == "pdf" and doc.pages == 3
    assert doc.title == "Varnholt Bridge Inspection Report"
    assert section_of(doc, "completed in 1911").page == 2
    assert section_of(doc, "18 tonnes").page == 3
    chunks = chunk_document(doc)
    assert [c.location for c in chunks] == ["page 1", "page 2", "page 3"]


def test_corrupt_pdf_is_a_parse_error_naming_the_file():
    with pytest.raises(ParseError) as info:
        parse_file(DOCS / "bad" / "corrupt.pdf")
    assert "corrupt.pdf" in str(info.value)
    assert info.value.reason.startswith("cannot parse PDF")


def test_pdf_without_header_is_refused():
    with pytest.raises(ParseError, match="not a PDF"):
        parse_bytes("fake.pdf", b"hello, I am not a PDF at all")


# --- text and types ------------------------------------------------------------------------


def test_text_encodings():
    assert parse_bytes("a.txt", codecs.BOM_UTF8 + "naïve\r\nline".encode()).text == "naïve\nline"
    assert parse_bytes("a.txt", "ünïcode".encode("utf-16")).text == "ünïcode"
    with pytest.raises(ParseError, match=r"not valid UTF-8 text \(invalid byte at offset 3\)"):
        parse_file(DOCS / "bad" / "latin1.txt")
    with pytest.raises(ParseError, match="binary"):
        parse_bytes("a.txt", b"abc\x00\x01\x02")
    with pytest.raises(ParseError, match="no text"):
        parse_bytes("a.md", b"  \n\n \t")


def test_detect_kind_by_suffix_and_content():
    assert detect_kind(Path("x.MD"), b"") == "markdown"
    assert detect_kind(Path("x.htm"), b"") == "html"
    assert detect_kind(Path("README"), b"plain words") == "text"
    assert detect_kind(Path("download"), b"%PDF-1.7 ...") == "pdf"
    assert detect_kind(Path("index"), b"  <!DOCTYPE html><html>") == "html"
    with pytest.raises(ParseError, match="unsupported file type '.png'"):
        detect_kind(Path("x.png"), b"")
    with pytest.raises(ParseError, match="binary"):
        detect_kind(Path("blob"), b"\x7fELF\x00\x00")


# --- chunking ------------------------------------------------------------------------------


def test_chunks_are_exact_spans_with_line_locations():
    path = CORPUS / "ferry-notes.txt"
    doc = parse_file(path)
    chunks = chunk_document(doc)
    assert len(chunks) > 3
    lines = path.read_text().split("\n")
    for c in chunks:
        assert doc.text[c.start : c.end] == c.text
        assert c.text == c.text.strip()
        assert len(c.text) <= TARGET_MAX
        first, _, last = c.location.removeprefix("lines ").partition("–")
        last = last or first
        assert c.text.startswith(lines[int(first) - 1].strip()[:20])
        assert c.text.endswith(lines[int(last) - 1].strip()[-20:])
    # Paragraph boundaries are preferred: most chunks end a paragraph.
    assert sum(doc.text[c.end : c.end + 2] in ("\n\n", "\n") for c in chunks) == len(chunks)


def test_chunk_sizes_and_overlap_inside_a_long_paragraph():
    sentences = [f"Sentence {i} says something about topic {i}." for i in range(120)]
    doc = parse_text(" ".join(sentences))  # one paragraph of ~5,000 characters
    chunks = chunk_document(doc)
    assert len(chunks) >= 4
    for c in chunks[:-1]:
        assert 800 <= len(c.text) <= TARGET_MAX
    for a, b in zip(chunks, chunks[1:]):
        assert b.start < a.end  # cut mid-paragraph: the next chunk repeats the last sentence
        assert a.end - b.start <= 200
        assert b.start > a.start


def test_chunks_never_cross_sections():
    doc = parse_markdown("# A\n\n" + "alpha words here. " * 30 + "\n\n# B\n\n" + "beta words here. " * 30)
    chunks = chunk_document(doc)
    assert [c.headings for c in chunks] == [("A",), ("B",)]
    assert "beta" not in chunks[0].text and "alpha" not in chunks[1].text
    assert chunks[1].location == "§ B (lines 5–7)"


def test_text_without_spaces_is_cut_hard():
    doc = parse_text("x" * 5000)
    chunks = chunk_document(doc)
    assert "".join(c.text for c in chunks) == "x" * 5000
    assert all(len(c.text) <= TARGET_MAX for c in chunks)
