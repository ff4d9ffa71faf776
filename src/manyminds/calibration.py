"""A calibrated confidence: the probability that a verdict is right, learned from stored eval
runs (`manyminds eval calibrate`, eval/calibrate.py fits and writes calibration.json); this
module computes the features and reads and applies the fit, so asking a question never imports
the evaluation harness (nor numpy).

    features(verdict, weights) ─▶ {name: float | None}   the same at ask time and in the eval runner
    find_calibrator(council, strategy) ─▶ (entry | None, warning | None)
    apply_calibration(verdict, council)                   verdict.confidence becomes the probability
    abstain(verdict, min_confidence)                      "not sure", with the competing answers

calibration.json (user dir, else the copy shipped in the package for the bundled local council):

    {"version": 1, "councils": {FINGERPRINT: {"council": NAME, "members": [[name, model], …],
        "strategies": {STRATEGY: {"method": "logistic" | "isotonic", "fitted_at": ISO, "items": N,
            "runs": […], "datasets": […], "features": […],
            "logistic": {"intercept": b, "coef": {name: w}, "missing": {name: w}, "mean": {name: m}, "scale": {name: s}},
            "isotonic": {"x": [upper confidence of each block], "y": [probability of each block]},
            "metrics": {"before": {…}, "after": {…}}}}}}}

A feature that is absent (an endpoint without token probabilities, a verdict without a chair)
is None, never 0: the logistic fit gives it its own indicator (`missing`) and a neutral value.
"""

from __future__ import annotations

import math
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .pipeline.council import Council
    from .pipeline.verdict import Verdict

CALIBRATION_FILE = "calibration.json"
FEATURES = ("confidence", "margin", "clusters", "answered", "chair_matched", "lead_weight", "token_prob",
            "min_token_prob", "lead_token_prob", "verbal_confidence")
METHODS = ("logistic", "isotonic")


# --- features ---------------------------------------------------------------------------


def winning_cluster(verdict: "Verdict") -> Any:
    """The cluster the verdict's answer stands on: the one not listed as dissent (None when
    the answer matches no member's cluster)."""
    dissent = {tuple(d.members) for d in verdict.dissent}
    return next((c for c in verdict.agreement.clusters if tuple(c.members) not in dissent), None)


def _signal(answer: Any, name: str) -> float | None:
    """`answer.signals.<name>` (object or dict) when another part of the pipeline put it there."""
    signals = getattr(answer, "signals", None)
    if signals is None:
        return None
    value = signals.get(name) if isinstance(signals, dict) else getattr(signals, name, None)
    try:
        return None if value is None or isinstance(value, bool) else float(value)
    except (TypeError, ValueError):
        return None


def features(verdict: "Verdict", weights: dict[str, float] | None = None) -> dict[str, float | None]:
    """What the calibrator reads from a verdict (and the council's member weights):

    confidence     the winning cluster's weighted share (the raw confidence)
    margin         that share minus the runner-up cluster's share (the share itself if alone)
    clusters       how many clusters the answers formed
    answered       the share of members that answered
    chair_matched  1 if the chair's text gave the winning answer and was kept as its explanation
                   (where the vote chooses), or matched a cluster (where the chair decides);
                   0 if not; None without a chair
    lead_weight    the heaviest trust weight among the winning cluster's members; None if unknown
    token_prob     mean token probability of the winning cluster's members, where the
                   endpoints returned it (`MemberAnswer.signals`); None otherwise
    min_token_prob the lowest token probability among them (likewise)
    lead_token_prob  the token probability of the winning cluster's heaviest member(s) by trust
                   weight (their mean when several weigh the same): the one signal that carries a
                   trust-weighted vote, which the mean over every supporter dilutes with the
                   weaker members' (measured in docs/confidence.md)
    verbal_confidence  the mean of their own stated confidences, where asked and given
    """
    raw = getattr(verdict, "confidence_raw", None)  # set once calibrated: features read the raw share
    confidence = float(verdict.confidence if raw is None else raw)
    cluster = winning_cluster(verdict)
    runner_up = max((d.share for d in verdict.dissent), default=0.0)
    members = verdict.members
    chair = verdict.chair
    if chair is None or chair.status != "ok":
        chair_matched = None
    elif getattr(verdict, "explanation", None) is not None:  # the vote chose; did the chair's text stand?
        chair_matched = float(verdict.explanation == chair.text)
    else:  # the chair's text decided (council-rank, MoA): did it give a member's answer?
        chair_matched = float(cluster is not None)
    supporters = [a for a in members if cluster is not None and a.member in cluster.members]
    lead = None
    if cluster is not None and weights:
        known = [float(weights[m]) for m in cluster.members if m in weights]
        lead = max(known) if known else None
    def present(name: str, among: list[Any] = supporters) -> list[float]:
        return [v for v in (_signal(a, name) for a in among) if v is not None]

    probs, lows, verbal = present("mean_token_prob"), present("min_token_prob"), present("verbal_confidence")
    weighed = [(float((weights or {}).get(a.member, 1.0)), a) for a in supporters if a.ok]
    heaviest = max((w for w, _ in weighed), default=None)
    leads = present("mean_token_prob", [a for w, a in weighed if w == heaviest])
    return {
        "confidence": confidence,
        "margin": round(confidence - runner_up, 6),
        "clusters": float(len(verdict.agreement.clusters)),
        "answered": (sum(a.ok for a in members) / len(members)) if members else None,
        "chair_matched": chair_matched,
        "lead_weight": lead,
        "token_prob": (sum(probs) / len(probs)) if probs else None,
        "min_token_prob": min(lows) if lows else None,
        "lead_token_prob": (sum(leads) / len(leads)) if leads else None,
        "verbal_confidence": (sum(verbal) / len(verbal)) if verbal else None,
    }


# --- the fitted model, applied ----------------------------------------------------------


def predict(entry: dict[str, Any], feats: dict[str, float | None]) -> float:
    """The calibrated probability of one verdict's features under a stored fit."""
    if entry["method"] == "isotonic":
        return isotonic_predict(entry["isotonic"], float(feats["confidence"] or 0.0))
    fit = entry["logistic"]
    z = float(fit["intercept"])
    for name, w in fit["coef"].items():
        value = feats.get(name)
        if value is None:
            value = fit["mean"][name]  # neutral: standardised to 0
            z += float(fit["missing"].get(name, 0.0))
        z += float(w) * (float(value) - float(fit["mean"][name])) / float(fit["scale"][name])
    return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, z))))


def isotonic_predict(fit: dict[str, list[float]], x: float) -> float:
    """The value of the first block whose upper end is ≥ x (the last block above the top)."""
    for upper, y in zip(fit["x"], fit["y"]):
        if x <= upper:
            return float(y)
    return float(fit["y"][-1])


# --- the file ---------------------------------------------------------------------------


def calibration_path() -> Path:
    from .config import user_dir

    return user_dir() / CALIBRATION_FILE


def shipped_path() -> Path:
    return Path(str(resources.files("manyminds") / "data" / CALIBRATION_FILE))


class CalibrationFileError(ValueError):
    """calibration.json cannot be read or is not a calibration file."""


def read_calibration_file(path: Path) -> dict[str, Any]:
    """The parsed file ({"version": 1, "councils": {}} when it does not exist)."""
    from .councilfile import read_council_file

    return read_council_file(path, "calibration", CalibrationFileError)


def check_entry(entry: Any, where: str) -> dict[str, Any]:
    """A stored fit, checked well enough that `predict` cannot fail on it."""
    try:
        method = entry["method"]
        if method == "isotonic":
            fit = entry["isotonic"]
            if not fit["x"] or len(fit["x"]) != len(fit["y"]):
                raise ValueError("isotonic blocks of different lengths")
            [float(v) for v in fit["x"] + fit["y"]]
        elif method == "logistic":
            fit = entry["logistic"]
            float(fit["intercept"])
            for name, w in fit["coef"].items():
                float(w), float(fit["mean"][name]), float(fit["scale"][name])
                if float(fit["scale"][name]) == 0:
                    raise ValueError(f"scale of {name} is 0")
            [float(v) for v in fit["missing"].values()]
        else:
            raise ValueError(f"unknown method {method!r}")
        int(entry["items"])
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise CalibrationFileError(f"the calibrator in {where} is malformed ({type(exc).__name__}: {exc})") from None
    return entry


def find_calibrator(council: "Council", strategy: str) -> tuple[dict[str, Any] | None, str | None]:
    """(the fit for exactly this council and strategy, a warning) — from calibration.json in the
    user dir, else the shipped one. A corrupt file or one fitted only for other councils gives a
    warning and no fit; never raises."""
    from .trust import fingerprint

    key = fingerprint(council)
    members = [[m.name, m.model.name] for m in council.members]
    user, others = calibration_path(), ""
    for path in (user, shipped_path()):
        if not path.exists():
            continue
        try:
            data = read_calibration_file(path)
        except CalibrationFileError as exc:
            return None, f"The calibrator file is unusable ({exc}); the confidence is uncalibrated."
        entry = data["councils"].get(key)
        if entry is None:  # the user's file may hold other councils: the shipped one may hold this
            if path == user and data["councils"]:
                others = ", ".join(sorted({str((e or {}).get("council")) for e in data["councils"].values()}))
            continue
        if not isinstance(entry, dict) or not isinstance(entry.get("strategies"), dict):
            return None, f"The calibrator file is unusable ({path}: entry {key} is malformed); the confidence is uncalibrated."
        if entry.get("members") is not None and entry["members"] != members:
            return None, (f"The calibrator in {path} under fingerprint {key} was fitted for another council "
                          f"({entry['members']}); the confidence is uncalibrated.")  # fmt: skip
        fit = entry["strategies"].get(strategy)
        if fit is None:
            return None, None
        try:
            return check_entry(fit, str(path)), None
        except CalibrationFileError as exc:
            return None, f"The calibrator file is unusable ({exc}); the confidence is uncalibrated."
    if others:
        return None, (f"{user} has calibrators only for other councils ({others}), none for this one "
                      f"(fingerprint {key}); the confidence is uncalibrated.")  # fmt: skip
    return None, None


UNCALIBRATED = ("This confidence is uncalibrated: an agreement share, not a measured probability of being right "
                "(fit one from eval runs with `manyminds eval calibrate`).")  # fmt: skip


def apply_calibration(verdict: "Verdict", council: "Council", strategy: str | None = None) -> "Verdict":
    """Replace the verdict's confidence by the calibrated probability when a fit exists for
    exactly this council and strategy (`strategy`: the eval label the verdict's configuration
    was measured under, e.g. "council+trust"; default the verdict's own); otherwise say it is
    uncalibrated. Keeps the raw figure."""
    if verdict.confidence_raw is None:
        verdict.confidence_raw = verdict.confidence
    entry, warning = find_calibrator(council, strategy or verdict.strategy)
    if warning:
        verdict.warnings.append(warning)
    if entry is None:
        verdict.calibrated = False
        verdict.confidence_explanation = f"{verdict.confidence_explanation} {UNCALIBRATED}".strip()
        return verdict
    weights = {m.name: m.weight for m in council.members}
    probability = round(predict(entry, features(verdict, weights)), 4)
    verdict.confidence = probability
    verdict.calibrated = True
    verdict.calibration = {"method": entry["method"], "fitted_at": entry.get("fitted_at"), "items": int(entry["items"])}
    verdict.confidence_explanation = (
        f"Calibrated: {probability:.2f} is the probability of being right that a {entry['method']} fit on "
        f"{int(entry['items'])} labelled eval items (fitted {str(entry.get('fitted_at') or '?')[:10]}) gives this "
        f"verdict; the raw agreement share was {verdict.confidence_raw:.2f}. {verdict.confidence_explanation}"
    )
    return verdict


def abstain(verdict: "Verdict", min_confidence: float | None) -> "Verdict":
    """Below `min_confidence` the verdict answers "not sure" and lists the competing answers
    (every cluster with its share) instead; the answer it would have given is the first."""
    if min_confidence is None or verdict.confidence >= min_confidence:
        return verdict
    from .pipeline.verdict import Alternative

    winner = winning_cluster(verdict)
    raw = verdict.confidence_raw if verdict.confidence_raw is not None else verdict.confidence
    alternatives = [Alternative(answer=verdict.short_answer or (winner.answer if winner else verdict.answer),
                                members=list(winner.members) if winner else [], share=round(raw, 4))]
    alternatives += [Alternative(answer=d.answer, members=list(d.members), share=d.share)
                     for d in sorted(verdict.dissent, key=lambda d: -d.share)]  # fmt: skip
    verdict.alternatives = alternatives
    verdict.abstained = True
    kind = "calibrated" if verdict.calibrated else "uncalibrated"
    listing = "; ".join(f"{a.answer} ({a.share:.0%})" for a in verdict.alternatives) or "none"
    verdict.withheld_answer = verdict.answer
    verdict.answer = (f"Not sure: the {kind} confidence {verdict.confidence:.2f} is below the minimum "
                      f"{min_confidence:.2f}. Competing answers: {listing}.")  # fmt: skip
    verdict.short_answer = None
    return verdict
