"""Kernels: compiled (Cython) when available, pure Python otherwise.

Two pairs of twins: the scheduler's (``_sched_c`` / ``_sched_py``) and the storage
path's (``_storage_c`` / ``_storage_py``: the push queue's packed chunk codec and the
transition block). The compiled ones are preferred; ``STATEK_NO_EXTENSIONS`` set to any
non-empty value other than "0" forces the pure twins, and so does a failed import of
either compiled module (they are built together). A kernel that did not earn its keep
(see ``KEPT_KERNELS``) is exported from the pure twin even when the extension is loaded.
``pure``/``compiled`` (scheduler) and ``pure_storage``/``compiled_storage`` stay
reachable, and ``twins_of`` names a kernel's pair, so tests and benchmarks can run both
implementations in one process.
"""

from __future__ import annotations

import os
from types import ModuleType
from typing import TYPE_CHECKING

from statek._speedups import _sched_py as pure
from statek._speedups import _storage_py as pure_storage

__all__ = [
    "COMPILED_UNAVAILABLE_REASON",
    "IMPLEMENTATION",
    "IMPLEMENTATIONS",
    "KEPT_KERNELS",
    "KERNELS",
    "ReadyQueue",
    "TimerHeap",
    "Transition",
    "WaiterIndex",
    "compiled",
    "compiled_storage",
    "is_plain_json",
    "json_text",
    "pack",
    "partition_batch",
    "pure",
    "pure_storage",
    "speedups_enabled",
    "twins_of",
    "unpack",
]

SCHEDULER_KERNELS: tuple[str, ...] = ("ReadyQueue", "WaiterIndex", "TimerHeap",
                                      "partition_batch")
STORAGE_KERNELS: tuple[str, ...] = ("pack", "unpack", "is_plain_json", "json_text",
                                    "Transition")
KERNELS: tuple[str, ...] = SCHEDULER_KERNELS + STORAGE_KERNELS
"""Every kernel both twins of its pair implement."""

KEPT_KERNELS: frozenset[str] = frozenset(KERNELS)
"""Kernels served compiled when the extension is loaded. A scheduler kernel is kept when
it beat its pure twin by >= 3x in W8 (benchmarks/w8_gate.py enforces >= 2x). A storage
kernel is per-call work around one C call (the JSON backend, dbzero's lock), which bounds
its gain: it is kept when it is faster per call on a per-message or per-step path (gated
at 1.5x for `pack`, 1.2x for `Transition`; measured 2.0x and 1.75x, `unpack` of a
500-item chunk 1.3x, `json_text` 1.6x, `is_plain_json` 7.7x)."""


def _extensions_disabled() -> bool:
    return os.environ.get("STATEK_NO_EXTENSIONS", "") not in ("", "0")


compiled: ModuleType | None
compiled_storage: ModuleType | None
COMPILED_UNAVAILABLE_REASON: str | None
if _extensions_disabled():
    compiled = compiled_storage = None
    COMPILED_UNAVAILABLE_REASON = "disabled by STATEK_NO_EXTENSIONS"
else:
    try:
        from statek._speedups import _sched_c, _storage_c
    except ImportError as exc:  # not built, or built for another interpreter
        compiled = compiled_storage = None
        COMPILED_UNAVAILABLE_REASON = f"compiled extension not importable: {exc}"
    else:
        compiled, compiled_storage = _sched_c, _storage_c
        COMPILED_UNAVAILABLE_REASON = None


def twins_of(kernel: str) -> tuple[ModuleType, ModuleType | None]:
    """(pure module, compiled module or None) implementing `kernel`."""
    if kernel in STORAGE_KERNELS:
        return pure_storage, compiled_storage
    if kernel in SCHEDULER_KERNELS:
        return pure, compiled
    raise KeyError(f"no kernel named {kernel!r}")


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
    from statek._speedups._storage_py import Transition, is_plain_json, json_text, pack, unpack
else:
    def _serving(name):
        pure_twin, compiled_twin = twins_of(name)
        return getattr(compiled_twin if IMPLEMENTATIONS[name] == "compiled" else pure_twin, name)

    ReadyQueue = _serving("ReadyQueue")
    WaiterIndex = _serving("WaiterIndex")
    TimerHeap = _serving("TimerHeap")
    partition_batch = _serving("partition_batch")
    pack = _serving("pack")
    unpack = _serving("unpack")
    is_plain_json = _serving("is_plain_json")
    json_text = _serving("json_text")
    Transition = _serving("Transition")
    del _serving
