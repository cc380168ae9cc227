"""The stored form of a job's inbox: every delivery reads back unchanged, in order and of the
same types, whichever form holds it; only scalars are packed, and nothing is stored twice."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from statek import _json
from statek.models import inbox
from statek.models.inbox import MAX_HEAD_CHARS

SCALAR = st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1),
                   st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=40))
# values that must not be packed: containers (a plain dict would come back where the list
# form gives a dbzero one), an int past 64 bits, infinity, a lone surrogate
OTHER = st.one_of(st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
                  st.lists(st.integers(), max_size=2), st.integers(min_value=2**64),
                  st.just(float("inf")), st.just("\ud800"))
DELIVERIES = st.lists(st.tuples(st.lists(st.one_of(SCALAR, SCALAR, SCALAR, OTHER),
                                         min_size=1, max_size=12), st.booleans()),
                      max_size=30)


class FakeJob:
    """The two stored attributes (a Python list stands in for a dbzero one)."""

    inbox: Any = None
    inbox_more: Any = None


def _typed(value: Any) -> Any:
    """A value with its type spelled out, so 1 == 1.0 == True cannot pass for each other."""
    if isinstance(value, list | tuple):
        return [type(value).__name__, *(_typed(v) for v in value)]
    if isinstance(value, dict):
        return {k: _typed(v) for k, v in value.items()}
    return (type(value).__name__, value)


def _scalar(value: Any) -> bool:
    kind = type(value)
    return ((kind in (str, bool, type(None)) and value != "\ud800")
            or (kind is int and -(2**63) <= value < 2**63)
            or (kind is float and value not in (float("inf"), float("-inf"))))


@settings(max_examples=300, deadline=None)
@given(DELIVERIES)
def test_deliveries_read_back_unchanged_in_order(deliveries: list[tuple[list[Any], bool]]) -> None:
    job = FakeJob()
    sent: list[Any] = []
    kept: Any = None
    frozen_head = None
    for messages, keep in deliveries:  # `keep`: the caller passes back what it was given
        kept = inbox.deliver(job, messages, kept if keep else None)
        sent += messages
        if job.inbox_more is not None:  # a head with a tail is never rewritten
            frozen_head = job.inbox if frozen_head is None else frozen_head
            assert job.inbox == frozen_head
        assert inbox.count(job) == len(sent)
    assert _typed(inbox.messages_from(job, 0)) == _typed(sent)
    for start in range(len(sent) + 2):
        assert _typed(inbox.messages_from(job, start)) == _typed(sent[start:])
    assert _typed([inbox.message_at(job, i) for i in range(len(sent))]) == _typed(sent)
    with pytest.raises(IndexError):
        inbox.message_at(job, len(sent))


@settings(max_examples=300, deadline=None)
@given(DELIVERIES)
def test_only_the_first_scalars_are_packed_and_nothing_twice(
        deliveries: list[tuple[list[Any], bool]]) -> None:
    job = FakeJob()
    sent: list[Any] = []
    head_can_grow = True
    for messages, _ in deliveries:
        inbox.deliver(job, messages)
        sent += messages
        head_can_grow = (head_can_grow and all(map(_scalar, sent))
                         and len(_json.dumps(sent).decode()) <= MAX_HEAD_CHARS)
        assert (type(job.inbox) is str and job.inbox_more is None) == head_can_grow
    if type(job.inbox) is str:
        head = json.loads(job.inbox)
        assert len(head) + len(job.inbox_more or []) == len(sent)
        assert len(job.inbox) <= MAX_HEAD_CHARS
    elif sent:
        assert job.inbox == sent and job.inbox_more is None


def test_a_list_stored_by_an_earlier_version_takes_the_messages() -> None:
    job = FakeJob()
    job.inbox = ["one"]
    assert inbox.deliver(job, ["two", "three"]) is job.inbox
    assert job.inbox == ["one", "two", "three"] and job.inbox_more is None
    assert inbox.message_at(job, 2) == "three" and inbox.count(job) == 3


def test_an_empty_inbox_reads_as_no_messages() -> None:
    job = FakeJob()
    assert inbox.count(job) == 0 and inbox.messages_from(job, 0) == []
    with pytest.raises(IndexError):
        inbox.message_at(job, 0)
