"""What holds a running node's memory: the sizes of its bounded containers and the most numerous objects.

``kill -USR1 PID`` makes a node log this report (``ledger.memory``); an
operator whose node grows can see what grew between two reports.

``release_free_memory`` hands freed heap pages back to the system: the C
allocator keeps what was freed, so a node's resident memory keeps the high
mark of every burst (a snapshot's buffers, the big blocks of a backlog that
follows it).  A node calls it after a snapshot, after a pruning round, and
on a timer, ``RELEASE_EVERY_S`` or more apart (``release_memory_periodically``): in a
60-minute run at 1,000 tx/s, the minute after a snapshot left each node
35-40 MB of free heap pages resident, all of which one call gave back.

A call is not free: ``malloc_trim`` holds each heap arena's lock while it
walks every free chunk and advises the kernel of each (a fragmented test
heap's 50,000 free chunks took 60-220 ms), and every ``malloc`` of the event
loop waits meanwhile; on two cores shared by four validators the trimming
thread is also preempted with the lock held.  Every 10 s, it stalled the
validators' loops 300-500 ms every 10-20 s after the first minutes of a
1,000 tx/s run.  So the pause after a call grows with the call
(``RELEASE_DUTY``).  Without the calls it is worse for memory: the heap's
free pages resident grew from 8 to 31 MB in 8 minutes of the same run.
"""

from __future__ import annotations

import asyncio
import collections
import ctypes
import ctypes.util
import errno
import gc
import logging
import os
import resource
import time
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("ledger.memory")

TOP_TYPES = 15


def _size(obj: Any) -> int | None:
    try:
        return len(obj)
    except TypeError:
        return None


def sized_attributes(prefix: str, obj: Any) -> dict[str, int | None]:
    """The item counts of ``obj``'s attributes that are containers, named ``prefix.attribute``."""
    return {f"{prefix}.{name}": _size(value) for name, value in vars(obj).items()
            if _size(value) is not None and not isinstance(value, (str, bytes))}


def container_sizes(node: Any) -> dict[str, int | None]:
    """Item counts of the node's long-lived containers (each one bounded; this shows whether a bound holds)."""
    sizes: dict[str, int | None] = {
        "mempool_txs": len(node.mempool),
        "mempool_journal_recovered": _size(getattr(node.journal, "recovered", ())),
        "executed_blocks": len(node.application.executed),
        "timers": len(node._timers),
        "peer_links": len(node.peers.switch.links),
        "block_requests": len(node.peers._requests),
    }
    for prefix, part in (("sig_cache", node.sig_cache), ("mempool", node.mempool), ("relay", node.relay),
                         ("store", node.store)):
        sizes.update(sized_attributes(prefix, part))
    for link in node.peers.switch.links.values():
        for channel, queue in link.outbox.queues.items():
            sizes[f"outbox.{link.name}.{link.outbox.specs[channel].name}"] = len(queue)
    return sizes


def _load_libc() -> Any:
    """The C library (errno kept for ``ctypes.get_errno``), loaded once; None where it cannot be."""
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:
        return None


_LIBC = _load_libc()


def libc_function(name: str, argtypes: list, restype) -> Any:
    """The C library's function ``name``, or None where the C library has none."""
    try:
        function = getattr(_LIBC, name)
    except AttributeError:
        return None
    function.argtypes = argtypes
    function.restype = restype
    return function


_MALLOC_TRIM = libc_function("malloc_trim", [ctypes.c_size_t], ctypes.c_int)
"""glibc's ``malloc_trim``, or None (musl, macOS)."""


def release_free_memory() -> bool:
    """Return the heap's free pages to the system (every arena's, the middle of the heap included); False
    where the C library cannot.  It takes the allocator's locks for a moment: call it after a big job, not on
    a hot path."""
    if _MALLOC_TRIM is None:
        return False
    _MALLOC_TRIM(0)
    return True


class _MallInfo2(ctypes.Structure):
    """glibc's ``struct mallinfo2`` (every field a ``size_t``)."""

    _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                      "fsmblks", "uordblks", "fordblks", "keepcost")]


_MALLINFO2 = libc_function("mallinfo2", [], _MallInfo2)
"""glibc's ``mallinfo2`` (2.33 and later), or None."""


@dataclass(frozen=True)
class HeapUsage:
    """What the C allocator holds, over all its arenas (``mallinfo2``); Python's own small-object arenas are not
    in it (they are mapped apart), nor are LevelDB's table reads."""

    in_use: int
    """Bytes handed out and not freed: LevelDB's memtables, block cache and open tables' index and filter
    blocks, and every Python object too big for Python's own allocator (bytes over 512, big dicts and lists)."""
    free: int
    """Bytes freed but still held by the allocator: what ``release_free_memory`` can give back only where whole
    pages are free, and what fragmentation keeps."""


def heap_usage() -> HeapUsage | None:
    """The C heap's bytes in use and free, over all arenas; None where the C library cannot say.  It takes each
    arena's lock and walks all its free chunks (a node's heap: a millisecond or a few; a heap fragmented into
    50,000 free chunks: 20 ms), in the caller's thread: for a scrape, not a hot path."""
    if _MALLINFO2 is None:
        return None
    info = _MALLINFO2()
    return HeapUsage(in_use=info.uordblks + info.hblkhd, free=info.fordblks)


@dataclass(frozen=True)
class PythonHeap:
    """What Python's own allocator (for objects of 512 bytes or less) holds, from its statistics."""

    arenas: int
    """Bytes of the 1-MiB arenas it has mapped: it gives an arena back only once every block in it is free."""
    in_use: int
    """Bytes of the blocks live objects hold; ``arenas`` less this is what partly empty arenas keep."""


def _python_malloc_stats() -> Any:
    """CPython's ``_PyObject_DebugMallocStats(FILE *)`` and the C library's ``open_memstream``, ``fclose`` and
    ``free``, or None where either is missing."""
    try:
        stats = ctypes.pythonapi._PyObject_DebugMallocStats
    except AttributeError:
        return None
    stats.argtypes, stats.restype = [ctypes.c_void_p], ctypes.c_int
    memstream = libc_function("open_memstream", [ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(ctypes.c_size_t)],
                               ctypes.c_void_p)
    fclose = libc_function("fclose", [ctypes.c_void_p], ctypes.c_int)
    free = libc_function("free", [ctypes.c_void_p], None)
    if memstream is None or fclose is None or free is None:
        return None
    return stats, memstream, fclose, free


_PYTHON_MALLOC_STATS = _python_malloc_stats()


def parse_python_malloc_stats(text: str) -> PythonHeap | None:
    """The arena and in-use bytes of ``sys._debugmallocstats``'s report; None if it has neither."""
    arenas = in_use = None
    for line in text.splitlines():
        name, _, value = line.rpartition("=")
        number = value.strip().replace(",", "")
        if not number.isdigit():
            continue
        if name.startswith("# bytes in allocated blocks"):
            in_use = int(number)
        elif name.startswith("Total") and arenas is None:  # the first Total is the arenas'; the second, their map
            arenas = int(number)
    if arenas is None or in_use is None:
        return None
    return PythonHeap(arenas=arenas, in_use=in_use)


def python_heap() -> PythonHeap | None:
    """What Python's small-object allocator holds (its own report, written into memory); None where this
    interpreter or C library cannot say.  It walks every arena's pools, under the interpreter lock: well under a
    millisecond for a node's few hundred arenas."""
    if _PYTHON_MALLOC_STATS is None:
        return None
    stats, memstream, fclose, free = _PYTHON_MALLOC_STATS
    # A plain pointer, freed as it is: ``ctypes.cast`` of a ``c_char_p`` left a reference cycle per call (each
    # /metrics scrape), which only a full collection frees: every gc refreeze round found them, so the rounds
    # never slowed down (``next_refreeze_s``).
    buffer, size = ctypes.c_void_p(), ctypes.c_size_t()
    stream = memstream(ctypes.byref(buffer), ctypes.byref(size))
    if not stream:
        return None
    try:
        stats(stream)
    finally:
        fclose(stream)  # sets buffer and size
    try:
        text = ctypes.string_at(buffer.value, size.value).decode("ascii", "replace") if buffer.value else ""
    finally:
        free(buffer)
    return parse_python_malloc_stats(text)


def resident_bytes(status_path: str = "/proc/self/status") -> dict[str, int]:
    """This process's resident memory by kind, ``anon`` and ``file`` (bytes, from ``RssAnon`` and ``RssFile``);
    {} where the system has no such file."""
    fields = {"RssAnon:": "anon", "RssFile:": "file"}
    out: dict[str, int] = {}
    try:
        with open(status_path) as status:
            for line in status:
                parts = line.split()
                if parts and parts[0] in fields:
                    out[fields[parts[0]]] = int(parts[1]) * 1024
    except (OSError, ValueError, IndexError):
        return {}
    return out


MADV_PAGEOUT = 21
"""Linux's ``madvise`` advice that reclaims a range's pages now; never changes what the range holds (Linux 5.4)."""
TABLE_SUFFIXES = (".ldb", ".sst")
"""The names of LevelDB's table files."""


_MADVISE = libc_function("madvise", [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int], ctypes.c_int)


def mapped_tables(folder: str, maps_path: str = "/proc/self/maps") -> list[tuple[int, int]]:
    """The (start, end) address ranges of this process's mappings of LevelDB table files in ``folder``."""
    prefix = os.path.realpath(folder).rstrip("/") + "/"
    ranges = []
    try:
        with open(maps_path) as maps:
            for line in maps:
                parts = line.split(maxsplit=5)
                if len(parts) == 6 and parts[5].startswith(prefix) and parts[5].rstrip().endswith(TABLE_SUFFIXES):
                    start, end = parts[0].split("-")
                    ranges.append((int(start, 16), int(end, 16)))
    except OSError:
        return []
    return ranges


def page_out_tables(folder: str) -> int:
    """Hand back the resident pages of the LevelDB table files this process maps from ``folder``; the bytes
    of the ranges advised (0 where the system cannot).

    Where LevelDB still reads its tables through mappings (``node.ledger.leveldb_options`` could not switch it
    to ``pread``), every page a read touched stays in the node's resident memory until the table closes: a
    snapshot, which reads the whole UTXO set, left 90-150 MB of table pages resident per node.
    ``MADV_PAGEOUT`` reclaims them; a later read maps the page in again.  It never changes what the memory
    holds, so a range that LevelDB unmapped (and anything else mapped there since) meanwhile is safe: that
    memory's pages are at worst reclaimed and read back, and anonymous memory without swap is left as it is.
    (``MADV_DONTNEED`` would zero anonymous memory that took the place of an unmapped table, and is not used.)
    """
    if _MADVISE is None:
        return 0
    advised = 0
    for start, end in mapped_tables(folder):
        if _MADVISE(start, end - start, MADV_PAGEOUT) == 0:
            advised += end - start
        elif ctypes.get_errno() == errno.EINVAL:
            return advised  # a kernel before 5.4: no such advice
    return advised


RELEASE_EVERY_S = 10.0
"""The shortest pause between two calls of ``release_free_memory`` by a running node.  LevelDB's memtable alone
frees 40-50 MB a minute at 1,000 tx/s (each flushed memtable), which the allocator keeps: with a call every 60 s
a validator's heap rose 10-15 MB between calls and fell back at each, on every node at once."""
RELEASE_DUTY = 0.005
"""The share of the wall clock the timer's calls may take (up to ``RELEASE_MAX_PAUSE_S``): a call that took
200 ms is followed by 40 s without one."""
RELEASE_MAX_PAUSE_S = 120.0
"""The longest pause between two calls."""


def release_pause(took_s: float, every_s: float = RELEASE_EVERY_S, duty: float = RELEASE_DUTY) -> float:
    """How long to wait after a call of ``release_free_memory`` that took ``took_s`` (its wall time in the thread
    that made it: a call held up by a busy machine held the heap's locks as long)."""
    return min(RELEASE_MAX_PAUSE_S, max(every_s, took_s / duty))


async def release_memory_periodically(every_s: float = RELEASE_EVERY_S, duty: float = RELEASE_DUTY) -> None:
    """Call ``release_free_memory`` in a worker thread, pausing ``release_pause`` between calls (a node task,
    until cancelled; returns at once where the C library cannot)."""
    if _MALLOC_TRIM is None:
        return
    pause = every_s
    while True:
        await asyncio.sleep(pause)
        took = await asyncio.to_thread(timed_release)
        pause = release_pause(took, every_s, duty)
        if took >= SLOW_RELEASE_S:
            log.info("releasing free heap pages took %.0f ms; the next call in %.0f s", took * 1000, pause)


SLOW_RELEASE_S = 0.1
"""A call at least this long is logged."""


def timed_release() -> float:
    """``release_free_memory``, timed where it runs (not the wait for a worker thread or for the loop): seconds."""
    started = time.monotonic()
    release_free_memory()
    return time.monotonic() - started


def top_types(limit: int = TOP_TYPES) -> list[tuple[str, int]]:
    """The most numerous object types the collector tracks and has not frozen (``gc.get_objects`` leaves frozen
    objects out: with ``gc_freeze_survivors`` that is most long-lived ones, whose count is in the report's
    ``frozen``)."""
    counts = collections.Counter(type(o).__name__ for o in gc.get_objects())
    return counts.most_common(limit)


def log_memory_report(node: Any) -> None:
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    log.info("memory: peak_rss_mb=%.1f gc_counts=%s frozen=%d containers=%s top_types=%s", rss_mb,
             gc.get_count(), gc.get_freeze_count(), container_sizes(node), top_types())


class GcPauses:
    """How long the garbage collector stops the node, per generation (``gc.callbacks``)."""

    SLOW_S = 0.05
    """A collection at least this long is logged."""

    def __init__(self) -> None:
        self.count = [0, 0, 0]
        self.seconds = [0.0, 0.0, 0.0]
        self.collected = [0, 0, 0]
        """Unreachable objects found, per generation: what the collections were for (reference cycles)."""
        self.longest_s = 0.0
        self._started = 0.0
        self._started_cpu = 0.0

    def install(self) -> None:
        if self._callback not in gc.callbacks:
            gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict) -> None:
        import time

        if phase == "start":
            self._started = time.perf_counter()
            self._started_cpu = time.thread_time()
            return
        elapsed = time.perf_counter() - self._started
        generation = int(info.get("generation", 0))
        self.count[generation] += 1
        self.seconds[generation] += elapsed
        self.collected[generation] += int(info.get("collected", 0))
        self.longest_s = max(self.longest_s, elapsed)
        if elapsed >= self.SLOW_S:
            # CPU time far below the wall time means the process waited for a core, not that the collection
            # had that much to do.
            log.info("gc: generation %d collection took %.0f ms, %.0f ms of it on the CPU (collected %s)",
                     generation, elapsed * 1000, (time.thread_time() - self._started_cpu) * 1000,
                     info.get("collected"))


GC_PAUSES = GcPauses()
