"""Trust learned from evidence: reliability with shrinkage, log-odds weights, out-of-fold use,
the default rule, and trust.json (worked out by hand)."""

from __future__ import annotations

import json
import math

import pytest
from helpers import make_council

from manyminds.errors import InputError
from manyminds.eval.trust import default_rule, fit_reliability, fit_trust_table, save_trust, weight_of, weights_for
from manyminds.pipeline.run import run_council
from manyminds.trust import apply_learned, apply_weights, fingerprint, learned_trust


def rows(member: str, dataset: str, results: list[int], category: str | None = None, start: int = 0) -> list[dict]:
    return [{"strategy": f"single:{member}", "dataset": dataset, "item_id": f"{dataset}-{start + i}",
             "category": category, "correct": c} for i, c in enumerate(results)]  # fmt: skip


def test_weight_is_log_odds_with_a_floor():
    assert weight_of(0.75) == pytest.approx(math.log(3), abs=1e-4)
    assert weight_of(0.5) == 0.05 and weight_of(0.2) == 0.05  # no better than chance: the floor
    # with 10 possible answers a 30 % member is far better than chance
    assert weight_of(0.3, 10) == pytest.approx(math.log(0.3 / 0.7) + math.log(9), abs=1e-4)


def test_reliability_is_shrunk_toward_chance():
    data = rows("a", "d1", [1] * 8 + [0] * 2) + rows("a", "d2", [1, 1]) + rows("b", "d1", [0] * 10) + rows("b", "d2", [1, 1])
    table = fit_reliability(data, answers={"d1": 2, "d2": 2})
    # overall: Beta(1, 1) posterior mean
    assert table["overall"]["a"]["reliability"] == pytest.approx((10 + 1) / (12 + 2), abs=1e-4)
    assert table["overall"]["b"]["reliability"] == pytest.approx((2 + 1) / (12 + 2), abs=1e-4)
    # per dataset: 10 pseudo-items at chance (1/K = 0.5 for yes/no)
    assert table["datasets"]["d1"]["members"]["a"]["reliability"] == pytest.approx((8 + 5) / (10 + 10), abs=1e-4)
    # two right answers out of two do not make b a perfect member on d2: (2 + 5) / 12
    assert table["datasets"]["d2"]["members"]["b"]["reliability"] == pytest.approx(7 / 12, abs=1e-4)
    assert table["datasets"]["d2"]["members"]["b"]["weight"] == pytest.approx(math.log(7 / 5), abs=1e-4)
    assert table["datasets"]["d1"]["members"]["b"]["weight"] == 0.05  # below chance: the floor
    assert table["datasets"]["d1"]["members"]["a"]["accuracy"] == 0.8


def test_nothing_right_on_open_questions_earns_no_weight_there():
    # yes/no at 60 %, open questions 0 of 10: the open slice must not lend the member trust
    data = rows("a", "yn", [1] * 6 + [0] * 4) + rows("a", "open", [0] * 10)
    table = fit_reliability(data, answers={"yn": 2, "open": 10})
    assert table["datasets"]["open"]["members"]["a"]["reliability"] == pytest.approx(1 / 20, abs=1e-4)
    assert table["datasets"]["open"]["members"]["a"]["weight"] == 0.05
    assert table["datasets"]["yn"]["members"]["a"]["weight"] > 0.05


def test_categories_get_their_own_weights_only_with_enough_items():
    data = (rows("a", "d", [1] * 20, "big") + rows("b", "d", [0] * 20, "big")
            + rows("a", "d", [0] * 5, "small", start=20) + rows("b", "d", [1] * 5, "small", start=20))  # fmt: skip
    table = fit_reliability(data, answers={"d": 2})
    assert set(table["datasets"]["d"]["categories"]) == {"big"}
    assert weights_for(table, "d", "small") == {m: s["weight"] for m, s in table["datasets"]["d"]["members"].items()}
    assert weights_for(table, "d", "big")["a"] > weights_for(table, "d", None)["a"]
    assert weights_for(table, "elsewhere", None) == {m: s["weight"] for m, s in table["overall"].items()}
    # narrower scopes: the dataset's weights, or the overall ones as `ask` applies them
    members = {m: s["weight"] for m, s in table["datasets"]["d"]["members"].items()}
    assert weights_for(table, "d", "big", scope="dataset") == members
    assert weights_for(table, "d", "big", scope="overall") == {m: s["weight"] for m, s in table["overall"].items()}
    with pytest.raises(ValueError, match="trust scope"):
        weights_for(table, "d", "big", scope="topic")


def test_folds_weight_each_item_by_the_other_half():
    data = rows("a", "d", [1, 1, 0, 0]) + rows("b", "d", [0, 0, 1, 1])
    fold = lambda item_id: int(item_id.split("-")[1]) // 2  # items 0, 1 → fold 0; 2, 3 → fold 1
    table = fit_trust_table(data, folds=True, fold_of=fold, answers={"d": 2})
    w0 = weights_for(table, "d", None, fold=0)  # fitted on items 2, 3: b right, a wrong
    w1 = weights_for(table, "d", None, fold=1)
    assert w0["b"] > w0["a"] and w1["a"] > w1["b"]


def test_no_single_results_is_an_input_error():
    with pytest.raises(InputError, match="--strategy single"):
        fit_reliability([{"strategy": "council", "dataset": "d", "item_id": "x", "correct": 1}])


async def test_weights_reach_the_vote_and_the_chair():
    council = make_council({"strong": "Paris", "weak1": "Lyon", "weak2": "Lyon"}, chair="Paris")
    weighted = apply_weights(council, {"strong": 2.0, "weak1": 0.05, "weak2": 0.05})
    assert weighted.weights == {"strong": 2.0, "weak1": 0.05, "weak2": 0.05}
    assert council.weights == {"strong": 1.0, "weak1": 1.0, "weak2": 1.0}  # the original is untouched
    vote = await run_council("Capital of France?", weighted, strategy="majority")
    assert vote.short_answer == "Paris" and vote.confidence == pytest.approx(2.0 / 2.1, abs=1e-3)
    verdict = await run_council("Capital of France?", weighted)
    prompt = weighted.chair_model.calls[-1][1].content
    assert "95% of the answering weight" in prompt  # the chair sees the weighted shares
    assert verdict.confidence == pytest.approx(2.0 / 2.1, abs=1e-3)


def _results(label: str, dataset: str, correct: list[int]) -> list[dict]:
    return [{"strategy": label, "dataset": dataset, "item_id": f"{dataset}-{i}", "category": None, "correct": c}
            for i, c in enumerate(correct)]  # fmt: skip


def test_default_rule_flags_a_slice_and_changes_the_default():
    data = (_results("single:a", "d1", [1] * 8 + [0] * 2) + _results("single:b", "d1", [1] * 4 + [0] * 6)
            + _results("council", "d1", [1] * 6 + [0] * 4) + _results("council+trust", "d1", [1] * 8 + [0] * 2)
            + _results("single:a", "d2", [1] * 5 + [0] * 5) + _results("single:b", "d2", [1] * 5 + [0] * 5)
            + _results("council", "d2", [1] * 6 + [0] * 4) + _results("council+trust", "d2", [1] * 6 + [0] * 4))  # fmt: skip
    rule = default_rule(data)
    d1 = rule["slices"]["d1"]
    assert d1["best_single"] == "single:a"
    assert d1["candidates"]["council"]["below"] and d1["candidates"]["council"]["lift"]["lift"] == pytest.approx(-0.2)
    assert not d1["candidates"]["council+trust"]["below"]
    assert rule["chosen"] == "council+trust" and rule["changed"]
    assert any("On d1, the default (council) scores 60.0%, below the best single member (single:a, 80.0%)" in s
               for s in rule["sentences"])  # fmt: skip
    assert any("changes to council+trust" in s for s in rule["sentences"])
    fine = default_rule([r for r in data if r["dataset"] == "d2"])
    assert not fine["changed"] and "it stays" in fine["sentences"][-1]


def test_default_rule_does_not_choose_a_candidate_measured_on_a_few_items():
    # The plain council is below the best member on 100 items; council+trust beat it, but only
    # on the 12 items a stopped second phase reached: that is not a slice it passed.
    data = (_results("single:a", "d", [1] * 60 + [0] * 40) + _results("single:b", "d", [1] * 30 + [0] * 70)
            + _results("council", "d", [1] * 40 + [0] * 60) + _results("council+trust", "d", [1] * 12))  # fmt: skip
    rule = default_rule(data)
    assert rule["unmeasured"]["council+trust"] == ["d (12 of 100 items)"]
    assert rule["chosen"] == "single:a"
    assert any("council+trust was not measured on the whole of d (12 of 100 items)" in s for s in rule["sentences"])
    nearly = [r for r in data if r["strategy"] != "council+trust"] + _results("council+trust", "d", [1] * 60 + [0] * 35)
    assert default_rule(nearly)["chosen"] == "council+trust"  # 95 of 100: a few failed items are allowed


async def test_trust_file_is_keyed_by_the_council_and_applied_to_ask(tmp_path):
    council = make_council({"strong": "Paris", "weak1": "Lyon", "weak2": "Lyon"})
    table = fit_reliability(rows("strong", "d", [1] * 9 + [0]) + rows("weak1", "d", [0] * 6 + [1] * 4)
                            + rows("weak2", "d", [0] * 6 + [1] * 4), answers={"d": 2})  # fmt: skip
    rule = {"chosen": "council+trust", "sentences": ["because"]}
    path = save_trust(council, table, rule, ["RUN1"], path=tmp_path / "trust.json")
    data = json.loads(path.read_text())
    entry = data["councils"][fingerprint(council)]
    assert entry["source_runs"] == ["RUN1"] and entry["default"]["strategy"] == "council+trust"
    assert learned_trust(council, tmp_path / "trust.json")["table"]["overall"]["strong"]["weight"] > 0.5
    weighted, strategy, params = apply_learned(council, "council", tmp_path / "trust.json")
    assert strategy == "council" and params == {}
    assert weighted.weights["strong"] > weighted.weights["weak1"] + weighted.weights["weak2"]
    verdict = await run_council("Capital of France?", weighted)  # the learned default, as `ask` would run it
    assert verdict.short_answer == "Paris"
    save_trust(council, table, {"chosen": "single:strong", "sentences": []}, ["RUN2"], path=tmp_path / "trust.json")
    assert apply_learned(council, "council", tmp_path / "trust.json")[1:] == ("council", {"lead": "strong"})
    assert apply_learned(council, "deep", tmp_path / "trust.json")[1] == "deep"  # only the default is replaced
    other = make_council({"strong": "Paris", "weak1": "Lyon"})  # another council: no stale weights
    assert learned_trust(other, tmp_path / "trust.json") is None
    assert apply_learned(other, "council", tmp_path / "trust.json")[0] is other


async def test_a_call_that_names_no_strategy_gets_the_learned_default():
    from manyminds.trust import learned_default

    council = make_council({"strong": "Paris", "weak1": "Lyon", "weak2": "Lyon"}, chair="Lyon")
    assert learned_default(council) == (council, "council", None)  # no trust.json in the user dir
    table = fit_reliability(rows("strong", "d", [1] * 9 + [0]) + rows("weak1", "d", [0] * 6 + [1] * 4)
                            + rows("weak2", "d", [0] * 6 + [1] * 4), answers={"d": 2})  # fmt: skip
    save_trust(council, table, {"chosen": "single:strong", "sentences": []}, ["RUN1"])  # the user dir's trust.json
    resolved, strategy, params = learned_default(council)
    assert (strategy, params) == ("council", {"lead": "strong"})
    verdict = await run_council("Capital of France?", resolved, strategy=strategy, params=params)
    # the lead's answer against a majority and a chair that would say Lyon; the others dissent
    assert verdict.short_answer == "Paris" and verdict.chair is None
    assert verdict.confidence == pytest.approx(1 / 3, abs=1e-3)
    assert verdict.dissent[0].members == ["weak1", "weak2"]
    with pytest.raises(InputError, match="no member 'nobody'"):
        await run_council("Capital of France?", council, params={"lead": "nobody"})
    other = make_council({"alpha": "Paris", "beta": "Paris"})
    assert learned_default(other) == (other, "council", None)  # another council keeps the default


# --- the shipped trust file ------------------------------------------------------------------


async def test_the_shipped_default_applies_unless_the_user_file_has_the_council_or_a_strategy_is_named(
        manyminds_home, tmp_path, monkeypatch):  # fmt: skip
    from manyminds import trust
    from manyminds.api import run_request
    from manyminds.request import AskRequest
    from manyminds.store import export_run, open_db

    council = make_council({"strong": "Paris", "weak1": "Lyon", "weak2": "Lyon"}, chair="Lyon")
    table = fit_reliability(rows("strong", "d", [1] * 9 + [0]) + rows("weak1", "d", [0] * 6 + [1] * 4)
                            + rows("weak2", "d", [0] * 6 + [1] * 4), answers={"d": 2})  # fmt: skip
    shipped = tmp_path / "shipped-trust.json"
    save_trust(council, table, {"chosen": "single:strong", "sentences": []}, ["SHIPPED"], path=shipped)
    monkeypatch.setattr(trust, "shipped_trust_path", lambda: shipped)
    assert not trust.trust_path().exists()
    assert learned_trust(council)["shipped"] is True and learned_trust(council, shipped).get("shipped") is None
    monkeypatch.setattr("manyminds.api.resolve_council", lambda *a, **k: council)

    db = manyminds_home / "runs.db"
    verdict = await run_request(AskRequest(question="Capital of France?"), db_path=db)
    assert verdict.short_answer == "Paris"  # led by the member the shipped evaluation chose
    note = next(w for w in verdict.warnings if "evaluation shipped with manyminds" in w)
    assert "--strategy council" in note
    stored = export_run(open_db(db), verdict.run_id)
    assert note in stored["verdict"]["warnings"]  # the stored run says so too

    named = await run_request(AskRequest(question="Capital of France?", strategy="council"), db_path=db)
    assert named.short_answer == "Lyon" and not any("shipped" in w for w in named.warnings)

    # the user's own fit for this council wins over the shipped one
    save_trust(council, table, {"chosen": "council", "sentences": []}, ["MINE"])
    assert learned_trust(council).get("shipped") is None
    mine = await run_request(AskRequest(question="Capital of France?"), db_path=db)
    assert mine.short_answer == "Lyon" and not any("shipped" in w for w in mine.warnings)


def test_a_shipped_trust_file_fits_a_bundled_local_council(manyminds_home):
    from manyminds.api import resolve_council
    from manyminds.config import load_settings
    from manyminds.trust import fingerprint, read_trust_file, shipped_trust_path

    path = shipped_trust_path()
    if not path.exists():
        pytest.skip("no trust file shipped in this build")
    data = read_trust_file(path)
    settings = load_settings()
    # an entry applies only to the council with exactly its fingerprint: one that matches no
    # bundled council would never be used
    bundled = {fingerprint(resolve_council(settings, name)): name for name in ("local", "local-plus")}
    for key, entry in data["councils"].items():
        assert key in bundled, key
        council = settings.councils[bundled[key]]
        assert [[m["name"], m["model"]] for m in entry["members"]] == [[m.name, m.model] for m in council.members]
        assert entry["default"]["strategy"] and entry["source_runs"] and entry.get("why")
