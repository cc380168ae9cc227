"""store.transition(): re-entrant, and the lock is released whatever happens inside."""

from __future__ import annotations

import dbzero as db0
import pytest

from statek import store


def test_nested_transitions_take_dbzero_lock_once(statek_store: str,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    taken: list[str] = []
    real_locked = db0.locked

    def counting_locked(*args: object, **kwargs: object) -> object:
        taken.append("lock")
        return real_locked(*args, **kwargs)

    monkeypatch.setattr(db0, "locked", counting_locked)
    with store.transition():
        assert store.transition().active
        with store.transition(), store.transition():
            pass
    assert taken == ["lock"]
    assert not store.transition().active


def test_transition_is_released_after_an_exception(statek_store: str) -> None:
    with pytest.raises(ValueError), store.transition(), store.transition():
        raise ValueError("inner failure")
    assert not store.transition().active
    with store.transition():  # usable again
        assert store.transition().active
