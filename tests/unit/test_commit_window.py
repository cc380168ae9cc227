"""The group-commit window a commit's cost leaves (statek.runtime.loop.commit_window)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from statek.runtime.loop import COMMIT_SHARE, commit_window

seconds = st.floats(min_value=0.0, max_value=10.0, allow_nan=False)
windows = st.floats(min_value=1e-3, max_value=10.0, allow_nan=False)


@given(seconds, windows, windows)
def test_the_window_stays_within_its_bounds(took: float, shortest: float,
                                            longest: float) -> None:
    window = commit_window(took, shortest, longest)
    assert shortest <= window <= max(shortest, longest)


@given(seconds, seconds, windows, windows)
def test_a_costlier_commit_never_shortens_the_window(a: float, b: float, shortest: float,
                                                     longest: float) -> None:
    cheap, costly = sorted((a, b))
    assert commit_window(cheap, shortest, longest) <= commit_window(costly, shortest, longest)


def test_a_cheap_commit_keeps_the_configured_window() -> None:
    assert commit_window(0.0001, 0.05, 0.25) == 0.05


def test_a_costly_commit_keeps_commits_to_their_share() -> None:
    window = commit_window(0.004, 0.05, 0.25)  # a 4 ms commit
    assert window == 0.004 / COMMIT_SHARE  # 80 ms: commits take COMMIT_SHARE of the loop
    assert commit_window(1.0, 0.05, 0.25) == 0.25  # never past the longest


def test_a_fixed_window_when_the_longest_is_the_shortest() -> None:
    assert commit_window(1.0, 0.05, 0.05) == 0.05
