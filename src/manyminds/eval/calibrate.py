"""Fitting the calibrator `manyminds eval calibrate` writes to calibration.json (the top-level
calibration.py computes the features and applies the fit at ask time).

    stored rows of one strategy ─▶ (features, right/wrong) per item
        ─▶ logistic regression (ridge-regularised Newton / IRLS, numpy) on the features it
           selects (forward, by cross-validated log loss inside its own training items)
        ─▶ isotonic regression (pool-adjacent-violators) on the raw confidence
        ─▶ each scored out of fold (two halves by a hash of the item id, plan.item_fold); the
           selection runs again inside each half, so the figures never saw the held-out half
        ─▶ the method with the lower out-of-fold log loss (or the one asked for), refitted on all

Why select: on 300 MMLU items of the local-plus council the fit on every feature scored AUROC
0.66 out of fold and the lead member's token probability alone 0.70 — with 150 training items
the weak features cost more in noise than they add (docs/confidence.md).

Rows written before the runner stored features (no `extra.features`) have only their
confidence; if any training row lacks features, the logistic fit uses the confidence alone.
Rows whose stored features predate a feature get it from their stored verdict (`verdict`,
loaded by fit_and_save) where they can.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..calibration import FEATURES, METHODS, calibration_path, predict, read_calibration_file
from ..errors import InputError
from .metrics import auroc, ece
from .plan import item_fold

MIN_ITEMS = 50
RIDGE = 1.0  # L2 penalty on the standardised coefficients (not the intercept)
INNER_FOLDS = 5  # the folds the feature selection scores on, inside one fit's training items
MIN_GAIN = 0.01  # a feature joins only if it lowers the inner log loss by more than this (docs/confidence.md)
EPS = 1e-4  # probabilities are clipped to [EPS, 1 - EPS] for the log loss


# --- the two fits -----------------------------------------------------------------------


def fit_logistic(X: np.ndarray, y: np.ndarray, ridge: float = RIDGE, iterations: int = 50) -> np.ndarray:
    """Weights (intercept first) maximising the log-likelihood minus ridge/2·|w[1:]|², by
    Newton's method (IRLS). X has no intercept column; one is added."""
    A = np.hstack([np.ones((len(X), 1)), np.asarray(X, dtype=float)])
    y = np.asarray(y, dtype=float)
    penalty = np.full(A.shape[1], float(ridge))
    penalty[0] = 0.0
    w = np.zeros(A.shape[1])
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-np.clip(A @ w, -50, 50)))
        grad = A.T @ (y - p) - penalty * w
        hess = (A * (p * (1 - p))[:, None]).T @ A + np.diag(penalty) + 1e-9 * np.eye(A.shape[1])
        step = np.linalg.solve(hess, grad)
        w = w + step
        if np.max(np.abs(step)) < 1e-10:
            break
    return w


def fit_isotonic(x: Sequence[float], y: Sequence[float]) -> dict[str, list[float]]:
    """Pool adjacent violators: the non-decreasing step function of x closest to y in squared
    error. Returns blocks as (upper x, value); equal x share a block."""
    order = np.argsort(np.asarray(x, dtype=float), kind="mergesort")
    xs, ys = np.asarray(x, dtype=float)[order], np.asarray(y, dtype=float)[order]
    blocks: list[list[float]] = []  # [sum of y, count, upper x]
    for xi, yi in zip(xs, ys):
        if blocks and blocks[-1][2] == xi:  # ties in x are one point
            blocks[-1][0] += yi
            blocks[-1][1] += 1
        else:
            blocks.append([yi, 1.0, xi])
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] >= blocks[-1][0] / blocks[-1][1]:
            s, n, upper = blocks.pop()
            blocks[-1][0] += s
            blocks[-1][1] += n
            blocks[-1][2] = upper
    return {"x": [float(b[2]) for b in blocks], "y": [round(float(b[0] / b[1]), 6) for b in blocks]}


# --- training data ----------------------------------------------------------------------


def training_rows(rows: list[dict[str, Any]], strategy: str) -> list[dict[str, Any]]:
    """The labelled items of `strategy`: (item, dataset, features, correct), one per item,
    those with a confidence (a strategy that gave no answer has none to calibrate)."""
    out = []
    for r in rows:
        if r["strategy"] != strategy or r.get("confidence") is None:
            continue
        stored = (r.get("extra") or {}).get("features")
        feats = dict(stored) if isinstance(stored, dict) else {"confidence": float(r["confidence"])}
        if feats.get("confidence") is None:
            feats["confidence"] = float(r["confidence"])
        if isinstance(stored, dict) and r.get("verdict") and any(n not in feats for n in FEATURES):
            feats = {**recomputed_features(r), **feats}  # what was stored at eval time stands
        out.append({"item_id": r["item_id"], "dataset": r["dataset"], "features": feats, "correct": bool(r["correct"])})
    return out


def recomputed_features(row: dict[str, Any]) -> dict[str, float | None]:
    """The features of a stored row computed again from its verdict (the member weights of a
    +trust row are stored with it; other councils weigh members equally unless their settings
    said otherwise, which only the features stored at eval time know). {} if it does not parse."""
    from pydantic import ValidationError

    from ..calibration import features
    from ..pipeline.verdict import Verdict

    try:
        verdict = Verdict.model_validate(row["verdict"])
    except (ValidationError, TypeError, ValueError):
        return {}
    weights = (row.get("extra") or {}).get("weights")
    return features(verdict, weights if isinstance(weights, dict) else None)


def design(samples: list[dict[str, Any]], names: list[str], spec: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """The standardised design matrix: each feature (None → its mean) and, for features that
    are sometimes absent, an indicator column. `spec` (mean, scale, which have indicators) is
    computed from `samples` unless given (to score held-out items with the training spec)."""
    raw = {n: [s["features"].get(n) for s in samples] for n in names}
    if spec is None:
        spec = {"mean": {}, "scale": {}, "indicators": []}
        for n in names:
            present = [float(v) for v in raw[n] if v is not None]
            spec["mean"][n] = float(np.mean(present)) if present else 0.0
            sd = float(np.std(present)) if present else 0.0
            spec["scale"][n] = sd if sd > 1e-9 else 1.0
            if len(present) < len(raw[n]):
                spec["indicators"].append(n)
    cols = []
    for n in names:
        cols.append([0.0 if v is None else (float(v) - spec["mean"][n]) / spec["scale"][n] for v in raw[n]])
    for n in spec["indicators"]:
        cols.append([1.0 if v is None else 0.0 for v in raw[n]])
    return np.array(cols, dtype=float).T.reshape(len(samples), len(cols)), spec


def feature_names(samples: list[dict[str, Any]]) -> list[str]:
    """The features to fit on: the known ones every row has a key for and that vary (old rows have
    only the confidence, so then only the confidence; one never present or constant says nothing)."""
    names = []
    for n in FEATURES:
        if not all(n in s["features"] for s in samples):
            continue
        values = [s["features"][n] for s in samples]
        if n == "confidence" or len(set(values)) > 1:
            names.append(n)
    return names or ["confidence"]


def logistic_entry(samples: list[dict[str, Any]], names: list[str]) -> dict[str, Any]:
    X, spec = design(samples, names)
    w = fit_logistic(X, np.array([s["correct"] for s in samples], dtype=float))
    coef = {n: round(float(w[1 + i]), 6) for i, n in enumerate(names)}
    missing = {n: round(float(w[1 + len(names) + i]), 6) for i, n in enumerate(spec["indicators"])}
    return {"intercept": round(float(w[0]), 6), "coef": coef, "missing": missing,
            "mean": {n: round(spec["mean"][n], 6) for n in names}, "scale": {n: round(spec["scale"][n], 6) for n in names}}  # fmt: skip


def isotonic_entry(samples: list[dict[str, Any]]) -> dict[str, list[float]]:
    return fit_isotonic([s["features"]["confidence"] for s in samples], [float(s["correct"]) for s in samples])


def inner_fold(item_id: str) -> int:
    """0 … INNER_FOLDS-1, fixed per item and independent of plan.item_fold (whose halves are
    the outer split, so inside one half item_fold is constant)."""
    return hashlib.sha256(f"inner:{item_id}".encode()).digest()[0] % INNER_FOLDS


def inner_log_loss(samples: list[dict[str, Any]], names: list[str]) -> float:
    """The log loss of a logistic fit on `names`, each item scored by the fit on the other inner folds."""
    folds = [inner_fold(s["item_id"]) for s in samples]
    probs, correct = [], []
    for fold in sorted(set(folds)):
        train = [s for s, f in zip(samples, folds) if f != fold]
        held = [s for s, f in zip(samples, folds) if f == fold]
        if not train or not held:
            continue
        entry = {"method": "logistic", "logistic": logistic_entry(train, names)}
        probs += [predict(entry, s["features"]) for s in held]
        correct += [s["correct"] for s in held]
    if not probs:  # one inner fold holds every item: nothing to score out of fold
        return float("inf")
    return log_loss(probs, correct)


def select_features(samples: list[dict[str, Any]], names: list[str]) -> list[str]:
    """Forward selection: start with the single feature of lowest inner log loss, then add the
    one that lowers it most while that gain exceeds MIN_GAIN. Ties keep FEATURES order."""
    chosen: list[str] = []
    best = float("inf")
    while len(chosen) < len(names):
        trials = [(inner_log_loss(samples, chosen + [n]), i, n) for i, n in enumerate(names) if n not in chosen]
        loss, _, name = min(trials)
        if chosen and loss > best - MIN_GAIN:
            break
        chosen.append(name)
        best = loss
    return [n for n in names if n in chosen]


def fit_method(method: str, samples: list[dict[str, Any]], names: list[str]) -> dict[str, Any]:
    """One fit on `samples`: a logistic regression on the features it selects among `names`
    (the selection sees only these samples), or the isotonic map of the confidence."""
    if method == "logistic":
        selected = select_features(samples, names)
        return {"method": "logistic", "features": selected, "logistic": logistic_entry(samples, selected)}
    return {"method": "isotonic", "features": ["confidence"], "isotonic": isotonic_entry(samples)}


def out_of_fold(method: str, samples: list[dict[str, Any]], names: list[str]) -> list[float]:
    """Each item's probability from the fit (selection included) on the other half of the items (by item id)."""
    folds = [item_fold(s["item_id"]) for s in samples]
    probs = [0.0] * len(samples)
    for fold in (0, 1):
        train = [s for s, f in zip(samples, folds) if f != fold]
        if not train:  # every item in one half: score it with the fit on all (reported as such)
            train = samples
        entry = fit_method(method, train, names)
        for i, (s, f) in enumerate(zip(samples, folds)):
            if f == fold:
                probs[i] = predict(entry, s["features"])
    return probs


# --- the figures ------------------------------------------------------------------------


def log_loss(probs: Sequence[float], correct: Sequence[bool]) -> float:
    """The mean negative log-likelihood, probabilities clipped to [EPS, 1 - EPS]."""
    p = np.clip(np.asarray(probs, dtype=float), EPS, 1 - EPS)
    y = np.asarray(correct, dtype=float)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def scores(probs: Sequence[float], correct: Sequence[bool]) -> dict[str, float | None]:
    """AUROC, ECE (10 bins), Brier score and log loss of probabilities against right/wrong."""
    p = np.clip(np.asarray(probs, dtype=float), EPS, 1 - EPS)
    y = np.asarray(correct, dtype=float)
    logloss = log_loss(probs, correct)
    a, e = auroc(list(p), list(correct)), ece(list(p), list(correct))
    return {"auroc": None if a is None else round(a, 4), "ece": None if e is None else round(e, 4),
            "brier": round(float(np.mean((p - y) ** 2)), 4), "log_loss": round(logloss, 4)}  # fmt: skip


def calibrate(rows: list[dict[str, Any]], strategy: str = "council", method: str = "auto") -> dict[str, Any]:
    """The fit for one strategy's rows: the chosen method refitted on every item, with the
    out-of-fold figures of each method and of the raw confidence."""
    if method not in ("auto", *METHODS):
        raise InputError(f"Unknown calibration method {method!r}; use auto, logistic or isotonic.")
    samples = training_rows(rows, strategy)
    if len(samples) < MIN_ITEMS:
        raise InputError(
            f"Only {len(samples)} labelled items of strategy {strategy!r} with a confidence in these runs; "
            f"a calibrator needs at least {MIN_ITEMS}."
        )
    correct = [s["correct"] for s in samples]
    names = feature_names(samples)
    before = scores([s["features"]["confidence"] for s in samples], correct)
    candidates = {m: scores(out_of_fold(m, samples, names), correct) for m in METHODS}
    chosen = method if method != "auto" else min(METHODS, key=lambda m: (candidates[m]["log_loss"], METHODS.index(m)))
    entry = fit_method(chosen, samples, names)
    entry.update({
        "fitted_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "items": len(samples), "right": sum(correct),
        "datasets": {d: sum(s["dataset"] == d for s in samples) for d in sorted({s["dataset"] for s in samples})},
        "candidates": names if chosen == "logistic" else ["confidence"],
        "metrics": {"before": before, "after": candidates[chosen], "out_of_fold": candidates},
    })  # fmt: skip
    return entry


# --- the file ---------------------------------------------------------------------------


def save_calibration(council: Any, strategy: str, entry: dict[str, Any], runs: list[str], path: Path | None = None) -> Path:
    """Record `entry` for the council (by trust fingerprint) and strategy; atomic replace."""
    from ..trust import fingerprint

    path = path or calibration_path()
    try:
        data = read_calibration_file(path)
    except ValueError:
        data = {"version": 1, "councils": {}}  # a corrupt file is replaced, not merged
    key = fingerprint(council)
    slot = data["councils"].setdefault(key, {"strategies": {}})
    if not isinstance(slot.get("strategies"), dict):
        slot["strategies"] = {}
    slot["council"] = council.name
    slot["members"] = [[m.name, m.model.name] for m in council.members]
    slot["strategies"][strategy] = {**entry, "runs": runs}
    from ..councilfile import write_council_file

    return write_council_file(path, data)


def fit_and_save(run_ids: list[str], strategy: str = "council", method: str = "auto", *, out: Path | None = None) -> dict[str, Any]:
    """`manyminds eval calibrate`: fit on the runs' stored rows and save for their council."""
    import asyncio

    from ..api import resolve_council
    from ..config import load_settings
    from ..store import open_db
    from .results import load_runs
    from .store import EvalStore

    store = EvalStore(open_db())
    runs, rows = load_runs(store, run_ids)
    # The verdicts, for features added since a run stored its own (training_rows).
    verdicts = {(v["run_id"], v["dataset"], v["item_id"]): v.get("verdict")
                for v in store.items([r["id"] for r in runs], strategy=strategy, with_verdict=True)}
    rows = [{**r, "verdict": verdicts.get((r["run_id"], r["dataset"], r["item_id"]))} if r["strategy"] == strategy else r
            for r in rows]  # fmt: skip
    entry = calibrate(rows, strategy, method)
    config = runs[0]["config"]
    council = resolve_council(load_settings(), config.get("council"), config.get("models"))
    try:
        stored = [(m["name"], m["model"]) for m in (runs[0].get("snapshot") or {}).get("members", [])]
        if stored != [(m.name, m.model.name) for m in council.members]:
            raise InputError(f"The runs asked council {stored}, but {council.name!r} is now "
                             f"{[(m.name, m.model.name) for m in council.members]}; fit on runs of the current council.")
        path = save_calibration(council, strategy, entry, [r["id"] for r in runs], out)
    finally:
        asyncio.run(council.aclose())
    return {"runs": [r["id"] for r in runs], "strategy": strategy, "path": str(path), "council": council.name, **entry}

