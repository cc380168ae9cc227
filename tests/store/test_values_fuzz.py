"""Random values through every write path (client API and job code): the process never
crashes, and each value is either stored or refused with a clear UnstorableValueError.

The paths run in a subprocess (tests/store/test_values_driver.py): dbzero 0.7.0 crashes the
process on some values, which must fail a test rather than kill pytest."""

from __future__ import annotations

import datetime
import decimal
import json
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from statek.models.storable import key_reason, unstorable_reason

ROOT = Path(__file__).resolve().parents[2]

_odd_chars = st.sampled_from(["\ud800", "\udfff", "\x00", "é", "\U0001f600"])
_text = st.text(st.one_of(st.characters(), _odd_chars), max_size=8)
_ints = st.one_of(
    st.integers(-(2**70), 2**70),
    st.sampled_from([2**63 - 1, -(2**63), 2**63, -(2**63) - 1, 2**64, 10**30, -1]),
)
_decimals = st.one_of(
    st.decimals(allow_nan=True, allow_infinity=True),
    st.sampled_from([decimal.Decimal(t) for t in ("NaN", "sNaN", "-Infinity", "1E+5", "-0",
                                                   "1E-63", "1E-64", "9" * 17, "9" * 18)]),
)
_scalars = st.one_of(st.none(), st.booleans(), _ints, st.floats(), _text,
                     st.binary(max_size=8), _decimals, st.dates(), st.datetimes())
_hashable = st.recursive(st.one_of(st.none(), st.booleans(), _ints, st.floats(), _text,
                                   st.binary(max_size=4)),
                         lambda inner: st.tuples(inner, inner), max_leaves=4)
_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.tuples(inner, inner),
                            st.dictionaries(_hashable, inner, max_size=3),
                            st.sets(_hashable, max_size=3)),
    max_leaves=8,
)


def _run_driver(values: list[Any], tmp: Path) -> dict[str, Any]:
    data, out = tmp / "values.pickle", tmp / "report.json"
    data.write_bytes(pickle.dumps(values))
    driver = "tests.store.test_values_driver"
    proc = subprocess.run([sys.executable, "-m", driver, str(data), str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"driver died ({proc.returncode}): {proc.stderr[-2000:]}"
    return json.loads(out.read_text())  # type: ignore[no-any-return]


def _check_report(values: list[Any], report: dict[str, Any]) -> None:
    for value, entry in zip(values, report["report"], strict=True):
        reason = unstorable_reason(value)
        for path, result in entry["client"].items():
            if path == "batch" or path == "submit" or path == "param" or path == "metadata":
                expected = "stored" if reason is None else "refused"
                assert result.startswith(expected), (path, entry["value"], result)
            else:
                assert result.startswith("stored" if reason is None else "refused"), (
                    path, entry["value"], result)
        for path, result in entry["job"].items():
            assert result.split(":")[0].endswith("DONE"), (path, entry["value"], result)
            if reason is not None and path in ("append", "item", "dict_item", "update",
                                               "setdefault", "nested", "extend", "iadd"):
                assert "UnstorableValueError" in result, (path, entry["value"], result)
            if reason is None and path in ("append", "item", "dict_item", "setdefault"):
                assert result.endswith("DONE: "), (path, entry["value"], result)


@settings(max_examples=3, deadline=None, suppress_health_check=list(HealthCheck),
          phases=[Phase.generate])  # each example is a subprocess: no shrinking
@given(values=st.lists(_values, min_size=12, max_size=12))
def test_random_values_never_crash_and_get_clear_errors(values: list[Any],
                                                        tmp_path_factory: Any) -> None:
    tmp = tmp_path_factory.mktemp("values")
    _check_report(values, _run_driver(values, tmp))


def test_known_crashers_are_refused_everywhere(tmp_path: Path) -> None:
    """Each of these crashed dbzero 0.7.0 (the whole process) on some path."""
    crashers = [("a\ud800",), (10**30,), (2**63,), decimal.Decimal("NaN"),
                (decimal.Decimal("Infinity"),), {(-1, 2): 1}, {(2, (-3,))},
                {decimal.Decimal("1E+99999"): 1}, "x\x00y", decimal.Decimal("1E+5"),
                datetime.date(2020, 1, 1)]
    report = _run_driver(crashers, tmp_path)
    _check_report(crashers, report)
    assert report["report"][-1]["client"]["submit"] == "stored"


def test_hashed_values_refuse_negative_ints_anywhere() -> None:
    assert key_reason((1, (2, -3))) is not None
    assert unstorable_reason((1, (2, -3))) is None
    assert unstorable_reason({(1, (2, -3)): 0}) is not None
