"""`manyminds --help` wall time (lazy imports keep it fast). Target ≤ 0.3 s.

    python benchmarks/help_time.py [--runs 10]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time


def main(runs: int) -> None:
    exe = shutil.which("manyminds") or sys.exit("manyminds is not on PATH (pip install -e .)")
    subprocess.run([exe, "--help"], capture_output=True, check=True)  # warm the page cache
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run([exe, "--help"], capture_output=True, check=True)
        times.append(time.perf_counter() - t)
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], capture_output=True, check=True)
    bare = time.perf_counter() - t
    print(f"manyminds --help: median {statistics.median(times):.3f} s, min {min(times):.3f} s (n={runs}; "
          f"bare python start {bare:.3f} s; target ≤ 0.3 s)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=10)
    main(parser.parse_args().runs)
