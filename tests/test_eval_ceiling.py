"""The report's "What the members allow" lines on hand-made results worked out by hand: the best
member, the oracle, and what an equal-weight vote can gain and lose over the best member."""

from __future__ import annotations

from manyminds.eval.ceiling import ceiling_lines
from manyminds.eval.records import ItemResult
from manyminds.eval.report import write_report


def _result(strategy: str, item: int, said: str, gold: str = "A", dataset: str = "d") -> ItemResult:
    return ItemResult(run_id="r", item_id=f"i{item}", dataset=dataset, category=None, strategy=strategy,
                      correct=said == gold, confidence=None, answer=f"({said}) because", short_answer=f"{said}.",
                      raw_text=said, grade_method="choice", grade_error=None, tokens=10, cost_usd=None, seconds=0.1,
                      extra={"parsed": said})  # fmt: skip


# Gold is A on every item. Per item, what strong, weak1 and weak2 said:
ANSWERS = [
    ("A", "A", "A"),  # all right
    ("A", "B", "B"),  # the weak two agree on a wrong answer against a right best member: a loss
    ("A", "B", "C"),  # the weak two disagree: the best member's answer stands
    ("B", "A", "A"),  # the weak two agree on the right answer: a gain
    ("B", "A", "C"),  # one right, two wrong answers but different: a tie of one each, no gain
    ("B", "B", "C"),  # nobody right
    ("A", "C", "D"),
    ("A", "D", "D"),  # another loss
]


def results() -> list[ItemResult]:
    return [_result(f"single:{name}", n, said) for n, row in enumerate(ANSWERS)
            for name, said in zip(("strong", "weak1", "weak2"), row)]  # fmt: skip


def test_the_ceiling_by_hand():
    [line] = ceiling_lines(results())
    assert line.startswith("- **d** (8 items every member answered): the best member, strong, is right on 62.5% "
                           "(the others: weak1 37.5%, weak2 25.0%).")  # fmt: skip
    assert "Any member is right on 87.5% (the oracle)" in line and "more than +25.0 points" in line
    assert "although it missed (1 item)" in line and "although it was right (2 items)" in line
    assert "at most -12.5 points net" in line


def test_no_lines_without_two_members_and_only_items_all_answered():
    assert ceiling_lines([r for r in results() if r.strategy == "single:strong"]) == []
    partial = [r for r in results() if not (r.strategy == "single:weak2" and r.item_id == "i7")]
    assert "(7 items every member answered)" in ceiling_lines(partial)[0]


def test_the_report_carries_the_lines(tmp_path):
    path = write_report(results(), tmp_path / "rep", title="t", meta={"default_strategy": "council"}, n_boot=20)
    text = path.read_text()
    section = text.split("### What the members allow\n", 1)[1].split("\n## ", 1)[0]
    assert "the best member, strong, is right on 62.5%" in section
