"""A job's stored locals: scalars inline in one JSON string, the rest in a dbzero dict."""

from __future__ import annotations

import math
from typing import Any

import dbzero as db0
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import statek
from statek.errors import UnstorableValueError
from statek.models.job_locals import INLINE_STR_CHARS, StoredLocals, is_inline


def _plain(value: Any) -> Any:
    """A stored value as plain Python, for comparing with the model."""
    kind = type(value).__name__
    if kind in ("List", "list"):
        return [_plain(v) for v in value]
    if kind in ("Dict", "dict"):
        return {k: _plain(v) for k, v in value.items()}
    if kind in ("Tuple", "tuple"):
        return tuple(_plain(v) for v in value)
    return value


@pytest.mark.parametrize(("value", "inline"), [
    (0, True), (-(2**63), True), (2**63, False), (1.5, True), (-0.0, True),
    (math.inf, False), (math.nan, False), (True, True), (None, True), ("", True),
    ("x" * INLINE_STR_CHARS, True), ("x" * (INLINE_STR_CHARS + 1), False), (b"x", False),
    ((1,), False), ([1], False), ({"a": 1}, False),
])
def test_what_is_kept_inline(value: Any, inline: bool) -> None:
    assert is_inline(value) is inline


def test_submission_splits_scalars_from_containers(api: statek.StatekClientAPI,
                                                   agent: statek.Agent) -> None:
    job = api.submit_new_job(agent, {"n": 1, "s": "short", "xs": [1, 2], "f": 0.5})
    assert type(job.inline_vars) is str
    assert type(job.vars).__name__ == "Tuple"
    assert _plain(dict(job.locals)) == {"n": 1, "s": "short", "xs": [1, 2], "f": 0.5}
    scalars_only = api.submit_new_job(agent, {"n": 1})
    assert scalars_only.vars is None and scalars_only.locals["n"] == 1


def test_a_name_moves_between_the_two_forms(api: statek.StatekClientAPI,
                                            agent: statek.Agent) -> None:
    job = api.submit_new_job(agent, {"a": 1})
    stored = StoredLocals(job)
    stored.bind({"a": [1, 2]})  # scalar -> container
    assert job.inline_vars is None and _plain(dict(job.locals)) == {"a": [1, 2]}
    stored.bind({"a": "back"})  # container -> scalar
    assert job.vars is None or "a" not in job.vars
    assert dict(job.locals) == {"a": "back"}
    stored.bind({}, ("a",))
    assert dict(job.locals) == {}


def test_unchanged_scalars_are_not_rewritten(api: statek.StatekClientAPI,
                                             agent: statek.Agent) -> None:
    job = api.submit_new_job(agent, {"a": 1, "b": "x"})
    before = job.inline_vars
    StoredLocals(job).bind({"a": 1, "b": "x"})
    assert job.inline_vars == before
    StoredLocals(job).bind({"a": True})  # same value, another type: rewritten
    assert job.locals["a"] is True


def test_lone_surrogates_are_refused_before_dbzero_sees_them(
        api: statek.StatekClientAPI, agent: statek.Agent) -> None:
    """dbzero 0.7.0 crashes the process storing a tuple holding such a string."""
    with pytest.raises(UnstorableValueError, match="surrogate"):
        api.submit_new_job(agent, {"odd": ("a\ud800b",)})
    assert not is_inline("a\ud800b")


def test_a_refused_value_writes_no_scalar(api: statek.StatekClientAPI,
                                          agent: statek.Agent) -> None:
    job = api.submit_new_job(agent, {"a": 1})
    with pytest.raises((TypeError, AttributeError, OverflowError, ValueError)):
        StoredLocals(job).bind({"a": 2, "bad": [object()]})
    assert dict(job.locals) == {"a": 1}


_ints = st.integers(-(2**63), 2**63 - 1)  # what can_persist lets through to storage
# what storable text is: no lone surrogate (Cs), no NUL (see statek.models.storable)
_chars = st.characters(exclude_categories=["Cs"], exclude_characters="\x00")
_text = st.text(_chars, max_size=300)
_scalars = _ints | st.floats(allow_nan=False) | st.booleans() | st.none() | _text
_values = _scalars | st.lists(_ints, max_size=3) | st.dictionaries(
    st.text(_chars, max_size=3), _ints, max_size=2)
_names = st.sampled_from(["a", "b", "c", "d"])
_ops = st.lists(st.tuples(st.booleans(), _names, _values), max_size=12)


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.dictionaries(_names, _values, max_size=4), ops=_ops)
def test_matches_a_plain_dict(api: statek.StatekClientAPI, agent: statek.Agent,
                              seed: dict[str, Any], ops: list[tuple[bool, str, Any]]) -> None:
    """Any sequence of binds and deletes reads back, from a fresh read of storage, as the
    same sequence applied to a plain dict."""
    job = api.submit_new_job(agent, seed)
    model = dict(seed)
    stored = StoredLocals(job)
    for delete, name, value in ops:
        if delete:
            stored.bind({}, (name,))
            model.pop(name, None)
        else:
            stored.bind({name: value})
            model[name] = value
        assert _plain(stored.values()) == model or _floats_equal(stored.values(), model)
    db0.commit()
    fresh = StoredLocals(db0.fetch(job.uuid))
    assert set(fresh.values()) == set(model)
    assert _floats_equal(fresh.values(), model)
    assert not set(fresh.inline) & set(fresh.other)


def _floats_equal(got: dict[str, Any], want: dict[str, Any]) -> bool:
    """Equality that also tells -0.0 from 0.0."""
    if set(got) != set(want):
        return False
    for name, value in want.items():
        have = _plain(got[name])
        if type(have) is not type(value) or have != value:
            return False
        if type(value) is float and math.copysign(1, value) != math.copysign(1, have):
            return False
    return True
