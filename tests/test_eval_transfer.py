"""`manyminds eval export` and `eval import` through the real CLI over real SQLite files: a run
stopped on its budget is exported, imported into another run store and finished there exactly
as it would have been finished where it started; damaged files import nothing."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from test_eval_cli import DATASET, halueval_fetched, invoke, scripted  # noqa: F401 - fixtures


# Deterministic members (temperature 0), so their calls are cached and travel with the run.
COUNCIL = """
default_council = "s3"
[councils.s3]
quorum = 1
retries = 0
short_answer = "heuristic"
""" + "".join(f'[[councils.s3.members]]\nname = "{n}"\nmodel = "scripted/{n}"\nmax_tokens = 8\ntemperature = 0.0\n'
              for n in ("yes", "no", "maybe"))  # fmt: skip


def _pairs(run_id: str) -> dict[tuple[str, str], dict]:
    from manyminds.eval.store import EvalStore
    from manyminds.store import open_db

    return {(r["item_id"], r["strategy"]): r for r in EvalStore(open_db()).items(run_id, with_verdict=True)}


def _comparable(row: dict) -> tuple:
    extra = {k: v for k, v in row["extra"].items() if k not in ("seconds",)}
    return (row["answer"], row["correct"], row["confidence"], row["total_tokens"], json.dumps(extra, sort_keys=True))


@pytest.fixture
def stopped_run(manyminds_home, monkeypatch):
    """An eval run stopped by its token budget: some pairs and their cached calls stored."""
    (manyminds_home / "settings.toml").write_text(COUNCIL)
    monkeypatch.setenv("MANYMINDS_DB", str(manyminds_home / "first.db"))
    code, out, err = invoke("eval", "run", "-d", DATASET, "-s", "single", "-s", "majority", "--limit", "4",
                            "--concurrency", "1", "--max-tokens", "500", "--json")  # fmt: skip
    assert code == 0, err
    doc = json.loads(out)
    assert doc["status"] == "incomplete" and 0 < doc["items"] < 16
    return doc["run_id"]


def test_an_exported_run_is_finished_elsewhere_as_it_would_have_been_here(stopped_run, manyminds_home, tmp_path,
                                                                         monkeypatch):  # fmt: skip
    before = _pairs(stopped_run)
    path = tmp_path / "run.jsonl.gz"
    code, out, err = invoke("eval", "export", stopped_run[:12], "-o", str(path), "--json")
    assert code == 0, err
    written = json.loads(out)
    assert written["run_id"] == stopped_run and written["items"] == len(before) and written["cache"] > 0
    lines = [json.loads(line) for line in gzip.open(path, "rt", encoding="utf-8")]  # gzip, one JSON object a line
    assert lines[0]["format"] == "manyminds-eval-run" and lines[0]["run"]["id"] == stopped_run
    assert lines[-1] == {"end": {"items": written["items"], "cache": written["cache"]}}
    assert not list(tmp_path.glob(".part-*"))

    monkeypatch.setenv("MANYMINDS_DB", str(manyminds_home / "second.db"))
    code, out, err = invoke("eval", "import", str(path))
    assert code == 0, err
    assert f"Imported eval run {stopped_run} (incomplete): {len(before)} items, {written['cache']} cached calls." in out
    assert f"manyminds eval run --resume {stopped_run}" in out
    imported = _pairs(stopped_run)
    assert imported == before  # every column of every row, verdicts included
    shown = json.loads(invoke("eval", "show", stopped_run, "--json")[1])
    assert shown["status"] == "incomplete" and shown["error"]["type"] == "BudgetLimited"
    code, _, err = invoke("eval", "import", str(path))  # twice: refused, the store unchanged
    assert code == 2 and f"Eval run {stopped_run} is already in this store" in err
    assert len(_pairs(stopped_run)) == len(before)

    # Finish the copy here and the original where it started: the same rows, cache hits included,
    # so the imported cache served exactly the calls it would have served at home.
    code, out, err = invoke("eval", "run", "--resume", stopped_run, "--concurrency", "1", "--json")
    assert code == 0 and json.loads(out)["status"] == "complete", err
    finished_here = _pairs(stopped_run)
    monkeypatch.setenv("MANYMINDS_DB", str(manyminds_home / "first.db"))
    code, out, err = invoke("eval", "run", "--resume", stopped_run, "--concurrency", "1", "--json")
    assert code == 0, err
    finished_at_home = _pairs(stopped_run)
    assert len(finished_here) == 4 * 4
    assert {k: _comparable(r) for k, r in finished_here.items()} == {k: _comparable(r) for k, r in finished_at_home.items()}
    new = [r for k, r in finished_here.items() if k not in before]
    assert sum(r["extra"]["cached_calls"] for r in new) > 0  # some of them came from the imported cache


def test_a_plain_jsonl_export_round_trips_and_an_unknown_run_is_refused(stopped_run, manyminds_home, tmp_path,
                                                                      monkeypatch):  # fmt: skip
    monkeypatch.chdir(tmp_path)
    code, out, err = invoke("eval", "export", stopped_run)
    assert code == 0, err
    default = tmp_path / f"eval-run-{stopped_run}.jsonl.gz"
    assert str(default.name) in out and default.exists()
    plain = tmp_path / "run.jsonl"
    assert invoke("eval", "export", stopped_run, "-o", str(plain))[0] == 0
    assert json.loads(plain.read_text().splitlines()[0])["version"] == 1  # not compressed
    code, _, err = invoke("eval", "export", "01NOSUCHRUN", "-o", str(tmp_path / "x.jsonl"))
    assert code == 2 and "No eval run with id '01NOSUCHRUN'" in err and not (tmp_path / "x.jsonl").exists()
    code, _, err = invoke("eval", "export", stopped_run, "-o", str(tmp_path / "no" / "such" / "dir.jsonl"))
    assert code == 2 and f"Cannot write {tmp_path / 'no' / 'such' / 'dir.jsonl'}: No such file or directory" in err
    monkeypatch.setenv("MANYMINDS_DB", str(manyminds_home / "second.db"))
    code, out, err = invoke("eval", "import", str(plain), "--json")
    assert code == 0, err
    assert json.loads(out)["status"] == "incomplete"


def _damaged(lines: list[str], how: str) -> str:
    if how == "cut short":
        return "".join(lines[:-2])
    if how == "counts disagree":
        return "".join(lines[:-1]) + json.dumps({"end": {"items": 999, "cache": 0}}) + "\n"
    if how == "not json":
        return "".join(lines[:2]) + "{not json\n" + "".join(lines[2:])
    if how == "item of another run":
        item = json.loads(lines[1])
        item["item"]["run_id"] = "01OTHER"
        return lines[0] + json.dumps(item) + "\n" + "".join(lines[2:])
    if how == "newer format":
        head = json.loads(lines[0])
        head["version"] = 99
        return json.dumps(head) + "\n" + "".join(lines[1:])
    if how == "not an export":
        return '{"hello": "world"}\n'
    if how == "empty":
        return ""
    if how == "a column that is not ours":
        head = json.loads(lines[0])
        head["run"]["id); DROP TABLE eval_items; --"] = 1  # dropped: names from a file never reach the SQL
        head["run"]["status"] = "exploded"
        return json.dumps(head) + "\n" + "".join(lines[1:])
    raise AssertionError(how)


@pytest.mark.parametrize("how, message", [
    ("cut short", "has no end marker: it was cut short"),
    ("counts disagree", "says it holds 999 items and 0 cache entries"),
    ("not json", "line 3 is not JSON"),
    ("item of another run", "line 2: the item belongs to run '01OTHER'"),
    ("newer format", "was written in export format 99; this manyminds reads format 1"),
    ("not an export", "is not an exported eval run"),
    ("empty", "is empty: not an exported eval run"),
    ("a column that is not ours", "line 1 cannot be stored (CHECK constraint failed"),
])  # fmt: skip
def test_a_damaged_file_imports_nothing_and_says_where(stopped_run, manyminds_home, tmp_path, monkeypatch, how,
                                                       message):  # fmt: skip
    good = tmp_path / "good.jsonl"
    assert invoke("eval", "export", stopped_run, "-o", str(good))[0] == 0
    bad = tmp_path / "bad.jsonl"
    bad.write_text(_damaged(good.read_text().splitlines(keepends=True), how))
    monkeypatch.setenv("MANYMINDS_DB", str(manyminds_home / "second.db"))
    code, _, err = invoke("eval", "import", str(bad))
    assert code == 2 and message in err and str(bad) in err
    assert json.loads(invoke("eval", "list", "--json")[1]) == []  # all or nothing


def test_a_file_that_is_not_gzip_or_not_utf8_is_refused(manyminds_home, tmp_path):
    fake_gz = tmp_path / "run.jsonl.gz"
    fake_gz.write_text('{"format": "manyminds-eval-run"}\n')
    code, _, err = invoke("eval", "import", str(fake_gz))
    assert code == 2 and f"{fake_gz} cannot be read as an exported eval run" in err
    latin = tmp_path / "run.jsonl"
    latin.write_bytes(b'{"format": "caf\xe9"}\n')
    code, _, err = invoke("eval", "import", str(latin))
    assert code == 2 and "cannot be read as an exported eval run" in err
    code, _, err = invoke("eval", "import", str(tmp_path / "missing.jsonl"))
    assert code == 2 and "does not exist" in err
    assert not Path(manyminds_home / "manyminds.db").exists() or json.loads(invoke("eval", "list", "--json")[1]) == []
