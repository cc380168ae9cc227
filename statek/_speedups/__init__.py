"""Scheduler kernels: compiled (Cython) when available, pure Python otherwise.

The compiled ``_sched_c`` is preferred; ``STATEK_NO_EXTENSIONS`` set to any
non-empty value other than "0" forces the pure twin (``_sched_py``), and so
does a failed import. A kernel that did not earn its keep in the W8 gate
(see ``KEPT_KERNELS``) is exported from the pure twin even when the extension
is loaded. ``pure`` and ``compiled`` stay reachable so tests and benchmarks
can run both implementations in one process.
"""

from __future__ import annotations

import os
from types import ModuleType
from typing import TYPE_CHECKING

from statek._speedups import _sched_py as pure

__all__ = [
    "COMPILED_UNAVAILABLE_REASON",
    "IMPLEMENTATION",
    "IMPLEMENTATIONS",
    "KEPT_KERNELS",
    "KERNELS",
    "ReadyQueue",
    "TimerHeap",
    "WaiterIndex",
    "compiled",
    "partition_batch",
    "pure",
    "speedups_enabled",
]

KERNELS: tuple[str, ...] = ("ReadyQueue", "WaiterIndex", "TimerHeap", "partition_batch")
"""Every kernel both twins implement."""

KEPT_KERNELS: frozenset[str] = frozenset(KERNELS)
"""Kernels whose compiled version beat the pure one by >= 3x when measured
(benchmarks/w8_gate.py enforces >= 2x); the others are served by the pure twin."""


def _extensions_disabled() -> bool:
    return os.environ.get("STATEK_NO_EXTENSIONS", "") not in ("", "0")


compiled: ModuleType | None
COMPILED_UNAVAILABLE_REASON: str | None
if _extensions_disabled():
    compiled = None
    COMPILED_UNAVAILABLE_REASON = "disabled by STATEK_NO_EXTENSIONS"
else:
    try:
        from statek._speedups import _sched_c
    except ImportError as exc:  # not built, or built for another interpreter
        compiled = None
        COMPILED_UNAVAILABLE_REASON = f"compiled extension not importable: {exc}"
    else:
        compiled = _sched_c
        COMPILED_UNAVAILABLE_REASON = None

IMPLEMENTATION: str = "compiled" if compiled is not None else "pure"
"""Which module backs the kept kernels: "compiled" or "pure"."""

IMPLEMENTATIONS: dict[str, str] = {
    name: "compiled" if compiled is not None and name in KEPT_KERNELS else "pure"
    for name in KERNELS
}
"""Per-kernel implementation actually exported below."""


def speedups_enabled() -> bool:
    """True when the compiled extension is loaded and serving the kept kernels."""
    return compiled is not None


if TYPE_CHECKING:
    # Type checkers see one concrete set of classes; both twins satisfy the
    # protocols in _protocol.py, which mypy verifies.
    from statek._speedups._sched_py import ReadyQueue, TimerHeap, WaiterIndex, partition_batch
else:
    _source = {
        name: (compiled if IMPLEMENTATIONS[name] == "compiled" else pure) for name in KERNELS
    }
    ReadyQueue = _source["ReadyQueue"].ReadyQueue
    WaiterIndex = _source["WaiterIndex"].WaiterIndex
    TimerHeap = _source["TimerHeap"].TimerHeap
    partition_batch = _source["partition_batch"].partition_batch
    del _source
