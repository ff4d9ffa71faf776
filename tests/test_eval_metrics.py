"""Metrics, each checked against a figure worked out by hand in the comment beside it."""

from __future__ import annotations

import math

import numpy as np
import pytest

from manyminds.eval.metrics import (
    ItemResult,
    accuracy,
    auroc,
    bootstrap_ci,
    confidently_wrong_rate,
    ece,
    paired_by_item,
    paired_lift,
    reliability_bins,
    slices,
    strategy_stats,
    summarise,
)

T, F = True, False


def test_accuracy():
    assert accuracy([T, F, T, T]) == 0.75
    assert accuracy([F]) == 0.0 and accuracy((T,)) == 1.0
    with pytest.raises(ValueError):
        accuracy([])


def test_bootstrap_ci():
    assert bootstrap_ci([0.5] * 10) == (0.5, 0.5)  # no spread, no interval
    assert bootstrap_ci([1.0]) == (1.0, 1.0)
    coin = [1.0, 0.0] * 200  # p = 0.5, n = 400: normal approximation 0.5 ± 1.96·√(0.25/400) = ±0.049
    low, high = bootstrap_ci(coin, n_boot=4000, seed=1)
    assert low == pytest.approx(0.451, abs=0.01) and high == pytest.approx(0.549, abs=0.01)
    assert bootstrap_ci(coin, seed=1) == bootstrap_ci(coin, seed=1)  # seeded: reproducible
    assert bootstrap_ci(coin, seed=1) != bootstrap_ci(coin, seed=2)
    narrow, wide = bootstrap_ci(coin, level=0.8), bootstrap_ci(coin, level=0.99)
    assert wide[0] < narrow[0] < 0.5 < narrow[1] < wide[1]
    med = bootstrap_ci([1, 2, 3, 4, 100], stat=np.median, n_boot=500)
    assert 1 <= med[0] <= med[1] <= 100  # any statistic, not only the mean
    with pytest.raises(ValueError):
        bootstrap_ci([])


def test_auroc_by_hand():
    # Positives 0.9, 0.7; negatives 0.8, 0.6. Pairs won: 0.9>0.8, 0.9>0.6, 0.7>0.6; lost 0.7<0.8 → 3/4.
    assert auroc([0.9, 0.8, 0.7, 0.6], [T, F, T, F]) == 0.75
    # Positives 0.9, 0.5; negatives 0.5, 0.1: won 3 pairs, tied 1 (counts half) → 3.5/4.
    assert auroc([0.9, 0.5, 0.5, 0.1], [T, T, F, F]) == 0.875
    assert auroc([0.5, 0.5, 0.5], [T, F, F]) == 0.5  # all tied: no signal
    assert auroc([0.1, 0.9], [T, F]) == 0.0  # confident exactly when wrong
    assert auroc([0.2, 0.4], [T, T]) is None and auroc([0.2], [F]) is None  # a class is empty
    with pytest.raises(ValueError):
        auroc([0.1, 0.2], [T])


def test_ece_and_bins_by_hand():
    conf = [0.95, 0.95, 0.15, 0.15, 0.55]
    ok = [T, F, F, F, T]
    # Bin [0.9, 1]: mean 0.95, accuracy 0.5 → 2/5 · 0.45 = 0.18
    # Bin [0.1, 0.2): mean 0.15, accuracy 0 → 2/5 · 0.15 = 0.06
    # Bin [0.5, 0.6): mean 0.55, accuracy 1 → 1/5 · 0.45 = 0.09            ECE = 0.33
    assert ece(conf, ok) == pytest.approx(0.33)
    bins = reliability_bins(conf, ok)
    assert len(bins) == 10 and [b["count"] for b in bins] == [0, 2, 0, 0, 0, 1, 0, 0, 0, 2]
    assert bins[9] == {"lo": 0.9, "hi": 1.0, "count": 2, "mean_confidence": pytest.approx(0.95), "accuracy": 0.5}
    assert bins[0]["mean_confidence"] is None and bins[0]["accuracy"] is None
    # Perfectly calibrated in two bins: 0.25 right 1 time in 4, 0.75 right 3 times in 4 → 0.
    assert ece([0.25] * 4 + [0.75] * 4, [T, F, F, F, T, T, T, F]) == pytest.approx(0.0)


def test_bin_edges():
    counts = lambda cs: [b["count"] for b in reliability_bins(cs, [T] * len(cs))]
    assert counts([1.0]) == [0] * 9 + [1]  # 1.0 in the last bin
    assert counts([0.0]) == [1] + [0] * 9
    assert counts([0.3]) == [0, 0, 0, 1, 0, 0, 0, 0, 0, 0]  # an edge goes to the bin above…
    assert counts([0.7]) == [0] * 7 + [1, 0, 0]  # …even where 0.7·10 = 7.000000000000001
    assert counts([0.1 * 3]) == [0, 0, 0, 1, 0, 0, 0, 0, 0, 0]  # 0.30000000000000004
    assert [b["count"] for b in reliability_bins([0.5, 0.49], [T, F], n_bins=2)] == [1, 1]
    with pytest.raises(ValueError):
        reliability_bins([1.2], [T])


def test_confidence_none_is_left_out():
    # Only 0.9 (wrong: off by 0.9) and 0.2 (right: off by 0.8) count, half each → ECE 0.85.
    assert ece([0.9, None, 0.2], [F, T, T]) == pytest.approx(0.85)
    assert ece([None, None], [T, F]) is None
    assert sum(b["count"] for b in reliability_bins([0.9, None, 0.2], [F, T, T])) == 2


def test_confidently_wrong_by_hand():
    conf = [0.9, 0.8, 0.79, None, 0.95]
    ok = [F, F, F, F, T]
    # Wrong with confidence ≥ 0.8: the first two (0.8 counts). Out of all 5 items → 0.4.
    assert confidently_wrong_rate(conf, ok) == 0.4
    assert confidently_wrong_rate(conf, ok, threshold=0.9) == 0.2
    assert confidently_wrong_rate([None], [F]) == 0.0


def test_paired_lift():
    a, b = [T, T, F, T], [F, T, F, F]
    diff, low, high = paired_lift(a, b, n_boot=1000, seed=0)
    assert diff == 0.5  # 3/4 − 1/4
    assert 0.0 <= low <= 0.5 <= high <= 1.0
    assert paired_lift([T, F, T], [T, F, T]) == (0.0, 0.0, 0.0)
    # Pairing is what makes a small, consistent gain visible: A = B plus 3 extra right answers in
    # 100. Unpaired, each accuracy's interval is about ±10 points; paired, only the 3 disagreements
    # vary, so the interval stays within [0, 7] points.
    rng = np.random.default_rng(5)
    base = list(rng.random(100) < 0.5)
    better = list(base)
    flipped = [i for i, x in enumerate(base) if not x][:3]
    for i in flipped:
        better[i] = True
    diff, low, high = paired_lift(better, base, n_boot=2000, seed=0)
    assert diff == pytest.approx(0.03) and low >= 0.0 and high <= 0.07
    with pytest.raises(ValueError):
        paired_lift([T], [T, F])


def rec(item, strategy, correct, conf=None, *, dataset="d", category=None, tokens=100, cost=0.001, seconds=1.0,
        error=None, grade_error=None) -> ItemResult:  # fmt: skip
    return ItemResult(
        run_id="r1", item_id=item, dataset=dataset, category=category, strategy=strategy, correct=correct,
        confidence=conf, answer="x", short_answer="x", raw_text="x", grade_method="exact", grade_error=grade_error,
        tokens=tokens, cost_usd=cost, seconds=seconds, error=error,
    )  # fmt: skip


def test_strategy_stats_by_hand():
    rows = [
        rec("1", "s", T, 0.9, tokens=100, cost=0.002, seconds=1.0),
        rec("2", "s", F, 0.85, tokens=200, cost=0.004, seconds=3.0),
        rec("3", "s", T, 0.6, tokens=300, cost=0.006, seconds=2.0, grade_error="x"),
        rec("4", "s", F, None, tokens=400, cost=0.008, seconds=2.0, error="timeout"),
    ]
    s = strategy_stats(rows, n_boot=500)
    assert s["n"] == 4 and s["accuracy"] == 0.5
    assert s["ci_low"] <= 0.5 <= s["ci_high"]
    # Confidences of items 1–3: right 0.9, 0.6; wrong 0.85 → pairs 0.9>0.85 ✓, 0.6<0.85 ✗ → 0.5.
    assert s["auroc"] == 0.5 and s["n_confidence"] == 3
    # Bins: [0.8,0.9): 0.85 wrong → |0 − 0.85|·1/3; [0.9,1]: 0.9 right → 0.1·1/3; [0.6,0.7): 0.4·1/3.
    assert s["ece"] == pytest.approx((0.85 + 0.1 + 0.4) / 3)
    assert s["confidently_wrong"] == 0.25  # item 2 only, of all 4
    assert (s["n_errors"], s["n_grade_errors"]) == (1, 1)
    assert s["tokens_per_q"] == 250.0 and s["cost_per_q"] == pytest.approx(0.005) and s["seconds_per_q"] == 2.0
    rows[0].cost_usd = None
    assert strategy_stats(rows, n_boot=10)["cost_per_q"] is None  # one unknown price: no average


def test_slices_and_summarise():
    rows = [
        rec("1", "a", T, dataset="x", category="art"), rec("2", "a", F, dataset="x", category="music"),
        rec("1", "b", F, dataset="x", category="art"), rec("2", "b", F, dataset="x", category="music"),
        rec("9", "a", T, dataset="y"), rec("9", "b", T, dataset="y"),
    ]  # fmt: skip
    labels = [label for label, _ in slices(rows)]
    assert labels == ["all", "x", "y", "x / art", "x / music"]
    out = summarise(rows, n_boot=100)
    assert list(out) == labels and list(out["all"]) == ["a", "b"]
    assert out["all"]["a"]["accuracy"] == pytest.approx(2 / 3) and out["all"]["b"]["accuracy"] == pytest.approx(1 / 3)
    assert out["x / art"]["a"]["n"] == 1 and out["x / art"]["b"]["accuracy"] == 0.0
    assert out["all"]["a"]["auroc"] is None and out["all"]["a"]["ece"] is None  # no confidences
    assert [label for label, _ in slices(rows[:4])] == ["x", "x / art", "x / music"]  # one dataset: no "all"


def test_paired_by_item_aligns_on_the_item():
    rows = [rec("2", "a", T), rec("1", "a", F), rec("3", "a", T), rec("1", "b", T), rec("2", "b", F),
            rec("1", "a", T), rec("1", "b", T, dataset="other")]  # fmt: skip
    a, b = paired_by_item(rows, "a", "b")
    # Items both answered in dataset d: 2 and 1 (in a's order); "a" on item 1 counts its first record.
    assert (a, b) == ([T, F], [F, T])


def test_item_result_round_trips():
    r = rec("1", "a", T, 0.5)
    data = r.to_dict()
    assert ItemResult.from_dict({**data, "future_field": 1}) == r
    assert math.isclose(ItemResult.from_dict(data).confidence, 0.5)
