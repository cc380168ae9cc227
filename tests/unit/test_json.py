"""statek._json: both backends give the same bytes for the same values."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import importlib.util
import math
import sys
import uuid
from types import ModuleType
from typing import Any

import pytest

import statek._json as default_json


def load_stdlib_backend(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """A private copy of statek._json that finds no orjson."""
    monkeypatch.setitem(sys.modules, "orjson", None)  # makes `import orjson` raise ImportError
    spec = importlib.util.spec_from_file_location("_statek_json_stdlib", default_json.__file__)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(params=["default", "stdlib"])
def codec(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    if request.param == "stdlib":
        return load_stdlib_backend(monkeypatch)
    return default_json


def test_backend_name(monkeypatch: pytest.MonkeyPatch) -> None:
    expected = "orjson" if importlib.util.find_spec("orjson") else "json"
    backend: str = default_json.JSON_BACKEND
    assert backend == expected
    assert load_stdlib_backend(monkeypatch).JSON_BACKEND == "json"


class Colour(enum.Enum):
    RED = "red"


@dataclasses.dataclass
class Point:
    x: int
    y: float


SAMPLES: list[tuple[Any, bytes]] = [
    ({"a": 1, "b": [True, None, 2.5]}, b'{"a":1,"b":[true,null,2.5]}'),
    ("zażółć ✓", '"zażółć ✓"'.encode()),
    ((1, 2), b"[1,2]"),
    ([math.nan, math.inf, 1.0], b"[null,null,1.0]"),
    ({"p": Point(1, 2.0)}, b'{"p":{"x":1,"y":2.0}}'),
    (Colour.RED, b'"red"'),
    (uuid.UUID(int=1), b'"00000000-0000-0000-0000-000000000001"'),
    (dt.date(2024, 5, 6), b'"2024-05-06"'),
    (dt.datetime(2024, 5, 6, 7, 8, 9), b'"2024-05-06T07:08:09"'),
]


@pytest.mark.parametrize(("value", "encoded"), SAMPLES)
def test_dumps_same_bytes(codec: ModuleType, value: Any, encoded: bytes) -> None:
    assert codec.dumps(value) == encoded


@pytest.mark.parametrize(
    "data", [b'{"k": [1, "x"]}', '{"k": [1, "x"]}', bytearray(b'{"k":[1,"x"]}')]
)
def test_loads_bytes_and_text(codec: ModuleType, data: Any) -> None:
    assert codec.loads(data) == {"k": [1, "x"]}


def test_round_trip(codec: ModuleType) -> None:
    value = {"nested": {"list": [1, 2.5, "ü", None, False]}, "empty": {}}
    assert codec.loads(codec.dumps(value)) == value


@pytest.mark.parametrize("bad", [b"{", b"", b"[1,]", "nope", b"\xff"])
def test_loads_errors_are_value_errors(codec: ModuleType, bad: Any) -> None:
    with pytest.raises(ValueError):
        codec.loads(bad)


def test_dumps_errors_are_type_errors(codec: ModuleType) -> None:
    with pytest.raises(TypeError):
        codec.dumps(object())
    with pytest.raises(TypeError):
        codec.dumps({1, 2})
