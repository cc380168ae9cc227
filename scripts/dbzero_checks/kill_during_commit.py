"""dbzero 0.7.0: a writer killed with SIGKILL while it commits can leave its prefix file
unreadable for good ("Corrupted SGB_CompressedLookupTree node found at ..."), in 30-80 random
kills (docs/storage.md S18), or make the next open hang. No statek code involved.

    python scripts/dbzero_checks/kill_during_commit.py [KILLS] [SEED]

A child process opens a prefix read-write and loops: memo objects created and changed, a list
appended to, a commit every ~30 ms. The parent SIGKILLs it after a random 0.05-0.8 s and opens
the prefix again in a fresh child, until an open fails or KILLS kills have passed.
"""

from __future__ import annotations

import os
import random
import select
import signal
import subprocess
import sys
import tempfile
import time

CHILD = """
import sys, time, random, dbzero as db0

@db0.memo(id="check/Item")
class Item:
    def __init__(self, n):
        self.n = n
        self.state = 0
        self.note = "x" * (n % 40)

@db0.memo(id="check/Root")
class Root:
    def __init__(self):
        self.items = []
        self.log = []
        self.count = 0

db0.init(dbzero_root=sys.argv[1])
db0.open("p", "rw", autocommit=False)
found = list(db0.find(Root))
root = found[0] if found else Root()
db0.commit()
print("opened", root.count, flush=True)
rnd = random.Random()
while True:
    for _ in range(rnd.randint(10, 60)):
        item = Item(root.count)
        root.items.append(item)
        root.count += 1
        if len(root.items) > 50:
            old = root.items[rnd.randrange(len(root.items))]
            old.state = old.state + 1
        root.log.append(root.count)
    db0.commit()
    time.sleep(rnd.uniform(0.0, 0.03))
"""


def main() -> None:
    kills = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    rnd = random.Random(int(sys.argv[2]) if len(sys.argv) > 2 else 1)
    root = tempfile.mkdtemp(prefix="kill-during-commit-")
    for n in range(kills + 1):
        child = subprocess.Popen([sys.executable, "-c", CHILD, root],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert child.stdout is not None
        if not select.select([child.stdout], [], [], 60)[0]:  # an open that never returns
            child.kill()
            print(f"open hung (60 s) after {n} kills")
            sys.exit(1)
        line = child.stdout.readline()
        if not line.startswith("opened"):
            child.wait()
            print(f"open failed after {n} kills: {child.stderr.read().strip()[-300:]}")
            sys.exit(1)
        time.sleep(rnd.uniform(0.05, 0.8))
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        if n % 20 == 19:
            print(f"{n + 1} kills", flush=True)
    print(f"{kills} kills, the prefix opened after each")


if __name__ == "__main__":
    main()
