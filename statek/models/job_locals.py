"""How a job's locals are stored: plain scalars together in one JSON string, the rest in a
dbzero dict.

Most statements bind counters, flags and short strings. Setting an item of a stored dbzero
dict costs about 20 µs and reading the dict back about 12 µs plus 1-2 µs per item, while
rewriting one short string costs about 5 µs and reading it about 3 µs, whatever number of
scalars it holds. So ints that fit 64 bits, finite floats, bools, None and strings of at most
`INLINE_STR_CHARS` characters live in `Job.inline_vars` (a JSON object); lists, dicts, sets,
tuples, stored objects and long strings live in `Job.vars` (a dbzero dict, or a flat
(name, value, ...) tuple as written at submission, until the first change). A name is in at
most one of the two.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from statek import _json
from statek.models.containers import container_kind
from statek.models.storable import utf8_encodable

if TYPE_CHECKING:
    from statek.models.job import Job

#: Longest string kept with the scalars (a longer one would be rewritten with every scalar).
INLINE_STR_CHARS = 256


def is_inline(value: Any) -> bool:
    kind = type(value)
    if kind is int:
        return bool(-(2**63) <= value < 2**63)
    if kind is float:
        return math.isfinite(value)
    if kind is str:
        return len(value) <= INLINE_STR_CHARS and utf8_encodable(value)
    return kind is bool or value is None


def split(values: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(scalars kept inline, everything else)."""
    inline: dict[str, Any] = {}
    other: dict[str, Any] = {}
    for name, value in values.items():
        (inline if is_inline(value) else other)[name] = value
    return inline, other


def encode_inline(scalars: dict[str, Any]) -> str | None:
    """The stored form of `scalars` (values for which `is_inline` holds); None when empty."""
    return _json.dumps(scalars).decode() if scalars else None


def decode_inline(text: str | None) -> dict[str, Any]:
    return {} if text is None else dict(_json.loads(text))


def decode_other(stored: Any) -> dict[str, Any]:
    """`Job.vars`: None, a flat (name, value, ...) tuple, or a dbzero dict."""
    if stored is None:
        return {}
    if container_kind(stored) == "Tuple":
        return {stored[i]: stored[i + 1] for i in range(0, len(stored), 2)}
    return dict(stored.items())  # 2-3x faster than a lookup per key (keys are str)


def flat_seed(values: Mapping[str, Any]) -> tuple[Any, ...] | None:
    """The submission form of non-scalar values: one stored tuple costs half a dict."""
    return tuple(item for pair in values.items() for item in pair) if values else None


class StoredLocals:
    """A job's persisted locals, read once, then kept in step with what is written."""

    __slots__ = ("_handle", "_job", "inline", "other")

    def __init__(self, job: Job) -> None:
        self._job = job
        self.inline = decode_inline(job.inline_vars)
        handle = job.vars
        self._handle = handle
        self.other = decode_other(handle)  # a stored container comes back as dbzero's

    @classmethod
    def known(cls, job: Job, inline: dict[str, Any]) -> StoredLocals:
        """The locals of a job known to hold only `inline` (and an unset `Job.vars`),
        without reading them again."""
        stored = cls.__new__(cls)
        stored._job = job
        stored.inline = inline
        stored._handle = None
        stored.other = {}
        return stored

    @property
    def scalars_only(self) -> bool:
        """Whether every local is an inline scalar and `Job.vars` is unset."""
        return self._handle is None and not self.other

    def values(self) -> dict[str, Any]:
        merged = dict(self.other)
        merged.update(self.inline)
        return merged

    def __contains__(self, name: object) -> bool:
        return name in self.inline or name in self.other

    def persisted(self, name: str) -> Any:
        """The stored copy of a non-scalar value (a dbzero container for a list or dict),
        through which in-place changes are persisted."""
        if self._handle is _UNREAD:
            self._handle = self._job.vars
        return self._handle[name]

    def bind(self, values: Mapping[str, Any], deleted: Iterable[str] = ()) -> None:
        """Persist assignments and deletions. A value dbzero refuses raises (TypeError,
        AttributeError, OverflowError or ValueError) before any scalar is written."""
        inline, other = self.inline, self.other
        updated: dict[str, Any] | None = None  # copy of `inline` once something changes
        to_other: dict[str, Any] = {}
        leaving_other: list[str] = []
        for name, value in values.items():
            if is_inline(value):
                old = inline.get(name, _MISSING)
                if type(old) is not type(value) or old != value or type(value) is float:
                    if updated is None:
                        updated = dict(inline)
                    updated[name] = value
                if name in other:
                    leaving_other.append(name)
            else:
                to_other[name] = value
                if name in inline:
                    if updated is None:
                        updated = dict(inline)
                    del updated[name]
        for name in deleted:
            if name in inline:
                if updated is None:
                    updated = dict(inline)
                updated.pop(name, None)
            if name in other:
                leaving_other.append(name)
        if to_other or leaving_other:
            self._write_other(to_other, leaving_other)
        if updated is not None:
            self._job.inline_vars = encode_inline(updated)
            self.inline = updated

    def _write_other(self, values: dict[str, Any], removed: list[str]) -> None:
        other = self.other
        handle = self._handle
        if handle is _UNREAD:
            handle = self._handle = self._job.vars
        if handle is None or container_kind(handle) == "Tuple":
            merged = dict(other)  # the submission tuple becomes a dict on its first change
            merged.update(values)
            for name in removed:
                merged.pop(name, None)
            self._job.vars = merged if merged else None
            self._handle = _UNREAD if merged else None
            self.other = merged
            return
        for name, value in values.items():
            handle[name] = value
            other[name] = value
        for name in removed:
            handle.pop(name, None)
            other.pop(name, None)


_external_bind_hooks: list[Callable[[str], None]] = []


def on_external_bind(hook: Callable[[str], None]) -> Callable[[str], None]:
    """Call `hook(job uuid)` when a job's locals are written other than by its steps (so
    what a step keeps of them is dropped)."""
    _external_bind_hooks.append(hook)
    return hook


def bound_externally(job_uuid: str) -> None:
    for hook in _external_bind_hooks:
        hook(job_uuid)


_MISSING: Any = object()
_UNREAD: Any = object()
