"""Structural types shared by the compiled and pure kernels (scheduler and storage path).

Code that must work with either implementation (and the type stub of the
compiled module) is written against these protocols, so mypy proves both twins
expose one interface.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

__all__ = [
    "IsPlainJsonFn",
    "JsonTextFn",
    "PackFn",
    "PartitionFn",
    "ReadyQueueProtocol",
    "TimerHeapProtocol",
    "TransitionProtocol",
    "UnpackFn",
    "WaiterIndexProtocol",
]


class ReadyQueueProtocol(Protocol):
    """FIFO per lane, round-robin across lanes, no duplicate jobs."""

    def push(self, job_id: int, lane: int = 0) -> bool: ...
    def push_many(self, job_ids: Sequence[int], lane: int = 0) -> int: ...
    def pop_batch(self, n: int) -> list[int]: ...
    def pop_lane(self, lane: int, n: int) -> list[int]: ...
    def discard(self, job_id: int) -> bool: ...
    def __len__(self) -> int: ...
    def __contains__(self, job_id: object) -> bool: ...
    def lane_len(self, lane: int) -> int: ...
    def lanes(self) -> list[int]: ...


class WaiterIndexProtocol(Protocol):
    """Many keys per job, many jobs per key; a woken job leaves every key."""

    def add(self, key: int, job_id: int) -> None: ...
    def wake(self, key: int) -> list[int]: ...
    def remove_job(self, job_id: int) -> bool: ...
    def keys_of(self, job_id: int) -> list[int]: ...
    def waiting(self, key: int) -> int: ...
    def __len__(self) -> int: ...
    def __contains__(self, job_id: object) -> bool: ...


class TimerHeapProtocol(Protocol):
    """One deadline per job; due jobs come out earliest first."""

    def schedule(self, job_id: int, deadline: float) -> None: ...
    def cancel(self, job_id: int) -> bool: ...
    def pop_due(self, now: float, limit: int = -1) -> list[int]: ...
    def next_deadline(self) -> float | None: ...
    def deadline_of(self, job_id: int) -> float | None: ...
    def __len__(self) -> int: ...


class PartitionFn(Protocol):
    """Signature of ``partition_batch``: (order, groups, duplicates)."""

    def __call__(
        self, targets: Sequence[int], seqs: Sequence[int], applied: Mapping[int, int]
    ) -> tuple[list[int], list[list[int]], list[int]]: ...


class PackFn(Protocol):
    """Signature of ``pack``: the entries storing items of `stride` values."""

    def __call__(self, values: Sequence[Any], stride: int) -> list[Any]: ...


class UnpackFn(Protocol):
    """Signature of ``unpack``: the flat values a packed chunk's entries store."""

    def __call__(self, entries: Sequence[Any], stride: int) -> list[Any]: ...


class IsPlainJsonFn(Protocol):
    def __call__(self, value: Any, depth: int = 0) -> bool: ...


class JsonTextFn(Protocol):
    def __call__(self, values: Sequence[Any]) -> str | None: ...


class TransitionProtocol(Protocol):
    """A re-entrant block holding dbzero's lock only while something autocommits."""

    def __enter__(self) -> None: ...
    def __exit__(self, *exc: Any) -> None: ...
    @property
    def active(self) -> bool: ...


if TYPE_CHECKING:
    # Never executed: mypy fails here if either twin drifts from the protocols.
    from statek._speedups import _sched_c, _sched_py, _storage_c, _storage_py

    _rq_py: type[ReadyQueueProtocol] = _sched_py.ReadyQueue
    _wi_py: type[WaiterIndexProtocol] = _sched_py.WaiterIndex
    _th_py: type[TimerHeapProtocol] = _sched_py.TimerHeap
    _pb_py: PartitionFn = _sched_py.partition_batch

    _rq_c: type[ReadyQueueProtocol] = _sched_c.ReadyQueue
    _wi_c: type[WaiterIndexProtocol] = _sched_c.WaiterIndex
    _th_c: type[TimerHeapProtocol] = _sched_c.TimerHeap
    _pb_c: PartitionFn = _sched_c.partition_batch

    _pack_py: PackFn = _storage_py.pack
    _unpack_py: UnpackFn = _storage_py.unpack
    _plain_py: IsPlainJsonFn = _storage_py.is_plain_json
    _text_py: JsonTextFn = _storage_py.json_text
    _tr_py: type[TransitionProtocol] = _storage_py.Transition

    _pack_c: PackFn = _storage_c.pack
    _unpack_c: UnpackFn = _storage_c.unpack
    _plain_c: IsPlainJsonFn = _storage_c.is_plain_json
    _text_c: JsonTextFn = _storage_c.json_text
    _tr_c: type[TransitionProtocol] = _storage_c.Transition
