"""The document index at 10,000 chunks: indexing throughput and retrieval latency.

Builds a collection of at least `--chunks` chunks in a fresh SQLite store through the real path
(`DocumentIndex.add` on Markdown files: parse, chunk, embed with the bundled MiniLM, write), then
times `--queries` searches in each mode (fts, vector, hybrid) with the collection's vectors
already cached, and the first vector search that loads them.

The corpus: HaluEval's knowledge passages when they are on disk (the eval harness caches them
under ~/.cache/manyminds-test), topped up with generated text to the chunk count; without
HaluEval, generated text only. Generated text is word salad from a real vocabulary (the words of
the standard library's docstrings), which gives FTS realistic term statistics. Queries are
HaluEval questions (their knowledge passage is the right answer) or, failing that, a sentence of a
random chunk with a third of its words dropped; recall@5 is reported as a sanity check.

    python benchmarks/evidence_index.py [--chunks 10000] [--queries 100] [--db PATH]

With `--db` pointing at a store built by an earlier run, indexing is skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import statistics
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

from manyminds import embeddings
from manyminds.evidence import DocumentIndex
from manyminds.evidence.chunk import chunk_document
from manyminds.evidence.parse import parse_markdown
from manyminds.store import open_db

COLLECTION = "bench"
SEED = 20261121
HALUEVAL = Path(os.environ.get("MANYMINDS_TEST_CACHE", Path.home() / ".cache" / "manyminds-test")) / \
    "datasets" / "halueval" / "dataset_halueval_qa.jsonl"


# --- corpus --------------------------------------------------------------------------------


def vocabulary(limit: int = 8000) -> list[str]:
    """Words of the standard library's docstrings and comments, most frequent first."""
    counts: dict[str, int] = {}
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    for path in sorted(stdlib.glob("*.py"))[:400]:
        for word in re.findall(r"\b[a-z]{3,12}\b", path.read_text(errors="ignore")):
            counts[word] = counts.get(word, 0) + 1
    return sorted(counts, key=lambda w: -counts[w])[:limit]


def generated_document(rng: random.Random, words: list[str], weights: list[float], number: int) -> str:
    parts = [f"# Generated report {number}\n"]
    for section in range(rng.randint(3, 6)):
        parts.append(f"## Section {section + 1}: {' '.join(rng.choices(words, weights, k=3))}\n")
        for _ in range(rng.randint(2, 4)):
            sentences = []
            for _ in range(rng.randint(3, 7)):
                s = rng.choices(words, weights, k=rng.randint(8, 20))
                sentences.append(" ".join(s).capitalize() + ".")
            parts.append(" ".join(sentences) + "\n")
    return "\n".join(parts)


def halueval_rows() -> list[dict]:
    if not HALUEVAL.exists():
        return []
    with HALUEVAL.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def build_corpus(root: Path, target_chunks: int, rng: random.Random) -> tuple[int, str, list[dict]]:
    """Write Markdown files under `root` holding at least `target_chunks` chunks.
    Returns (chunks, description, HaluEval rows used)."""
    chunks = 0
    rows = halueval_rows()
    if rows:
        per_file = 50
        for start in range(0, len(rows), per_file):
            group = rows[start : start + per_file]
            text = f"# HaluEval knowledge {start // per_file}\n\n" + "\n\n".join(r["knowledge"] for r in group) + "\n"
            (root / f"halueval-{start // per_file:04d}.md").write_text(text, encoding="utf-8")
            chunks += len(chunk_document(parse_markdown(text)))
    real = chunks
    words = vocabulary()
    weights = [1.0 / (rank + 1) for rank in range(len(words))]  # Zipf-like
    number = 0
    while chunks < target_chunks:
        text = generated_document(rng, words, weights, number)
        (root / f"generated-{number:05d}.md").write_text(text, encoding="utf-8")
        chunks += len(chunk_document(parse_markdown(text)))
        number += 1
    what = f"{real} chunks of HaluEval knowledge + {chunks - real} generated" if rows else f"{chunks} generated"
    return chunks, what, rows


# --- measuring -----------------------------------------------------------------------------


class TimedEmbed:
    def __init__(self) -> None:
        self.seconds = 0.0
        self.texts = 0

    def __call__(self, texts):
        started = time.perf_counter()
        out = embeddings.embed(texts)
        self.seconds += time.perf_counter() - started
        self.texts += len(texts)
        return out


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, max(0, round(q * (len(values) - 1))))]


def queries_for(index: DocumentIndex, rows: list[dict], n: int, rng: random.Random) -> list[tuple[str, str]]:
    """(query, a snippet the right passage contains)."""
    if rows:
        picked = rng.sample(rows, n)
        return [(r["question"], r["knowledge"][:60]) for r in picked]
    ids = [r[0] for r in index.db.execute("SELECT id FROM doc_chunks").fetchall()]
    out = []
    for cid in rng.sample(ids, n):
        text = index.db.execute("SELECT text FROM doc_chunks WHERE id = ?", [cid]).fetchone()[0]
        sentence = max(re.split(r"(?<=\.)\s+", text), key=len)
        words = sentence.split()
        kept = [w for w in words if rng.random() > 1 / 3] or words
        out.append((" ".join(kept), sentence[:60]))
    return out


def progress(event) -> None:  # noqa: ANN001
    if event.done % 50 == 0 or event.done == event.total:
        print(f"  … {event.done}/{event.total} files", file=sys.stderr, flush=True)


def main(target: int, n_queries: int, db_path: str | None) -> None:
    rng = random.Random(SEED)
    embeddings.embed(["warm up"])  # model load is not indexing
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(db_path) if db_path else Path(tmp) / "bench.db"
        fresh = not path.exists()
        db = open_db(path)
        index = DocumentIndex(db)
        rows = halueval_rows()
        if fresh:
            corpus = Path(tmp) / "corpus"
            corpus.mkdir()
            expected, what, rows = build_corpus(corpus, target, rng)
            timed = TimedEmbed()
            started, cpu = time.perf_counter(), time.process_time()
            report = DocumentIndex(db, embed=timed).add(COLLECTION, [corpus], on_progress=progress)
            seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
            chunks = report.chunks_indexed
            assert chunks == expected and not report.skipped, (chunks, expected, report.skipped[:3])
            print(f"corpus: {len(report.added)} Markdown files, {chunks} chunks ({what})")
            print(f"indexing: {chunks / seconds:.1f} chunks/s ({seconds:.0f} s for {chunks}; process CPU {cpu:.0f} s, "
                  f"{chunks / cpu:.1f} chunks per CPU-second, load average {os.getloadavg()[0]:.1f}); "
                  f"embedding {timed.seconds:.0f} s of it ({timed.texts / timed.seconds:.1f} chunks/s), "
                  f"parse + chunk + SQLite {seconds - timed.seconds:.1f} s "
                  f"({chunks / max(seconds - timed.seconds, 1e-9):.0f} chunks/s)")
            started = time.perf_counter()
            again = index.add(COLLECTION, [corpus])
            print(f"re-adding the unchanged corpus: {time.perf_counter() - started:.2f} s "
                  f"({len(again.unchanged)} files unchanged, nothing embedded)")
        [info] = [c for c in index.collections() if c["name"] == COLLECTION]
        size = path.stat().st_size + (path.with_name(path.name + "-wal").stat().st_size
                                      if path.with_name(path.name + "-wal").exists() else 0)
        print(f"collection: {info['documents']} documents, {info['chunks']} chunks, database {size / 2**20:.0f} MB")

        # Its own generator: the same queries whether or not this run built the corpus.
        queries = queries_for(index, rows, n_queries, random.Random(SEED + 1))
        started = time.perf_counter()
        index.search(COLLECTION, queries[0][0], k=5, mode="vector")
        print(f"first vector search (reads {info['chunks']} vectors into memory): "
              f"{(time.perf_counter() - started) * 1000:.0f} ms")
        embed_ms = []
        for q, _ in queries:
            started = time.perf_counter()
            embeddings.embed([q])
            embed_ms.append((time.perf_counter() - started) * 1000)
        print(f"query embedding alone: p50 {statistics.median(embed_ms):.1f} ms · "
              f"p95 {percentile(embed_ms, 0.95):.1f} ms")
        for mode in ("fts", "vector", "hybrid"):
            latencies, hits = [], 0
            for q, snippet in queries:
                started = time.perf_counter()
                found = index.search(COLLECTION, q, k=5, mode=mode)
                latencies.append((time.perf_counter() - started) * 1000)
                hits += any(snippet in p.text for p in found)
            print(f"search {mode:6}: p50 {statistics.median(latencies):6.1f} ms · p95 {percentile(latencies, 0.95):6.1f} ms"
                  f" · max {max(latencies):6.1f} ms · recall@5 {hits / len(queries):.2f} (n={len(queries)}, k=5)")
        db.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chunks", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--db", help="a store built by an earlier run (indexing is skipped), or where to build one")
    args = parser.parse_args()
    main(args.chunks, args.queries, args.db)
