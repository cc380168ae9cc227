"""dbzero 0.7.0: deleting keys from a `db0.dict` that keeps a few hundred keys while new keys
come in corrupts the process's heap (docs/storage.md S17). No statek code involved.

    python scripts/dbzero_checks/dict_delete_abort.py          # aborts: malloc(): corrupted ...
    python scripts/dbzero_checks/dict_delete_abort.py --none   # the same, setting None: ok
"""

from __future__ import annotations

import random
import sys
import tempfile

import dbzero as db0


def main() -> None:
    tombstones = "--none" in sys.argv
    db0.init(dbzero_root=tempfile.mkdtemp(prefix="dict-delete-"))
    db0.open("p", "rw", autocommit=False)
    table, rnd, head = db0.dict(), random.Random(1), 0
    for i in range(30_000):  # a fifo: new keys at the tail, the head dropped
        table[i] = db0.list([i])
        while i + 1 - head > rnd.randint(1, 300):
            if tombstones:
                table[head] = None
            else:
                del table[head]
            head += 1
        if i % 50 == 0:
            db0.commit()
    db0.commit()
    print("ok: 30,000 keys,", "set to None" if tombstones else "deleted", "behind the head")


if __name__ == "__main__":
    main()
