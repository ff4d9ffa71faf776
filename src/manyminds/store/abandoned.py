"""Finding runs whose process died: a run still marked "running" after its writer was killed
(kill -9, a crash, a closed laptop) would otherwise look alive forever.

A running run is marked incomplete when
- it was written on this host and its pid is no longer a live process, or
- it has made no progress (no write) for `STALE_AFTER_HOURS`, whatever the host: the pid may
  have been reused by another process, or the run came from another machine.
Everything the run stored so far (member answers, stages) is kept.
"""

from __future__ import annotations

import os
import socket
import sys
from datetime import datetime
from pathlib import Path

import sqlite_utils

from .db import hours_ago_iso, now_iso, to_json, write_transaction

STALE_AFTER_HOURS = 6.0
REASON_PROCESS_EXITED = "process exited before the run finished"


def pid_alive(pid: int | None) -> bool:
    """Whether `pid` is a live process on this host. Unknown counts as alive (age decides)."""
    if not pid or pid <= 0:
        return False
    if sys.platform == "win32":
        # os.kill(pid, 0) would *terminate* the process on Windows; leave it to the age check.
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists but belongs to another user
    # A killed process its parent has not reaped yet is a zombie: it answers signal 0 but is dead.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc (macOS, BSD): trust the signal
    state = stat.rsplit(")", 1)[-1].split()[:1]
    return state not in (["Z"], ["X"])


def mark_abandoned_runs(
    db: sqlite_utils.Database,
    *,
    stale_after_hours: float = STALE_AFTER_HOURS,
    now: datetime | None = None,
) -> list[str]:
    """Mark abandoned running runs as incomplete; return their ids."""
    rows = list(db.query("SELECT id, pid, hostname, updated_at FROM runs WHERE status = 'running'"))
    if not rows:
        return []
    host = socket.gethostname()
    cutoff = hours_ago_iso(stale_after_hours, now)
    verdicts: dict[str, dict] = {}
    for row in rows:
        if row["hostname"] == host and not pid_alive(row["pid"]):
            verdicts[row["id"]] = {
                "type": "RunIncomplete",
                "message": REASON_PROCESS_EXITED,
                "pid": row["pid"],
                "hostname": host,
            }
        elif row["updated_at"] < cutoff:
            verdicts[row["id"]] = {
                "type": "RunIncomplete",
                "message": f"no progress for more than {stale_after_hours:g} hours; the process is presumed gone",
                "pid": row["pid"],
                "hostname": row["hostname"],
                "last_update": row["updated_at"],
            }
    if not verdicts:
        return []
    marked = []
    stamp = now_iso(now)
    with write_transaction(db):
        for run_id, error in verdicts.items():
            # `status = 'running'` again: the run may have finished since we read it.
            cur = db.execute(
                "UPDATE runs SET status = 'incomplete', error = ?, updated_at = ? WHERE id = ? AND status = 'running'",
                [to_json(error), stamp, run_id],
            )
            if cur.rowcount:
                marked.append(run_id)
    return marked
