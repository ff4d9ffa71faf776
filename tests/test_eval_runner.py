"""The eval runner on `ScriptedModel` councils and hand-made items, with the metrics worked out
by hand: accuracy, AUROC, confidently wrong, honest tokens under the cache, the k of
self-consistency, trust weights, errors that never crash a run, and resuming."""

from __future__ import annotations

import pytest
from helpers import make_council

from manyminds.errors import InputError, ModelError
from manyminds.eval.datasets import Item
from manyminds.eval.items import _halueval_yes_no, load_items, prompt_for
from manyminds.eval.metrics import summarise
from manyminds.eval.plan import expand_strategies, item_fold
from manyminds.eval.records import to_item_result
from manyminds.eval.runner import EvalConfig, EvalRunner
from manyminds.eval.store import EvalStore, UnknownEvalRun
from manyminds.store import open_db

GOLD = ["Yes", "No", "Yes", "No", "Yes", "No"]
ITEMS = [Item(id=f"t{i}", dataset="toy", question=f"Is toy question {i} true?", answers=(g,), kind="yes_no",
              category=None, incorrect=("No" if g == "Yes" else "Yes",)) for i, g in enumerate(GOLD)]  # fmt: skip


def _index(messages) -> int:
    text = messages[-1].content
    return next(i for i in range(len(GOLD)) if f"toy question {i} " in text)


def strong(messages):
    """Right on every item but the last."""
    i = _index(messages)
    right = GOLD[i] if i < 5 else ("Yes" if GOLD[i] == "No" else "No")
    return f"{right}."


def toy_council(**kw):
    return make_council({"strong": strong, "weak1": "Yes.", "weak2": "Yes."}, chair="Yes.", **kw)


async def run(strategies, items=ITEMS, store=None, council=None, **config):
    cfg = EvalConfig(datasets=["toy"], strategies=strategies, **config)
    runner = EvalRunner(council or toy_council(), cfg, {"toy": list(items)}, store=store)
    rows = await runner.run()
    return runner, rows


def by(rows, label):
    return sorted((r for r in rows if r["strategy"] == label), key=lambda r: r["item_id"])


async def test_metrics_of_majority_and_single_match_a_hand_count():
    _, rows = await run(["single", "majority"])
    assert {r["strategy"] for r in rows} == {"single:strong", "single:weak1", "single:weak2", "majority"}
    assert len(rows) == 4 * 6
    stats = summarise([to_item_result(r) for r in rows], n_boot=200)["toy"]
    # majority: weak1 and weak2 always say yes, so the vote is always yes: right on the 3 yes items
    assert stats["majority"]["accuracy"] == pytest.approx(3 / 6)
    assert stats["single:strong"]["accuracy"] == pytest.approx(5 / 6)
    # vote shares: 1.0 where strong says yes (items 0, 2, 4 right; item 5 wrong), 2/3 on items 1, 3 (wrong)
    assert [r["confidence"] for r in by(rows, "majority")] == pytest.approx([1.0, 2 / 3, 1.0, 2 / 3, 1.0, 1.0], abs=1e-4)
    # AUROC: right answers (1, 1, 1) against wrong ones (2/3, 2/3, 1): (6 wins + 3 ties / 2) / 9
    assert stats["majority"]["auroc"] == pytest.approx(7.5 / 9)
    assert stats["majority"]["confidently_wrong"] == pytest.approx(1 / 6)  # item 5, at 1.0
    # single members have no confidence: out of AUROC and calibration
    assert all(r["confidence"] is None for r in rows if r["strategy"].startswith("single:"))
    assert stats["single:strong"]["auroc"] is None and stats["single:strong"]["n_confidence"] == 0


async def test_cache_shares_calls_but_every_strategy_pays_its_own_tokens():
    council = toy_council()
    _, cached = await run(["single", "majority", "council"], council=council)
    calls_cached = sum(len(m.model.calls) for m in council.members)
    plain_council = toy_council()
    _, plain = await run(["single", "majority", "council"], council=plain_council, cache=False)
    calls_plain = sum(len(m.model.calls) for m in plain_council.members)
    assert calls_cached == 3 * 6  # each member answered each item once, for every strategy
    assert calls_plain == 3 * 3 * 6  # without the cache: singles, majority and council each asked
    key = lambda r: (r["strategy"], r["item_id"])
    assert {key(r): r["total_tokens"] for r in cached} == {key(r): r["total_tokens"] for r in plain}
    for r in by(cached, "majority"):
        singles = sum(s["total_tokens"] for s in cached if s["item_id"] == r["item_id"] and s["strategy"].startswith("single:"))
        assert r["total_tokens"] == singles  # the vote's tokens are its three members' tokens
    assert sum(r["extra"]["cached_calls"] for r in cached) == 2 * 3 * 6  # two of the three strategies were served


async def test_cache_from_an_earlier_run_serves_its_calls_and_charges_the_same_tokens(tmp_path):
    store = EvalStore(open_db(tmp_path / "eval.db"))
    first, first_rows = await run(["single", "majority"], store=store)
    council = toy_council()
    second, rows = await run(["single", "majority", "council"], store=store, council=council,
                             cache_from=[first.run_id[:12], first.run_id])  # fmt: skip
    assert second.config.cache_from == [first.run_id]  # resolved and deduplicated: the report names it exactly
    assert all(m.model.calls == [] for m in council.members)  # every member answer came from the first run
    assert council.chair_model.calls  # the council's chair was not in it, so it was asked
    key = lambda r: (r["strategy"], r["item_id"])
    old = {key(r): r for r in first_rows}
    for r in rows:
        extra = r["extra"]
        if key(r) in old:  # the same pair: the same answer, and charged the same tokens
            assert (r["answer"], r["total_tokens"]) == (old[key(r)]["answer"], old[key(r)]["total_tokens"])
            assert extra["borrowed_calls"] == extra["cached_calls"] == extra["calls"]
        else:
            assert r["strategy"] == "council" and extra["borrowed_calls"] == 3 < extra["calls"]
    # only what this run paid for is stored with it; the borrowed entries stay the first run's
    own, borrowed = store.load_cache(second.run_id), store.load_cache(first.run_id)
    assert own and not own.keys() & borrowed.keys()
    assert second.cache.borrowed == borrowed.keys()


async def test_cache_from_needs_the_cache_and_a_run_that_exists(tmp_path):
    with pytest.raises(InputError, match="--cache-from reuses calls through the call cache, which --no-cache"):
        EvalConfig(datasets=["toy"], strategies=["single"], cache=False, cache_from=["01ABC"])
    store = EvalStore(open_db(tmp_path / "eval.db"))
    with pytest.raises(UnknownEvalRun, match="No eval run with id '01NOPE'"):
        await run(["single"], store=store, cache_from=["01NOPE"])
    assert store.list_runs() == []  # refused before a run was created


async def test_self_consistency_k_matches_the_council_tokens_of_the_best_member():
    runner, rows = await run(["self-consistency"])
    assert {r["strategy"] for r in rows} >= {"council", "single:strong", "self-consistency"}  # added to choose k
    choice = runner.meta["self_consistency"]["toy"]
    council_tokens = sum(r["total_tokens"] for r in by(rows, "council")) / 6
    strong_tokens = sum(r["total_tokens"] for r in by(rows, "single:strong")) / 6
    assert choice["member"] == "strong"
    assert choice["k"] == max(1, min(16, int(council_tokens / strong_tokens + 0.5)))
    assert all(r["extra"]["params"] == {"member": "strong", "k": choice["k"]} for r in by(rows, "self-consistency"))
    assert by(rows, "self-consistency")[0]["total_tokens"] > 0


async def test_trust_weights_let_the_strong_member_win_the_vote():
    items = [Item(id=f"t{i}", dataset="toy", question=f"Is toy question {i % 6} true? ({i})", answers=(GOLD[i % 6],),
                  kind="yes_no", category=None) for i in range(24)]  # fmt: skip
    runner, rows = await run(["majority", "majority+trust"], items=items)
    acc = {lab: sum(r["correct"] for r in by(rows, lab)) / 24 for lab in ("majority", "majority+trust", "single:strong")}
    assert acc["majority"] == pytest.approx(0.5)  # two weak members outvote the strong one
    assert acc["majority+trust"] == pytest.approx(acc["single:strong"])
    table = runner.meta["trust"]
    assert set(table["folds"]) == {"0", "1"}
    for r in by(rows, "majority+trust"):
        other = table["folds"][str(1 - item_fold(r["item_id"]))]["datasets"]["toy"]["members"]
        assert r["extra"]["weights"] == {m: s["weight"] for m, s in other.items()}  # out of fold
        assert r["extra"]["weights"]["strong"] > r["extra"]["weights"]["weak1"] + r["extra"]["weights"]["weak2"]


async def test_trust_scope_chooses_which_fitted_weights_a_trust_row_votes_with():
    # strong is right on every c1 item and wrong on every c2 item; the weak members always say yes.
    # 100 items a category, so each fold's fit has the ≥ 20 a category needs for weights of its own
    items = [Item(id=f"s{i}", dataset="toy", question=f"Scoped question {i}?", answers=("Yes" if i % 2 else "No",),
                  kind="yes_no", category="c1" if i < 100 else "c2") for i in range(200)]  # fmt: skip

    def strong_by_category(messages):
        i = int(messages[-1].content.split("Scoped question ")[1].split("?")[0])
        gold = "Yes" if i % 2 else "No"
        return f"{gold}." if i < 100 else ("No." if gold == "Yes" else "Yes.")

    council = lambda: make_council({"strong": strong_by_category, "weak1": "Yes.", "weak2": "Yes."}, chair="Yes.")
    assert EvalConfig(datasets=["toy"], strategies=["majority+trust"]).trust_scope == "overall"  # what `ask` applies
    with pytest.raises(InputError, match="Unknown trust scope 'topic'"):
        EvalConfig(datasets=["toy"], strategies=["majority+trust"], trust_scope="topic")
    seen: dict[str, dict[str, dict]] = {}
    for scope in ("overall", "dataset", "category"):
        runner, rows = await run(["majority+trust"], items=items, council=council(), trust_scope=scope)
        for r in by(rows, "majority+trust"):
            other = runner.meta["trust"]["folds"][str(1 - item_fold(r["item_id"]))]
            toy = other["datasets"]["toy"]
            stats = {"overall": other["overall"], "dataset": toy["members"],
                     "category": toy["categories"].get(r["category"], toy["members"])}[scope]  # fmt: skip
            assert r["extra"]["weights"] == {m: s["weight"] for m, s in stats.items()}, (scope, r["item_id"])
            seen.setdefault(scope, {})[r["item_id"]] = r["extra"]["weights"]
    # the scopes really differ: on c1 its own category's record gives strong far more weight than
    # its record of about 50 % over both (near the floor), as the dataset's and the overall weights
    c1 = [i.id for i in items if i.category == "c1"]
    assert all(seen["category"][k]["strong"] > 2 > 0.2 > max(seen["overall"][k]["strong"], seen["dataset"][k]["strong"])
               for k in c1)  # fmt: skip


async def test_failures_and_unreadable_answers_count_as_wrong_and_the_run_goes_on(monkeypatch):
    def flaky(messages):
        if "toy question 1 " in messages[-1].content:
            raise ModelError("down", provider="scripted", model="scripted/x")
        return "banana" if "toy question 2 " in messages[-1].content else "Yes."

    council = make_council({"a": flaky, "b": flaky}, chair="Yes.")
    from manyminds.eval import graders

    real = graders.grade

    def grade(item, response, short=None):
        if item.id == "t3":
            raise RuntimeError("grader bug")
        return real(item, response, short)

    monkeypatch.setattr(graders, "grade", grade)
    _, rows = await run(["majority"], council=council)
    rows = {r["item_id"]: r for r in rows}
    assert len(rows) == 6
    assert rows["t1"]["error"]["type"] == "QuorumNotMet" and rows["t1"]["correct"] == 0
    assert rows["t2"]["correct"] == 0 and rows["t2"]["grade_error"] == "no yes or no in the response"
    assert rows["t2"]["raw_text"] == "banana"
    assert rows["t3"]["grade_method"] == "error" and "grader bug" in rows["t3"]["grade_error"]
    assert rows["t0"]["correct"] == 1


async def test_resume_after_an_interruption_stores_every_pair_once(tmp_path):
    store = EvalStore(open_db(tmp_path / "eval.db"))
    cfg = EvalConfig(datasets=["toy"], strategies=["single", "majority"], concurrency=1)
    seen = []

    def stop_after_five(progress, row):
        seen.append(row)
        if len(seen) == 5:
            raise RuntimeError("simulated crash")

    runner = EvalRunner(toy_council(), cfg, {"toy": ITEMS}, store=store, on_progress=stop_after_five)
    run_id = runner.start()
    with pytest.raises(RuntimeError, match="simulated crash"):
        await runner.run()
    assert store.get_run(run_id)["status"] == "failed"  # and its error says why
    assert store.get_run(run_id)["error"]["message"] == "simulated crash"
    before = {(r["item_id"], r["strategy"]): r for r in store.items(run_id)}
    assert len(before) == 5
    again = EvalRunner(toy_council(), cfg, {"toy": ITEMS}, store=store)
    again.start(run_id)
    await again.run()
    after = store.items(run_id)
    keys = [(r["item_id"], r["strategy"]) for r in after]
    assert len(keys) == len(set(keys)) == 6 * 4
    for r in after:
        if (r["item_id"], r["strategy"]) in before:
            assert r == before[(r["item_id"], r["strategy"])]
    assert store.get_run(run_id)["status"] == "complete"
    # resuming with other items is refused
    other = EvalRunner(toy_council(), cfg, {"toy": ITEMS[:3]}, store=store)
    with pytest.raises(InputError, match="other items"):
        other.start(run_id)


def test_bad_input_names_the_valid_choices(tmp_path):
    council = toy_council()
    with pytest.raises(InputError, match=r"Unknown strategy 'telepathy'. Valid strategies: all, .*single:strong"):
        expand_strategies(["telepathy"], council)
    with pytest.raises(InputError, match="single:nobody"):
        expand_strategies(["single:nobody"], council)
    with pytest.raises(InputError, match="--limit must be at least 1"):
        EvalConfig(datasets=["toy"], strategies=["all"], limit=0)
    with pytest.raises(InputError, match=r"Unknown dataset 'nope'. Choose one of: .*strategyqa.*halueval:yes-no"):
        load_items("nope", limit=3, seed=0)
    with pytest.raises(UnknownEvalRun, match="No eval run with id '01NOPE'"):
        EvalStore(open_db(tmp_path / "e.db")).get_run("01NOPE")


def test_all_expands_to_every_baseline_in_phase_order():
    labels = [p.label for p in expand_strategies(["all"], toy_council())]
    assert labels[:3] == ["single:strong", "single:weak1", "single:weak2"]
    assert {"majority", "council-rank", "moa", "debate", "council"} <= set(labels[3:8])
    assert set(labels[-3:]) == {"self-consistency", "council+trust", "majority+trust"}


def test_prompt_and_views():
    item = Item(id="h1", dataset="halueval", question="Who wrote Hamlet?", answers=("Shakespeare",), kind="short",
                category=None, incorrect=("Marlowe",), context="Hamlet is a play by Shakespeare.")  # fmt: skip
    view = _halueval_yes_no(item)
    assert view.kind == "yes_no" and view.dataset == "halueval:yes-no" and view.context == item.context
    shown = "Shakespeare" if view.answers == ("Yes",) else "Marlowe"
    assert f"Proposed answer: {shown}" in view.question
    # which answer was shown is the label: never a category that trust weights could be fitted on
    assert view.category is None and view.metadata["shown"].startswith("right" if shown == "Shakespeare" else "hallucinated")
    text = prompt_for(view)
    assert text.startswith("Context: Hamlet is a play") and text.endswith("Reply with yes or no.")
