"""Hallucination detection on HaluEval QA with the local council: claim-level verification
against the answer-level agreement of the first version.

For each sampled item (question, knowledge, right answer, hallucinated answer):
  * answer-level baseline (the first version): the council's members answer the question once;
    a candidate answer scores the weighted share of members whose short answer is equivalent
    to the candidate's (`compare.similarity` ≥ 0.8 — the v1 confidence), and, as a finer
    variant, the members' mean similarity to it;
  * claim-level: `verify(candidate, question=…)` — its score (the weakest claim's);
  * claim-level with evidence: the same with the items' knowledge paragraphs indexed as a
    document collection (one file per item, all items in one collection).
AUROC: how well each score ranks right answers above hallucinated ones (0.5 = chance), with a
paired bootstrap interval over items. Cost: tokens of claim-level verification per question
(both candidates) ÷ tokens of the members' first answers to that question.

    python benchmarks/halueval_detection.py --n 60 --seed 7      # ~15 min on the local council

Writes the per-item records to --out (JSON) and prints the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from manyminds.api import resolve_council
from manyminds.config import load_settings
from manyminds.eval.loading import load_dataset
from manyminds.eval.metrics import auroc, bootstrap_ci
from manyminds.evidence import DocumentIndex
from manyminds.pipeline.stages.compare import similarity
from manyminds.pipeline.stages.short_answers import extract_short_answers, heuristic_short_answer
from manyminds.pipeline.stages.fanout import FanOut
from manyminds.store import open_db
from manyminds.api import averify


def answer_level(question: str, candidate: str, answers, weights) -> tuple[float, float]:  # noqa: ANN001
    """(share of member weight whose short answer is equivalent to the candidate's, mean similarity)."""
    short = heuristic_short_answer(question, candidate)
    total = sum(weights.get(a.member, 1.0) for a in answers) or 1.0
    sims = {a.member: similarity(short, a.short_answer or "", question=question) if a.ok else 0.0 for a in answers}
    share = sum(weights.get(m, 1.0) for m, s in sims.items() if s >= 0.8) / total
    mean = sum(weights.get(m, 1.0) * s for m, s in sims.items()) / total
    return share, mean


async def one_item(item, council, settings, db_path: Path, collection: str) -> dict:  # noqa: ANN001
    started = time.perf_counter()
    fan = FanOut(timeout=council.settings.timeout)
    answers = await fan.run(item.question, council.members)
    answers = await extract_short_answers(item.question, answers, {}, mode="heuristic")
    first_tokens = sum(a.usage.total_tokens for a in answers)
    record = {"id": item.id, "question": item.question, "first_tokens": first_tokens,
              "members": {a.member: a.short_answer for a in answers}}
    for label, text in (("right", item.answers[0]), ("hallucinated", item.incorrect[0])):
        share, mean = answer_level(item.question, text, answers, council.weights)
        plain = await averify(text, question=item.question, settings=settings, store=False)
        grounded = await averify(text, question=item.question, settings=settings, store=False,
                                 collection=collection, db_path=db_path)
        record[label] = {
            "text": text, "agreement": share, "similarity": mean,
            "verify": plain.score, "verify_verdict": plain.verdict, "verify_tokens": plain.usage.total_tokens,
            "evidence": grounded.score, "evidence_verdict": grounded.verdict,
            "evidence_tokens": grounded.usage.total_tokens, "claims": len(plain.claims),
            "evidence_found": [c.evidence_verdict for c in grounded.claims],
        }
    record["seconds"] = round(time.perf_counter() - started, 2)
    return record


def figures(records: list[dict]) -> dict:
    n = len(records)
    idx = np.arange(n)
    out: dict = {"n_items": n, "n_texts": 2 * n}

    def score_auroc(key: str, rows: np.ndarray) -> float:
        scores = [records[i]["right"][key] for i in rows] + [records[i]["hallucinated"][key] for i in rows]
        labels = [True] * len(rows) + [False] * len(rows)
        value = auroc(scores, labels)
        return 0.5 if value is None else value

    for key in ("agreement", "similarity", "verify", "evidence"):
        point = score_auroc(key, idx)
        low, high = bootstrap_ci(idx, lambda rows, k=key: score_auroc(k, rows.astype(int)), n_boot=1000, seed=1)
        out[f"auroc_{key}"] = (round(point, 3), round(low, 3), round(high, 3))
    for key in ("verify", "evidence"):
        diffs = lambda rows, k=key: score_auroc(k, rows.astype(int)) - score_auroc("agreement", rows.astype(int))  # noqa: E731
        low, high = bootstrap_ci(idx, diffs, n_boot=1000, seed=2)
        out[f"lift_{key}_vs_agreement"] = (round(diffs(idx), 3), round(low, 3), round(high, 3))
    # No model at all: the shorter text is the right one. HaluEval QA's right answers are mostly
    # a few words and its hallucinated ones sentences, so form alone separates them; the split
    # below shows the scores on items whose right answer is a sentence too.
    for r in records:
        for k in ("right", "hallucinated"):
            r[k]["shorter"] = -len(r[k]["text"].split())
    point = score_auroc("shorter", idx)
    low, high = bootstrap_ci(idx, lambda rows: score_auroc("shorter", rows.astype(int)), n_boot=1000, seed=1)
    out["auroc_shorter_text_no_model"] = (round(point, 3), round(low, 3), round(high, 3))
    sentences = np.array([i for i, r in enumerate(records) if len(r["right"]["text"].split()) >= 4], dtype=int)
    if len(sentences):
        out["items_with_sentence_right_answers"] = int(len(sentences))
        for key in ("agreement", "verify", "evidence", "shorter"):
            out[f"auroc_{key}_sentence_items"] = round(score_auroc(key, sentences), 3)
    first = np.array([r["first_tokens"] for r in records], dtype=float)
    for key in ("verify", "evidence"):
        spent = np.array([r["right"][f"{key}_tokens"] + r["hallucinated"][f"{key}_tokens"] for r in records], dtype=float)
        ratio = spent / np.clip(first, 1, None)
        low, high = bootstrap_ci(ratio, seed=3)
        out[f"tokens_{key}_per_question"] = round(float(spent.mean()), 1)
        out[f"cost_ratio_{key}"] = (round(float(ratio.mean()), 2), round(low, 2), round(high, 2))
    out["first_answer_tokens_per_question"] = round(float(first.mean()), 1)
    verdicts = [r[k]["verify_verdict"] for r in records for k in ("right", "hallucinated")]
    out["verify_verdicts"] = {v: verdicts.count(v) for v in sorted(set(verdicts))}
    found = [e for r in records for k in ("right", "hallucinated") for e in r[k]["evidence_found"]]
    out["evidence_verdicts"] = {v: found.count(v) for v in sorted(set(found))}
    out["seconds_per_item"] = round(float(np.mean([r["seconds"] for r in records])), 1)
    return out


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=60, help="items (each gives a right and a hallucinated text)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=Path("halueval_detection.json"))
    parser.add_argument("--figures-from", type=Path, help="recompute the figures from a saved --out file, no models")
    args = parser.parse_args()
    if args.figures_from:
        saved = json.loads(args.figures_from.read_text())
        print(json.dumps({**saved["figures"], **figures(saved["records"])}, indent=1))
        return

    settings = load_settings()
    council = resolve_council(settings)
    items = load_dataset("halueval", limit=args.n, seed=args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        db_path = tmp_path / "evidence.db"
        docs = tmp_path / "knowledge"
        docs.mkdir()
        for item in items:
            (docs / f"{item.id}.txt").write_text(item.context or "", encoding="utf-8")
        collection = "halueval"
        report = DocumentIndex(open_db(db_path)).add(collection, [docs])
        print(f"indexed {len(report.added)} knowledge paragraphs ({report.chunks_indexed} chunks)", flush=True)
        records = []
        started = time.perf_counter()
        try:
            for i, item in enumerate(items, 1):
                records.append(await one_item(item, council, settings, db_path, collection))
                r = records[-1]
                print(f"[{i}/{len(items)}] {r['seconds']:.0f}s right {r['right']['verify']:.2f}/{r['right']['evidence']:.2f} "
                      f"halluc {r['hallucinated']['verify']:.2f}/{r['hallucinated']['evidence']:.2f}", flush=True)
        finally:
            await council.aclose()
    result = figures(records)
    result["wall_seconds"] = round(time.perf_counter() - started, 1)
    result["seed"] = args.seed
    args.out.write_text(json.dumps({"figures": result, "records": records}, indent=1, ensure_ascii=False))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    os.environ.setdefault("MANYMINDS_OFFLINE", "0")
    asyncio.run(main())
