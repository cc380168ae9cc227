"""Count dbzero operations per job step, per message pushed and per message delivered (W4).

    python -m benchmarks.storage_ops                      # counts, one JSON line + a table
    python -m benchmarks.storage_ops --times --repeats 5  # plus W4 timings (median of runs)
    python -m benchmarks.storage_ops --floor              # bare dbzero floor of a queue

The counting shim (`OpCounter`) is installed only for the duration of a measurement:

* attribute reads and writes on instances of statek's memo classes (the C `tp_getattro` of
  each class is wrapped; method lookups are not counted), and memo objects created;
* operations on dbzero containers read from memo attributes (they are handed out wrapped in a
  counting proxy: item get/set/del, len, iteration, `in`, and every method call);
* calls of the dbzero module functions statek uses (`commit`, `fetch`, `uuid`, ...);
* stored values read (each item of a slice) and stored (each item appended, extended or set,
  a list set as an item counting its items): dbzero charges by value, not by byte.

Counting is slow (every counted operation goes through Python); timings are measured
separately, without the shim. The counts are deterministic for a given code version.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import gc
import json
import logging
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

from benchmarks._harness import fresh_store, print_table

PREFIX = "bench"
#: dbzero functions counted when called through the `dbzero` module.
DB0_FUNCTIONS = ("commit", "fetch", "uuid", "exists", "get_prefix_of", "tags", "find",
                 "delete", "materialized", "list", "dict", "set", "tuple", "load",
                 "is_memo", "touch")
_CONTAINER_TYPES = ("List", "Dict", "Set", "Tuple", "ByteArray", "Index")
_PLAIN_CONTAINERS = (list, tuple, dict, set)
_READS = frozenset({"get", "items", "keys", "values", "index", "count", "copy", "len",
                    "iter", "contains", "getitem", "getslice"})
#: Offsets of tp_getattro / tp_setattro in PyTypeObject (CPython 3.11-3.13, 64-bit).
_GETATTRO = 18 * ctypes.sizeof(ctypes.c_void_p)
_SETATTRO = 19 * ctypes.sizeof(ctypes.c_void_p)
_getattrofunc = ctypes.PYFUNCTYPE(ctypes.py_object, ctypes.py_object, ctypes.py_object)
_setattrofunc = ctypes.PYFUNCTYPE(ctypes.c_int, ctypes.py_object, ctypes.py_object,
                                  ctypes.py_object)


def _is_container(value: Any) -> bool:
    kind = type(value)
    return kind.__module__ == "builtins" and kind.__name__ in _CONTAINER_TYPES and \
        kind not in (list, dict, set, tuple, bytearray)


def _plain(value: Any) -> Any:
    return value._target if type(value) is _Counted else value


class _Counted:
    """A dbzero container seen through the shim: every operation counts once."""

    __slots__ = ("_counter", "_label", "_target")

    def __init__(self, target: Any, label: str, counter: OpCounter) -> None:
        object.__setattr__(self, "_target", target)
        object.__setattr__(self, "_label", label)
        object.__setattr__(self, "_counter", counter)

    def _count(self, op: str) -> None:
        self._counter.container(self._label, op)

    def __getitem__(self, key: Any) -> Any:
        self._count("getslice" if type(key) is slice else "getitem")
        found = self._target[_plain(key)]
        self._counter.values("values read", self._label, len(found) if type(key) is slice else 1)
        return self._counter.wrap(found, self._label + "[]")

    def __setitem__(self, key: Any, value: Any) -> None:
        self._count("setitem")
        self._counter.created(self._label, (value,))
        self._counter.values("values stored", self._label,
                             len(value) if type(value) in (list, tuple) else 1)
        self._target[_plain(key)] = _plain(value)

    def __delitem__(self, key: Any) -> None:
        self._count("delitem")
        del self._target[_plain(key)]

    def __len__(self) -> int:
        self._count("len")
        return len(self._target)

    def __iter__(self) -> Iterator[Any]:
        self._count("iter")
        return iter(self._target)

    def __contains__(self, item: Any) -> bool:
        self._count("contains")
        return _plain(item) in self._target

    def __bool__(self) -> bool:
        return self.__len__() > 0

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._target, name)
        if not callable(method):
            return method

        def call(*args: Any, **kwargs: Any) -> Any:
            self._count(name)
            if name in ("append", "extend", "add") and args:
                self._counter.created(self._label, args[0] if name == "extend" else args[:1])
                self._counter.values("values stored", self._label,
                                     len(args[0]) if name == "extend" else 1)
            return method(*(_plain(a) for a in args), **kwargs)
        return call


class OpCounter:
    """Counts dbzero operations while installed (`with OpCounter() as ops:`)."""

    def __init__(self, classes: list[type] | None = None) -> None:
        self.classes = classes if classes is not None else memo_classes()
        self.ops: Counter[str] = Counter()
        self._undo: list[Callable[[], None]] = []

    # ------------------------------------------------------------------ counting
    def container(self, label: str, op: str) -> None:
        kind = "read" if op in _READS else "write"
        self.ops[f"container {kind}: {label}.{op}"] += 1

    def values(self, kind: str, label: str, count: int) -> None:
        """Stored values read or stored by one container operation (dbzero charges by value:
        ~1.4 µs to read one back, docs/costs.md C31)."""
        self.ops[f"{kind}: {label}"] += count

    def created(self, label: str, values: Any) -> None:
        """Count the dbzero containers that storing `values` creates (a plain tuple, list,
        dict or set becomes one; its own items are looked at one level down)."""
        if type(values) not in (list, tuple):
            return
        for value in values:
            if type(value) in _PLAIN_CONTAINERS:
                self.ops[f"create: container in {label}"] += 1
                for item in (value.values() if type(value) is dict else value):
                    if type(item) in _PLAIN_CONTAINERS:
                        self.ops[f"create: container in {label}"] += 1

    def wrap(self, value: Any, label: str) -> Any:
        return _Counted(value, label, self) if _is_container(value) else value

    def totals(self) -> dict[str, int]:
        """Operations by kind: attr reads/writes, container reads/writes, creations, db0."""
        out: Counter[str] = Counter()
        for key, n in self.ops.items():
            out[key.split(":", 1)[0]] += n
        return dict(sorted(out.items()))

    # ------------------------------------------------------------------ install
    def __enter__(self) -> OpCounter:
        self._count_constructors()
        # every class's own slots, read before any is wrapped: wrapping (and unwrapping) a
        # class also rewrites the inherited slots of its subclasses
        slots = {cls: self._slots(cls) for cls in self.classes}

        def put_back() -> None:
            for cls, (get_ptr, set_ptr) in slots.items():
                ctypes.c_void_p.from_address(id(cls) + _GETATTRO).value = get_ptr
                ctypes.c_void_p.from_address(id(cls) + _SETATTRO).value = set_ptr
        self._undo.append(put_back)  # runs last
        for cls in self.classes:
            self._shim_class(cls, *slots[cls])
        self._shim_module()
        return self

    @staticmethod
    def _slots(cls: type) -> tuple[int, int]:
        get_ptr = ctypes.c_void_p.from_address(id(cls) + _GETATTRO).value or 0
        set_ptr = ctypes.c_void_p.from_address(id(cls) + _SETATTRO).value or 0
        if not get_ptr or not set_ptr:
            raise RuntimeError(f"{cls.__qualname__} has no attribute slots to wrap")
        return get_ptr, set_ptr

    def _count_constructors(self) -> None:
        """Memo objects created, net: the growth of `db0.find(cls)` over the measurement (the
        constructor slot of a memo class is dbzero's own and must stay so, and a profile hook
        crashed dbzero 0.7.0)."""
        import dbzero as db0

        def population() -> dict[str, int]:
            sizes: dict[str, int] = {}
            for cls in self.classes:
                try:
                    sizes[cls.__name__] = len(db0.find(cls))
                except Exception:  # a class with no objects in the open prefix
                    continue
            return sizes

        before = population()

        def count() -> None:
            for name, size in population().items():
                grown = size - before.get(name, 0)
                if grown:
                    self.ops[f"create: {name} (net)"] += grown
        self._undo.append(count)

    def __exit__(self, *exc: object) -> None:
        while self._undo:
            self._undo.pop()()

    def _shim_class(self, cls: type, get_ptr: int, set_ptr: int) -> None:
        original_get = _getattrofunc(get_ptr)
        original_set = cls.__dict__["__setattr__"]
        original_setattro = _setattrofunc(set_ptr)
        name = cls.__name__
        methods = {key for klass in cls.__mro__ for key, value in vars(klass).items()
                   if callable(value) or hasattr(value, "__get__")}
        ops = self.ops

        def getattribute(obj: Any, attr: str) -> Any:
            value = original_get(ctypes.py_object(obj), ctypes.py_object(attr))
            if attr in methods:
                return value
            ops[f"attr read: {name}.{attr}"] += 1
            return self.wrap(value, f"{name}.{attr}")

        def setattr_(obj: Any, attr: str, value: Any) -> None:
            ops[f"attr write: {name}.{attr}"] += 1
            if type(value) in _PLAIN_CONTAINERS:
                ops[f"create: container {name}.{attr}"] += 1
                self.created(f"{name}.{attr}", value if type(value) is not dict else
                             list(value.values()))
            original_setattro(ctypes.py_object(obj), ctypes.py_object(attr),
                              ctypes.py_object(_plain(value)))

        def restore() -> None:
            type.__delattr__(cls, "__getattribute__")
            type.__setattr__(cls, "__setattr__", original_set)

        type.__setattr__(cls, "__getattribute__", getattribute)
        type.__setattr__(cls, "__setattr__", setattr_)
        self._undo.append(restore)

    def _shim_module(self) -> None:
        import dbzero as db0

        for fname in DB0_FUNCTIONS:
            original = getattr(db0, fname, None)
            if original is None:
                continue

            def counted(*args: Any, _f: Any = original, _n: str = fname, **kw: Any) -> Any:
                self.ops[f"db0: {_n}"] += 1
                return _f(*(_plain(a) for a in args), **kw)
            setattr(db0, fname, counted)

            def undo(_n: str = fname, _f: Any = original) -> None:
                setattr(db0, _n, _f)
            self._undo.append(undo)


def _is_singleton(cls: type) -> bool:
    import inspect

    try:
        source = inspect.getsource(cls)
    except (OSError, TypeError):
        return True  # unknown: leave its constructor alone
    return "singleton=True" in source.split("class ", 1)[0]


def memo_classes() -> list[type]:
    """statek's dbzero memo classes (those defined in statek.models and the budget model)."""
    import importlib
    import pkgutil

    import statek.models as models

    found: dict[int, type] = {}
    for info in pkgutil.iter_modules(models.__path__):
        module = importlib.import_module(f"statek.models.{info.name}")
        for value in vars(module).values():
            if isinstance(value, type) and "__DBZERO_TAG_FIELDS_ATTR" in value.__dict__ \
                    and "__setattr__" in value.__dict__:
                found[id(value)] = value
    return list(found.values())


# ---------------------------------------------------------------------------- scenarios


def _quiet() -> None:
    logging.disable(logging.INFO)


def _done_jobs(jobs: int) -> list[str]:
    """`jobs` jobs run to DONE in the open store (the W4 setup); their uuids."""
    import statek
    from statek.executors.utils import run_jobs_loop

    agent = statek.Agent("bench-w4")
    ids = statek.StatekClientAPI().submit_new_job_ids(
        agent, [{"i": i} for i in range(jobs)], warmup_code="exit('done')")
    asyncio.run(run_jobs_loop(1000, queue_prefixes=[PREFIX], auto_terminate=True))
    return list(ids)


def _drain_all() -> int:
    """Deliver every queued message the way W4 does; returns messages delivered."""
    import dbzero as db0

    from statek import store
    from statek.executors.utils import process_push_notifications
    from statek.runtime.loop import QUEUE_MAX_PER_ITERATION, QUEUE_STEP

    max_pending = store.settings().commit_max_pending
    delivered = pending = 0
    while True:
        got = process_push_notifications(QUEUE_STEP, QUEUE_MAX_PER_ITERATION,
                                          queue_prefixes=[PREFIX])
        if not got:
            break
        delivered += got
        pending += got
        if pending >= max_pending:
            db0.commit()
            pending = 0
    db0.commit()
    return delivered


def _push(ids: list[str], m: int, batch: int) -> None:
    """Queue `m` messages round-robin over `ids`: one call per message (batch 1, then a
    commit per 1,000) or `push_messages` calls of `batch` (a commit each)."""
    import dbzero as db0

    from statek.models.push_queue import StatekPushQueue

    queue = StatekPushQueue(PREFIX)
    if batch == 1:
        for k in range(m):
            queue.push_message(ids[k % len(ids)], f"message {k}")
            if k % 1000 == 999:
                db0.commit()
    else:
        for start in range(0, m, batch):
            queue.push_messages([(ids[k % len(ids)], f"message {k}")
                                 for k in range(start, min(m, start + batch))])
            db0.commit()
    db0.commit()


def queue_counts(m: int = 2000, jobs: int = 200) -> dict[str, Any]:
    """Operations per message: pushed one by one, pushed in batches, delivered."""
    out: dict[str, Any] = {}
    with fresh_store(PREFIX):
        ids = _done_jobs(jobs)
        gc.collect()
        for label, batch in (("enqueue (push_message)", 1), ("enqueue (push_messages 500)", 500)):
            with OpCounter() as ops:
                _push(ids, m, batch)
            out[label] = _per(ops, m)
        with OpCounter() as ops:
            delivered = _drain_all()
        out["drain (W4, DONE jobs)"] = _per(ops, delivered)
        _push(ids, m, 500)
        with OpCounter() as ops:
            delivered = _drain_all()
        out["drain again (jobs already re-opened)"] = _per(ops, delivered)
    return out


def step_counts(n: int = 200) -> dict[str, Any]:
    """Operations per step of two-step jobs (the W2 shape: a model request, then running the
    reply `exit('ok')`), and per one-step W1 job (warmup `exit('done')`)."""
    import statek
    from statek.executors.utils import run_jobs_loop
    from statek.providers import ScriptedProvider, add_provider

    out: dict[str, Any] = {}
    add_provider("bench-ops", ScriptedProvider(["exit('ok')"], latency=0.0))
    with fresh_store(PREFIX):
        agent = statek.Agent("bench-ops")
        statek.StatekClientAPI().submit_new_job_ids(agent, [{"i": i} for i in range(n)])
        del agent
        with OpCounter() as ops:
            stats = asyncio.run(run_jobs_loop(100, "bench-ops", queue_prefixes=[PREFIX],
                                              auto_terminate=True))
        if stats.steps_failed or stats.jobs_completed != n:
            raise RuntimeError(f"two-step jobs did not all finish: {stats}")
        out["step (two-step job)"] = _per(ops, stats.steps_done)
    with fresh_store(PREFIX):
        agent = statek.Agent("bench-w1")
        statek.StatekClientAPI().submit_new_job_ids(
            agent, [{"i": i} for i in range(n)], warmup_code="exit('done')")
        del agent
        with OpCounter() as ops:
            stats = asyncio.run(run_jobs_loop(1000, queue_prefixes=[PREFIX],
                                              auto_terminate=True))
        out["job (W1 one-step)"] = _per(ops, stats.jobs_completed)
    out["job submitted (W1)"] = submit_counts(n)
    return out


def submit_counts(n: int = 200) -> dict[str, Any]:
    """Operations per job submitted as W1 submits them (one `submit_new_job_ids` call, no
    loop listening), after one warm-up job (the JobDef and the anchor exist)."""
    import statek

    with fresh_store(PREFIX):
        agent = statek.Agent("bench-w1")
        api = statek.StatekClientAPI()
        api.submit_new_job_ids(agent, [{"i": -1}], warmup_code="exit('done')")
        with OpCounter() as ops:
            ids = api.submit_new_job_ids(agent, [{"i": i} for i in range(n)],
                                         warmup_code="exit('done')")
        return _per(ops, len(ids))


def _per(ops: OpCounter, units: int) -> dict[str, Any]:
    units = max(units, 1)
    return {"units": units,
            "per_unit": {k: round(v / units, 3) for k, v in ops.totals().items()},
            "detail": {k: round(v / units, 3) for k, v in sorted(ops.ops.items())}}


# ---------------------------------------------------------------------------- timings


class _Clock:
    """Wall and CPU time of a block (CPU time is steadier on a shared, loaded machine)."""

    def __init__(self) -> None:
        self.wall = self.cpu = 0.0

    def __enter__(self) -> _Clock:
        self._wall, self._cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self._wall
        self.cpu = time.process_time() - self._cpu


def w4_times(m: int = 10_000, jobs: int = 1000) -> dict[str, float]:
    """W4's drain (µs/msg, as `benchmarks.workloads.w4` measures it, log records of
    re-opened jobs off) and the enqueue cost (µs/msg) one by one and in `push_messages`
    calls of 500, in one fresh store; wall and CPU time."""
    from statek.runtime.scheduler import current_scheduler

    out: dict[str, float] = {}
    with fresh_store(PREFIX):
        ids = _done_jobs(jobs)
        current_scheduler()  # subscribed, as under a running loop (W4 does the same)
        gc.collect()
        with _Clock() as clock:
            _push(ids, m // 10, 1)
        out.update(enqueue_one_us=clock.wall / (m // 10) * 1e6,
                   enqueue_one_cpu_us=clock.cpu / (m // 10) * 1e6)
        _drain_all()
        with _Clock() as clock:
            _push(ids, m, 500)
        out.update(enqueue_batch_us=clock.wall / m * 1e6, enqueue_batch_cpu_us=clock.cpu / m * 1e6)
        gc.collect()
        with _Clock() as clock:
            delivered = _drain_all()
        out.update(drain_us=clock.wall / max(delivered, 1) * 1e6,
                   drain_cpu_us=clock.cpu / max(delivered, 1) * 1e6)
    return out


def floor_times(m: int = 10_000, jobs: int = 1000) -> dict[str, float]:
    """The least dbzero allows for the same work, in a bare memo model: one list per queue
    with (job, message) stored flat and kept in Python, the head and tail in a [head, tail]
    list read afresh for each write (a list item write costs a third of a memo attribute's,
    docs/costs.md C35; an item set through a list held across a commit is lost, docs/storage.md
    S15). Push one by one: one 2-value extend, one attribute read and one list item write.
    Drain as W4 (calls of 5,000, a commit per call): one slice per call, then per job one
    inbox extend (or the inbox's creation) and one state write, and one head write."""
    import dbzero as db0

    @db0.memo(id="bench/FloorJob")
    class FloorJob:
        def __init__(self) -> None:
            self.inbox: Any = None
            self.state = 3

    @db0.memo(id="bench/FloorQueue")
    class FloorQueue:
        def __init__(self) -> None:
            self.items: Any = []
            self.jobs: Any = []
            self.ends: Any = [0, 0]

    with fresh_store(PREFIX):
        q = FloorQueue()
        holder = q.jobs
        for _ in range(jobs):
            holder.append(FloorJob())
        db0.commit()
        targets = list(holder)
        with _Clock() as pushed:
            _floor_push(q, m, jobs)
        with _Clock() as drained:
            _floor_drain(q, targets, m)
        del targets, holder, q
    return {"floor_drain_us": drained.wall / m * 1e6, "floor_drain_cpu_us": drained.cpu / m * 1e6,
            "floor_enqueue_us": pushed.wall / m * 1e6,
            "floor_enqueue_cpu_us": pushed.cpu / m * 1e6}


def _floor_push(q: Any, m: int, jobs: int) -> None:
    import dbzero as db0

    items = q.items
    for k in range(m):
        items.extend((k % jobs, f"message {k}"))
        q.ends[1] = k + 1
        if k % 1000 == 999:  # as `_push` one by one
            db0.commit()
    db0.commit()


def _floor_drain(q: Any, targets: list[Any], m: int) -> None:
    import dbzero as db0

    items = q.items
    for start in range(0, m, 5000):
        flat = items[2 * start:2 * (start + 5000)]
        grouped: dict[int, list[Any]] = {}
        for k in range(0, len(flat), 2):
            grouped.setdefault(flat[k], []).append(flat[k + 1])
        for number, messages in grouped.items():
            job = targets[number]
            inbox = job.inbox
            if inbox is None:
                job.inbox = messages
            else:
                inbox.extend(messages)
            job.state = 1
        q.ends[0] = start + len(flat) // 2
        db0.commit()


def _median_runs(repeats: int, measure: Callable[[], dict[str, float]]) -> dict[str, Any]:
    runs = [measure() for _ in range(repeats)]
    return {key: {"median": statistics.median(r[key] for r in runs),
                  "runs": [r[key] for r in runs]} for key in runs[0]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--times", action="store_true", help="also time W4 (no shim)")
    parser.add_argument("--floor", action="store_true", help="time the bare dbzero floor")
    parser.add_argument("--no-counts", action="store_true", help="skip the counting")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--m", type=int, default=10_000, help="messages for timings")
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.m < 1000:
        parser.error("--repeats must be >= 1 and --m >= 1000")
    _quiet()
    from statek import _speedups

    result: dict[str, Any] = {"implementation": _speedups.IMPLEMENTATION}
    if not args.no_counts:
        result["counts"] = {**queue_counts(), **step_counts()}
        rows = [[name, *(got["per_unit"].get(k, 0) for k in _KINDS)]
                for name, got in result["counts"].items()]
        print_table(["per", *_KINDS], rows)
    if args.times:
        result["w4"] = _median_runs(args.repeats, lambda: w4_times(args.m))
    if args.floor:
        result["floor"] = _median_runs(args.repeats, lambda: floor_times(args.m))
    print(json.dumps(result), file=sys.stdout)
    return 0


_KINDS = ("attr read", "attr write", "container read", "container write", "create", "db0",
          "values read", "values stored")

if __name__ == "__main__":
    raise SystemExit(main())
