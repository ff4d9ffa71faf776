"""The report on a hand-built result list: files, valid images, relative links, and table figures
that match both the metrics and arithmetic done by hand."""

from __future__ import annotations

import json
import re

import pytest

from manyminds.eval.metrics import ItemResult, bootstrap_ci, paired_lift, summarise
from manyminds.eval.report import lifts, write_report

T, F = True, False
# Four items of one dataset: 1 and 2 in category A, 3 and 4 in B.
PLAN = {
    #                        correct          confidence            tokens cost
    "single:x":             ([T, T, F, F], [None] * 4,            100, 0.001),
    "single:y":             ([T, F, T, F], [None] * 4,            120, 0.001),
    "self-consistency":     ([T, T, T, F], [0.9, 0.8, 0.7, 0.6],  500, 0.005),
    "manyminds":            ([T, F, F, F], [0.9, 0.9, 0.2, 0.2],  900, None),
}  # fmt: skip
META = {"models": ["x", "y"], "datasets": ["d1"], "limit": 4, "seed": 0, "command": "manyminds eval run d1 --limit 4",
        "default_strategy": "manyminds"}  # fmt: skip


def results() -> list[ItemResult]:
    out = []
    for strategy, (correct, conf, tokens, cost) in PLAN.items():
        for n in range(4):
            out.append(ItemResult(
                run_id="r1", item_id=f"d1-{n + 1}", dataset="d1", category="A" if n < 2 else "B",
                strategy=strategy, correct=correct[n], confidence=conf[n], answer="a", short_answer="a",
                raw_text="a", grade_method="exact", grade_error=None, tokens=tokens, cost_usd=cost, seconds=1.0,
            ))  # fmt: skip
    return out


@pytest.fixture
def report(tmp_path):
    path = write_report(results(), tmp_path / "out", title="Hand-built", meta=META)
    return path, path.read_text()


def row(text: str, section: str, strategy: str) -> list[str]:
    """The cells of `strategy`'s row in the table under the heading `### section`."""
    block = text.split(f"### {section}\n", 1)[1].split("\n### ", 1)[0].split("\n## ", 1)[0]
    for line in block.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if cells and cells[0] == strategy:
            return cells
    raise AssertionError(f"no row for {strategy} under {section}")


def test_files_and_images(report):
    path, text = report
    out = path.parent
    assert path.name == "report.md"
    for name in ("reliability.png", "accuracy_tokens.png"):
        data = (out / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
        import matplotlib.image

        height, width, _ = matplotlib.image.imread(out / name).shape
        assert width > 300 and height > 300
    # Links are relative, so the directory can move.
    assert "![Reliability diagram](reliability.png)" in text
    assert "![Accuracy against tokens per question](accuracy_tokens.png)" in text
    assert str(out) not in text
    summary = json.loads((out / "summary.json").read_text())
    assert summary["slices"]["d1"]["manyminds"]["accuracy"] == 0.25


def test_header_shows_meta(report):
    _, text = report
    assert text.startswith("# Hand-built\n")
    assert "- **Models**: x, y" in text and "- **Limit**: 4" in text and "- **Seed**: 0" in text
    assert "- **Command**: `manyminds eval run d1 --limit 4`" in text
    assert "exact 16" in text


def test_table_figures_by_hand(report):
    _, text = report
    low, high = bootstrap_ci([1.0, 0.0, 0.0, 0.0], seed=0)
    # manyminds on d1: 1 of 4 right. AUROC: the right answer (0.9) against the wrong ones (0.9 tie = ½,
    # 0.2, 0.2) → 2.5/3 = 0.833. ECE: bin 0.9 — 2 items, accuracy ½, off by 0.4; bin 0.2 — 2 items,
    # accuracy 0, off by 0.2 → ½·0.4 + ½·0.2 = 0.300. Confidently wrong: the 0.9 that is wrong → 1/4.
    assert row(text, "d1", "manyminds") == [
        "manyminds", "4", f"25.0% [{100 * low:.1f}%–{100 * high:.1f}%]", "0.833", "0.300", "25.0%", "900", "n/a", "1.00",
    ]  # fmt: skip
    # self-consistency: 3 of 4; every right answer above the wrong one → AUROC 1. ECE: four bins of
    # one item, off by 0.1, 0.2, 0.3 (right at 0.9, 0.8, 0.7) and 0.6 (wrong at 0.6) → 1.2/4 = 0.300.
    sc = row(text, "d1", "self-consistency")
    assert sc[1:3] == ["4", sc[2]] and sc[2].startswith("75.0% [") and sc[3:] == ["1.000", "0.300", "0.0%", "500",
                                                                                 "$0.0050", "1.00"]  # fmt: skip
    assert row(text, "d1", "single:x")[2].startswith("50.0% [") and row(text, "d1", "single:x")[3:5] == ["n/a", "n/a"]
    # Category slices: A holds items 1–2, B items 3–4.
    assert row(text, "d1 / A", "single:x")[1:3] == ["2", "100.0% [100.0%–100.0%]"]
    assert row(text, "d1 / B", "single:y")[2].startswith("50.0% [")
    # And the same figures as the metrics module gives.
    stats = summarise(results())["d1"]["manyminds"]
    assert stats["auroc"] == pytest.approx(2.5 / 3) and stats["ece"] == pytest.approx(0.3)


def test_lifts_by_hand(report):
    _, text = report
    # Best single member on d1: single:x and single:y tie at 50%; the first name wins → single:x.
    # manyminds − single:x per item: 0, −1, 0, 0 → −25 points.
    mean, low, high = paired_lift([T, F, F, F], [T, T, F, F], seed=0)
    assert mean == -0.25
    line = next(l for l in text.splitlines() if l.startswith("| d1 | manyminds | single:x |"))
    assert line == f"| d1 | manyminds | single:x | 4 | -25.0 [{100 * low:+.1f}, {100 * high:+.1f}] |"
    # Over self-consistency: manyminds − sc per item: 0, −1, −1, 0 → −50 points.
    assert "| d1 | manyminds | self-consistency | 4 | -50.0 [" in text
    assert "| d1 | single:y | self-consistency | 4 | -25.0 [" in text
    assert "### Over the best single member" in text and "### Over self-consistency" in text
    assert not re.search(r"\| single:x \| single:x \|", text)  # no strategy against itself


def test_flags_where_the_default_falls_short(report):
    _, text = report
    flags = text.split("## Where the default strategy falls short\n", 1)[1].split("\n## ", 1)[0].split("\n### ", 1)[0]
    sentences = [l for l in flags.splitlines() if l.startswith("- ")]
    # d1: 25% against single:x's 50%. A: 50% against single:x's 100%. B: 0% against single:y's 50%.
    assert len(sentences) == 3
    assert sentences[0].startswith("- On **d1**, manyminds (25.0%) scores below the best single member, single:x (50.0%)")
    assert "On **d1 / A**, manyminds (50.0%)" in sentences[1] and "single:x (100.0%)" in sentences[1]
    assert "On **d1 / B**, manyminds (0.0%)" in sentences[2] and "single:y (50.0%)" in sentences[2]
    assert all("within noise" in s or "clear shortfall" in s for s in sentences)


def test_extra_baselines_and_no_default(tmp_path):
    text = write_report(results(), tmp_path, title="t", meta={"seed": 1},
                        baselines={"majority vote": "single:y"}).read_text()  # fmt: skip
    assert "### Over majority vote" in text and "| d1 | manyminds | single:y | 4 | -25.0 [" in text
    assert "No default strategy was named" in text


def test_without_confidences_or_baselines(tmp_path):
    only = [r for r in results() if r.strategy == "single:x"]
    for r in only:
        r.strategy = "plain"
    text = write_report(only, tmp_path, title="t", meta={"default_strategy": "plain"}).read_text()
    assert "no reliability diagram" in text and not (tmp_path / "reliability.png").exists()
    assert (tmp_path / "accuracy_tokens.png").exists()
    assert "no lift to show" in text and "No slice has both plain and a single-member baseline" in text
    with pytest.raises(ValueError):
        write_report([], tmp_path, title="t", meta={})


def test_lifts_pair_only_shared_items():
    rows = results()
    rows = [r for r in rows if not (r.strategy == "manyminds" and r.item_id == "d1-2")]
    out = lifts(rows, summarise(rows, n_boot=50), n_boot=50)
    mine = next(r for r in out if r["slice"] == "d1" and r["strategy"] == "manyminds" and r["baseline"] == "single:x")
    # Items 1, 3, 4 only: manyminds T, F, F against single:x T, F, F → 0.
    assert mine["n"] == 3 and mine["lift"] == 0.0


def test_risk_coverage_table_and_aurc_by_hand(report):
    path, text = report
    section = text.split("## Risk against coverage (abstention)\n", 1)[1].split("\n## ", 1)[0]
    cells = {line.strip("|").split("|")[0].strip(): [c.strip() for c in line.strip("|").split("|")]
             for line in section.splitlines() if line.startswith("| ")}  # fmt: skip
    # self-consistency: 0.9 0.8 0.7 0.6 with T T T F → risks 0, 0, 0, 1/4 → AURC (0+0+0+0.25)/4
    sc = cells["self-consistency"]
    assert sc[1:4] == ["4", "0.062", "25.0%"]
    # 100%, 90% and 80% are reached only by keeping all 4; 70% by keeping the top 3 (75%), all right.
    assert sc[4:8] == ["25.0% (100%)", "25.0% (100%)", "25.0% (100%)", "0.0% (75%)"]
    # manyminds: ties 0.9 0.9 (T F) then 0.2 0.2 (F F) → 1/2 at coverage 1/2, 3/4 at 1 → AURC 0.5·0.5 + 0.5·0.75
    assert cells["manyminds"][1:4] == ["4", "0.625", "75.0%"]
    assert "single:x" not in cells  # no confidence, no curve
    assert (path.parent / "risk_coverage.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "![Risk against coverage](risk_coverage.png)" in text
    summary = json.loads((path.parent / "summary.json").read_text())
    assert summary["slices"]["d1"]["manyminds"]["aurc"] == pytest.approx(0.625)


def test_the_reproduce_command_keeps_the_trust_settings():
    from manyminds.eval.results import command_for

    base = {"datasets": ["mmlu"], "strategies": ["council+trust"], "council": "local-plus", "limit": 300, "seed": 1}
    assert command_for({**base, "trust_scope": "overall"}).endswith("--seed 1 --concurrency 4")  # the default: unsaid
    cmd = command_for({**base, "trust_from": ["RUN_A", "RUN_B"], "trust_scope": "dataset"})
    assert "--trust-from RUN_A --trust-from RUN_B --trust-scope dataset" in cmd
    # a run stored before the option existed voted per category: its command says so
    assert "--trust-scope category" in command_for(base)
