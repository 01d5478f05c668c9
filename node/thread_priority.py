"""The node's background threads run at a lower CPU priority than its event loop.

LevelDB compacts in a thread of its own, which Python never sees.  A node's
writes fill a memtable (3-6 MB, drawn per store) every few seconds at full load, and every
fourth flush starts a level-0 compaction of those four and the level-1 files
they overlap (about 50 MB in 1-2 seconds of one core with the 8-24 MB
memtables this was measured with).  Validators of one chain write the same bytes at the
same pace, so on a machine they share (a devnet) they all compact at once:
at 2,500-3,000 tx/s that took the two cores from the four event loops every
20 s, stalled them 250-480 ms in whatever they were doing, and made those
heights 1.5-3 s long, the p99.  At nice 10 a compaction still runs whenever
an event loop waits (for peers, for a disk sync), and the loops no longer
wait for it.

Linux gives each thread its own nice value.  LevelDB starts its thread at
the first compaction, so the node looks for new threads every
``SCAN_EVERY_S``; a thread is lowered once it has been seen twice and
Python still does not know it (a Python thread is unknown to ``threading``
only for the microseconds of its start).
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading

log = logging.getLogger("ledger.node")

BACKGROUND_NICE = 10
"""The nice value given to threads the node did not start in Python (the event loop's is unchanged)."""
SCAN_EVERY_S = 5.0
"""How often the node looks for such threads."""
TASKS_DIR = "/proc/self/task"


def foreign_thread_ids() -> set[int]:
    """The ids of this process's threads that Python's ``threading`` does not know (started by C code); empty
    where ``/proc`` does not list threads."""
    try:
        listed = {int(name) for name in os.listdir(TASKS_DIR)}
    except (OSError, ValueError):
        return set()
    known = {thread.native_id for thread in threading.enumerate()}
    return listed - known


class ThreadLowering:
    """Lowers each foreign thread's priority once, the second time it is seen."""

    def __init__(self, nice: int = BACKGROUND_NICE):
        self.nice = nice
        self.lowered: set[int] = set()
        """Threads already lowered (a dead thread's id stays here; the kernel may reuse it, rarely)."""
        self._seen_once: set[int] = set()

    def scan(self) -> list[int]:
        """Lower the foreign threads seen in the previous scan too; returns the ids lowered now."""
        candidates = foreign_thread_ids() - self.lowered
        now = sorted(candidates & self._seen_once)
        self._seen_once = candidates
        for tid in now:
            try:
                os.setpriority(os.PRIO_PROCESS, tid, self.nice)
            except OSError:  # it ended meanwhile
                continue
            self.lowered.add(tid)
            log.debug("background thread %d now at nice %d", tid, self.nice)
        return now


async def lower_background_threads(every_s: float = SCAN_EVERY_S) -> None:
    """The node's task: scan for foreign threads every ``every_s`` for as long as the node runs."""
    lowering = ThreadLowering()
    while True:
        lowering.scan()
        await asyncio.sleep(every_s)
