"""An eval run as one file: `manyminds eval export RUN` writes it, `manyminds eval import FILE`
reads it into another run store, where it can be shown, reported, pooled and resumed.

Why: a slice of a few hundred items through review rounds takes hours on a small machine. The
run may be started on one machine and finished on another, and the rows behind a published
table can be published with it. The file carries the call cache too, so a resumed import does
not ask the models again what the run already asked.

The file is JSON Lines, gzip-compressed when its name ends in `.gz`:

    {"format": "manyminds-eval-run", "version": 1, "manyminds": "…", "run": {…eval_runs row…}}
    {"item": {…eval_items row…}}            one per stored (dataset, item, strategy) pair
    {"cache": {"key": "…", "completion": {…}}}   one per call the run made and cached
    {"end": {"items": N, "cache": M}}       so a truncated copy is refused, not half-imported

JSON columns are written decoded, so the file reads with `jq`. An import is one transaction: a
file that fails any check leaves the store as it was.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import sqlite_utils

from ..errors import InputError
from ..store.db import from_json, to_json, write_transaction
from .store import _ITEM_COLUMNS, ITEM_FIELDS, ITEM_JSON_COLUMNS, RUN_JSON_COLUMNS, EvalStore

FORMAT = "manyminds-eval-run"
VERSION = 1


def _open(path: Path, mode: str) -> IO[str]:
    if path.name.endswith(".gz"):
        return gzip.open(path, mode + "t", encoding="utf-8")
    return open(path, mode, encoding="utf-8")


def export_run(store: EvalStore, run_id_or_prefix: str, path: Path) -> dict[str, Any]:
    """Write one eval run — its row, every stored item and its call cache — to `path`.
    Returns what was written: run id, status, counts, the path."""
    run_id = store.resolve(run_id_or_prefix)
    db = store.db
    run = dict(next(db.query("SELECT * FROM eval_runs WHERE id = ?", [run_id])))
    for key in RUN_JSON_COLUMNS:
        run[key] = from_json(run[key])
    # A failed export never leaves a file that looks whole (the temporary name keeps the suffix)
    tmp = path.with_name(f".part-{path.name}")
    try:
        items, cache = _write(db, run, tmp)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    tmp.replace(path)
    return {"run_id": run_id, "status": store.get_run(run_id)["status"], "items": items, "cache": cache, "path": str(path)}


def _write(db: sqlite_utils.Database, run: dict[str, Any], tmp: Path) -> tuple[int, int]:
    from ..version import __version__

    run_id = run["id"]
    items = cache = 0
    with _open(tmp, "w") as out:
        out.write(_line({"format": FORMAT, "version": VERSION, "manyminds": __version__, "run": run}))
        for row in db.query(f"SELECT {_ITEM_COLUMNS} FROM eval_items WHERE run_id = ? ORDER BY rowid", [run_id]):
            row = dict(row)
            for key in ITEM_JSON_COLUMNS:
                row[key] = from_json(row[key])
            out.write(_line({"item": row}))
            items += 1
        for key, completion in db.execute("SELECT key, completion FROM eval_cache WHERE run_id = ? ORDER BY key", [run_id]):
            out.write(_line({"cache": {"key": key, "completion": from_json(completion)}}))
            cache += 1
        out.write(_line({"end": {"items": items, "cache": cache}}))
    return items, cache


def _line(doc: dict[str, Any]) -> str:
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")) + "\n"


def _records(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    try:
        with _open(path, "r") as source:
            for number, text in enumerate(source, 1):
                if not text.strip():
                    continue
                try:
                    doc = json.loads(text)
                except json.JSONDecodeError as exc:
                    raise InputError(f"{path}: line {number} is not JSON ({exc.msg}); the file is damaged.") from None
                if not isinstance(doc, dict):
                    raise InputError(f"{path}: line {number} is not a JSON object; the file is damaged.")
                yield number, doc
    except (OSError, EOFError, UnicodeDecodeError) as exc:  # not gzip, cut short, or not UTF-8
        raise InputError(f"{path} cannot be read as an exported eval run: {exc}.") from None


def import_run(store: EvalStore, path: Path) -> dict[str, Any]:
    """Read a file written by `export_run` into this store, in one transaction. The run keeps
    its id; one that was still running where it was exported is stored as incomplete, so
    `eval run --resume ID` continues it here. Refuses a run id this store already has."""
    records = _records(path)
    first = next(records, None)
    if first is None:
        raise InputError(f"{path} is empty: not an exported eval run.")
    _, head = first
    if head.get("format") != FORMAT or not isinstance(head.get("run"), dict):
        raise InputError(f"{path} is not an exported eval run (its first line has no \"format\": \"{FORMAT}\").")
    if not isinstance(head.get("version"), int) or head["version"] > VERSION:
        raise InputError(f"{path} was written in export format {head.get('version')!r}; this manyminds reads "
                         f"format {VERSION} and older. Upgrade manyminds to import it.")  # fmt: skip
    run = dict(head["run"])
    run_id = run.get("id")
    if not isinstance(run_id, str) or not run_id:
        raise InputError(f"{path}: the run on line 1 has no id.")
    db = store.db
    if db.execute("SELECT 1 FROM eval_runs WHERE id = ?", [run_id]).fetchone():
        raise InputError(f"Eval run {run_id} is already in this store (`manyminds eval show {run_id}`); "
                         "nothing was imported.")  # fmt: skip
    # Only the columns this store has: names from a file never reach the SQL unchecked
    known = [c.name for c in db["eval_runs"].columns]
    run = {c: run[c] for c in known if c in run}
    if run.get("status") == "running":
        run["status"] = "incomplete"  # its process is not here: resumable, not live
    for key in RUN_JSON_COLUMNS:
        run[key] = to_json(run.get(key))
    items = cache = 0
    end: dict[str, Any] | None = None
    with write_transaction(db):
        _insert(db, "eval_runs", run, path, 1)
        for number, doc in records:
            if end is not None:
                raise InputError(f"{path}: line {number} follows the end marker; the file is damaged.")
            if "item" in doc:
                _insert(db, "eval_items", _item_row(doc["item"], run_id, path, number), path, number)
                items += 1
            elif "cache" in doc:
                entry = doc["cache"]
                if not isinstance(entry, dict) or not isinstance(entry.get("key"), str) or "completion" not in entry:
                    raise InputError(f"{path}: line {number} is a cache entry without a key and a completion.")
                _insert(db, "eval_cache", {"run_id": run_id, "key": entry["key"], "completion": to_json(entry["completion"])},
                        path, number)  # fmt: skip
                cache += 1
            elif "end" in doc:
                end = doc["end"] if isinstance(doc["end"], dict) else {}
            else:
                raise InputError(f"{path}: line {number} is neither an item, a cache entry nor the end marker.")
        if end is None:
            raise InputError(f"{path} has no end marker: it was cut short (read {items} items, {cache} cache "
                             "entries). Nothing was imported.")  # fmt: skip
        if (end.get("items"), end.get("cache")) != (items, cache):
            raise InputError(f"{path} says it holds {end.get('items')} items and {end.get('cache')} cache entries, "
                             f"but {items} and {cache} were read. Nothing was imported.")  # fmt: skip
    return {"run_id": run_id, "status": store.get_run(run_id)["status"], "items": items, "cache": cache, "path": str(path)}


def _item_row(item: Any, run_id: str, path: Path, number: int) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise InputError(f"{path}: line {number}: an item must be a JSON object.")
    missing = [c for c in ("dataset", "item_id", "strategy", "correct", "finished_at") if item.get(c) is None]
    if missing:
        raise InputError(f"{path}: line {number}: the item has no {', '.join(missing)}.")
    if item.get("run_id") != run_id:
        raise InputError(f"{path}: line {number}: the item belongs to run {item.get('run_id')!r}, not {run_id}.")
    row = {c: item.get(c) for c in ITEM_FIELDS}
    for key in ITEM_JSON_COLUMNS:
        row[key] = to_json(row[key])
    return row


def _insert(db: sqlite_utils.Database, table: str, row: dict[str, Any], path: Path, number: int) -> None:
    import sqlite3

    columns = list(row)
    try:
        db.execute(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})",
                   [row[c] for c in columns])  # fmt: skip
    except sqlite3.Error as exc:  # a duplicate pair, a bad status, an unknown column
        raise InputError(f"{path}: line {number} cannot be stored ({exc}); nothing was imported.") from None
