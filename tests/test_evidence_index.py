"""The document index on real SQLite files with the real embedding model: adding (idempotent,
updates, every kind of bad file), provenance of what is found, and retrieval in all three modes."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from manyminds import embeddings
from manyminds.errors import InputError
from manyminds.evidence import (
    DocumentIndex,
    EmptyCollection,
    Passage,
    UnknownCollection,
    retrieve,
)
from manyminds.evidence.index import MAX_FILE_BYTES, fts_query
from manyminds.evidence.parse import parse_bytes
from manyminds.store import open_db

pytestmark = pytest.mark.skipif(not embeddings.available(), reason="the embedding model is not installed")

DOCS = Path(__file__).parent / "data" / "docs"


@pytest.fixture
def corpus(tmp_path) -> Path:
    """A private copy of the fixture documents (tests change files)."""
    target = tmp_path / "docs"
    shutil.copytree(DOCS / "corpus", target / "corpus")
    shutil.copytree(DOCS / "bad", target / "bad")
    return target


@pytest.fixture
def db(tmp_path):
    database = open_db(tmp_path / "store.db")
    yield database
    database.close()


class CountingEmbed:
    """The real embedding function, counting the texts it is asked to embed."""

    def __init__(self) -> None:
        self.texts = 0

    def __call__(self, texts):
        self.texts += len(texts)
        return embeddings.embed(texts)


@pytest.fixture
def index(db, corpus):
    ix = DocumentIndex(db)
    ix.add("docs", [corpus / "corpus"])
    return ix


def top(ix: DocumentIndex, query: str, mode: str = "hybrid", k: int = 3) -> Passage:
    return ix.search("docs", query, k=k, mode=mode)[0]


# --- adding --------------------------------------------------------------------------------


def test_add_reports_every_file_and_indexes_the_good_ones(db, corpus):
    progress = []
    report = DocumentIndex(db).add("docs", [corpus], on_progress=progress.append)
    names = {Path(f.path).name: f for f in report.files}
    assert {Path(f.path).name for f in report.added} == {
        "bridge-report.pdf", "ferry-notes.txt", "observatory.html", "tea-guide.md"}
    reasons = {Path(f.path).name: f.reason for f in report.skipped}
    assert reasons["corrupt.pdf"].startswith("cannot parse PDF")
    assert reasons["latin1.txt"].startswith("not valid UTF-8")
    assert reasons["diagram.png"].startswith("unsupported file type '.png'")
    assert reasons["empty.md"] == "empty file"
    assert names["bridge-report.pdf"].kind == "pdf" and names["bridge-report.pdf"].chunks == 3
    assert report.ok and report.chunks_indexed == sum(f.chunks for f in report.added)
    assert [p.done for p in progress] == list(range(1, 9)) and {p.total for p in progress} == {8}
    [row] = DocumentIndex(db).collections()
    assert row["name"] == "docs" and row["documents"] == 4 and row["chunks"] == report.chunks_indexed
    doc = report.to_dict()
    assert doc["counts"] == {"added": 4, "unchanged": 0, "updated": 0, "skipped": 4}


def test_duplicate_add_is_idempotent_and_embeds_nothing(db, corpus):
    embed = CountingEmbed()
    ix = DocumentIndex(db, embed=embed)
    first = ix.add("docs", [corpus / "corpus"])
    embedded = embed.texts
    ids = [r[0] for r in db.execute("SELECT id FROM doc_chunks ORDER BY id").fetchall()]
    again = ix.add("docs", [corpus / "corpus", corpus / "corpus" / "tea-guide.md"])  # and a repeat
    assert embed.texts == embedded
    assert len(again.unchanged) == 4 and not again.added and not again.updated
    assert [f.chunks for f in again.unchanged] == [f.chunks for f in first.added]
    assert [r[0] for r in db.execute("SELECT id FROM doc_chunks ORDER BY id").fetchall()] == ids
    # The same path written differently is the same document.
    relative = DocumentIndex(db, embed=embed).add("docs", [corpus / "corpus" / ".." / "corpus" / "tea-guide.md"])
    assert [f.status for f in relative.files] == ["unchanged"]


def test_changed_file_is_reindexed_and_old_chunks_disappear(index, corpus):
    path = corpus / "corpus" / "tea-guide.md"
    assert "seven minutes" in top(index, "how long to steep mountain tea").text
    before = index.search("docs", "Pindus", mode="fts")
    assert before and "Pindus" in before[0].text
    path.write_text(path.read_text().replace("seven minutes", "twelve minutes").replace("Pindus", "Taygetus"))
    report = index.add("docs", [path])
    assert [f.status for f in report.files] == ["updated"]
    assert index.search("docs", "Pindus", mode="fts") == []  # gone from the full-text index
    hit = top(index, "how long to steep mountain tea", mode="vector")  # and from the cached vectors
    assert "twelve minutes" in hit.text and "seven minutes" not in hit.text
    counts = index.db.execute(
        "SELECT COUNT(*), (SELECT COUNT(*) FROM doc_chunks_fts) FROM doc_chunks").fetchone()
    assert counts[0] == counts[1]
    [row] = [d for d in index.documents("docs") if d["path"] == str(path)]
    assert row["chunks"] == report.files[0].chunks


def test_file_over_the_limit_is_skipped_unread(db, tmp_path, monkeypatch):
    big = tmp_path / "big.txt"
    with open(big, "wb") as f:
        f.truncate(MAX_FILE_BYTES + 1)  # sparse: takes no disk space
    real_read = Path.read_bytes

    def guarded(self):
        assert self.name != "big.txt", "the oversized file was read"
        return real_read(self)

    monkeypatch.setattr(Path, "read_bytes", guarded)
    report = DocumentIndex(db).add("docs", [big])
    [result] = report.files
    assert result.status == "skipped"
    assert result.reason == "too large: 50.0 MB (the limit is 50.0 MB)"
    assert not report.ok


def test_the_limit_can_be_lowered(db, corpus):
    report = DocumentIndex(db, max_bytes=1000).add("docs", [corpus / "corpus"])
    assert {Path(f.path).name for f in report.skipped} == {"ferry-notes.txt", "bridge-report.pdf"}
    assert all("too large" in f.reason for f in report.skipped)


def test_missing_paths_and_hidden_files(db, corpus):
    (corpus / "corpus" / ".secret.md").write_text("# Hidden\n\nnot to be indexed\n")
    (corpus / "corpus" / ".git").mkdir()
    (corpus / "corpus" / ".git" / "HEAD.txt").write_text("ref: refs/heads/main\n")
    report = DocumentIndex(db).add("docs", [corpus / "corpus", corpus / "nope.md"])
    assert [(Path(f.path).name, f.reason) for f in report.skipped] == [("nope.md", "no such file or directory")]
    assert len(report.added) == 4


def test_every_file_failing_leaves_no_collection(db, corpus):
    report = DocumentIndex(db).add("docs", [corpus / "bad"])
    assert not report.ok and len(report.skipped) == 4
    assert DocumentIndex(db).collections() == []


def test_invalid_collection_name(db, corpus):
    with pytest.raises(InputError, match="Invalid collection name"):
        DocumentIndex(db).add("../etc", [corpus])


# --- provenance ----------------------------------------------------------------------------


def test_pdf_passages_carry_page_numbers_and_title(index):
    hit = top(index, "When was the Varnholt bridge completed?")
    assert "completed in 1911" in hit.text
    assert hit.location == "page 2" and hit.page == 2
    assert hit.title == "Varnholt Bridge Inspection Report"
    assert hit.document.endswith("bridge-report.pdf") and Path(hit.document).is_absolute()
    assert hit.collection == "docs" and hit.chunk_id is not None


def test_markdown_and_html_passages_carry_heading_paths(index):
    tea = top(index, "How long should mountain tea steep?")
    assert tea.location.startswith("§ Mountain Tea > Brewing > Water (lines ")
    assert tea.title == "A Field Guide to Mountain Tea"
    sky = top(index, "When are the public viewing nights at the observatory?")
    assert sky.location == "§ Kestrel Ridge Observatory > Telescopes > Public nights"
    assert "second Friday" in sky.text


def test_text_passages_carry_line_numbers_and_exact_offsets(index, corpus):
    path = corpus / "corpus" / "ferry-notes.txt"
    hit = top(index, "Was the night ferry to Orsund cancelled?")
    assert "Orsund island was cancelled in March 2024" in hit.text
    first, last = (int(n) for n in hit.location.removeprefix("lines ").split("–"))
    assert first <= 43 <= last  # the fact is on line 43 of the file
    parsed = parse_bytes(path, path.read_bytes())
    assert parsed.text[hit.start : hit.end] == hit.text
    assert hit.sha256 == __import__("hashlib").sha256(path.read_bytes()).hexdigest()
    start, end = hit.find_quote("night ferry to Orsund   island was cancelled")
    assert parsed.text[start:end] == "night ferry to Orsund island was cancelled"
    assert hit.find_quote("the ferry was never cancelled") is None


# --- retrieval -----------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["hybrid", "fts", "vector"])
def test_each_mode_finds_the_passage(index, mode):
    hit = top(index, "Lindqvist foundry built the Varnholt bridge", mode=mode)
    assert hit.location == "page 2"
    results = index.search("docs", "Lindqvist foundry", k=3, mode=mode)
    assert len(results) <= 3
    assert [r.score for r in results] == sorted((r.score for r in results), reverse=True)


def test_hybrid_scores_and_similarity(index):
    results = index.search("docs", "granite piers of the bridge span", k=5)
    assert len(results) == 5
    assert all(r.similarity is not None and -1.0 <= r.similarity <= 1.0 for r in results)
    assert all(0 < r.score <= 2 / 61 for r in results)  # reciprocal-rank fusion of two lists
    assert index.search("docs", "Pindus", mode="fts")[0].similarity is None  # no model needed for fts


@pytest.mark.parametrize(
    "query",
    ['"unbalanced quote', "NEAR(tea brewing)", "tea AND NOT brewing OR", "text:tea", "tea*", "^tea", "(tea",
     "col:val) OR (", "-tea +brew", "tea; DROP TABLE doc_chunks; --", "*", "{}[]", "'", "ünïcödé ßtraße",
     "🍵 mountain tea"],
)
def test_fts_syntax_in_queries_is_inert(index, query):
    for mode in ("hybrid", "fts", "vector"):
        index.search("docs", query, mode=mode)  # no FTS5 syntax error, whatever the text
    assert index.db["doc_chunks"].count > 0


def test_fts_query_quotes_every_token():
    assert fts_query('NEAR("x" AND) text:* ^foo') == '"near" OR "x" OR "text" OR "foo"'
    assert fts_query("What is the boiling point of water?") == '"boiling" OR "point" OR "water"'
    assert fts_query("the of") == '"the" OR "of"'  # only stop words: keep them
    assert fts_query("?!* ()") is None


def test_query_without_words_falls_back_to_vectors(index):
    assert index.search("docs", "?!", mode="fts") == []
    assert len(index.search("docs", "?!", mode="hybrid", k=2)) == 2


def test_bad_search_arguments(index):
    with pytest.raises(InputError, match="empty"):
        index.search("docs", "   ")
    with pytest.raises(InputError, match="positive"):
        index.search("docs", "tea", k=0)
    with pytest.raises(InputError, match="mode"):
        index.search("docs", "tea", mode="magic")


def test_unknown_collection_lists_the_existing_ones(index, tmp_path):
    with pytest.raises(UnknownCollection) as info:
        retrieve(index.db, "papers", "tea")
    message = str(info.value)
    assert "'papers'" in message and "'docs'" in message and "manyminds docs add" in message
    assert info.value.exit_code == 2 and isinstance(info.value, InputError)
    with pytest.raises(UnknownCollection, match="none yet"):
        DocumentIndex(open_db(tmp_path / "fresh.db")).search("docs", "tea")


def test_empty_collection_says_how_to_add_documents(index, corpus):
    removed = index.remove("docs", corpus / "corpus")  # every document, by directory
    assert removed["documents"] == 4 and removed["chunks"] > 0
    with pytest.raises(EmptyCollection) as info:
        retrieve(index.db, "docs", "tea")
    assert "manyminds docs add" in str(info.value) and "--collection docs" in str(info.value)
    assert index.db.execute("SELECT COUNT(*) FROM doc_chunks_fts").fetchone()[0] == 0


def test_remove_one_document_and_whole_collection(index, corpus):
    index.remove("docs", corpus / "corpus" / "tea-guide.md")
    assert all(not r.document.endswith("tea-guide.md") for r in index.search("docs", "mountain tea", k=10))
    with pytest.raises(InputError, match="No document at"):
        index.remove("docs", corpus / "corpus" / "tea-guide.md")
    chunks_left = index.db.execute("SELECT COUNT(*) FROM doc_chunks").fetchone()[0]
    assert index.remove("docs") == {"documents": 3, "chunks": chunks_left}
    assert index.collections() == []
    with pytest.raises(UnknownCollection):
        index.remove("docs")


def test_retrieve_sees_changes_made_through_another_connection(index, tmp_path, corpus):
    """The cached vector matrix is checked against the collection's version on every search."""
    assert not any("Zephyrine" in p.text for p in retrieve(index.db, "docs", "Zephyrine glacier", k=3))
    other = open_db(tmp_path / "store.db")
    note = corpus / "glacier.md"
    note.write_text("# Glaciers\n\nThe Zephyrine glacier retreated 40 metres in 2023.\n")
    DocumentIndex(other).add("docs", [note])
    other.close()
    assert "Zephyrine" in retrieve(index.db, "docs", "Zephyrine glacier", k=3)[0].text


def test_collections_are_separate(index, corpus):
    index.add("other", [corpus / "corpus" / "observatory.html"])
    assert {p.document for p in index.search("other", "bridge", k=10)} == {
        str(corpus / "corpus" / "observatory.html")}
    rows = {r["name"]: r for r in index.collections()}
    assert rows["other"]["documents"] == 1 and rows["docs"]["documents"] == 4


async def test_retrieve_async_agrees_with_retrieve(index, tmp_path):
    from manyminds.evidence import retrieve_async

    query = "Corrosion on the lower chord"
    expected = retrieve(index.db, "docs", query, k=3)
    assert await retrieve_async("docs", query, k=3, db_path=tmp_path / "store.db") == expected
    with pytest.raises(UnknownCollection):
        await retrieve_async("nope", query, db_path=tmp_path / "store.db")
