"""What dbzero can persist, checked before anything is written.

dbzero 0.7.0 rejects some values only half-way through a write, corrupts others silently, and
crashes the whole process on a few (found by experiment, each probe in its own process):

* ints beyond 64 bits: an error at top level, a wrong value (-1) in a list or set, a crash
  inside a tuple. Stored ints must fit in a signed 64-bit integer.
* a negative int in a set or in a dict key: an error alone, a crash inside a tuple key.
* strings with a lone surrogate (not UTF-8): an error, or a crash inside a tuple or as a key;
  a NUL character silently cuts the string there.
* Decimals: NaN/Infinity crash inside a tuple; a positive exponent is stored negated
  (`Decimal('1E+5')` reads back as `Decimal('0.00001')`); over 17 digits or an exponent
  below -63 raise an internal C++ error (and crash as a dict key).
* nesting: thousands of levels crash the process; one value over ~64 MB raises an internal
  C++ error.

So values are checked here against limits comfortably inside what works (`MAX_DEPTH` levels of
containers, `MAX_VALUE_BYTES` in all), and only exact built-in types are walked: a subclass
defined by job code could show the check other items than dbzero then stores. Floats are all
accepted: NaN and infinities round-trip.
"""

from __future__ import annotations

import collections
import datetime
import decimal
import keyword
import sys
from collections.abc import Mapping
from typing import Any

import dbzero as db0

from statek.errors import UnstorableValueError
from statek.models.by_uuid import looks_like_uuid
from statek.models.containers import UNHASHABLE_KINDS, stored_kind_of_type

#: Containers nested deeper than this are refused.
MAX_DEPTH = 64
#: Largest value stored in one write: UTF-8 bytes of text and bytes, plus 8 per other item.
MAX_VALUE_BYTES = 16 * 1024 * 1024
INT_MIN, INT_MAX = -(2**63), 2**63 - 1
#: Decimals dbzero 0.7.0 stores faithfully: at most 17 digits, exponent in [-63, 0].
DECIMAL_MAX_DIGITS = 17
DECIMAL_MIN_EXPONENT = -63

_SHORT_STR = 4096  # ASCII strings up to this length skip the size accounting
_PLAIN_SCALARS = frozenset({float, bool, type(None), bytes, datetime.date, datetime.datetime})
_DICT_TYPES = frozenset({dict, collections.OrderedDict, collections.defaultdict,
                         collections.Counter})  # stdlib subclasses: stored as dicts
_INT_HINT = "stored ints range from -2**63 to 2**63-1"


def utf8_encodable(text: str) -> bool:
    """dbzero stores strings as UTF-8: one with a lone surrogate raises UnicodeEncodeError,
    and inside a tuple crashes the process (dbzero 0.7.0), so such strings are refused."""
    if str.isascii(text):
        return True
    try:
        str.encode(text, "utf-8")
    except UnicodeEncodeError:
        return False
    return True


def unstorable_reason(value: Any) -> str | None:
    """None when dbzero can store `value`; else a short description of the first culprit.

    Plain scalars (a 64-bit int, a short ASCII string, a float, a bool, None) return at once:
    this runs for every value job code binds."""
    kind = type(value)
    if kind is int:
        if INT_MIN <= value <= INT_MAX:
            return None
    elif kind is str:
        if len(value) <= _SHORT_STR and value.isascii() and "\x00" not in value:
            return None
    elif kind is float or kind is bool or value is None:
        return None
    budget = [MAX_VALUE_BYTES]
    return _reason(value, 0, budget, False)


def key_reason(value: Any) -> str | None:
    """As `unstorable_reason`, for a set element or dict key (dbzero hashes those)."""
    return _reason(value, 0, [MAX_VALUE_BYTES], True)


def _reason(value: Any, depth: int, budget: list[int], hashed: bool) -> str | None:
    kind = type(value)
    if kind is str:
        return _str_reason(value, budget)
    if kind is int:
        if not INT_MIN <= value <= INT_MAX:
            return f"int {_short_int(value)} does not fit in 64 bits ({_INT_HINT})"
        if hashed and value < 0:
            return (f"negative int {value} in a set or dict key (dbzero 0.7.0 cannot hash it;"
                    " use a str key)")
        budget[0] -= 8
        return None
    if kind in _PLAIN_SCALARS:
        budget[0] -= len(value) if kind is bytes else 8
        return _too_large() if budget[0] < 0 else None
    if kind is decimal.Decimal:
        return _decimal_reason(value)
    if kind is list or kind is tuple or kind is set or kind in _DICT_TYPES:
        if hashed and kind is not tuple:
            return f"unhashable type {kind.__name__} in a set element or dict key"
        if depth >= MAX_DEPTH:
            return f"value too deeply nested (limit {MAX_DEPTH} levels of containers)"
        return _container_reason(value, kind, depth + 1, budget, hashed)
    if hashed and stored_kind_of_type(kind) in UNHASHABLE_KINDS:
        return f"unhashable type {kind.__name__} in a set element or dict key"
    return _other_reason(value, kind)


def _container_reason(value: Any, kind: type, depth: int, budget: list[int],
                      hashed: bool) -> str | None:
    budget[0] -= 8 * (len(value) + 1)
    if budget[0] < 0:
        return _too_large()
    if kind is list or kind is tuple:
        for item in value:
            reason = _reason(item, depth, budget, hashed)
            if reason is not None:
                return reason
    elif kind is set:
        for item in value:
            reason = _reason(item, depth, budget, True)
            if reason is not None:
                return reason
    else:
        for key, item in dict.items(value):
            reason = _reason(key, depth, budget, True) or _reason(item, depth, budget, False)
            if reason is not None:
                return reason
    return None


def _str_reason(text: str, budget: list[int]) -> str | None:
    if text.isascii():
        size = len(text)
    else:
        try:
            size = len(text.encode("utf-8"))
        except UnicodeEncodeError as exc:
            return (f"a str with a lone surrogate {text[exc.start]!r} at index {exc.start}"
                    " (not valid UTF-8)")
    if "\x00" in text:
        return f"a str with a NUL character at index {text.index(chr(0))} (dbzero cuts it there)"
    budget[0] -= size
    return _too_large() if budget[0] < 0 else None


def _decimal_reason(value: decimal.Decimal) -> str | None:
    if not value.is_finite():
        return f"non-finite Decimal {str(value)!r} (only finite Decimals are stored)"
    _, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)
    if exponent > 0:
        hint = f"; use Decimal('{int(value)}')" if exponent <= 20 and len(digits) <= 20 else ""
        return (f"Decimal {value} has a positive exponent, which dbzero 0.7.0 stores negated"
                f"{hint}")
    if len(digits) > DECIMAL_MAX_DIGITS or exponent < DECIMAL_MIN_EXPONENT:
        shown = str(value) if len(digits) <= 40 else f"{value:.5E}"
        return (f"Decimal {shown} is outside what dbzero 0.7.0 stores (at most "
                f"{DECIMAL_MAX_DIGITS} digits, exponent down to {DECIMAL_MIN_EXPONENT})")
    return None


def _other_reason(value: Any, kind: type) -> str | None:
    """Objects already in dbzero, and classes importable under their own name."""
    if db0.is_memo(value) or db0.is_enum_value(value):
        return None
    if stored_kind_of_type(kind) is not None:  # a dbzero container or Index: stored as it is
        return None
    if isinstance(value, type):
        return None if _importable_class(value) else (
            f"class {value.__qualname__} is not importable as {value.__module__}."
            f"{value.__qualname__} (only such classes are stored, by name)")
    return f"{kind.__module__}.{kind.__qualname__} is not storable"


def _importable_class(cls: type) -> bool:
    """Whether reading the class back by its stored module and name gives this same class
    (dbzero imports it by name: a forged name must not lead the reader elsewhere)."""
    module = sys.modules.get(cls.__module__)
    if module is None or cls.__module__ == "__statek_job__":
        return False
    found: Any = module
    for part in cls.__qualname__.split("."):
        found = getattr(found, part, None)
        if found is None:
            return False
    return found is cls


def _too_large() -> str:
    return f"value too large (limit {MAX_VALUE_BYTES // (1024 * 1024)} MiB in one write)"


def _short_int(value: int) -> str:
    """An int's text, shortened (str() of a huge int is slow and may raise)."""
    bits = value.bit_length()
    return str(value) if bits <= 256 else f"of {bits} bits"


def is_storable(value: Any) -> bool:
    return unstorable_reason(value) is None


def check_value(value: Any, what: str) -> None:
    """Raise UnstorableValueError naming `what`, the type and the problem."""
    reason = unstorable_reason(value)
    if reason is not None:
        raise UnstorableValueError(
            f"{what} of type {type(value).__name__} cannot be stored in dbzero: {reason}")


def name_problem(name: Any) -> str | None:
    """Why `name` cannot be the name of a job local (shared variable), or None.

    Names starting with "_" are the sandbox's (a shared `_getattr_` would replace the job's
    attribute guard); keywords and non-identifiers could never be read by job code."""
    if type(name) is not str:
        return f"must be a str, not {type(name).__name__}"
    if not name.isidentifier() or keyword.iskeyword(name):
        return "is not a valid Python identifier"
    if name.startswith("_"):
        return "starts with '_' (such names are reserved for statek's sandbox)"
    return None


def check_storable_mapping(values: Mapping[str, Any], what: str, *,
                           names: bool = False) -> None:
    """Raise UnstorableValueError naming the key and type of the first value dbzero rejects
    (and, with `names`, the first key that cannot be a job local's name)."""
    for key, value in values.items():
        if names:
            problem = name_problem(key)
            if problem is not None:
                raise UnstorableValueError(f"{what}: name {key!r} {problem}")
        elif type(key) is not str:
            raise UnstorableValueError(
                f"{what}: key {key!r} must be a str, not {type(key).__name__}")
        elif not utf8_encodable(key) or "\x00" in key:
            raise UnstorableValueError(f"{what}: key {key!r} is not valid UTF-8 text")
        check_value(value, f"{what}[{key!r}]")


def check_uuid(uuid: Any, what: str) -> None:
    """Raise UnstorableValueError unless `uuid` looks like a dbzero uuid (base-32 text):
    dbzero 0.7.0 crashes looking up some other strings (a lone surrogate)."""
    if not looks_like_uuid(uuid):
        shown = repr(uuid) if type(uuid) is str and len(uuid) <= 80 else type(uuid).__name__
        raise UnstorableValueError(f"{what} id {shown} is not a dbzero uuid")
