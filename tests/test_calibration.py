"""The calibrator: its fits against hand computations, the features of a real verdict, the
file's bad inputs at ask time, abstention, and the risk–coverage figures."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import numpy as np
import pytest

from helpers import make_council
from manyminds.calibration import abstain, apply_calibration, features, find_calibrator, isotonic_predict, predict
from manyminds.errors import InputError
from manyminds.eval.calibrate import MIN_ITEMS, calibrate, fit_isotonic, fit_logistic, save_calibration, scores
from manyminds.eval.metrics import aurc, risk_coverage
from manyminds.eval.plan import item_fold
from manyminds.pipeline.run import run_council
from manyminds.trust import fingerprint

# --- the fits, by hand ------------------------------------------------------------------


def test_unregularised_logistic_on_one_binary_feature_is_the_two_log_odds():
    # x = 0: 1 right of 4 (p = 1/4); x = 1: 3 right of 4 (p = 3/4). The MLE is exact:
    # intercept = ln(1/3), slope = ln(3) − ln(1/3) = 2 ln 3.
    X = np.array([[0.0]] * 4 + [[1.0]] * 4)
    y = np.array([1, 0, 0, 0, 1, 1, 1, 0], dtype=float)
    w = fit_logistic(X, y, ridge=0.0)
    assert w[0] == pytest.approx(math.log(1 / 3), abs=1e-8)
    assert w[1] == pytest.approx(2 * math.log(3), abs=1e-8)


def test_ridge_logistic_solves_its_penalised_score_equations():
    X = np.array([[0.0]] * 4 + [[1.0]] * 4)
    y = np.array([1, 0, 0, 0, 1, 1, 1, 0], dtype=float)
    w = fit_logistic(X, y, ridge=1.0)
    p = 1 / (1 + np.exp(-(w[0] + w[1] * X[:, 0])))
    assert np.sum(y - p) == pytest.approx(0.0, abs=1e-9)  # the intercept is not penalised
    assert np.sum(X[:, 0] * (y - p)) == pytest.approx(1.0 * w[1], abs=1e-9)  # ∂/∂w1: Σx(y−p) = λ·w1
    assert 0 < w[1] < 2 * math.log(3)  # shrunk toward 0


def test_pool_adjacent_violators_by_hand():
    # 1 then 0 violate the order and pool into 0.5; the two 1s pool into 1.
    assert fit_isotonic([0.1, 0.2, 0.3, 0.4], [1, 0, 1, 1]) == {"x": [0.2, 0.4], "y": [0.5, 1.0]}
    # Equal x are one point (0.5 → 1/2); 0.7 → 1 then 0.9 → 0 pool into 1/2, which equals the block
    # before it, so everything is one block.
    assert fit_isotonic([0.5, 0.5, 0.9, 0.7], [1, 0, 0, 1]) == {"x": [0.9], "y": [0.5]}
    assert fit_isotonic([0.5, 0.5, 0.9, 0.7], [0, 0, 0, 1]) == {"x": [0.5, 0.9], "y": [0.0, 0.5]}
    fit = {"x": [0.2, 0.4], "y": [0.5, 1.0]}
    assert [isotonic_predict(fit, x) for x in (0.0, 0.2, 0.3, 0.9)] == [0.5, 0.5, 1.0, 1.0]


def test_logistic_prediction_with_an_absent_feature_by_hand():
    entry = {"method": "logistic", "logistic": {
        "intercept": 0.5, "coef": {"confidence": 2.0, "token_prob": 1.0}, "missing": {"token_prob": -1.0},
        "mean": {"confidence": 0.5, "token_prob": 0.8}, "scale": {"confidence": 0.25, "token_prob": 0.1}}}  # fmt: skip
    # present: z = 0.5 + 2·(0.75−0.5)/0.25 + 1·(0.9−0.8)/0.1 = 3.5
    assert predict(entry, {"confidence": 0.75, "token_prob": 0.9}) == pytest.approx(1 / (1 + math.exp(-3.5)))
    # absent: the mean (0) plus the indicator's weight: z = 0.5 + 2 − 1 = 1.5, not the value of token_prob = 0
    assert predict(entry, {"confidence": 0.75, "token_prob": None}) == pytest.approx(1 / (1 + math.exp(-1.5)))


def test_scores_by_hand():
    s = scores([0.9, 0.2], [True, False])
    assert s["brier"] == pytest.approx((0.01 + 0.04) / 2)
    assert s["log_loss"] == pytest.approx(-(math.log(0.9) + math.log(0.8)) / 2, abs=1e-4)
    assert s["auroc"] == 1.0


def test_risk_coverage_and_aurc_by_hand():
    conf, right = [0.9, 0.8, 0.7, 0.6], [True, False, True, False]
    points = risk_coverage(conf, right)
    assert [p["risk"] for p in points] == pytest.approx([0, 1 / 2, 1 / 3, 1 / 2])
    assert aurc(conf, right) == pytest.approx((0 + 1 / 2 + 1 / 3 + 1 / 2) / 4)
    # Ties are kept together, and an item without a confidence is left out.
    tied = risk_coverage([0.5, 0.5, 0.2, None], [True, False, False, True])
    assert [v for p in tied for v in (p["coverage"], p["risk"])] == pytest.approx([2 / 3, 0.5, 1.0, 2 / 3])
    assert aurc([0.5, 0.5, 0.2, None], [True, False, False, True]) == pytest.approx(2 / 3 * 0.5 + 1 / 3 * 2 / 3)
    assert aurc([None], [True]) is None


# --- training data ----------------------------------------------------------------------


def _rows(n: int, *, with_features: bool = True, strategy: str = "council") -> list[dict]:
    rows = []
    for i in range(n):
        conf = [1 / 3, 2 / 3, 1.0][i % 3]
        correct = i % 3 != 0 or i % 6 == 0  # right at 2/3 and 1; half right at 1/3
        extra = {"features": {"confidence": conf, "margin": conf - 1 / 3, "clusters": 3 - i % 3, "answered": 1.0,
                              "chair_matched": 1.0, "lead_weight": 1.0, "token_prob": None}} if with_features else {}
        rows.append({"item_id": f"item-{i}", "dataset": "d", "strategy": strategy, "confidence": conf,
                     "correct": int(correct), "extra": extra})  # fmt: skip
    return rows


def test_fewer_than_fifty_labelled_items_are_refused_with_the_count():
    rows = _rows(49) + _rows(30, strategy="majority") + [{**_rows(1)[0], "item_id": "x", "confidence": None}]
    with pytest.raises(InputError, match=r"Only 49 labelled items of strategy 'council'.*at least 50"):
        calibrate(rows)
    assert MIN_ITEMS == 50


def test_isotonic_fit_is_the_accuracy_per_confidence_and_out_of_fold_by_item_id():
    rows = _rows(60)
    entry = calibrate(rows, method="isotonic")
    assert entry["items"] == 60 and entry["right"] == 50 and entry["datasets"] == {"d": 60}
    assert entry["isotonic"] == {"x": [1 / 3, 1.0], "y": [0.5, 1.0]}  # 1/3 → 10 of 20 right; 2/3 and 1 always right
    # Out of fold: each half is scored by the fit on the other half (not on itself).
    folds = [item_fold(r["item_id"]) for r in rows]
    assert 0 < sum(folds) < 60
    assert entry["metrics"]["before"]["log_loss"] > entry["metrics"]["after"]["log_loss"]


def test_auto_chooses_the_lower_out_of_fold_log_loss_and_old_rows_use_only_the_confidence():
    entry = calibrate(_rows(60))
    oof = entry["metrics"]["out_of_fold"]
    assert entry["method"] == min(oof, key=lambda m: oof[m]["log_loss"])
    logistic = calibrate(_rows(60), method="logistic")
    assert logistic["candidates"] == ["confidence", "margin", "clusters"]  # constant and never-present ones dropped
    assert logistic["features"] and set(logistic["features"]) <= set(logistic["candidates"])
    assert set(logistic["logistic"]["coef"]) == set(logistic["features"])
    old = calibrate(_rows(30) + _rows(30, with_features=False)[:30], method="logistic")
    assert old["features"] == old["candidates"] == ["confidence"]
    with pytest.raises(InputError, match="Unknown calibration method"):
        calibrate(_rows(60), method="magic")


def _noisy_rows(n: int, seed: int = 7) -> list[dict]:
    """`signal` decides right and wrong (through a logistic link); `noise_*` are independent of it."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        signal = float(rng.uniform())
        correct = bool(rng.uniform() < 1 / (1 + math.exp(-8 * (signal - 0.5))))
        feats = {"confidence": float(rng.uniform()), "margin": float(rng.uniform()), "clusters": float(rng.integers(1, 4)),
                 "token_prob": float(rng.uniform()), "lead_token_prob": signal}  # fmt: skip
        rows.append({"item_id": f"n-{i}", "dataset": "d", "strategy": "council", "confidence": feats["confidence"],
                     "correct": int(correct), "extra": {"features": feats}})  # fmt: skip
    return rows


def test_the_logistic_fit_selects_the_feature_that_carries_the_signal_and_leaves_out_noise():
    entry = calibrate(_noisy_rows(300), method="logistic")
    assert entry["candidates"] == ["confidence", "margin", "clusters", "token_prob", "lead_token_prob"]
    assert entry["features"] == ["lead_token_prob"]
    oof = entry["metrics"]["after"]
    assert oof["auroc"] > 0.75 and oof["log_loss"] < entry["metrics"]["out_of_fold"]["isotonic"]["log_loss"]


def test_out_of_fold_figures_select_features_again_inside_each_half(monkeypatch):
    import manyminds.eval.calibrate as fitting

    seen: list[set[str]] = []
    real = fitting.select_features
    monkeypatch.setattr(fitting, "select_features", lambda samples, names: seen.append({s["item_id"] for s in samples}) or real(samples, names))
    rows = _noisy_rows(120)
    fitting.calibrate(rows, method="logistic")
    halves = [{r["item_id"] for r in rows if item_fold(r["item_id"]) == f} for f in (0, 1)]
    # Each held-out half is scored by a selection that saw only the other half; the last is the final fit on all.
    assert seen[:2] == [halves[1], halves[0]] and seen[-1] == halves[0] | halves[1]


async def test_a_feature_newer_than_the_stored_row_is_computed_from_its_stored_verdict():
    council = make_council({"a": "Paris", "b": "Paris", "c": "Lyon"}, chair="Paris.")
    verdict = await run_council("What is the capital of France?", council)
    stored = verdict.model_dump(mode="json")
    for m, p in zip(stored["members"], (0.9, 0.6, 0.2)):
        m["signals"] = {"mean_token_prob": p, "min_token_prob": p}
    rows = _rows(60)
    for r in rows:  # written before lead_token_prob existed: the stored features lack it
        r["verdict"], r["extra"]["weights"] = stored, {"a": 2.0, "b": 1.0, "c": 1.0}
    entry = calibrate(rows, method="logistic")
    assert "lead_token_prob" not in entry["candidates"]  # the same value on every row says nothing…
    from manyminds.eval.calibrate import recomputed_features, training_rows

    feats = training_rows(rows, "council")[0]["features"]
    assert feats["lead_token_prob"] == pytest.approx(0.9)  # …but it is a's, the heaviest supporter's
    assert feats["confidence"] == rows[0]["extra"]["features"]["confidence"]  # what was stored stands
    assert recomputed_features({"verdict": {"not": "a verdict"}}) == {}


# --- features of a real verdict ---------------------------------------------------------


async def test_features_of_a_council_verdict():
    council = make_council({"a": "Paris", "b": "Paris", "c": "Lyon"}, chair="The answer is Paris.", weights={"a": 2.0})
    verdict = await run_council("What is the capital of France?", council)
    f = features(verdict, council.weights)
    assert f["confidence"] == pytest.approx(3 / 4, abs=1e-4)  # weight 2 + 1 of 4
    assert f["margin"] == pytest.approx(3 / 4 - 1 / 4, abs=1e-4)
    assert f["clusters"] == 2 and f["answered"] == 1.0 and f["chair_matched"] == 1.0
    assert f["lead_weight"] == 2.0
    assert f["token_prob"] is None and f["min_token_prob"] is None  # no token probabilities: absent, not 0
    assert f["lead_token_prob"] is None
    assert features(verdict)["lead_weight"] is None


async def test_token_probability_is_read_from_member_signals_when_present():
    council = make_council({"a": "Paris", "b": "Paris", "c": "Lyon"}, chair="Paris.")
    verdict = await run_council("What is the capital of France?", council)
    members = [SimpleNamespace(member=m.member, ok=m.ok, signals=s) for m, s in
               zip(verdict.members, [{"mean_token_prob": 0.9, "min_token_prob": 0.5, "verbal_confidence": None},
                                     SimpleNamespace(mean_token_prob=0.7, min_token_prob=0.2, verbal_confidence=True),
                                     {"mean_token_prob": 0.1, "min_token_prob": 0.01, "verbal_confidence": 0.9}])]  # fmt: skip
    fake = verdict.model_construct(**{**dict(verdict), "members": members})
    f = features(fake)
    assert f["token_prob"] == pytest.approx(0.8)  # the supporters a and b, not the dissenter c
    assert f["lead_token_prob"] == pytest.approx(0.8)  # equal weights: every supporter is the lead
    assert features(fake, {"a": 1.0, "b": 3.0, "c": 5.0})["lead_token_prob"] == pytest.approx(0.7)  # b outweighs a
    assert f["min_token_prob"] == pytest.approx(0.2)
    assert f["verbal_confidence"] is None  # not given by a; a bool from b is not a number


# --- the file at ask time ---------------------------------------------------------------


def _fit() -> dict:
    return calibrate(_rows(60), method="isotonic")


async def test_a_fitted_calibrator_replaces_the_confidence_and_keeps_the_raw(manyminds_home):
    council = make_council({"a": "Paris", "b": "Paris", "c": "Lyon"}, chair="Paris.")
    save_calibration(council, "council", _fit(), ["RUN"])
    verdict = apply_calibration(await run_council("What is the capital of France?", council), council)
    assert verdict.calibrated and verdict.confidence_raw == pytest.approx(2 / 3, abs=1e-4)
    assert verdict.confidence == 1.0  # 2/3 lies in the block above 1/3
    assert verdict.calibration["method"] == "isotonic" and verdict.calibration["items"] == 60
    assert verdict.confidence_explanation.startswith("Calibrated: 1.00")
    assert not verdict.warnings or all("calibrat" not in w for w in verdict.warnings)


async def test_no_file_says_uncalibrated_without_a_warning(manyminds_home):
    council = make_council({"a": "Paris", "b": "Paris", "c": "Lyon"}, chair="Paris.")
    verdict = apply_calibration(await run_council("What is the capital of France?", council), council)
    assert not verdict.calibrated and verdict.confidence == pytest.approx(2 / 3, abs=1e-4)
    assert "uncalibrated" in verdict.confidence_explanation
    assert not any("calibrat" in w for w in verdict.warnings)


@pytest.mark.parametrize("content, message", [
    ("{not json", "The calibrator file is unusable (cannot read"),
    ('["a list"]', 'not a manyminds calibration file'),
])  # fmt: skip
async def test_a_corrupt_file_warns_and_stays_uncalibrated(manyminds_home, content, message):
    council = make_council({"a": "Paris", "b": "Paris", "c": "Lyon"}, chair="Paris.")
    (manyminds_home / "calibration.json").write_text(content)
    verdict = apply_calibration(await run_council("What is the capital of France?", council), council)
    assert not verdict.calibrated and verdict.confidence == pytest.approx(2 / 3, abs=1e-4)
    assert any(message in w for w in verdict.warnings)


async def test_a_malformed_entry_warns_and_stays_uncalibrated(manyminds_home):
    council = make_council({"a": "Paris", "b": "Paris", "c": "Lyon"}, chair="Paris.")
    broken = {**_fit(), "isotonic": {"x": [0.5], "y": []}}
    save_calibration(council, "council", broken, ["RUN"])
    verdict = apply_calibration(await run_council("What is the capital of France?", council), council)
    assert not verdict.calibrated and any("malformed" in w for w in verdict.warnings)


async def test_a_file_fitted_for_another_council_warns(manyminds_home):
    other = make_council({"x": "Paris", "y": "Lyon"}, chair="Paris.")
    save_calibration(other, "council", _fit(), ["RUN"])
    council = make_council({"a": "Paris", "b": "Paris", "c": "Lyon"}, chair="Paris.")
    verdict = apply_calibration(await run_council("What is the capital of France?", council), council)
    assert not verdict.calibrated and verdict.confidence == pytest.approx(2 / 3, abs=1e-4)
    assert any("only for other councils" in w and fingerprint(council) in w for w in verdict.warnings)
    # An entry under this council's fingerprint whose members say otherwise (edited, copied) is refused too.
    data = json.loads((manyminds_home / "calibration.json").read_text())
    data["councils"][fingerprint(council)] = data["councils"].pop(fingerprint(other))
    (manyminds_home / "calibration.json").write_text(json.dumps(data))
    assert "fitted for another council" in find_calibrator(council, "council")[1]
    # A calibrator for another strategy of this council is not used for this one.
    (manyminds_home / "calibration.json").unlink()
    save_calibration(council, "majority", _fit(), ["RUN"])
    assert find_calibrator(council, "majority")[0] is not None and find_calibrator(council, "council") == (None, None)


async def test_a_trust_weighted_default_is_calibrated_only_by_a_fit_of_that_configuration(manyminds_home, monkeypatch):
    """The learned default "council+trust" runs as the council strategy with trust weights: its
    confidence is the weighted share, so the plain vote's fit must not calibrate it."""
    from manyminds.api import run_request
    from manyminds.eval.trust import fit_reliability, save_trust
    from manyminds.request import AskRequest

    council = make_council({"a": "Paris", "b": "Paris", "c": "Lyon"}, chair="Paris.")
    singles = [{"strategy": f"single:{m}", "dataset": "d", "item_id": f"d-{i}", "category": None, "correct": c}
               for m, right in (("a", 9), ("b", 6), ("c", 5)) for i, c in enumerate([1] * right + [0] * (10 - right))]
    save_trust(council, fit_reliability(singles, answers={"d": 2}), {"chosen": "council+trust", "sentences": []}, ["T"])
    monkeypatch.setattr("manyminds.api.resolve_council", lambda *a, **k: council)
    save_calibration(council, "council", _fit(), ["PLAIN"])

    verdict = await run_request(AskRequest(question="What is the capital of France?"), store=False)
    assert any("council+trust" in w for w in verdict.warnings)  # the learned default ran
    assert not verdict.calibrated and "uncalibrated" in verdict.confidence_explanation

    save_calibration(council, "council+trust", calibrate(_rows(60, strategy="council+trust"), "council+trust", method="logistic"), ["TRUST"])
    verdict = await run_request(AskRequest(question="What is the capital of France?"), store=False)
    assert verdict.calibrated and verdict.calibration["method"] == "logistic"
    assert verdict.confidence != verdict.confidence_raw
    named = await run_request(AskRequest(question="What is the capital of France?", strategy="council"), store=False)
    assert named.calibrated and named.calibration["method"] == "isotonic"  # the plain vote keeps its own fit


# --- abstention -------------------------------------------------------------------------


async def test_abstaining_lists_the_competing_answers_with_their_shares():
    council = make_council({"a": "Paris", "b": "Paris", "c": "Lyon"}, chair="Paris.")
    verdict = await run_council("What is the capital of France?", council)
    kept = abstain(verdict.model_copy(deep=True), 0.6)
    assert not kept.abstained and kept.short_answer == "Paris"
    out = abstain(verdict, 0.9)
    assert out.abstained and out.short_answer is None and out.withheld_answer
    assert [(a.answer, a.members) for a in out.alternatives] == [("Paris", ["a", "b"]), ("Lyon", ["c"])]
    assert [a.share for a in out.alternatives] == pytest.approx([2 / 3, 1 / 3], abs=1e-4)
    assert out.answer.startswith("Not sure: the uncalibrated confidence 0.67 is below the minimum 0.90")


# --- the shipped calibrator -------------------------------------------------------------


async def test_the_shipped_file_is_used_unless_the_user_dir_has_one(manyminds_home, tmp_path, monkeypatch):
    import manyminds.calibration as calibration

    council = make_council({"a": "Paris", "b": "Paris", "c": "Lyon"}, chair="Paris.")
    shipped = tmp_path / "shipped.json"
    save_calibration(council, "council", _fit(), ["SHIPPED"], path=shipped)
    monkeypatch.setattr(calibration, "shipped_path", lambda: shipped)
    assert find_calibrator(council, "council")[0]["runs"] == ["SHIPPED"]
    # The user's file with only another council: the shipped fit still applies to this one.
    save_calibration(make_council({"x": "Paris", "y": "Lyon"}), "council", _fit(), ["OTHER"])
    assert find_calibrator(council, "council")[0]["runs"] == ["SHIPPED"]
    # The user's own fit for this council wins.
    save_calibration(council, "council", calibrate(_rows(60), method="logistic"), ["MINE"])
    entry, warning = find_calibrator(council, "council")
    assert entry["runs"] == ["MINE"] and entry["method"] == "logistic" and warning is None


def test_the_shipped_calibrators_fit_the_bundled_local_councils(manyminds_home):
    from manyminds.api import resolve_council
    from manyminds.calibration import check_entry, read_calibration_file, shipped_path
    from manyminds.config import load_settings

    path = shipped_path()
    if not path.exists():
        pytest.skip("no calibrator shipped in this build")
    data = read_calibration_file(path)
    settings = load_settings()
    bundled = {fingerprint(c): c for c in (resolve_council(settings, n) for n in ("local", "local-plus"))}
    assert fingerprint(resolve_council(settings, "local")) in data["councils"]  # the default council has one
    for key, entry in data["councils"].items():
        assert key in bundled, key  # an entry no bundled council matches would never be used
        council = bundled[key]
        assert entry["members"] == [[m.name, m.model.name] for m in council.members]
        fit = check_entry(entry["strategies"]["council"], str(path))
        assert fit["items"] >= MIN_ITEMS and fit["runs"] and fit["datasets"]
        assert find_calibrator(council, "council")[0] == fit
        for strategy, fitted in entry["strategies"].items():  # e.g. the effort tiers of local-plus
            assert find_calibrator(council, strategy)[0] == check_entry(fitted, str(path)), strategy
            assert fitted["items"] >= MIN_ITEMS and fitted["runs"]
