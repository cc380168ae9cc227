"""Instructions per queued message (callgrind): enqueue one by one, enqueue in calls of 500,
and the drain to 1,000 open jobs and to 1,000 finished ones (W4's shape: each is re-opened),
each the difference of two runs that differ only in that work.

    python -m benchmarks.queue_instructions            # needs valgrind; prints one JSON line
    python -m benchmarks.queue_instructions --n 20000

Wall-clock figures of these paths move 20-40% with the machine's load; instruction counts
do not, so a before/after of a queue change is read here (docs/costs.md C31).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
from typing import Any

from benchmarks._harness import fresh_store

PREFIX = "bench"
JOBS = 1000
BATCH = 500
#: case -> (the run with the work, the run without it), as child arguments
CASES = {
    "enqueue_one": (("push", "1", "{n}"), ("push", "1", "0")),
    "enqueue_batch_500": (("push", str(BATCH), "{n}"), ("push", str(BATCH), "0")),
    "drain_to_1000_jobs": (("drain", "1", "{n}"), ("drain", "0", "{n}")),
    # W4's shape: every job had finished, so the drain re-opens each once
    "drain_reopening_1000_jobs": (("drain_done", "1", "{n}"), ("drain_done", "0", "{n}")),
}


def child(mode: str, flag: int, n: int, check: bool = False) -> tuple[int, int]:
    """push: queue `n` messages (one call each when `flag` is 1, else calls of `flag`).
    drain: queue `n` messages for 1,000 new jobs in calls of 500, then drain them all the
    way the loop does when `flag` is 1; drain_done: the same for 1,000 finished jobs, which
    the drain re-opens. With `check` (not under callgrind: it reads every inbox), returns
    (messages queued, messages in inboxes); else (messages queued, 0)."""
    import dbzero as db0

    import statek
    from statek.models.push_queue import StatekPushQueue
    from statek.runtime.loop import QUEUE_MAX_PER_ITERATION, QUEUE_STEP
    from statek.runtime.queues import process_push_notifications

    with fresh_store(PREFIX):
        ids = statek.StatekClientAPI().submit_new_job_ids(
            statek.Agent("bench-queue"), [{"i": i} for i in range(JOBS)])
        queue = StatekPushQueue(PREFIX)
        if mode == "drain_done":
            for uuid in ids:
                db0.fetch(uuid).finish("done")
        db0.commit()
        batch = flag if mode == "push" else BATCH
        if batch == 1:
            for k in range(n):
                queue.push_message(ids[k % JOBS], f"message {k}")
                if k % 1000 == 999:
                    db0.commit()
        else:
            for start in range(0, n, batch):
                queue.push_messages([(ids[k % JOBS], f"message {k}")
                                     for k in range(start, min(n, start + batch))])
                db0.commit()
        db0.commit()
        queued = queue.message_count()
        if mode != "push" and flag:
            while process_push_notifications(QUEUE_STEP, QUEUE_MAX_PER_ITERATION,
                                             queue_prefixes=[PREFIX]):
                db0.commit()
            db0.commit()
        return queued, sum(len(db0.fetch(u).messages) for u in ids) if check else 0


def _instructions(args: tuple[str, ...], n: int) -> int:
    command = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
               sys.executable, "-m", "benchmarks.queue_instructions", "--child",
               *(a.format(n=n) for a in args)]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    found = re.search(r"Collected : (\d+)", done.stderr)
    if found is None:
        raise RuntimeError(f"no callgrind total in: {done.stderr[-500:]}")
    return int(found.group(1))


def measure(n: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for case, (work, without) in CASES.items():
        out[case] = round((_instructions(work, n) - _instructions(without, n)) / n)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000, help="messages per case")
    parser.add_argument("--child", nargs=3, metavar=("MODE", "FLAG", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child[0], int(args.child[1]), int(args.child[2]))
        return 0
    if shutil.which("valgrind") is None:
        print("valgrind is not installed", file=sys.stderr)
        return 2
    from statek._speedups import speedups_enabled

    result = {"implementation": "compiled" if speedups_enabled() else "pure", "n": args.n,
              "instructions_per_message": measure(args.n)}
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
