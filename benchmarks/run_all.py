"""Run workloads W1-W7 (docs/workloads.md) in fresh processes and print one table.

    python -m benchmarks.run_all                       # full sizes, compiled, median of 3
    python -m benchmarks.run_all --quick               # smaller sizes, 1 repeat (~2-3 min)
    python -m benchmarks.run_all --impl both           # compiled and pure, with their ratio
    python -m benchmarks.run_all --only W3,W5 --repeats 5

Each measurement is `python -m benchmarks.workloads --one W.. --n ..` in its own process
(`STATEK_NO_EXTENSIONS=1` selects the pure kernels). Figures are medians over the repeats;
repeats of the two implementations alternate so drift hits both alike. The table is also
written to benchmarks/results/latest.json, with every raw result. A measurement that fails
(a crash, or a hang the workload's watchdog turns into an error) is retried once; failures
are printed under the table and kept in the JSON.

Derived rows: "W1 scaling" is jobs/s at the largest N over jobs/s at N=1k (target: within
20%, i.e. >= 0.8); "W3 flatness" is the iteration cost at the largest S over the smallest
(we read "flat in S" as <= 2x).
"""

from __future__ import annotations

import argparse
import datetime
import json
import operator
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks._harness import print_table, run_isolated

RESULTS = Path(__file__).resolve().parent / "results" / "latest.json"
IMPL_ENV = {"compiled": {"STATEK_NO_EXTENSIONS": ""}, "pure": {"STATEK_NO_EXTENSIONS": "1"}}
OPS = {">=": operator.ge, "<=": operator.le}


@dataclass
class Spec:
    """One table row: a workload run with `args`, reporting `key` of its result."""

    workload: str
    params: str
    args: tuple[str, ...]
    key: str = "figure"
    label: str = ""
    unit: str = ""
    target: tuple[str, float] | None = None
    runs: dict[str, list[float]] = field(default_factory=dict)
    raw: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    errors: dict[str, list[str]] = field(default_factory=dict)
    actual_impl: dict[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.label or self.workload


def specs(quick: bool) -> list[Spec]:
    w1_sizes = (1_000, 10_000) if quick else (1_000, 10_000, 100_000)
    w3_sizes = (1_000, 10_000) if quick else (1_000, 10_000, 100_000)
    w4_sizes = (10_000,) if quick else (10_000, 100_000)
    w6_n = 5_000 if quick else 20_000
    w7_n = 20_000 if quick else 100_000
    w5_samples = 50 if quick else 200
    rows: list[Spec] = []
    for n in w1_sizes:
        rows.append(Spec("W1", f"N={n} C=1000", ("--n", str(n)), unit="jobs/s",
                         target=(">=", 11_000) if n == 10_000 else None))
    rows.append(Spec("W2", "N=2000 C=100", ("--n", "2000"), unit="steps/s",
                     target=(">=", 7_300)))
    for s in w3_sizes:
        rows.append(Spec("W3", f"S={s}", ("--n", str(s)), unit="µs/iteration",
                         target=("<=", 1_000)))
    for m in w4_sizes:
        rows.append(Spec("W4", f"M={m} jobs=1000", ("--n", str(m)), unit="µs/msg",
                         target=("<=", 9)))
    w5_args = ("--n", "10000", "--samples", str(w5_samples))
    rows.append(Spec("W5", "10k suspended", w5_args, key="submit_to_first_step_ms",
                     label="W5 submit->first step", unit="ms", target=("<=", 5)))
    rows.append(Spec("W5", "10k suspended", w5_args, key="submit_return_to_first_step_ms",
                     label="W5 (submit returned)", unit="ms"))
    rows.append(Spec("W5", "10k suspended", w5_args, key="child_done_to_parent_resume_ms",
                     label="W5 child done->parent", unit="ms", target=("<=", 5)))
    rows.append(Spec("W6", f"N={w6_n} C=5000 latency=0.1s", ("--n", str(w6_n)),
                     unit="% of ideal", target=(">=", 80)))
    rows.append(Spec("W7", f"{w7_n} suspended", ("--n", str(w7_n)), unit="bytes/job",
                     target=("<=", 1024)))
    return rows


def measure(rows: list[Spec], impls: list[str], repeats: int) -> None:
    """Fill each row's runs; rows sharing a command share one process per repeat."""
    cache: dict[tuple[str, tuple[str, ...], str, int], dict[str, Any] | str] = {}
    total = len({(r.workload, r.args) for r in rows}) * len(impls) * repeats
    done = 0
    for row in rows:
        for repeat in range(repeats):
            for impl in impls:
                ident = (row.workload, row.args, impl, repeat)
                if ident not in cache:
                    done += 1
                    print(f"[{done}/{total}] {row.workload} {' '.join(row.args)} ({impl}, "
                          f"run {repeat + 1})", file=sys.stderr, flush=True)
                    cache[ident] = _run(row, impl)
                got = cache[ident]
                if isinstance(got, str):
                    row.errors.setdefault(impl, []).append(got)
                    continue
                row.errors.setdefault(impl, []).extend(got.get("failed_attempts", []))
                row.raw.setdefault(impl, []).append(got)
                row.runs.setdefault(impl, []).append(float(got[row.key]))
                row.actual_impl[impl] = str(got.get("implementation", impl))


def _run(row: Spec, impl: str, attempts: int = 2) -> dict[str, Any] | str:
    """One measurement; a failed one (crash, or a hang the workload's watchdog ended) is
    retried once and the failure kept in the row's errors either way."""
    failures = []
    for _ in range(attempts):
        try:
            got = run_isolated("benchmarks.workloads", "--one", row.workload, *row.args,
                               env=IMPL_ENV[impl])
        except Exception as exc:  # report it and run the rest
            failures.append(f"{type(exc).__name__}: {exc}")
            print(f"    failed: {failures[-1][:300]}", file=sys.stderr, flush=True)
            continue
        if failures:
            got["failed_attempts"] = failures
        return got
    return "\n".join(failures)


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _fmt(value: float | None) -> str:
    if value is None:
        return "error"
    if value != value:  # NaN
        return "nan"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _meets(value: float | None, target: tuple[str, float] | None) -> str:
    if target is None:
        return "(reference)"
    if value is None or value != value:
        return "?"
    return "yes" if OPS[target[0]](value, target[1]) else "NO"


def derived(rows: list[Spec], impl: str) -> list[dict[str, Any]]:
    """W1 scaling and W3 flatness, from the medians of one implementation."""
    out = []
    for workload, label, params_of, op, bound, reading in (
        ("W1", "W1 scaling", "jobs/s at N={big} / N={small}", ">=", 0.8, "higher"),
        ("W3", "W3 flatness", "µs at S={big} / S={small}", "<=", 2.0, "lower"),
    ):
        sized = [(int(r.args[1]), _median(r.runs.get(impl, [])))
                 for r in rows if r.workload == workload and r.key == "figure"]
        sized = [(n, v) for n, v in sized if v]
        if len(sized) < 2:
            continue
        (small, low), (big, high) = min(sized), max(sized)
        ratio = high / low
        out.append({"workload": label, "params": params_of.format(big=big, small=small),
                    "implementation": impl, "median": ratio, "unit": "ratio",
                    "target": f"{op} {bound}", "meets": _meets(ratio, (op, bound)),
                    "runs": [], "reading": reading})
    return out


def table(rows: list[Spec], impls: list[str]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for row in rows:
        for impl in impls:
            value = _median(row.runs.get(impl, []))
            actual = row.actual_impl.get(impl, impl)
            entry: dict[str, Any] = {
                "workload": row.name, "params": row.params,
                "implementation": actual if actual == impl else f"{actual} (asked {impl})",
                "median": value, "unit": row.unit,
                "target": f"{row.target[0]} {row.target[1]:,}" if row.target else "-",
                "meets": _meets(value, row.target), "runs": row.runs.get(impl, []),
            }
            if row.errors.get(impl):
                entry["errors"] = row.errors[impl]
            if len(impls) == 2:
                compiled = _median(row.runs.get("compiled", []))
                pure = _median(row.runs.get("pure", []))
                entry["compiled_over_pure"] = (compiled / pure if compiled is not None
                                               and pure else None)
            out.append(entry)
    for impl in impls:
        out.extend(derived(rows, impl))
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller sizes, 1 repeat")
    parser.add_argument("--impl", choices=("compiled", "pure", "both"), default="compiled")
    parser.add_argument("--repeats", type=int, help="runs per data point (default 3; 1 quick)")
    parser.add_argument("--only", help="comma-separated workload ids, e.g. W1,W4")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    repeats = args.repeats or (1 if args.quick else 3)
    impls = ["compiled", "pure"] if args.impl == "both" else [args.impl]
    rows = specs(args.quick)
    if args.only:
        wanted = {w.strip().upper() for w in args.only.split(",")}
        rows = [r for r in rows if r.workload in wanted]
    started = datetime.datetime.now(datetime.UTC)
    measure(rows, impls, repeats)
    entries = table(rows, impls)
    headers = ["workload", "parameters", "implementation", "median", "unit", "target",
               "meets target?"]
    if len(impls) == 2:
        headers.append("compiled/pure")
    lines = []
    for e in entries:
        line = [e["workload"], e["params"], e["implementation"], _fmt(e["median"]), e["unit"],
                e["target"], e["meets"]]
        if len(impls) == 2:
            ratio = e.get("compiled_over_pure")
            line.append(f"{ratio:.2f}" if ratio is not None else "")
        lines.append(line)
    print_table(headers, lines)
    shown = set()
    for e in entries:
        for error in e.get("errors", [])[:1]:
            if error not in shown:  # rows sharing a process share its error
                shown.add(error)
                print(f"\n{e['workload']} {e['params']} ({e['implementation']}): {error}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "started": started.isoformat(timespec="seconds"),
        "finished": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "quick": args.quick, "implementations": impls, "repeats": repeats,
        "python": sys.version.split()[0], "rows": entries,
        "raw": [{"workload": r.name, "params": r.params, "results": r.raw} for r in rows],
    }
    args.out.write_text(json.dumps(report, indent=1, default=str) + "\n")
    print(f"\nwritten to {args.out}")


if __name__ == "__main__":
    main()
