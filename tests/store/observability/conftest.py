"""Observability tests: the recorder and tracing state are process-wide; start each test clean."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from statek.observability import hooks, tracing
from statek.observability.recorder import RECORDER


@pytest.fixture(autouse=True)
def _clean_observability() -> Iterator[None]:
    RECORDER.reset()
    yield
    RECORDER.reset()
    tracing.use_tracer_provider(None)
    tracing.configure(False)
    hooks.ON = False
