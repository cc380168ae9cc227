"""The collector settings a worker loop applies while it runs, and restores after."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from statek.runtime.collector import tuned_collector


@pytest.fixture(autouse=True)
def clean_collector() -> Iterator[None]:
    before = gc.get_threshold()
    gc.unfreeze()
    yield
    gc.set_threshold(*before)
    gc.unfreeze()


def test_inside_the_loop_young_collections_are_rarer_and_old_objects_frozen() -> None:
    before = gc.get_threshold()
    with tuned_collector(20_000):
        assert gc.get_threshold() == (20_000, before[1], before[2])
        assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_zero_changes_nothing() -> None:
    before = gc.get_threshold()
    with tuned_collector(0):
        assert gc.get_threshold() == before and gc.get_freeze_count() == 0


def test_an_applications_own_freeze_is_left_alone() -> None:
    gc.freeze()
    frozen = gc.get_freeze_count()
    with tuned_collector(5_000):
        assert gc.get_threshold()[0] == 5_000
    assert gc.get_freeze_count() >= frozen > 0


def test_settings_are_restored_when_the_block_raises() -> None:
    before = gc.get_threshold()
    with pytest.raises(RuntimeError), tuned_collector(9_000):
        raise RuntimeError("boom")
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0
