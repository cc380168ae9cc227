"""The HTTP API's body parser reads the same bodies the same way whichever JSON backend is
installed (orjson with statek[fast], the standard library without)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from statek import _json
from statek.server import validate


@pytest.fixture(params=["orjson", "json"])
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    if request.param == "orjson":
        pytest.importorskip("orjson")
        if _json.JSON_BACKEND != "orjson":
            pytest.skip("orjson installed but not selected")
    else:
        monkeypatch.setattr(_json, "JSON_BACKEND", "json")
        monkeypatch.setattr(_json, "_loads", _json._stdlib_loads)
    yield request.param


@pytest.mark.parametrize("body", [
    b'{"message": "half \\ud800 a pair"}',
    b'{"message": "\\udc00 low first"}',
    b'{"message": ["ok", {"deep": "\\uDBFF"}]}',
    b'{"\\ud800": 1}',
    b'{"n": 12345678901234567890123, "m": "lone \\ud800"}',  # the big-int path too
])
def test_a_lone_surrogate_is_refused(backend: str, body: bytes) -> None:
    with pytest.raises(ValueError, match="surrogate"):
        validate._loads(body)


def test_pairs_and_plain_text_are_read(backend: str) -> None:
    assert validate._loads(b'{"m": "smile \\ud83d\\ude00", "n": 12345678901234567890123}') == {
        "m": "smile \U0001f600", "n": 12345678901234567890123}
    assert validate._loads('{"m": "caf\u00e9 \\\\ud800"}'.encode()) == {"m": "caf\u00e9 \\ud800"}


def test_nan_is_refused(backend: str) -> None:
    with pytest.raises(ValueError):
        validate._loads(b'{"x": NaN}')
