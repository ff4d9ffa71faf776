"""Files → plain text with structure: the text the index quotes from, and its sections.

A `ParsedDocument` is the document's text plus `Section`s, spans of that text that share one
location (a PDF page, a Markdown/HTML heading path, or the whole file). Chunks never cross a
section boundary, so every chunk has one exact location. Character offsets everywhere refer to
`ParsedDocument.text`: for text and Markdown that is the file decoded with `\\r\\n` turned into
`\\n` (so line numbers match the file); for HTML and PDF it is the extracted text.

Every way a file can fail to parse ends in `ParseError` with a reason a user can act on; the
index records it as a skipped file and goes on with the others.

HTML goes through the standard library's `html.parser` (tolerant of broken markup, and no extra
dependency); PDF through `pypdf`.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

from ..errors import InputError

TEXT_SUFFIXES = {".txt", ".text", ".rst", ".adoc"}
MARKDOWN_SUFFIXES = {".md", ".markdown", ".mdown", ".mkd"}
HTML_SUFFIXES = {".html", ".htm", ".xhtml"}
PDF_SUFFIXES = {".pdf"}
SUPPORTED_SUFFIXES = TEXT_SUFFIXES | MARKDOWN_SUFFIXES | HTML_SUFFIXES | PDF_SUFFIXES

_SNIFF_BYTES = 8192


class ParseError(InputError):
    """A file that cannot be indexed. `reason` is the short text shown in the add report."""

    def __init__(self, path: str | Path, reason: str):
        self.path, self.reason = str(path), reason
        super().__init__(f"{path}: {reason}")


@dataclass(frozen=True)
class Section:
    start: int
    end: int
    headings: tuple[str, ...] = ()  # Markdown/HTML heading path, outermost first
    page: int | None = None  # 1-based PDF page


@dataclass
class ParsedDocument:
    text: str
    kind: str  # text / markdown / html / pdf
    title: str | None = None
    sections: list[Section] = field(default_factory=list)
    pages: int | None = None


# --- type detection ------------------------------------------------------------------------


def detect_kind(path: Path, head: bytes) -> str:
    """The parser for `path`, from its suffix, or sniffed from its first bytes when it has none.

    Raises `ParseError` for an unsupported suffix or binary content.
    """
    suffix = path.suffix.lower()
    if suffix in PDF_SUFFIXES:
        return "pdf"
    if suffix in HTML_SUFFIXES:
        return "html"
    if suffix in MARKDOWN_SUFFIXES:
        return "markdown"
    if suffix in TEXT_SUFFIXES:
        return "text"
    if suffix:
        raise ParseError(path, f"unsupported file type {suffix!r}; supported: text, Markdown, HTML, PDF")
    # No suffix (README, LICENSE…): look at the content.
    if head.startswith(b"%PDF-"):
        return "pdf"
    lowered = head[:512].lstrip().lower()
    if lowered.startswith((b"<!doctype html", b"<html")):
        return "html"
    if b"\x00" in head:
        raise ParseError(path, "binary content, not a document")
    return "text"


def parse_bytes(path: str | Path, data: bytes, kind: str | None = None) -> ParsedDocument:
    """Parse the whole content of one file. `kind` defaults to `detect_kind`."""
    path = Path(path)
    kind = kind or detect_kind(path, data[:_SNIFF_BYTES])
    if kind == "pdf":
        doc = parse_pdf(path, data)
    elif kind == "html":
        doc = parse_html(decode_html(path, data))
    else:
        text = decode_text(path, data)
        doc = parse_markdown(text) if kind == "markdown" else parse_text(text)
    if not doc.text.strip():
        raise ParseError(path, "no text in the document" + (" (a scanned PDF? run OCR first)" if kind == "pdf" else ""))
    return doc


# --- decoding ------------------------------------------------------------------------------


def decode_text(path: Path, data: bytes) -> str:
    """UTF-8 (with or without a BOM) or UTF-16 with a BOM; anything else is refused, not guessed:
    a wrong guess would index mojibake that no query ever matches."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        encoding = "utf-16"
    else:
        if b"\x00" in data[:_SNIFF_BYTES]:
            raise ParseError(path, "binary content (NUL bytes), not a text document")
        encoding = "utf-8-sig"
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise ParseError(
            path, f"not valid {encoding.replace('-sig', '').upper()} text (invalid byte at offset {exc.start}); "
            "convert it to UTF-8 first"
        ) from None
    return normalize_newlines(text)


_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.IGNORECASE)


def decode_html(path: Path, data: bytes) -> str:
    """UTF-8 unless a BOM or a `<meta charset>` in the first bytes says otherwise."""
    if data.startswith(codecs.BOM_UTF8) or data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return decode_text(path, data)
    try:
        return normalize_newlines(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        first_bad = exc.start
    match = _META_CHARSET.search(data[:4096])
    if match:
        declared = match.group(1).decode("ascii", "replace")
        try:
            return normalize_newlines(data.decode(codecs.lookup(declared).name))
        except (LookupError, UnicodeDecodeError):
            raise ParseError(path, f"cannot decode as its declared charset {declared!r}") from None
    raise ParseError(path, f"not valid UTF-8 (invalid byte at offset {first_bad}) and no charset declared")


def normalize_newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


# --- plain text and Markdown ---------------------------------------------------------------


def parse_text(text: str) -> ParsedDocument:
    return ParsedDocument(text=text, kind="text", sections=[Section(0, len(text))])


_ATX = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$|^ {0,3}(#{1,6})[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_FRONT_TITLE = re.compile(r"^title:\s*[\"']?(.*?)[\"']?\s*$", re.MULTILINE)


def parse_markdown(text: str) -> ParsedDocument:
    """Sections start at each ATX (`## Title`) or setext (`Title` over `===`) heading outside
    fenced code; the heading path is kept as a stack by level."""
    lines = text.split("\n")
    offsets, pos = [], 0
    for line in lines:
        offsets.append(pos)
        pos += len(line) + 1
    body_from = _front_matter_lines(lines)
    # Front matter is metadata, not content: no section (so no chunk) covers it.
    starts: list[tuple[int, tuple[str, ...]]] = [(offsets[body_from] if body_from < len(lines) else len(text), ())]
    stack: list[tuple[int, str]] = []
    fence: str | None = None
    first_h1: str | None = None
    for i, line in enumerate(lines):
        if i < body_from:
            continue
        m = _FENCE.match(line)
        if m:
            marker = m.group(1)
            if fence is None:
                fence = marker
            elif marker[0] == fence[0] and len(marker) >= len(fence):
                fence = None
            continue
        if fence is not None:
            continue
        level, title, start_line = 0, "", i
        atx = _ATX.match(line)
        if atx:
            level = len(atx.group(1) or atx.group(3))
            title = (atx.group(2) or "").strip()
        elif i > body_from and _SETEXT.match(line) and lines[i - 1].strip() and not _is_block_marker(lines[i - 1]):
            level = 1 if line.strip().startswith("=") else 2
            title, start_line = lines[i - 1].strip(), i - 1
        if not level:
            continue
        title = _strip_inline_markup(title)
        if level == 1 and first_h1 is None and title:
            first_h1 = title
        while stack and stack[-1][0] >= level:
            stack.pop()
        stack.append((level, title or "(untitled)"))
        starts.append((offsets[start_line], tuple(t for _, t in stack)))
    sections = _sections_from_starts(starts, text)
    front = _FRONT_TITLE.search("\n".join(lines[:body_from])) if body_from else None
    title = front.group(1).strip() if front else first_h1
    return ParsedDocument(text=text, kind="markdown", title=title or None, sections=sections)


def _front_matter_lines(lines: list[str]) -> int:
    """How many lines a YAML front matter block (`---` … `---` at the top) takes; 0 if none."""
    if not lines or lines[0].strip() != "---":
        return 0
    for i in range(1, min(len(lines), 200)):
        if lines[i].strip() in ("---", "..."):
            return i + 1
    return 0


def _is_block_marker(line: str) -> bool:
    # "- item" above "---" is a list followed by a rule, not a setext heading.
    return bool(re.match(r"^\s*([-*+]\s|\d+[.)]\s|>|#|\|)", line)) or bool(_SETEXT.match(line))


def _strip_inline_markup(text: str) -> str:
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)  # links and images: keep the label
    return re.sub(r"[*_`]+", "", text).strip()


def _sections_from_starts(starts: list[tuple[int, tuple[str, ...]]], text: str) -> list[Section]:
    """Sections between consecutive starts; whitespace-only ones (before a first heading) dropped."""
    sections = []
    for (start, headings), (end, _) in zip(starts, starts[1:] + [(len(text), ())]):
        if text[start:end].strip():
            sections.append(Section(start, end, headings))
    return sections or [Section(0, len(text))]


# --- HTML ----------------------------------------------------------------------------------

_SKIP_TAGS = {"script", "style", "noscript", "template", "svg", "math", "canvas", "iframe", "object", "nav", "head"}
_BLOCK_TAGS = {
    "p", "div", "section", "article", "main", "header", "footer", "aside", "ul", "ol", "dl", "table",
    "thead", "tbody", "tfoot", "blockquote", "pre", "figure", "figcaption", "form", "fieldset",
    "details", "summary", "address", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "body", "html",
}
_LINE_TAGS = {"br", "li", "tr", "dt", "dd", "caption", "option"}
_CELL_TAGS = {"td", "th"}
_VOID_TAGS = {"br", "hr", "img", "input", "meta", "link", "area", "base", "col", "embed", "source", "track", "wbr"}
_HEADING_LEVEL = {f"h{i}": i for i in range(1, 7)}


class _HTMLText(HTMLParser):
    """Collects visible text. Whitespace collapses outside <pre>; blocks become paragraphs
    (blank lines), list items and rows become lines, headings start sections."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.length = 0
        self.pending = ""  # the break owed before the next text: "", " ", "\n" or "\n\n"
        self.skip_stack: list[str] = []
        self.pre_depth = 0
        self.title_parts: list[str] | None = None
        self.title: str | None = None
        self.heading: tuple[int, list[str], int] | None = None  # level, text, start offset
        self.stack: list[tuple[int, str]] = []
        self.starts: list[tuple[int, tuple[str, ...]]] = [(0, ())]
        self.first_h1: str | None = None

    # breaks ----------------------------------------------------------------------------
    def _owe(self, brk: str) -> None:
        if len(brk) > len(self.pending) or (brk == "\n" and self.pending == " "):
            self.pending = brk

    def _write(self, text: str) -> None:
        if not text:
            return
        if self.pending == " " and self.parts and self.parts[-1].endswith("\n"):
            self.pending = ""  # no space at the start of a line
        if self.length and self.pending:
            self.parts.append(self.pending)
            self.length += len(self.pending)
        self.pending = ""
        self.parts.append(text)
        self.length += len(text)

    # events ----------------------------------------------------------------------------
    def handle_starttag(self, tag: str, attrs: list) -> None:
        if self.skip_stack == ["head"] and (tag == "body" or tag in _BLOCK_TAGS or tag in _HEADING_LEVEL):
            self.skip_stack.pop()  # body content with no </head> before it: the head has ended
        if tag == "title" and self.title is None and self.skip_stack in ([], ["head"]):
            self.title_parts = []  # the page's title, not an <svg>'s
            return
        if tag in _SKIP_TAGS:
            if tag not in _VOID_TAGS:
                self.skip_stack.append(tag)
            return
        if self.skip_stack:
            return
        if tag in _HEADING_LEVEL:
            # Write the owed break now, so the heading's section starts at its own text.
            if self.length:
                self.parts.append("\n\n")
                self.length += 2
            self.pending = ""
            self.heading = (_HEADING_LEVEL[tag], [], self.length)
        elif tag in _BLOCK_TAGS:
            self._owe("\n\n")
        elif tag in _LINE_TAGS:
            self._owe("\n")
        elif tag in _CELL_TAGS:
            self._owe(" ")
        if tag == "pre":
            self.pre_depth += 1

    def handle_startendtag(self, tag: str, attrs: list) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in _VOID_TAGS:
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag == "title" and self.title_parts is not None:
            self.title = " ".join("".join(self.title_parts).split()) or None
            self.title_parts = None
            return
        if self.skip_stack:
            if tag in self.skip_stack:
                # Close the innermost matching element (and anything left open inside it).
                while self.skip_stack and self.skip_stack.pop() != tag:
                    pass
            return
        if tag in _HEADING_LEVEL and self.heading is not None:
            level, words, start = self.heading
            self.heading = None
            title = " ".join("".join(words).split()) or "(untitled)"
            if level == 1 and self.first_h1 is None:
                self.first_h1 = title
            while self.stack and self.stack[-1][0] >= level:
                self.stack.pop()
            self.stack.append((level, title))
            self.starts.append((start, tuple(t for _, t in self.stack)))
            self._owe("\n\n")
        elif tag in _BLOCK_TAGS:
            self._owe("\n\n")
        elif tag in _LINE_TAGS:
            self._owe("\n")
        if tag == "pre" and self.pre_depth:
            self.pre_depth -= 1

    def handle_data(self, data: str) -> None:
        if self.title_parts is not None:
            self.title_parts.append(data)
            return
        if self.skip_stack:
            return
        if self.pre_depth:
            text = data
        else:
            if data[:1].isspace():
                self._owe(" ")
            words = data.split()
            text = " ".join(words)
            if not words:
                return
        if self.heading is not None:
            self.heading[1].append(data)
        self._write(text)
        if not self.pre_depth and data[-1:].isspace():
            self._owe(" ")


def parse_html(source: str) -> ParsedDocument:
    parser = _HTMLText()
    parser.feed(source)
    parser.close()
    text = "".join(parser.parts)
    sections = _sections_from_starts(parser.starts, text)
    return ParsedDocument(text=text, kind="html", title=parser.title or parser.first_h1, sections=sections)


# --- PDF -----------------------------------------------------------------------------------

PAGE_SEPARATOR = "\n\n"


def parse_pdf(path: Path, data: bytes) -> ParsedDocument:
    """One section per page that has text; the page number is kept."""
    import io
    import logging

    from pypdf import PdfReader

    if not data.lstrip()[:1024].startswith(b"%PDF-") and b"%PDF-" not in data[:1024]:
        raise ParseError(path, "not a PDF file (no %PDF header)")
    # pypdf reports every repair it attempts on a damaged file as a warning on its logger; the
    # add report already names the file, so keep the console quiet while parsing.
    pypdf_log = logging.getLogger("pypdf")
    level = pypdf_log.level
    pypdf_log.setLevel(logging.ERROR)
    try:
        try:
            reader = PdfReader(io.BytesIO(data))
            if reader.is_encrypted:
                try:
                    ok = reader.decrypt("")
                except Exception:  # noqa: BLE001 - pypdf raises many types here
                    ok = 0
                if not ok:
                    raise ParseError(path, "the PDF is encrypted with a password")
            title = None
            try:
                meta = reader.metadata
                title = (meta.title or None) if meta else None
            except Exception:  # noqa: BLE001 - a broken info dictionary should not lose the text
                title = None
            parts: list[str] = []
            sections: list[Section] = []
            pos = 0
            n_pages = len(reader.pages)
            for number, page in enumerate(reader.pages, start=1):
                page_text = normalize_newlines(page.extract_text() or "").strip()
                if not page_text:
                    continue
                if parts:
                    parts.append(PAGE_SEPARATOR)
                    pos += len(PAGE_SEPARATOR)
                sections.append(Section(pos, pos + len(page_text), page=number))
                parts.append(page_text)
                pos += len(page_text)
        except ParseError:
            raise
        except Exception as exc:  # noqa: BLE001 - pypdf raises a wide range of errors on damaged
            # files (PdfReadError, ValueError, KeyError, RecursionError…); each is one bad file.
            detail = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else ""
            raise ParseError(path, f"cannot parse PDF ({type(exc).__name__}{': ' + detail if detail else ''})") from None
    finally:
        pypdf_log.setLevel(level)
    if n_pages == 0:
        raise ParseError(path, "cannot parse PDF (no pages found; the file is damaged)")
    title = title.strip() if isinstance(title, str) and title.strip() else None
    return ParsedDocument(text="".join(parts), kind="pdf", title=title, sections=sections, pages=n_pages)
