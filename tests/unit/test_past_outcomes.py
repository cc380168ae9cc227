"""The stored form of a job's earlier outcomes: whatever was appended reads back unchanged,
in order and of the same types, in whichever form it was kept."""

from __future__ import annotations

import datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from statek.models import past_outcomes
from statek.models.past_outcomes import MAX_PACKED

PLAIN = st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1),
                  st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=20))
# values JSON would change: a tuple, a date, an int past 64 bits, infinity, a lone surrogate
OTHER = st.one_of(st.tuples(st.integers()), st.dates(), st.integers(min_value=2**64),
                  st.just(float("inf")), st.just("\ud800"))
OUTCOME = st.tuples(st.one_of(PLAIN, OTHER), st.one_of(st.none(), st.text(max_size=20)),
                    st.floats(0, 2e9), st.floats(0, 2e9))


def _typed(values: Any) -> Any:
    """A value with its types spelled out, so 1 == 1.0 == True cannot pass for each other."""
    if isinstance(values, tuple | list):
        return [type(values).__name__, *(_typed(v) for v in values)]
    return (type(values).__name__, values)


def _stored(outcomes: list[Any]) -> Any:
    past: Any = None
    for outcome in outcomes:
        stored = past_outcomes.appended(past, outcome)
        if stored is not None:
            past = stored
    return past


@settings(max_examples=300, deadline=None)
@given(st.lists(OUTCOME, max_size=MAX_PACKED + 4))
def test_outcomes_read_back_unchanged_in_order(outcomes: list[Any]) -> None:
    past = _stored(outcomes)
    assert _typed(past_outcomes.decoded(past)) == _typed(outcomes)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(PLAIN, st.none(), st.floats(0, 2e9), st.floats(0, 2e9)),
                min_size=1, max_size=MAX_PACKED + 4))
def test_plain_outcomes_are_one_string_up_to_the_bound(outcomes: list[Any]) -> None:
    past = _stored(outcomes)
    assert (type(past) is str) == (len(outcomes) <= MAX_PACKED)


def test_an_outcome_json_would_change_moves_the_earlier_ones_to_a_list() -> None:
    first = ("done", None, 1.5, 2.5)
    past = _stored([first])
    assert type(past) is str
    when = datetime.date(2026, 12, 3)
    past = _stored([first, (when, "late", 3.0, 4.0), ("again", None, 5.0, 6.0)])
    assert past == [first, (when, "late", 3.0, 4.0), ("again", None, 5.0, 6.0)]


def test_a_lone_surrogate_is_kept_as_it_is() -> None:
    assert past_outcomes.appended(None, ("\ud800", None, 1.0, 2.0)) == [
        ("\ud800", None, 1.0, 2.0)]


def test_a_list_stored_by_an_earlier_version_grows_in_place() -> None:
    earlier = [{"exit_status": "a", "error": None, "finished_at": 1.0, "reopened_at": 2.0}]
    assert past_outcomes.appended(earlier, ("b", None, 3.0, 4.0)) is None
    assert past_outcomes.decoded(earlier)[1] == ("b", None, 3.0, 4.0)
