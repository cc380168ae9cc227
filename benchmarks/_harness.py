"""Shared plumbing for benchmark scripts: a fresh store per measurement, medians, tables,
instruction counts under callgrind."""

from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any


@contextmanager
def fresh_store(prefix: str = "bench") -> Iterator[str]:
    """dbzero over a temp dir with one prefix open, closed afterwards."""
    import dbzero as db0

    import statek

    with tempfile.TemporaryDirectory(prefix="statek-bench-") as root:
        db0.init(dbzero_root=root)
        statek.init()
        statek.open_prefix(prefix, "rw")
        try:
            yield root
        finally:
            statek.close()


def run_isolated(module: str, *args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run `python -m module args` and parse the JSON object it prints last.

    Each measurement gets its own process: dbzero keeps per-process caches, and a large run
    must not slow down the next one.
    """
    import os

    done = subprocess.run([sys.executable, "-m", module, *args], capture_output=True,
                          text=True, env={**os.environ, **(env or {})}, timeout=1800)
    if done.returncode != 0:
        raise RuntimeError(f"{module} {' '.join(args)} failed:\n{done.stderr[-4000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def require_valgrind() -> None:
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is not installed (apt-get install valgrind)")


def callgrind_total(module: str, *args: str, env: dict[str, str] | None = None) -> int:
    """Instructions callgrind counts for `python -m module args` (hash seed fixed, so dict
    layouts and the counts repeat from run to run)."""
    full_env = {**os.environ, **(env or {}), "PYTHONHASHSEED": "0"}
    done = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable,
         "-m", module, *args], capture_output=True, text=True, env=full_env, check=False)
    found = re.search(r"Collected\s*:\s*(\d+)", done.stderr)
    if done.returncode != 0 or found is None:
        raise RuntimeError(f"callgrind run of {module} {' '.join(args)} failed:\n"
                           f"{done.stderr[-3000:]}")
    return int(found.group(1))


def median_of(repeats: int, measure: Callable[[], float]) -> float:
    return statistics.median(measure() for _ in range(repeats))


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    cells = [[str(h) for h in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    for n, row in enumerate(cells):
        print(" | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
        if n == 0:
            print("-+-".join("-" * w for w in widths))
