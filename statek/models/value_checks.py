"""Checks on values job code writes, made before dbzero sees them.

Binding a local is checked by `can_persist` (a value it refuses stays in memory only, like
a function). Restricted job code writes into its persisted containers (dbzero lists, dicts,
sets) through the sandbox's hooks, so those are wrapped here: item assignment, augmented
assignment and every method of a dbzero container that takes a value (append, extend,
update, setdefault, add, get, index...) check their arguments first and fail the statement
with an UnstorableValueError naming the problem. Some lookups crash dbzero 0.7.0 as surely
as writes (`d.get(key)` with a key it cannot hash), hence the reads in the list too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from statek.errors import UnstorableValueError
from statek.models.containers import (
    HASHED_KINDS,
    ITEM_WRITABLE_KINDS,
    PLAIN_TYPES,
    ContainerKind,
    kind_of_type,
    plain_copy,
)
from statek.models.storable import key_reason, unstorable_reason, utf8_encodable
from statek.sandbox.guards import BINARY_OPERATORS, COMPARE_OPERATORS, make_chain

#: Public methods of dbzero containers that pass an argument to dbzero.
_VALUE_METHODS = frozenset({
    "append", "extend", "index", "count", "remove", "insert",  # List, Tuple, ByteArray
    "get", "pop", "setdefault", "update", "fromkeys",  # Dict
    "add", "discard", "difference_update", "intersection_update",  # Set
    "symmetric_difference_update", "union", "difference", "intersection",
    "symmetric_difference", "issubset", "issuperset", "isdisjoint",
})  # fmt: skip
_WHAT: dict[ContainerKind, str] = {kind: plain.__name__ for kind, plain in PLAIN_TYPES.items()}


def can_persist(value: Any) -> bool:
    """Whether dbzero can store `value` so that it loads again in a new process (see
    `statek.models.storable`; a class the job defined is not importable, so not stored)."""
    return unstorable_reason(value) is None


def _db0_kind(obj: Any) -> ContainerKind | None:
    """The kind of a dbzero container or of its class (`List.append` is checked too)."""
    return kind_of_type(obj if isinstance(obj, type) else type(obj))


def _refuse(reason: str, where: str) -> UnstorableValueError:
    return UnstorableValueError(f"cannot pass this value to {where}: {reason}")


def _checked(value: Any, hashed: bool, where: str) -> Any:
    """`value`, or a list of its items when it is an iterator (read once, then checked)."""
    reason = key_reason(value) if hashed else unstorable_reason(value)
    if reason is not None and "is not storable" in reason and hasattr(value, "__iter__") \
            and not isinstance(value, str | bytes):
        value = list(value)  # a generator or view: checked as the list of what it yields
        reason = key_reason(value) if hashed else unstorable_reason(value)
    if reason is not None:
        raise _refuse(reason, where)
    return value


def check_item(kind: ContainerKind, key: Any, value: Any) -> Any:
    """Check `container[key] = value` (returns the value to assign: a slice takes a list)."""
    where = f"a persisted {_WHAT[kind]}"
    if kind == "Dict":
        _checked(key, True, where + " as a key")
    if isinstance(key, slice):
        return _checked(value, False, where)
    reason = unstorable_reason(value)
    if reason is not None:
        raise _refuse(reason, where)
    return value


def _checking_method(kind: ContainerKind, name: str, method: Callable[..., Any],
                     unbound: bool) -> Callable[..., Any]:
    """`method` of a dbzero container, checking its arguments first."""
    where = f"{_WHAT[kind]}.{name}()"

    def call(*args: Any, **kwargs: Any) -> Any:
        first = 1 if unbound else 0  # List.append(xs, v): xs is not an argument to check
        checked = list(args[:first])
        for index, arg in enumerate(args[first:]):
            if kind == "Dict" and name == "update" and index == 0:
                checked.append(_checked(dict(arg), False, where))
            else:
                hashed = kind == "Set" or (kind == "Dict" and index == 0)
                checked.append(_checked(arg, hashed, where))
        for value in kwargs.values():
            _checked(value, False, where)
        return method(*checked, **kwargs)

    return call


#: id(the sandbox's `_write_`) -> (its five hooks, the checking ones made for them)
_write_hooks: dict[int, tuple[tuple[Any, ...], dict[str, Any]]] = {}


def allow_persisted_writes(g: dict[str, Any]) -> None:
    """Let restricted code assign items of dbzero containers (its persisted locals come back
    as those) as it may of plain lists and dicts, checking every value first; anything else
    still meets the sandbox's guards. Runs for every namespace built: the checking hooks are
    made once per set of sandbox hooks."""
    write = g.get("_write_")
    if write is None:
        return
    found = _write_hooks.get(id(write))
    if found is None or not _same_hooks(found[0], g):
        if len(_write_hooks) >= 64:  # hooks made per namespace: keep the table bounded
            _write_hooks.clear()
        originals = tuple(g[name] for name in _HOOK_NAMES)
        found = _write_hooks[id(write)] = (originals, _make_hooks(g))
    g.update(found[1])


#: The sandbox hooks replaced by checking versions (all in every restricted namespace).
_HOOK_NAMES = ("_write_", "_augitem_", "_inplacevar_", "_getattr_", "_getitem_", "_in_",
               "_binop_", "_compare_", "_chain_")


def _same_hooks(originals: tuple[Any, ...], g: dict[str, Any]) -> bool:
    write, augitem, inplacevar, getattr_, getitem, in_, binop, compare, chain = originals
    return (g["_write_"] is write and g["_getattr_"] is getattr_ and g["_getitem_"] is getitem
            and g["_augitem_"] is augitem and g["_inplacevar_"] is inplacevar
            and g["_in_"] is in_ and g["_binop_"] is binop and g["_compare_"] is compare
            and g["_chain_"] is chain)


def _make_hooks(g: dict[str, Any]) -> dict[str, Callable[..., Any]]:
    guarded_write = g["_write_"]
    augmented = g["_augitem_"]
    inplace = g["_inplacevar_"]
    guarded_getattr = g["_getattr_"]
    plain_getitem = g["_getitem_"]

    def write(obj: Any) -> Any:
        kind = kind_of_type(type(obj))
        if kind is not None and kind in ITEM_WRITABLE_KINDS:
            return _ItemWriter(obj, kind)
        return guarded_write(obj)

    def augmented_item(obj: Any, key: Any, op: str, value: Any) -> None:
        kind = _db0_kind(obj)
        if kind is not None:
            if kind == "Dict":
                _checked(key, True, "a persisted dict as a key")
            result = inplace(op, obj[key], value)
            obj[key] = check_item(kind, key, result)
        else:
            augmented(obj, key, op, value)

    def inplacevar(op: str, target: Any, value: Any) -> Any:
        if type(target) in _FAST and type(value) in _FAST:
            return inplace(op, target, value)
        kind = _db0_kind(target)
        if kind is None:  # dbzero's reflected operators crash: `xs &= s` uses a plain copy
            other = _db0_kind(value)
            return inplace(op, target, value if other is None else _plain(value, other))
        if kind == "Set" and _db0_kind(value) is None:  # `s |= x` adds x's items
            return _set_inplace(inplace, op, target, value)
        if kind != "Set":  # `xs += ys` extends a persisted list in place
            value = _checked(value, False, f"{op} on a persisted {_WHAT[kind]}")
        return inplace(op, target, value)

    def getattr_(obj: Any, name: str, *default: Any) -> Any:
        value = guarded_getattr(obj, name, *default)
        if name in _VIEW_METHODS and _db0_kind(obj) == "Dict" and not isinstance(obj, type):
            return _plain_view(obj, name)
        if name in _VALUE_METHODS:
            kind = _db0_kind(obj)
            if kind is not None and callable(value):
                return _checking_method(kind, name, value, isinstance(obj, type))
        return value

    def getitem(obj: Any, key: Any) -> Any:
        if type(key) not in _FAST and _db0_kind(obj) == "Dict":
            _checked(key, True, "a persisted dict as a key")
        return plain_getitem(obj, key)

    return {"_write_": write, "_augitem_": augmented_item, "_inplacevar_": inplacevar,
            "_getattr_": getattr_, "_getitem_": getitem, "_in_": contains,
            "_binop_": binop, "_compare_": compare, "_chain_": make_chain(compare)}


# --- operators on dbzero containers -----------------------------------------------------------
# dbzero 0.7.0 crashes the process when an operator hands it a value it cannot hash or store
# (`"\ud800" in s`, `s | {"\ud800"}`, `x <= s`), and on some reflected operators with any value
# (`[1] + xs`, `2 * xs`, `x & s`). The checking hooks below keep such calls away from it: a
# value that cannot be an element is not one, and otherwise the answer is computed on a plain
# copy of the container, without dbzero.

#: Plain types: an operator on two of them never reaches dbzero, so the hooks skip all checks.
_PLAIN = frozenset({int, float, bool, type(None), str, bytes, list, tuple, dict, set,
                    frozenset})


def _plain(obj: Any, kind: ContainerKind) -> Any:
    """A shallow plain copy of dbzero container `obj` (iterating it is safe, but for a
    ByteArray, which `plain_copy` knows how to read)."""
    return plain_copy(obj, mutable_bytes=True) if kind == "ByteArray" else PLAIN_TYPES[kind](obj)


def contains(item: Any, container: Any) -> bool:
    """`item in container`: False without asking dbzero when `item` cannot be stored in it."""
    if type(container) in _PLAIN:
        return item in container
    kind = _db0_kind(container)
    if kind is not None and type(item) not in _FAST_ITEMS:
        reason = key_reason(item) if kind in HASHED_KINDS else unstorable_reason(item)
        if reason is not None:
            return False
    return item in container


def _fits(kind: ContainerKind, other: Any) -> bool:
    """Whether dbzero container kind `kind` may take `other` as an operand: a scalar, another
    dbzero container, or a plain container of items it can store (hash, for a set or dict)."""
    other_type = type(other)
    if other_type in _FAST or _db0_kind(other) is not None:
        return True
    if kind in HASHED_KINDS:
        if other_type is dict:
            return all(key_reason(key) is None and unstorable_reason(value) is None
                       for key, value in dict.items(other))
        if other_type in _ITERABLES:
            return all(key_reason(item) is None for item in other)
        return False
    return other_type in _ITERABLES and unstorable_reason(list(other)) is None


_ITERABLES = frozenset({list, tuple, set, frozenset})


def _compared(left: Any, right: Any) -> tuple[Any, Any]:
    """`left` and `right` of an ordering comparison, with a dbzero container replaced by a
    plain copy wherever dbzero could meet a value it cannot take."""
    left_kind, right_kind = _db0_kind(left), _db0_kind(right)
    if left_kind is not None:
        if right_kind is None and not _fits(left_kind, right):
            left = _plain(left, left_kind)
    elif right_kind is not None and not _fits(right_kind, left):
        right = _plain(right, right_kind)
    return left, right


def binop(op: str, left: Any, right: Any) -> Any:
    """``left op right`` for `_binop_` (see the compiler), safe on dbzero containers: each
    is replaced by a plain copy, so the result is a plain value. dbzero's own operators make
    temporary dbzero containers; with stored objects in them, dbzero 0.7.0 aborts the
    process at the next commit (`a0 + a1 + a2` on lists of futures), and a value it cannot
    take would be handed to it."""
    if type(left) not in _PLAIN or type(right) not in _PLAIN:
        kind = _db0_kind(left)
        if kind is not None:
            left = _plain(left, kind)
        kind = _db0_kind(right)
        if kind is not None:
            right = _plain(right, kind)
    return BINARY_OPERATORS[op](left, right)


def compare(op: str, left: Any, right: Any) -> Any:
    """``left op right`` for `_compare_` and `_chain_`, safe on dbzero containers."""
    if type(left) in _PLAIN and type(right) in _PLAIN:
        return COMPARE_OPERATORS[op](left, right)
    if op == "in":
        return contains(left, right)
    if op == "not in":
        return not contains(left, right)
    if op in _ORDERED:  # rich comparisons are reflected with dbzero's object as `self`
        left, right = _compared(left, right)
    return COMPARE_OPERATORS[op](left, right)


_ORDERED = frozenset({"<", "<=", ">", ">="})


def _set_inplace(apply: Callable[[str, Any, Any], Any], op: str, target: Any,
                 value: Any) -> Any:
    """``s op= value`` on a persisted set: items it cannot hold are never in it, so removing
    or keeping them needs no dbzero call; adding one is refused."""
    if type(value) is not set and type(value) is not frozenset:
        return apply(op, set(target), value)  # Python's own answer or error, on a copy
    bad = [item for item in value if key_reason(item) is not None]
    if not bad:
        return apply(op, target, value)
    if op in ("|=", "^="):
        raise _refuse(str(key_reason(bad[0])), f"'{op}' on a persisted set")
    return apply(op, target, set(value).difference(bad))


#: Dict methods whose dbzero results are views of a type that crashes the process when its
#: name is read (`type(d.items()).__name__`, repr, the checks of a binding), in dbzero 0.7.0.
_VIEW_METHODS = frozenset({"keys", "values", "items"})


def _plain_view(mapping: Any, name: str) -> Callable[[], Any]:
    """`mapping.keys`/`values`/`items` for job code: the view of a plain copy (a snapshot,
    where a dict's own view would follow later changes)."""

    def view() -> Any:
        return getattr({key: mapping[key] for key in mapping}, name)()

    return view


#: Types never a dbzero container nor a key dbzero fails on: the hooks skip them at once.
_FAST = frozenset({int, float, bool, type(None)})
#: Items `in` asks dbzero about without a check (ints are not: -5 and 2**70 fail as keys).
_FAST_ITEMS = frozenset({float, bool, type(None)})


class _ItemWriter:
    """What `_write_` hands restricted code for a dbzero container: item assignment and
    deletion, with the value (and a dict's key) checked before dbzero sees it."""

    __slots__ = ("_kind", "_target")

    def __init__(self, target: Any, kind: ContainerKind) -> None:
        self._target = target
        self._kind = kind

    def __setitem__(self, key: Any, value: Any) -> None:
        self._target[key] = check_item(self._kind, key, value)

    def __delitem__(self, key: Any) -> None:
        if self._kind == "Dict":
            _checked(key, True, "a persisted dict as a key")
        del self._target[key]


#: Longest text one console write (one print call) may add.
MAX_CONSOLE_WRITE = 1_000_000
#: Longest job error text kept; the rest is cut with a note.
MAX_ERROR_CHARS = 65_536
#: Longest repr kept of an exit status that could not be stored.
EXIT_PREVIEW_CHARS = 1_000
#: Longest native tool result kept in the chat log (and so sent to the model).
MAX_TOOL_RESULT_CHARS = 100_000


def tool_result_text(text: str) -> str:
    """A native tool's result as the chat log keeps it: cut to `MAX_TOOL_RESULT_CHARS` with a
    note the model reads (a tool returning 40 MB was stored whole and sent on every later
    turn, past any model's context), and escaped where dbzero cannot store it."""
    if len(text) > MAX_TOOL_RESULT_CHARS:
        cut = len(text) - MAX_TOOL_RESULT_CHARS
        text = (text[:MAX_TOOL_RESULT_CHARS]
                + f"\n[statek] {cut:,} more characters of this result were cut")
    return plain_text(text)


def console_text(text: str) -> str:
    """`text` as the console stores it: lone surrogates and NULs escaped (dbzero cannot
    store the first and cuts strings at the second). Over `MAX_CONSOLE_WRITE` characters
    raises ValueError, so a huge print fails with a clear error instead of reaching dbzero."""
    check_console_write(text)
    return plain_text(text)


def check_console_write(text: str) -> None:
    """Raise ValueError for one console write over `MAX_CONSOLE_WRITE` characters: in the
    job's own statement (an isolated executor checks before its console leaves it), so job
    code can catch it and the model reads it, in either execution mode."""
    if len(text) > MAX_CONSOLE_WRITE:
        raise ValueError(f"console output of {len(text):,} characters in one write is over "
                         f"the limit of {MAX_CONSOLE_WRITE:,}; print less at a time")


def plain_text(text: str) -> str:
    """`text` with what dbzero cannot store as a string escaped."""
    if not text.isascii() and not utf8_encodable(text):
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    if "\x00" in text:
        text = text.replace("\x00", "\\x00")
    return text


def error_text(error: str) -> str:
    """A job's error message as stored: plain text of at most `MAX_ERROR_CHARS`."""
    if type(error) is not str:
        error = safe_repr(error)
    if len(error) > MAX_ERROR_CHARS:
        cut = len(error) - MAX_ERROR_CHARS
        error = error[:MAX_ERROR_CHARS] + f"\n[statek] {cut:,} more characters cut"
    return plain_text(error)


def safe_repr(value: Any, limit: int = EXIT_PREVIEW_CHARS) -> str:
    """repr() of `value` cut to `limit` characters; never raises (a huge int's repr does)."""
    try:
        text = repr(value)
    except Exception as exc:  # any failure of a __repr__
        text = f"<{type(value).__name__} object: repr() failed: {type(exc).__name__}>"
    if len(text) > limit:
        text = text[:limit] + f"... [{len(text) - limit:,} more characters]"
    return plain_text(text)


def exit_status_problem(value: Any) -> str | None:
    """Why `value` cannot be recorded as a job's exit status, or None."""
    return None if value is None else unstorable_reason(value)
