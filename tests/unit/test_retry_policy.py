"""`retry.failure_label`: one name per kind of failed model request in the metrics."""

from __future__ import annotations

import pytest

from statek.errors import ProviderError
from statek.providers.retry import failure_label
from statek.providers.transports.base import ConnectionFailed, ReplyTimeout


def _raised_from(cause: BaseException) -> ProviderError:
    try:
        raise ProviderError("gave up") from cause
    except ProviderError as exc:
        return exc


@pytest.mark.parametrize(("failure", "label"), [
    (ProviderError("HTTP 503", status=503), "503"),
    (_raised_from(ConnectionFailed("refused")), "connection"),
    (_raised_from(ReplyTimeout("slow")), "timeout"),
    (ConnectionFailed("refused"), "connection"),
    (ReplyTimeout("slow"), "timeout"),
    (TimeoutError(), "timeout"),  # the step's own step_timeout
    (ProviderError("malformed reply"), "ProviderError"),  # no status, no transport cause
    (_raised_from(ValueError("x")), "ProviderError"),
    (RuntimeError("a provider's own bug"), "RuntimeError"),
])
def test_each_failure_has_one_label(failure: BaseException, label: str) -> None:
    assert failure_label(failure) == label
