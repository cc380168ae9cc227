"""dbzero's container types have one definition (statek.models.containers) and every module
that meets them agrees with it: the sandbox's write guard, the value checks, the storability
check, the process executor's hand-over, the queue copy, job code's copy and the JSON view."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import dbzero as db0
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import statek
from statek.errors import SandboxViolation
from statek.isolation.runner import RefTable
from statek.models import containers, storable, value_checks
from statek.models.containers import PLAIN_TYPES, container_kind, plain_copy
from statek.runtime import queues
from statek.sandbox import guards
from statek.sandbox import isolation as sandbox_isolation
from statek.server.jsonable import jsonable

FACTORIES: dict[str, Any] = {
    "List": lambda: db0.list([1, "a"]),
    "Dict": lambda: db0.dict({"a": 1}),
    "Set": lambda: db0.set([1, 2]),
    "Tuple": lambda: db0.tuple([1, "a"]),
    "ByteArray": lambda: db0.bytearray(b"ab"),
}

PLAINS: dict[str, Any] = {"List": [1, "a"], "Dict": {"a": 1}, "Set": {1, 2}, "Tuple": (1, "a"),
                          "ByteArray": b"ab"}


def test_every_kind_is_recognised_as_dbzero_0_7_names_it(statek_store: str) -> None:
    assert set(FACTORIES) == set(containers.CONTAINER_KINDS) == set(PLAIN_TYPES)
    for kind, make in FACTORIES.items():
        value = make()
        assert type(value).__name__ == kind and container_kind(value) == kind
        assert containers.is_container(value)
        assert containers.is_mutable_container(value) == (kind != "Tuple")
        assert plain_copy(value) == PLAINS[kind]
        assert type(plain_copy(value, mutable_bytes=True)) is PLAIN_TYPES[kind]
    index = db0.index()
    assert containers.stored_kind_of_type(type(index)) == "Index"
    assert container_kind(index) is None and containers.is_stored_collection(index)


def test_plain_values_and_look_alike_classes_are_not_containers() -> None:
    for value in ([1], {"a": 1}, {1}, (1,), bytearray(b"x"), "List", 3, None):
        assert container_kind(value) is None and not containers.is_stored_collection(value)
    fake = type("List", (list,), {"__module__": "builtins"})  # what job code could define
    assert fake.__module__ == "builtins" and containers.kind_of_type(fake) is None


def test_each_module_treats_each_kind_as_the_definition_says(statek_store: str) -> None:
    """The seven places that meet dbzero containers, asked about a real one of each kind."""
    for kind, make in FACTORIES.items():
        value = make()
        plain_type = PLAIN_TYPES[kind]
        # sandbox write guard: mutable kinds pass, a Tuple is refused like a tuple
        if kind in containers.MUTABLE_KINDS:
            assert guards._guarded_write(value) is value
        else:
            with pytest.raises(SandboxViolation):
                guards._guarded_write(value)
        # value checks on job code's writes
        assert value_checks._db0_kind(value) == kind == value_checks._db0_kind(type(value))
        # storability: stored as they are; refused as keys exactly when unhashable
        assert storable.unstorable_reason(value) is None
        assert (storable.key_reason(value) is not None) == (kind in containers.UNHASHABLE_KINDS)
        # the process executor receives the plain counterpart (bytes for a ByteArray)
        sent = RefTable().to_child(value)
        assert type(sent) is (bytes if kind == "ByteArray" else plain_type)
        # job code's copy is a mutable one; the queue's copy is storable
        assert type(sandbox_isolation.plain_copy(value)) is plain_type
        assert type(queues.plain_copy(value)) is (bytes if kind == "ByteArray" else plain_type)
        # the JSON view
        shown = jsonable(value)
        if kind == "Dict":
            assert shown == {"a": 1}
        elif kind in ("List", "Tuple"):
            assert shown == [1, "a"]
        else:
            assert shown == {"repr": repr(plain_copy(value))}


def test_the_copies_are_the_one_definition() -> None:
    assert queues.plain_copy is containers.plain_copy
    assert statek.sandbox.plain_copy is sandbox_isolation.plain_copy


_NAME = r"""["'](?:List|Dict|Set|Tuple|ByteArray|Index)["']"""
#: A container name in a table (followed by "," or ":") or next to a class's __name__.
_BY_NAME = re.compile(rf"{_NAME}\s*(,|:\s*[^\s#])|__name__.*{_NAME}|{_NAME}.*__name__")
#: Files still to be moved onto containers.py by their owner (listed so the test stays honest).
_PENDING: set[str] = set()


def test_no_other_module_recognises_containers_by_class_name() -> None:
    """Detection by class name lives in containers.py only: elsewhere a container name may
    appear as a kind (compared with a typed kind), never next to a class's `__name__` or in
    a table of names."""
    root = Path(statek.__file__).parent
    offenders = [
        f"{path.relative_to(root)}:{number}: {line.strip()}"
        for path in sorted(root.rglob("*.py")) if path != root / "models" / "containers.py"
        and str(path.relative_to(root)) not in _PENDING
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if _BY_NAME.search(line)
    ]
    assert offenders == []


def test_plain_copy_refuses_runaway_nesting() -> None:
    value: list[Any] = []
    for _ in range(containers.MAX_COPY_DEPTH + 5):
        value = [value]
    with pytest.raises(ValueError, match="nested more than"):
        plain_copy(value)


# --- one nested value through every path ---------------------------------------------------

_text = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"),
                max_size=8)
_keys = _text | st.integers(0, 2**63 - 1)
_scalars = (st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | _text
            | st.floats(allow_nan=False) | st.binary(max_size=8))
_values = st.recursive(
    _scalars,
    lambda inner: (st.lists(inner, max_size=4) | st.tuples(inner, inner)
                   | st.dictionaries(_keys, inner, max_size=4)
                   | st.sets(_keys, max_size=4)),
    max_leaves=20,
)


def _same_shape(copied: Any, original: Any) -> bool:
    """Equal, with the same built-in type at every level."""
    if type(copied) is not type(original):
        return False
    if type(original) in (list, tuple):
        return len(copied) == len(original) and all(
            _same_shape(a, b) for a, b in zip(copied, original, strict=True))
    if type(original) is dict:
        return copied.keys() == original.keys() and all(
            _same_shape(copied[k], v) for k, v in original.items())
    return bool(copied == original) or copied != copied


def _ordered(value: Any) -> bool:
    """Whether jsonable() shows `value` the same whatever the order dbzero iterates it in."""
    if type(value) is set:
        return False
    if type(value) is dict:
        return all(type(k) is str for k in value) and all(map(_ordered, value.values()))
    if type(value) in (list, tuple):
        return all(map(_ordered, value))
    return True


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(_values)
def test_a_stored_value_reads_back_the_same_through_every_path(statek_store: str,
                                                               value: Any) -> None:
    assert storable.unstorable_reason(value) is None
    stored = db0.list([value])[0]
    copied = plain_copy(stored)
    assert _same_shape(copied, value)
    assert _same_shape(sandbox_isolation.plain_copy(stored), value)
    assert _same_shape(RefTable().to_child(stored), value)
    assert storable.unstorable_reason(stored) is None
    assert storable.unstorable_reason(copied) is None
    assert plain_copy(copied) is copied  # nothing left to copy
    assert jsonable(stored) == jsonable(copied)
    if _ordered(value):
        assert jsonable(stored) == jsonable(value)
