"""`manyminds --help` and `python -c "import manyminds"` wall times (lazy imports keep both
fast). Target: --help ≤ 0.3 s.

    python benchmarks/help_time.py [--runs 20] [--against OTHER_VENV_PYTHON]

With `--against`, the same figures for another installation (e.g. a checkout of an earlier
commit in its own venv), measured interleaved in the same run, and the ratios this ÷ other.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path


def _time(cmd: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, capture_output=True, check=True)
    return time.perf_counter() - t


def commands(python: str) -> dict[str, list[str]]:
    return {
        "--help": [python, "-m", "manyminds.cli", "--help"],
        "import manyminds": [python, "-c", "import manyminds"],
        "import manyminds.cli": [python, "-c", "import manyminds.cli"],
    }


def main(runs: int, against: str | None) -> None:
    pythons = {"this": sys.executable} | ({"other": against} if against else {})
    for python in pythons.values():
        for cmd in commands(python).values():
            _time(cmd)  # warm the page cache
    times: dict[tuple[str, str], list[float]] = {}
    for _ in range(runs):  # interleaved, so load changes hit both installations alike
        for who, python in pythons.items():
            for what, cmd in commands(python).items():
                times.setdefault((who, what), []).append(_time(cmd))
    bare = statistics.median(_time([sys.executable, "-c", "pass"]) for _ in range(runs))
    print(f"n={runs} per figure; bare python start {bare:.3f} s")
    for what in commands(sys.executable):
        this = statistics.median(times[("this", what)])
        line = f"{what:22s} this {this:.3f} s"
        if against:
            other = statistics.median(times[("other", what)])
            line += f"   other {other:.3f} s   this ÷ other {this / other:.2f}"
        print(line)
    if against:
        print(f"(this: {Path(sys.executable).parent.parent}; other: {Path(against).parent.parent})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--against", help="another installation's python, to compare with")
    args = parser.parse_args()
    main(args.runs, args.against)
