"""The out-of-process watchdog: SIGKILLs a worker stuck in one run of job code.

Run as a script (`python -I -S _hardwatch.py HEARTBEAT PID LIMIT`), importing nothing of
statek, so it starts in milliseconds and never shares the worker's GIL: C-level work in the
worker (a catastrophic regex, `10**10**8`) holds the GIL and no thread of the worker can act,
but this process can. It polls the heartbeat file the worker maps (see
`statek.runtime.watchdog.Heartbeat`): when the same run of job code (same sequence number,
state 1) has lasted LIMIT seconds by its own clock, it marks the file (byte 9 = 1, so the
next start knows why the worker died) and kills the worker. It exits when its stdin closes
(the worker stopped its loop, or died).
"""

from __future__ import annotations

import mmap
import os
import select
import signal
import struct
import sys
import time


def main() -> None:
    path, pid, limit = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    poll = max(0.01, min(0.25, limit / 4))
    with open(path, "r+b") as handle:
        beat = mmap.mmap(handle.fileno(), 0)
    print("watching", flush=True)
    seen: int | None = None
    since = 0.0
    while True:
        readable, _, _ = select.select([0], [], [], poll)
        if readable and not os.read(0, 64):
            return  # the worker closed our stdin or died
        seq, state = struct.unpack_from("<QB", beat, 0)
        now = time.monotonic()
        if state != 1:
            seen = None
        elif seq != seen:
            seen, since = seq, now
        elif now - since >= limit:
            beat[9] = 1
            os.kill(pid, signal.SIGKILL)
            return


if __name__ == "__main__":
    main()
