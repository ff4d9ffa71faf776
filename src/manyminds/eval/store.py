"""Eval runs in the run store (the same SQLite file as `manyminds runs`; tables from
`eval/schema.py: m003_eval`).

    eval_runs   one row per `manyminds eval run`: its config, the council as it was, the plan
                (item ids per dataset, strategy labels) and choices made on the way (`meta`)
    eval_items  one row per (dataset, item, strategy), written in its own transaction the moment
                it is graded: a run killed with kill -9 loses only the items in flight
    eval_cache  completions shared between strategies of one run, so a resumed run does not
                pay for them twice

Eval items do not create rows in `runs`: a 1,000-item run with ten strategies would bury the
user's own questions under 10,000 rows. Each item keeps its full verdict JSON instead.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable
from typing import Any

import sqlite_utils

from ..errors import InputError
from ..ids import CROCKFORD, new_ulid
from ..store.abandoned import STALE_AFTER_HOURS, pid_alive
from ..store.db import from_json, hours_ago_iso, now_iso, to_json, write_transaction

EVAL_STATUSES = ("running", "complete", "incomplete", "failed")
_ITEM_COLUMNS = (
    "run_id, dataset, item_id, strategy, category, correct, confidence, answer, short_answer, raw_text, "
    "grade_method, grade_error, input_tokens, output_tokens, total_tokens, cost_usd, seconds, error, extra, "
    "verdict, finished_at"
)
ITEM_FIELDS = tuple(c.strip() for c in _ITEM_COLUMNS.split(","))
RUN_JSON_COLUMNS = ("config", "snapshot", "plan", "meta", "error")  # stored as JSON text
ITEM_JSON_COLUMNS = ("error", "extra", "verdict")


class UnknownEvalRun(InputError):
    """No eval run has this id (or prefix)."""


class EvalStore:
    """Reads and writes eval runs. Every write is one short IMMEDIATE transaction."""

    def __init__(self, db: sqlite_utils.Database) -> None:
        self.db = db

    # --- runs -----------------------------------------------------------------------------

    def create_run(self, council: str, config: dict[str, Any], snapshot: dict[str, Any], plan: dict[str, Any]) -> str:
        from ..version import __version__

        run_id = new_ulid()
        stamp = now_iso()
        with write_transaction(self.db):
            self.db["eval_runs"].insert(
                {
                    "id": run_id,
                    "created_at": stamp,
                    "updated_at": stamp,
                    "status": "running",
                    "council": council,
                    "config": to_json(config),
                    "snapshot": to_json(snapshot),
                    "plan": to_json(plan),
                    "meta": to_json({}),
                    "pid": os.getpid(),
                    "hostname": socket.gethostname(),
                    "version": __version__,
                }
            )
        return run_id

    def claim(self, run_id: str) -> None:
        """This process now runs `run_id` (a resume): status running, our pid and host."""
        with write_transaction(self.db):
            self.db.execute(
                "UPDATE eval_runs SET status = 'running', pid = ?, hostname = ?, updated_at = ?, error = NULL, "
                "finished_at = NULL WHERE id = ?",
                [os.getpid(), socket.gethostname(), now_iso(), run_id],
            )

    def update_meta(self, run_id: str, **values: Any) -> dict[str, Any]:
        """Merge `values` into the run's meta (choices made during the run, e.g. the k of
        self-consistency) and return the result."""
        with write_transaction(self.db):
            row = self.db.execute("SELECT meta FROM eval_runs WHERE id = ?", [run_id]).fetchone()
            meta = {**(from_json(row[0]) or {}), **values}
            self.db.execute("UPDATE eval_runs SET meta = ?, updated_at = ? WHERE id = ?", [to_json(meta), now_iso(), run_id])
        return meta

    def finish(self, run_id: str, status: str = "complete", error: dict[str, Any] | None = None) -> None:
        if status not in EVAL_STATUSES:
            raise ValueError(f"status must be one of {EVAL_STATUSES}")
        stamp = now_iso()
        with write_transaction(self.db):
            self.db.execute(
                "UPDATE eval_runs SET status = ?, error = ?, finished_at = ?, updated_at = ? WHERE id = ?",
                [status, to_json(error), stamp, stamp, run_id],
            )

    def resolve(self, run_id_or_prefix: str) -> str:
        """The full id of the one eval run whose id starts with the given text."""
        prefix = (run_id_or_prefix or "").strip().upper()
        if not prefix or any(c not in CROCKFORD for c in prefix):
            raise UnknownEvalRun(f"No eval run with id {run_id_or_prefix!r}. `manyminds eval list` lists them.")
        rows = self.db.execute(
            "SELECT id FROM eval_runs WHERE id >= ? AND id < ? ORDER BY id LIMIT 3", [prefix, prefix + "~"]
        ).fetchall()
        if not rows:
            raise UnknownEvalRun(f"No eval run with id {run_id_or_prefix!r}. `manyminds eval list` lists them.")
        if len(rows) > 1 and rows[0][0] != prefix:
            raise InputError(f"Eval run id prefix {run_id_or_prefix!r} is ambiguous; type more characters.")
        return rows[0][0]

    def get_run(self, run_id_or_prefix: str) -> dict[str, Any]:
        """One eval run: its row with JSON decoded, the live status, and item counts."""
        run_id = self.resolve(run_id_or_prefix)
        row = dict(next(self.db.query("SELECT * FROM eval_runs WHERE id = ?", [run_id])))
        return self._run_out(row)

    def list_runs(self, limit: int | None = 20) -> list[dict[str, Any]]:
        sql = "SELECT * FROM eval_runs ORDER BY created_at DESC, id DESC"
        params: list[Any] = []
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        return [self._run_out(dict(r)) for r in self.db.query(sql, params)]

    def _run_out(self, row: dict[str, Any]) -> dict[str, Any]:
        for key in RUN_JSON_COLUMNS:
            row[key] = from_json(row[key])
        row["status"] = live_status(row)
        counts = self.db.execute(
            "SELECT count(*), coalesce(sum(correct), 0) FROM eval_items WHERE run_id = ?", [row["id"]]
        ).fetchone()
        row["items_done"], row["items_correct"] = counts
        plan = row.get("plan") or {}
        row["items_planned"] = plan.get("total_pairs")
        return row

    # --- items ----------------------------------------------------------------------------

    def done_pairs(self, run_id: str) -> set[tuple[str, str, str]]:
        """(dataset, item id, strategy) of every stored item."""
        rows = self.db.execute("SELECT dataset, item_id, strategy FROM eval_items WHERE run_id = ?", [run_id])
        return {(d, i, s) for d, i, s in rows}

    def add_item(self, row: dict[str, Any], cache_entries: dict[str, dict[str, Any]] | None = None) -> bool:
        """Store one graded item, with the completions it added to the cache, in one
        transaction. A pair already stored is kept as it was (returns False): resuming never
        writes an item twice."""
        values = {**row, "error": to_json(row.get("error")), "extra": to_json(row.get("extra") or {}),
                  "verdict": to_json(row.get("verdict")), "finished_at": row.get("finished_at") or now_iso()}
        columns = ITEM_FIELDS
        with write_transaction(self.db):
            cur = self.db.execute(
                f"INSERT OR IGNORE INTO eval_items ({_ITEM_COLUMNS}) VALUES ({', '.join('?' for _ in columns)})",
                [values.get(c) for c in columns],
            )
            for key, completion in (cache_entries or {}).items():
                self.db.execute(
                    "INSERT OR IGNORE INTO eval_cache (run_id, key, completion) VALUES (?, ?, ?)",
                    [row["run_id"], key, to_json(completion)],
                )
            self.db.execute("UPDATE eval_runs SET updated_at = ? WHERE id = ?", [values["finished_at"], row["run_id"]])
        return cur.rowcount == 1

    def items(
        self, run_ids: str | Iterable[str], *, strategy: str | None = None, with_verdict: bool = False
    ) -> list[dict[str, Any]]:
        """Stored items of one or more runs, in the order they finished."""
        ids = [run_ids] if isinstance(run_ids, str) else list(run_ids)
        columns = _ITEM_COLUMNS if with_verdict else _ITEM_COLUMNS.replace("verdict, ", "")
        sql = f"SELECT {columns} FROM eval_items WHERE run_id IN ({', '.join('?' for _ in ids)})"
        params: list[Any] = list(ids)
        if strategy is not None:
            sql += " AND strategy = ?"
            params.append(strategy)
        out = []
        for row in self.db.query(sql + " ORDER BY rowid", params):
            row = dict(row)
            for key in ITEM_JSON_COLUMNS:
                if key in row:
                    row[key] = from_json(row[key])
            out.append(row)
        return out

    def load_cache(self, run_id: str) -> dict[str, dict[str, Any]]:
        return {k: from_json(c) for k, c in self.db.execute("SELECT key, completion FROM eval_cache WHERE run_id = ?", [run_id])}


def live_status(row: dict[str, Any]) -> str:
    """A run still marked running whose process is gone (same host, dead pid; or no write for
    hours) is shown as incomplete: it can be resumed with `--resume`."""
    if row["status"] != "running":
        return row["status"]
    if row.get("hostname") == socket.gethostname() and not pid_alive(row.get("pid")):
        return "incomplete"
    if row["updated_at"] < hours_ago_iso(STALE_AFTER_HOURS):
        return "incomplete"
    return "running"
