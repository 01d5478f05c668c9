"""How a node sets up the C allocator: big blocks get their own mappings, handed back as soon as they are freed.

glibc serves a request of ``M_MMAP_THRESHOLD`` bytes or more (128 KiB at
first) with its own mapping, which ``free`` unmaps.  But by default the
threshold moves: each time such a block is freed, the threshold rises to its
size (up to 32 MiB), so the next block of that size comes from the heap
instead, and when it is freed its pages stay resident until something trims
the heap.

A running node allocates and frees big blocks on a steady rhythm: a dict that
holds a bounded number of entries while they come and go (the recent outputs
cache: 131,072 entries, 2,000 new ones a second at 1,000 tx/s) rebuilds its
table each time its deleted slots fill it, about every 105 s there, with a new
table of about 14 MB beside the old one.  With the moving threshold the new
table came from the heap and the old one stayed resident as free heap until
the next ``malloc_trim``: a 60-minute run at 1,000 tx/s showed anonymous memory
12-14 MB higher for 3-10 s every ~105 s on each validator, which a
once-a-minute sample of resident memory read as noise of up to 8%.  The same
churn alone, in a cache of half that size (``tests/test_heap_policy.py``),
grows by 7 MB at its first rebuild after the warm-up with the moving
threshold and stays flat with a fixed one.

``fix_mmap_threshold`` fixes it (which also stops glibc moving its trim
threshold, set here too).  A block at or over the threshold costs a mapping,
its first touch of each page and an unmapping: a few hundred microseconds per
megabyte, for blocks that come a few times a minute.
"""

from __future__ import annotations

import ctypes
import logging

from node.memory import libc_function

log = logging.getLogger("ledger.memory")

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
"""glibc's ``mallopt`` parameters (``malloc.h``)."""

TRIM_THRESHOLD_FACTOR = 4
"""The top of a heap is handed back once this many times the mmap threshold is free there (glibc's moving
threshold kept it at twice the mmap threshold): between the node's periodic ``malloc_trim`` calls, a heap whose
top empties gives it back without waiting, and one whose top fills and empties by a few blocks does not
shrink and grow again at each."""

_MALLOPT = libc_function("mallopt", [ctypes.c_int, ctypes.c_int], ctypes.c_int)
"""glibc's ``mallopt``, or None (musl, macOS)."""


def fix_mmap_threshold(threshold: int) -> bool:
    """Serve every allocation of ``threshold`` bytes or more with its own mapping, unmapped when freed, and
    keep that threshold (glibc otherwise raises it to the size of each such block freed).  False where the C
    library has no ``mallopt`` or refused; 0 leaves the allocator as it is (False)."""
    if threshold <= 0 or _MALLOPT is None:
        return False
    if _MALLOPT(M_MMAP_THRESHOLD, threshold) != 1 or _MALLOPT(M_TRIM_THRESHOLD, threshold * TRIM_THRESHOLD_FACTOR) != 1:
        log.warning("the C allocator refused mmap threshold %d: big blocks stay resident until trimmed", threshold)
        return False
    return True
