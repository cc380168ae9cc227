"""Feeding a running worker from other processes on its machine (no server needed).

dbzero allows one writer per prefix, so a producer process never writes the worker's
prefix: it opens it read-only (`statek.open_prefix(name, "feed")` or
`statek.open_default_store(when_held="feed")`) and `StatekClientAPI` appends each call to a
segment file only that producer writes (writer.py), durably, then wakes the worker (wake.py).
The worker applies new records each loop iteration (drain.py, apply.py) and records how far it
got in its own prefix in the same transaction (state.py); finished segments are deleted
(reclaim.py). See docs/storage.md#s14-feeding-a-running-worker for why files and not dbzero.
"""

from statek.errors import JobPendingError
from statek.outbox.client import OutboxClient, PendingJob

__all__ = ["JobPendingError", "OutboxClient", "PendingJob"]
