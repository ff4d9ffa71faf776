"""The user-dir JSON files keyed by council fingerprint (trust.json, calibration.json): one
reader and one atomic writer, so both files fail the same way on the same damage."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


def read_council_file(path: Path, kind: str, error: type[Exception]) -> dict[str, Any]:
    """The parsed file, `{"version": 1, "councils": {}}` when it does not exist; `error` (with
    the path and the cause) when it cannot be read or is not a `kind` file."""
    if not path.exists():
        return {"version": 1, "councils": {}}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise error(f"cannot read {path}: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("councils"), dict):
        raise error(f"{path} is not a manyminds {kind} file (no \"councils\" object)")
    return data


def write_council_file(path: Path, data: dict[str, Any]) -> Path:
    """Write through a temporary file in the same folder and rename: never a half-written file,
    and two writers never share a temporary file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}-", suffix=".json")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2, ensure_ascii=False)
            fh.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
