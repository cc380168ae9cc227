"""store.transition(): no lock when statek's prefixes do not autocommit (the default),
a single re-entrant db0.locked() when one does, released whatever happens inside."""

from __future__ import annotations

from pathlib import Path

import dbzero as db0
import pytest

from statek import store


@pytest.fixture
def lock_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    taken: list[str] = []
    real_locked = db0.locked

    def counting_locked(*args: object, **kwargs: object) -> object:
        taken.append("lock")
        return real_locked(*args, **kwargs)

    monkeypatch.setattr(db0, "locked", counting_locked)
    return taken


def test_default_prefixes_need_no_lock(statek_store: str, lock_calls: list[str]) -> None:
    with store.transition(), store.transition():
        assert store.transition().active
    assert lock_calls == []
    assert db0.get_state_num(statek_store, finalized=True) <= db0.get_state_num(statek_store)


def test_autocommitting_prefix_takes_dbzero_lock_once(statek_store: str,
                                                      lock_calls: list[str]) -> None:
    store.open_prefix("auto", "rw", autocommit=True)
    with store.transition(), store.transition(), store.transition():
        assert store.transition().active
    assert lock_calls == ["lock"]
    assert not store.transition().active


def test_transition_is_released_after_an_exception(statek_store: str) -> None:
    store.open_prefix("auto", "rw", autocommit=True)
    with pytest.raises(ValueError), store.transition(), store.transition():
        raise ValueError("inner failure")
    assert not store.transition().active
    with store.transition():  # usable again
        assert store.transition().active


def test_statek_prefix_does_not_autocommit(tmp_path: Path) -> None:
    import time

    import statek

    db0.init(dbzero_root=str(tmp_path))
    try:
        statek.open_prefix("quiet", "rw")
        statek.Agent("a")
        before = db0.get_state_num("quiet", finalized=True)
        time.sleep(0.5)  # longer than dbzero's autocommit interval (367 ms)
        assert db0.get_state_num("quiet", finalized=True) == before
        statek.commit_all()
        assert db0.get_state_num("quiet", finalized=True) > before
    finally:
        store.close()
