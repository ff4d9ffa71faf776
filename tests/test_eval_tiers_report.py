"""The eval report's router section: auto against each fixed tier on hand-made rows worked out
by hand, the target's verdict and its reasons, and the section in a real report of a scripted
run through the CLI."""

from __future__ import annotations

import json

from test_eval_cli import DATASET, MODELS, halueval_fetched, invoke, scripted  # noqa: F401 - fixtures

from manyminds.eval.tiers import router_section


def _rows(tier: str, correct: list[int], tokens: int, seconds: float = 1.0) -> list[dict]:
    return [{"dataset": "d", "item_id": f"i{n}", "strategy": tier, "correct": c, "total_tokens": tokens,
             "seconds": seconds} for n, c in enumerate(correct)]  # fmt: skip


def _table(lines: list[str]) -> dict[str, list[str]]:
    return {cells[0]: cells[1:] for line in lines if line.startswith("| tier:")
            for cells in [[c.strip() for c in line.strip("|").split("|")]]}  # fmt: skip


def test_auto_close_to_deep_at_a_third_of_its_tokens_meets_the_target():
    # 10 items: deep right on 6, auto on the same 6 (so +0.0), quick on 5; auto at 300 tokens, deep 900
    rows = (_rows("tier:quick", [1, 1, 1, 1, 1, 0, 0, 0, 0, 0], 100) + _rows("tier:auto", [1, 1, 1, 1, 1, 1, 0, 0, 0, 0], 300)
            + _rows("tier:deep", [1, 1, 1, 1, 1, 1, 0, 0, 0, 0], 900, 9.0) + _rows("single:x", [1] * 10, 50))  # fmt: skip
    routes = {("d", f"i{n}"): {"tier": "quick" if n < 8 else "deep", "kind": "closed" if n < 8 else "high-stakes",
                               "escalated": False} for n in range(10)}  # fmt: skip
    lines = router_section(rows, routes, n_boot=200)
    assert lines[0] == "## The router against the fixed tiers"
    table = _table(lines)
    assert list(table) == ["tier:auto", "tier:quick", "tier:deep"]  # single members are not tiers
    assert table["tier:auto"][:3] == ["60.0%", "300", "1.0"]
    assert table["tier:quick"][3].startswith("+10.0 [") and table["tier:quick"][4] == "300%"
    assert table["tier:deep"][2:] == ["9.0", "+0.0 [+0.0, +0.0]", "33%"]
    assert "Where the router sent them: 8 quick, 2 deep." in lines
    target = next(line for line in lines if line.startswith("Target"))
    assert "**met** — auto − deep +0.0 points [+0.0, +0.0], at 33% of deep's tokens." in target
    assert "Why" not in target and "Not shown" not in target  # no disagreement: the interval is a point


def test_a_target_met_on_the_estimate_but_not_at_95_percent_says_so():
    # 40 items: auto right on 20, deep on 19 (auto +2.5 points), 6 disagreements either way
    deep = [1] * 19 + [0] * 21
    auto = [1] * 16 + [0] * 3 + [1] * 4 + [0] * 17
    lines = router_section(_rows("tier:auto", auto, 100) + _rows("tier:deep", deep, 1000), {}, n_boot=500)
    target = next(line for line in lines if line.startswith("Target"))
    assert "**met** — auto − deep +2.5 points [" in target and "Why" not in target
    assert "Not shown at 95%: the interval reaches -" in target and "more items are needed" in target


def test_a_missed_target_says_which_half_and_why():
    # auto wrong where deep is right on 3 items (2 routed quick, 1 standard), right where deep is wrong on 1;
    # auto sent 6 of 10 items to deep (4 high stakes, 2 escalated), so it spends 70% of deep's tokens
    deep = [1, 1, 1, 0, 1, 1, 1, 1, 0, 0]
    auto = [0, 0, 0, 1, 1, 1, 1, 1, 0, 0]
    routes = {("d", "i0"): {"tier": "quick", "kind": "closed"}, ("d", "i1"): {"tier": "quick", "kind": "closed"},
              ("d", "i2"): {"tier": "standard", "kind": "closed", "escalated": True},
              ("d", "i3"): {"tier": "quick", "kind": "closed"}}  # fmt: skip
    routes |= {("d", f"i{n}"): {"tier": "deep", "kind": "high-stakes"} for n in range(4, 8)}
    routes |= {("d", f"i{n}"): {"tier": "deep", "kind": "maths", "escalated": True} for n in (8, 9)}
    rows = _rows("tier:auto", auto, 700) + _rows("tier:deep", deep, 1000)
    lines = router_section(rows, routes, n_boot=200)
    assert "Where the router sent them: 6 deep, 3 quick, 1 standard (3 of them escalated after quick disagreed)." in lines
    target = next(line for line in lines if line.startswith("Target"))
    assert "**not met** — auto − deep -20.0 points [" in target
    assert "deep was right where auto was wrong on 3 items (2 routed to quick, 1 routed to standard), the reverse on 1" in target
    assert "6 of 10 items went to deep (4 high-stakes, 2 escalated), each at about deep's cost" in target
    assert "at 70% of deep's tokens" in target


def test_only_items_every_tier_answered_are_compared_and_no_auto_means_no_section():
    rows = _rows("tier:auto", [1, 1, 0], 100) + _rows("tier:deep", [1, 1], 400)  # deep stopped after two items
    lines = router_section(rows, {}, n_boot=50)
    assert "**d**, the 2 items every tier answered:" in lines
    assert "Where the router sent them: 2 unknown." in lines  # a verdict without a route says so
    assert router_section(_rows("tier:deep", [1], 400) + _rows("single:x", [1], 10), {}) == []


def test_a_report_of_a_tiers_run_has_the_router_section(manyminds_home, tmp_path):
    code, out, err = invoke("eval", "run", "-d", DATASET, "-s", "tier:quick", "-s", "tier:auto", "-s", "tier:deep",
                            *MODELS, "--limit", "4", "--json")  # fmt: skip
    assert code == 0, err
    run_id = json.loads(out)["run_id"]
    assert invoke("eval", "report", run_id, "--out", str(tmp_path / "rep"))[0] == 0
    report = (tmp_path / "rep" / "report.md").read_text()
    section = report.split("## The router against the fixed tiers\n", 1)[1].split("\n## ", 1)[0]
    assert f"**{DATASET}**, the 4 items every tier answered:" in section
    assert set(_table(section.splitlines())) == {"tier:auto", "tier:quick", "tier:deep"}
    sent = next(line for line in section.splitlines() if line.startswith("Where the router sent them: "))
    assert "unknown" not in sent  # the routes were read from the stored verdicts
    assert "Target (auto within 1 point of deep's accuracy at ≤ 50% of its tokens): **" in section
