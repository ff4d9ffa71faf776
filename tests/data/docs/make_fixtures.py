"""Writes the binary fixtures of this directory: `corpus/bridge-report.pdf` (a real three-page
PDF with text and a title, written by hand so its content is known exactly) and
`bad/corrupt.pdf` (a PDF header followed by damaged bytes). Run from anywhere:

    python tests/data/docs/make_fixtures.py

The text fixtures (Markdown, HTML, plain text) are written by hand and committed as they are.
"""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).parent

PAGES = [
    [
        "Varnholt Bridge Inspection Report",
        "Introduction. This report describes the Varnholt bridge over the Quellen river.",
        "The bridge is a steel truss design that carries two lanes of traffic.",
    ],
    [
        "History. The Varnholt bridge was completed in 1911 by the Lindqvist foundry.",
        "Its main span measures 142 metres between the two granite piers.",
    ],
    [
        "Maintenance. Corrosion was found on the lower chord in the 2019 inspection.",
        "The load limit was reduced to 18 tonnes until the repairs are finished.",
    ],
]


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def pdf_bytes(pages: list[list[str]], title: str) -> bytes:
    objects: list[bytes] = []

    def add(body: bytes) -> int:
        objects.append(body)
        return len(objects)

    catalog = add(b"")  # filled in below, once the page tree's number is known
    pages_obj = add(b"")
    font = add(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>")
    kids = []
    for lines in pages:
        ops = ["BT", "/F1 11 Tf", "14 TL", "72 740 Td"]
        for line in lines:
            ops.append(f"({_escape(line)}) Tj T*")
        ops.append("ET")
        stream = "\n".join(ops).encode("latin-1")
        content = add(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
        kids.append(
            add(
                b"<< /Type /Page /Parent %d 0 R /MediaBox [0 0 612 792] /Contents %d 0 R "
                b"/Resources << /Font << /F1 %d 0 R >> >> >>" % (pages_obj, content, font)
            )
        )
    info = add(b"<< /Title (%s) /Producer (manyminds test fixture) >>" % _escape(title).encode("latin-1"))
    objects[catalog - 1] = b"<< /Type /Catalog /Pages %d 0 R >>" % pages_obj
    objects[pages_obj - 1] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (
        b" ".join(b"%d 0 R" % k for k in kids), len(kids))

    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % off for off in offsets)
    out += b"trailer\n<< /Size %d /Root %d 0 R /Info %d 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1, catalog, info, xref)
    return bytes(out)


def corrupt_pdf_bytes() -> bytes:
    # A real header, then the middle of an object stream cut off, no xref, no trailer.
    good = pdf_bytes(PAGES[:1], "Broken")
    return good[:9] + b"1 0 obj\n<< /Type /Catalog /Pages 2 0 R\nstream\n\x00\x8f\xff garbage \x01\x02" * 3


def main() -> None:
    (HERE / "corpus" / "bridge-report.pdf").write_bytes(pdf_bytes(PAGES, "Varnholt Bridge Inspection Report"))
    (HERE / "bad" / "corrupt.pdf").write_bytes(corrupt_pdf_bytes())


if __name__ == "__main__":
    main()
