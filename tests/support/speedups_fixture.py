"""The fixtures that run a test against both twins of a kernel pair.

Import one into a test module with
``from tests.support.speedups_fixture import sched_impl  # noqa: F401``
(the scheduler's kernels) or ``storage_impl`` (the push queue's packed chunk codec).
The compiled case is skipped (with the reason) when the extension is not
built or is disabled, unless STATEK_REQUIRE_EXTENSIONS=1, where a missing
extension is a failure: wheel tests must never pass on the fallback alone.
"""

from __future__ import annotations

import os
from types import ModuleType

import pytest

from statek import _speedups


def compiled_or_skip(module: ModuleType | None = None) -> ModuleType:
    """The compiled scheduler kernels (or `module`, another compiled twin), or skip/fail
    the calling test."""
    module = _speedups.compiled if module is None else module
    if module is not None and _speedups.compiled is not None:
        return module
    reason = f"compiled kernels unavailable: {_speedups.COMPILED_UNAVAILABLE_REASON}"
    if os.environ.get("STATEK_REQUIRE_EXTENSIONS") == "1":
        pytest.fail(f"{reason} (STATEK_REQUIRE_EXTENSIONS=1)")
    pytest.skip(reason)


@pytest.fixture(params=["pure", "compiled"])
def sched_impl(request: pytest.FixtureRequest) -> ModuleType:
    """The kernels module under test: ``_sched_py`` or ``_sched_c``."""
    if request.param == "pure":
        return _speedups.pure
    return compiled_or_skip()


@pytest.fixture(params=["pure", "compiled"])
def storage_impl(request: pytest.FixtureRequest) -> ModuleType:
    """The packed chunk codec under test: ``_storage_py`` or ``_storage_c``."""
    if request.param == "pure":
        return _speedups.pure_storage
    return compiled_or_skip(_speedups.compiled_storage)
