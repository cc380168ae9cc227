"""The packed chunk form: any run of values packs and unpacks to the same values, of the
same types; plain-JSON runs become one string, anything else is stored as it is.
Every test runs against both twins of the codec (`storage_impl`), and the twins must give
the same entries for the same input."""
# The imported fixture is shadowed by test parameters of the same name, by design.
# ruff: noqa: F811

from __future__ import annotations

import datetime
import decimal
import math
from collections import UserList
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from statek import _json, _speedups
from statek.models import fifo_pack
from tests.support.speedups_fixture import storage_impl  # noqa: F401

MAX_DEPTH = fifo_pack.MAX_DEPTH


def same(a: Any, b: Any) -> bool:
    """Equal and of the same types all the way down (1 == 1.0 == True would pass `==`)."""
    if type(a) is not type(b):
        return False
    if type(a) is float and math.isnan(a):
        return math.isnan(b)
    if type(a) in (list, tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if type(a) is dict:
        return list(a) == list(b) and all(same(a[k], b[k]) and same(k, kb)
                                          for k, kb in zip(a, b, strict=True))
    return bool(a == b)


scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True, allow_infinity=True),
    st.text(), st.binary(max_size=4), st.dates(), st.just(decimal.Decimal("1.5")),
    st.sampled_from(["\ud800", "a\udfffb"]))  # lone surrogates: JSON backends refuse them
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.tuples(inner, inner),
        st.dictionaries(st.one_of(st.text(max_size=3), st.integers(0, 3)), inner, max_size=3)),
    max_leaves=12)


runs = st.integers(1, 3).flatmap(
    lambda stride: st.tuples(st.just(stride),
                             st.lists(st.lists(values, min_size=stride, max_size=stride),
                                      max_size=8)))


# the fixture is a module: nothing to reset between examples
@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(runs)
def test_any_run_unpacks_to_the_values_pushed(storage_impl: ModuleType,
                                              case: tuple[int, list[list[Any]]]) -> None:
    pack, unpack = storage_impl.pack, storage_impl.unpack
    stride, items = case
    flat = [value for item in items for value in item]
    assert same(unpack(pack(flat, stride), stride), flat)
    one_by_one = [entry for item in items for entry in pack(tuple(item), stride)]
    assert same(unpack(one_by_one, stride), flat)


def test_a_plain_json_run_is_one_string(storage_impl: ModuleType) -> None:
    pack, unpack = storage_impl.pack, storage_impl.unpack
    flat = ["JOBA", "hello", "JOBB", {"k": [1, 2.5, None, True]}]
    (entry,) = pack(flat, 2)
    assert type(entry) is str and same(unpack([entry], 2), flat)


def test_items_json_would_change_are_stored_as_they_are(storage_impl: ModuleType) -> None:
    pack, unpack = storage_impl.pack, storage_impl.unpack
    when = datetime.date(2026, 12, 3)
    flat = ["A", "one", "B", (1, 2), "C", when, "D", "two"]
    entries = pack(flat, 2)
    assert entries[1:6] == [2, "B", (1, 2), "C", when]  # a count, then the values as they are
    assert type(entries[0]) is str and type(entries[6]) is str
    assert same(unpack(entries, 2), flat)


def test_plain_json_is_what_comes_back_unchanged(storage_impl: ModuleType) -> None:
    is_plain_json = storage_impl.is_plain_json
    for plain in ("s", 0, -(1 << 63), (1 << 63) - 1, 1.5, True, None, [1, {"a": []}]):
        assert is_plain_json(plain), plain
    deep: Any = []
    for _ in range(MAX_DEPTH + 1):
        deep = [deep]
    for not_plain in ((1,), {1: "a"}, 1 << 63, math.inf, math.nan, b"x",
                      datetime.date(2026, 1, 1), {"a": (1,)}, deep):
        assert not is_plain_json(not_plain), not_plain


def test_a_lone_surrogate_is_stored_as_it_is(storage_impl: ModuleType) -> None:
    pack, unpack = storage_impl.pack, storage_impl.unpack
    flat = ["A", "fine", "B", "bad \ud800", "C", "fine too"]
    entries = pack(flat, 2)
    assert "bad \ud800" in entries and same(unpack(entries, 2), flat)
    assert pack(("B", "bad \ud800"), 2) == [1, "B", "bad \ud800"]


def test_a_stride_below_one_is_refused(storage_impl: ModuleType) -> None:
    with pytest.raises(ValueError, match="stride must be >= 1, got 0"):
        storage_impl.pack(["A", "x"], 0)


def test_any_sequence_packs_like_a_list(storage_impl: ModuleType) -> None:
    flat = ["A", "one", "B", (1, 2)]
    assert storage_impl.pack(UserList(flat), 2) == storage_impl.pack(flat, 2)
    assert storage_impl.json_text(UserList(["a", 1])) == '["a",1]'
    assert storage_impl.json_text(["bad \ud800"]) is None


def test_json_text_is_the_backends_encoding(storage_impl: ModuleType) -> None:
    values = ["é", 1, 2.5, None, {"k": [True]}]
    assert storage_impl.json_text(values) == _json.dumps(values).decode()
    assert storage_impl.json_text(tuple(values)) == _json.dumps(values).decode()


DAMAGED = [  # (entries, stride, what the error says of entry `index`)
    ([-1, "a", "b"], 2, 0, "is not a count of the 2 value"),  # read on, it looped forever
    ([0, "a", "b"], 2, 0, "is not a count"),  # no progress either
    ([2, "a", "b"], 2, 0, "is not a count of the 2 value"),  # past the end
    ([True, "a", "b"], 2, 0, "is not a count"),  # a bool is not a count pack writes
    ([1.0, "a", "b"], 2, 0, "is not a count"),
    (['["a","b"]', None], 2, 1, "is not a count of the 0 value"),
    (['["a","b","c"]'], 2, 0, "is not a JSON array of items of 2 value"),  # half an item
    (['{"a": 1}'], 1, 0, "is not a JSON array"),
    (["[1, 2"], 1, 0, "is not a JSON array"),  # not JSON at all
]


@pytest.mark.parametrize(("entries", "stride", "index", "why"), DAMAGED)
def test_a_damaged_chunk_raises_naming_the_entry(
        storage_impl: ModuleType, entries: list[Any], stride: int, index: int,
        why: str) -> None:
    """Entries `pack` cannot write are refused, not read on: a negative count looped
    forever, a wrong one shifted every later item's values."""
    with pytest.raises(ValueError, match="damaged packed fifo chunk") as raised:
        storage_impl.unpack(entries, stride)
    assert f"entry {index} ({entries[index]!r}) {why}" in str(raised.value)


@settings(max_examples=300, deadline=None)
@given(runs)
def test_the_twins_store_the_same_entries(case: tuple[int, list[list[Any]]]) -> None:
    compiled = _speedups.compiled_storage
    if compiled is None:
        pytest.skip(f"compiled codec unavailable: {_speedups.COMPILED_UNAVAILABLE_REASON}")
    pure = _speedups.pure_storage
    stride, items = case
    flat = [value for item in items for value in item]
    entries = pure.pack(flat, stride)
    assert same(compiled.pack(flat, stride), entries)
    assert same(compiled.unpack(entries, stride), pure.unpack(entries, stride))
    for value in flat:
        assert compiled.is_plain_json(value) is pure.is_plain_json(value)


def test_the_models_use_the_selected_twin() -> None:
    for name in ("pack", "unpack", "is_plain_json", "json_text"):
        pure, compiled = _speedups.twins_of(name)
        chosen = compiled if _speedups.IMPLEMENTATIONS[name] == "compiled" else pure
        assert getattr(fifo_pack, name) is getattr(chosen, name)
