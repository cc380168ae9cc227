"""Future kinds and wake keys have one definition each (statek.models.future)."""

from __future__ import annotations

from typing import get_args

import dbzero as db0

import statek
from statek.models import future as future_module
from statek.models.future import (
    ALL,
    ANY,
    CONDITION,
    JOB,
    MESSAGE,
    TIMER,
    Future,
    FutureKind,
    IndexedWake,
    WakeKind,
    wake_key,
    wake_key_kind,
)


def test_the_kind_constants_are_the_literal_type() -> None:
    assert get_args(FutureKind) == (JOB, TIMER, MESSAGE, ALL, ANY, CONDITION)
    assert set(get_args(IndexedWake)) <= set(get_args(WakeKind))


def test_a_wake_key_names_its_kind_and_uuid() -> None:
    for kind in get_args(IndexedWake):
        key = wake_key(kind, "ABC123")
        assert key == f"{kind}:ABC123" and wake_key_kind(key) == kind


def test_every_future_yields_wake_keys_of_the_declared_kinds(statek_store: str) -> None:
    api = statek.StatekClientAPI()
    agent = statek.Agent("kinds")
    owner = api.submit_new_job(agent)
    other = api.submit_new_job(agent)
    futures = [Future(JOB, owner, target=other), Future(TIMER, owner, deadline=1e12),
               Future(MESSAGE, owner), Future(CONDITION, owner, condition=bool, args=[0])]
    futures += [Future(ALL, owner, parts=futures[:2]), Future(ANY, owner, parts=futures[1:3])]
    seen = {kind for f in futures for kind, _ in f.wake_keys()}
    assert seen == set(get_args(WakeKind))
    keys = {wake_key(kind, what) for f in futures for kind, what in f.wake_keys()
            if kind in get_args(IndexedWake)}
    assert keys == {wake_key("job", db0.uuid(other)), wake_key("message", db0.uuid(owner))}
    assert all(type(f.kind) is str and f.kind in get_args(FutureKind) for f in futures)
    assert future_module.Future is Future


def test_the_int_states_index_the_status_names() -> None:
    from statek.models import status

    for name in status.STATUS_NAMES:
        assert status.STATUS_NAMES[getattr(status, name)] == name
        assert status.state_of(name) == getattr(status, name)
