"""The transition block's twins (`statek._speedups.Transition`): re-entrant, one lock for
the outermost block while something autocommits and none otherwise, released whatever
happens inside, and re-checked at every outermost entry (a prefix opened with autocommit
later must be honoured). tests/store/test_transition.py runs it against dbzero."""
# The imported fixture is shadowed by test parameters of the same name, by design.
# ruff: noqa: F811

from __future__ import annotations

import pickle
from types import ModuleType, TracebackType

import pytest

from statek import store
from tests.support.speedups_fixture import storage_impl  # noqa: F401


class Lock:
    """Records what the transition does with the lock it takes."""

    def __init__(self, log: list[str]) -> None:
        self.log = log

    def __enter__(self) -> None:
        self.log.append("enter")

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.log.append(f"exit {kind.__name__ if kind else None}")


def make(impl: ModuleType, autocommitting: set[str]) -> tuple[object, list[str]]:
    log: list[str] = []

    def take_lock() -> Lock:
        log.append("take")
        return Lock(log)

    return impl.Transition(autocommitting, take_lock), log


def test_no_lock_while_nothing_autocommits(storage_impl: ModuleType) -> None:
    block, log = make(storage_impl, set())
    assert not block.active  # type: ignore[attr-defined]
    with block, block:  # type: ignore[attr-defined]
        assert block.active  # type: ignore[attr-defined]
    assert not block.active and log == []  # type: ignore[attr-defined]


def test_the_outermost_block_holds_one_lock(storage_impl: ModuleType) -> None:
    block, log = make(storage_impl, {"auto"})
    with block, block, block:  # type: ignore[attr-defined]
        assert log == ["take", "enter"]
    assert log == ["take", "enter", "exit None"]
    assert not block.active  # type: ignore[attr-defined]


def test_the_lock_is_released_with_the_exception(storage_impl: ModuleType) -> None:
    block, log = make(storage_impl, {"auto"})
    with pytest.raises(ValueError, match="inside"), block, block:  # type: ignore[attr-defined]
        raise ValueError("inside")
    assert log == ["take", "enter", "exit ValueError"]
    assert not block.active  # type: ignore[attr-defined]
    with block:  # type: ignore[attr-defined]
        pass
    assert log[-3:] == ["take", "enter", "exit None"]


def test_autocommit_is_read_at_each_outermost_entry(storage_impl: ModuleType) -> None:
    autocommitting: set[str] = set()
    block, log = make(storage_impl, autocommitting)
    with block:  # type: ignore[attr-defined]
        autocommitting.add("late")
        with block:  # type: ignore[attr-defined]
            pass  # joins the outer block, which took no lock
    assert log == []
    with block:  # type: ignore[attr-defined]
        pass
    assert log == ["take", "enter", "exit None"]
    autocommitting.clear()
    with block:  # type: ignore[attr-defined]
        pass
    assert len(log) == 3


def test_a_lock_that_fails_to_enter_leaves_no_block_open(storage_impl: ModuleType) -> None:
    class Broken:
        def __enter__(self) -> None:
            raise RuntimeError("dbzero refused")

        def __exit__(self, *exc: object) -> None:
            raise AssertionError("never entered")

    block = storage_impl.Transition({"auto"}, Broken)
    with pytest.raises(RuntimeError, match="dbzero refused"), block:
        pass
    assert not block.active


def test_a_transition_cannot_be_pickled(storage_impl: ModuleType) -> None:
    block, _ = make(storage_impl, set())
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(block)


def test_the_store_uses_the_selected_twin() -> None:
    from statek import _speedups

    assert type(store.transition()) is _speedups.Transition
