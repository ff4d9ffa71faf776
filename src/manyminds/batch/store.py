"""Batches in the run store (tables from `batch/schema.py: m009_batches`).

Each line is written in its own short transaction the moment it finishes, so a batch killed
with kill -9 loses only the lines in flight; `--resume ID` skips the lines stored as ok and runs
the rest (failed ones included: a provider may be back). The runs themselves are in `runs`.
"""

from __future__ import annotations

import os
import socket
from typing import Any

import sqlite_utils

from ..errors import InputError
from ..ids import CROCKFORD, new_ulid
from ..store.abandoned import pid_alive
from ..store.db import from_json, now_iso, to_json, write_transaction

BATCH_STATUSES = ("running", "complete", "incomplete", "failed")


class BatchStore:
    def __init__(self, db: sqlite_utils.Database) -> None:
        self.db = db

    def create(self, source: str, options: dict[str, Any], lines_total: int) -> str:
        batch_id, stamp = new_ulid(), now_iso()
        with write_transaction(self.db):
            self.db["batches"].insert({
                "id": batch_id, "created_at": stamp, "updated_at": stamp, "status": "running", "source": source,
                "options": to_json(options), "lines_total": lines_total, "pid": os.getpid(), "hostname": socket.gethostname(),
            })  # fmt: skip
        return batch_id

    def claim(self, batch_id: str, lines_total: int) -> None:
        with write_transaction(self.db):
            self.db.execute(
                "UPDATE batches SET status = 'running', pid = ?, hostname = ?, lines_total = ?, updated_at = ?, "
                "finished_at = NULL, error = NULL WHERE id = ?",
                [os.getpid(), socket.gethostname(), lines_total, now_iso(), batch_id],
            )

    def finish(self, batch_id: str, status: str, error: dict[str, Any] | None = None) -> None:
        if status not in BATCH_STATUSES:
            raise ValueError(f"status must be one of {BATCH_STATUSES}")
        stamp = now_iso()
        with write_transaction(self.db):
            self.db.execute("UPDATE batches SET status = ?, error = ?, finished_at = ?, updated_at = ? WHERE id = ?",
                            [status, to_json(error), stamp, stamp, batch_id])  # fmt: skip

    def get(self, batch_id: str) -> dict[str, Any]:
        """One batch by id or unique prefix, with counts; a `running` batch whose process is
        gone (same host) is shown as incomplete."""
        prefix = (batch_id or "").strip().upper()
        rows = []
        if prefix and all(c in CROCKFORD for c in prefix):
            rows = [dict(r) for r in self.db.query(
                "SELECT * FROM batches WHERE id >= ? AND id < ? ORDER BY id LIMIT 2", [prefix, prefix + "~"])]  # fmt: skip
        if not rows:
            raise InputError(f"No batch with id {batch_id!r}.")
        if len(rows) > 1 and rows[0]["id"] != prefix:
            raise InputError(f"Batch id prefix {batch_id!r} is ambiguous; type more characters.")
        row = rows[0]
        row["options"], row["error"] = from_json(row["options"]), from_json(row["error"])
        if row["status"] == "running" and row["hostname"] == socket.gethostname() and not pid_alive(row["pid"]):
            row["status"] = "incomplete"
        counts = dict(self.db.execute(
            "SELECT status, count(*) FROM batch_lines WHERE batch_id = ? GROUP BY status", [row["id"]]).fetchall())  # fmt: skip
        row["lines_ok"], row["lines_failed"] = counts.get("ok", 0), counts.get("failed", 0)
        return row

    def add_line(self, batch_id: str, outcome: dict[str, Any]) -> None:
        """Store one line's outcome; a line already stored as ok is never overwritten."""
        values = [batch_id, outcome["id"], outcome["line"], "ok" if outcome["ok"] else "failed", outcome.get("run_id"),
                  to_json(outcome.get("result")), to_json(outcome.get("error")), now_iso()]  # fmt: skip
        with write_transaction(self.db):
            self.db.execute(
                "INSERT INTO batch_lines (batch_id, key, line_no, status, run_id, result, error, finished_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (batch_id, key) DO UPDATE SET line_no = excluded.line_no, "
                "status = excluded.status, run_id = excluded.run_id, result = excluded.result, error = excluded.error, "
                "finished_at = excluded.finished_at WHERE batch_lines.status != 'ok'",
                values,
            )
            self.db.execute("UPDATE batches SET updated_at = ? WHERE id = ?", [values[-1], batch_id])

    def lines(self, batch_id: str) -> list[dict[str, Any]]:
        """Stored outcomes, in file order, as the JSONL holds them."""
        out = []
        for r in self.db.query("SELECT * FROM batch_lines WHERE batch_id = ? ORDER BY line_no", [batch_id]):
            out.append({"line": r["line_no"], "id": r["key"], "ok": r["status"] == "ok", "run_id": r["run_id"],
                        "result": from_json(r["result"]), "error": from_json(r["error"])})  # fmt: skip
        return out
