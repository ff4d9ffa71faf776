"""`manyminds docs` in a subprocess, with the real embedding model and the store in the test's
user dir: add (report, progress, exit codes), list, search, remove, and the bad-input paths."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from manyminds import embeddings

pytestmark = pytest.mark.skipif(not embeddings.available(), reason="the embedding model is not installed")

DOCS = Path(__file__).parent / "data" / "docs"


def run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "manyminds.cli", "docs", *args], capture_output=True,
                          text=True, env=dict(os.environ), timeout=timeout)


@pytest.fixture
def corpus(tmp_path) -> Path:
    target = tmp_path / "docs"
    shutil.copytree(DOCS / "corpus", target / "corpus")
    shutil.copytree(DOCS / "bad", target / "bad")
    return target


def test_add_search_list_remove(corpus, manyminds_home):
    added = run_cli("add", str(corpus), "--collection", "field", "--json")
    assert added.returncode == 0, added.stderr
    report = json.loads(added.stdout)
    assert report["counts"] == {"added": 4, "unchanged": 0, "updated": 0, "skipped": 4}
    skipped = {Path(f["path"]).name: f["reason"] for f in report["files"] if f["status"] == "skipped"}
    assert skipped["corrupt.pdf"].startswith("cannot parse PDF")
    # Progress on stderr, one line per file, naming it.
    assert "[8/8]" in added.stderr and "skipped: " in added.stderr and "corrupt.pdf" in added.stderr
    assert (manyminds_home / "manyminds.db").exists()  # the run store, shared with runs

    again = run_cli("add", str(corpus / "corpus"), "-c", "field")
    assert again.returncode == 0, again.stderr
    assert "0 added, 0 updated, 4 unchanged, 0 skipped" in again.stdout

    listed = run_cli("list", "--json")
    [row] = json.loads(listed.stdout)
    assert (row["name"], row["documents"]) == ("field", 4) and row["chunks"] == report["chunks_indexed"]
    plain = run_cli("list")
    assert plain.stdout.startswith("field\t4\t")

    docs = json.loads(run_cli("list", "field", "--json").stdout)
    assert sorted(Path(d["path"]).name for d in docs) == [
        "bridge-report.pdf", "ferry-notes.txt", "observatory.html", "tea-guide.md"]

    found = run_cli("search", "When was the Varnholt bridge completed?", "-c", "field", "-k", "2", "--json")
    assert found.returncode == 0, found.stderr
    passages = json.loads(found.stdout)
    assert len(passages) == 2
    assert passages[0]["location"] == "page 2" and "1911" in passages[0]["text"]
    assert passages[0]["document"].endswith("bridge-report.pdf") and passages[0]["collection"] == "field"

    text = run_cli("search", "public viewing nights", "-c", "field", "-k", "1")
    assert "observatory.html — § Kestrel Ridge Observatory > Telescopes > Public nights" in text.stdout

    fts = run_cli("search", 'tea" OR NEAR(*', "-c", "field", "--mode", "fts", "--json")
    assert fts.returncode == 0, fts.stderr

    removed = run_cli("remove", str(corpus / "corpus" / "tea-guide.md"), "-c", "field", "--json")
    assert json.loads(removed.stdout)["documents"] == 1
    gone = run_cli("remove", "-c", "field", "--all")
    assert gone.returncode == 0 and "Removed the collection 'field' (3 documents" in gone.stdout
    assert json.loads(run_cli("list", "--json").stdout) == []


def test_add_where_every_file_fails_exits_1_with_reasons(corpus):
    result = run_cli("add", str(corpus / "bad"))
    assert result.returncode == 1
    assert "no file could be indexed" in result.stderr
    assert "corrupt.pdf: cannot parse PDF" in result.stdout
    assert "latin1.txt: not valid UTF-8" in result.stdout
    as_json = run_cli("add", str(corpus / "bad"), "--json", "--quiet")
    assert as_json.returncode == 1 and as_json.stderr.strip() == "Error: no file could be indexed."
    assert json.loads(as_json.stdout)["ok"] is False


def test_add_missing_path_and_too_large_file(tmp_path):
    big = tmp_path / "big.md"
    with open(big, "wb") as f:
        f.truncate(3 * 1024 * 1024)
    result = run_cli("add", str(big), str(tmp_path / "nope.txt"), "--max-size", "2")
    assert result.returncode == 1
    assert "big.md: too large: 3.0 MB (the limit is 2.0 MB)" in result.stdout
    assert "nope.txt: no such file or directory" in result.stdout


def test_unknown_and_empty_collections(corpus):
    none_yet = run_cli("search", "tea", "-c", "papers")
    assert none_yet.returncode == 2
    assert "Unknown document collection 'papers'. Existing collections: none yet." in none_yet.stderr

    assert run_cli("add", str(corpus / "corpus" / "tea-guide.md"), "-c", "notes").returncode == 0
    unknown = run_cli("search", "tea", "-c", "papers", "--json")
    assert unknown.returncode == 2
    error = json.loads(unknown.stdout)["error"]
    assert error["type"] == "UnknownCollection" and "'notes'" in error["message"]

    assert run_cli("remove", str(corpus / "corpus" / "tea-guide.md"), "-c", "notes").returncode == 0
    empty = run_cli("search", "tea", "-c", "notes")
    assert empty.returncode == 2
    assert "has no documents" in empty.stderr and "manyminds docs add" in empty.stderr


def test_remove_needs_paths_or_all():
    result = run_cli("remove", "-c", "default")
    assert result.returncode == 2 and "--all" in result.stderr
