"""The one fixture that runs a test against both scheduler-kernel twins.

Import it into a test module with
``from tests.support.speedups_fixture import sched_impl  # noqa: F401``.
The compiled case is skipped (with the reason) when the extension is not
built or is disabled, unless STATEK_REQUIRE_EXTENSIONS=1, where a missing
extension is a failure: wheel tests must never pass on the fallback alone.
"""

from __future__ import annotations

import os
from types import ModuleType

import pytest

from statek import _speedups


def compiled_or_skip() -> ModuleType:
    """The compiled kernels module, or skip/fail the calling test."""
    if _speedups.compiled is not None:
        return _speedups.compiled
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
