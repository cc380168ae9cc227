# cython: language_level=3, boundscheck=False, wraparound=False
# distutils: language = c++
"""Compiled kernels of the storage path: the Cython twin of ``_storage_py``.

Every result (entries, values, their types, the lock taken or not) matches the pure twin,
which is the specification. What they save is interpreter work: a single push packs one
(job uuid, message) pair, and in Python the checks and calls around ``orjson.dumps`` cost
several times the encoding itself; a transition that takes no lock (the default) is two
counter updates, which in Python cost two frames.
"""

from cpython.float cimport PyFloat_AS_DOUBLE
from cpython.long cimport PyLong_AsLongLongAndOverflow
from libc.math cimport isfinite

from statek import _json

__all__ = ["MAX_DEPTH", "Transition", "is_plain_json", "json_text", "pack", "unpack"]

MAX_DEPTH = 64
cdef int _MAX_DEPTH = 64


cdef bint _plain(object value, int depth) except -1:
    cdef type kind = type(value)
    cdef int overflow = 0
    if kind is str or kind is bool or value is None:
        return True
    if kind is int:  # what every JSON backend gives back: 64-bit signed
        PyLong_AsLongLongAndOverflow(value, &overflow)
        return overflow == 0
    if kind is float:
        return isfinite(PyFloat_AS_DOUBLE(value))
    if depth >= _MAX_DEPTH:
        return False
    if kind is list:
        for item in <list>value:
            if not _plain(item, depth + 1):
                return False
        return True
    if kind is dict:
        for key, item in (<dict>value).items():
            if type(key) is not str or not _plain(item, depth + 1):
                return False
        return True
    return False


def is_plain_json(value, int depth=0):
    return _plain(value, depth)


cdef bint _all_plain(object values) except -1:
    for value in values:
        if type(value) is not str and not _plain(value, 0):
            return False
    return True


cdef object _as_sequence(object values):
    """A list or tuple as it is; any other sequence copied into a list."""
    if type(values) is list or type(values) is tuple:
        return values
    return list(values)


def json_text(values):
    try:
        raw = _json._dumps(_as_sequence(values))
    except (TypeError, ValueError):
        return None
    return (<bytes?>raw).decode("utf-8")


cdef list _encoded(object run, Py_ssize_t stride):
    text = json_text(run)
    if text is not None:
        return [text]
    cdef Py_ssize_t count = len(run), i
    if count <= stride:  # a lone surrogate: find the items JSON cannot take
        return [1, *run]
    cdef list entries = []
    for i in range(0, count, stride):
        entries.extend(_encoded(run[i:i + stride], stride))
    return entries


def pack(values, Py_ssize_t stride):
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    values = _as_sequence(values)
    if _all_plain(values):  # the common case: one string for the lot
        return _encoded(values, stride)
    cdef Py_ssize_t total = len(values), i, start, end, items
    cdef list plain = [_all_plain(values[i:i + stride]) for i in range(0, total, stride)]
    cdef list entries = []
    items = len(plain)
    start = 0
    while start < items:
        end = start
        while end < items and plain[end] == plain[start]:
            end += 1
        run = values[start * stride:end * stride]
        if plain[start]:
            entries.extend(_encoded(run, stride))
        else:
            entries.append(end - start)
            entries.extend(run)
        start = end
    return entries


def unpack(entries, Py_ssize_t stride):
    cdef list values = []
    cdef Py_ssize_t i = 0, count = len(entries), end, items
    loads = _json._loads
    while i < count:
        entry = entries[i]
        if type(entry) is str:
            try:
                run = loads(entry)
            except ValueError:
                run = None
            if type(run) is not list or len(<list>run) % stride:
                _damaged(i, entry, f"is not a JSON array of items of {stride} value(s)")
            values.extend(<list>run)
            i += 1
        elif type(entry) is int and 0 < entry < count:  # bounded before the C arithmetic
            items = entry
            end = i + 1 + items * stride
            if end > count:
                _damaged(i, entry, f"is not a count of the {count - i - 1} value(s) after "
                         f"it (items of {stride})")
            values.extend(entries[i + 1:end])
            i = end
        else:
            _damaged(i, entry, f"is not a count of the {count - i - 1} value(s) after it "
                     f"(items of {stride})")
    return values


cdef _damaged(Py_ssize_t index, object entry, str why):
    raise ValueError(f"damaged packed fifo chunk: entry {index} ({entry!r:.80}) {why}")


cdef class Transition:
    cdef object _autocommitting
    cdef object _take_lock
    cdef object _lock
    cdef Py_ssize_t _depth

    def __init__(self, autocommitting, take_lock):
        self._autocommitting = autocommitting
        self._take_lock = take_lock
        self._depth = 0
        self._lock = None

    def __enter__(self):
        if self._depth == 0 and self._autocommitting:
            lock = self._take_lock()
            lock.__enter__()
            self._lock = lock
        self._depth += 1

    def __exit__(self, *exc):
        self._depth -= 1
        if self._depth == 0 and self._lock is not None:
            lock = self._lock
            self._lock = None
            lock.__exit__(*exc)

    @property
    def active(self):
        return self._depth > 0

    def __reduce__(self):
        raise TypeError("a Transition belongs to its process and cannot be pickled")
