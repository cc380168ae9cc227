"""CI benchmark gate: ratios measured in one run, which machine noise cannot flip.

    python -m benchmarks.gate

1. W8: every kept compiled kernel must beat its pure twin by >= 2x (benchmarks/w8_gate.py).
2. W3: an idle loop iteration over 100k suspended parents (200k suspended jobs) must cost at
   most 3x the one over 1k: the scheduler is O(what changed), not O(suspended jobs).

Exit status 1 when a gate fails. Runs in well under 3 minutes on a 2-core machine.
"""

from __future__ import annotations

import subprocess
import sys

from benchmarks._harness import print_table, run_isolated

MAX_IDLE_RATIO = 3.0
SMALL, LARGE = 1_000, 100_000


def idle_iteration_gate() -> bool:
    small = run_isolated("benchmarks.workloads", "--one", "W3", "--n", str(SMALL),
                         "--samples", "300")
    large = run_isolated("benchmarks.workloads", "--one", "W3", "--n", str(LARGE),
                         "--samples", "300")
    ratio = large["figure"] / small["figure"]
    print_table(["S (suspended parents)", "idle iteration µs (median)"],
                [[SMALL, f"{small['figure']:.1f}"], [LARGE, f"{large['figure']:.1f}"]])
    ok = ratio <= MAX_IDLE_RATIO
    print(f"W3 ratio {LARGE}/{SMALL}: {ratio:.2f}x (limit {MAX_IDLE_RATIO}x) "
          f"-> {'ok' if ok else 'FAIL'}")
    return ok


def main() -> None:
    w8 = subprocess.run([sys.executable, "benchmarks/w8_gate.py"], check=False).returncode == 0
    w3 = idle_iteration_gate()
    sys.exit(0 if (w8 and w3) else 1)


if __name__ == "__main__":
    main()
