"""How the node's LevelDB is set up: what bounds its memory, and how it reads its table files.

Its memory: the memtable (``WRITE_BUFFER_BYTES``, drawn per store), the block
cache (``BLOCK_CACHE_BYTES``) and the open tables' index and filter blocks
(``MAX_OPEN_FILES``).

Its reads: with ``pread`` into the block cache, not through mappings.
LevelDB (1.22, the one plyvel ships) maps up to 1,000 open table files into
the process and reads through the mappings.  Every page a read touches then
counts in the node's resident memory until the table closes, outside any
bound the node sets: the tables a compaction reads (20-50 MB for a few
seconds, in a 1,000 tx/s run) and a snapshot's full read of the UTXO set (90-150
MB, until its tables closed) came and went in each validator's RSS.  Read with ``pread``
instead, a table's blocks go through the block cache (``lru_cache_size``,
filled by the store's reads except compactions, snapshots and pruning, which
read with ``fill_cache=False``), so the store's memory has one bound.  RocksDB reads
this way by default (``allow_mmap_reads=false``).

LevelDB's own switch for it, the number of tables it may map
(``g_mmap_limit``, read once when its default environment is made), is set
only by a test helper the library does not export.  ``read_tables_without_mmap``
finds that variable by name in the library's symbol table and sets it to 0
before the first database is opened.  It writes only after checking that the
symbol is a 4-byte variable inside a writable mapping of that very library,
that it holds LevelDB's default (1,000), and that the environment's guard
(the static's 8-byte initialization guard) is still all zero, i.e. no
database was opened and none is being opened; otherwise, or where the
library is stripped, it changes nothing and says why, and LevelDB maps its
tables as before.  Nothing may open a database in another thread meanwhile
(the node opens its store from its main thread).
"""

from __future__ import annotations

import ctypes
import logging
import random
import struct
import threading

log = logging.getLogger("ledger.store")

MAX_OPEN_FILES = 74
"""LevelDB's ``max_open_files``, its smallest (64 table files open at once, 10 files for the rest).  Each open
table holds its index and filter block in memory.  (Where tables are still read through mappings, see
``read_tables_without_mmap``, the pages a read touched also stay resident until the table closes: with every
table open, the default 1,000, a node's file pages grew with its store, 60-78 MB after an hour at 1,000 tx/s.)
A table not open is opened again when read: its index and filter block, a few kilobytes."""


BLOCK_CACHE_BYTES = 4 * 1024 * 1024
"""LevelDB's block cache (``lru_cache_size``): the table blocks the store read last.  Tables are read into
it (``read_tables_without_mmap``), so it bounds the store's read memory.  It fills slowly (most reads are of
recent outputs, which ``RecentUtxos`` answers): in a 20-minute run at 1,000 tx/s LevelDB's memory (its own
estimate, memtables included) was 9 MB at minute 10 and 15-17 MB at minute 19, the part of the heap still
growing after minute 10 with a 16-MB cache.  A block it does not hold is one ``pread`` from the page cache
(microseconds), which the block cache saves only for blocks read again soon."""
WRITE_BUFFER_BYTES = (3 * 1024 * 1024, 6 * 1024 * 1024)
"""Range of LevelDB's memtable size, drawn per opening (``draw_write_buffer_bytes``).  The memtable is live
memory that fills and is emptied at each flush: in a 1,000 tx/s run with sizes of 8-24 MB a validator's heap
went up and down by 10-15 MB between samples, a saw tooth the size of its memtable."""
WRITE_BUFFER_STEP = 256 * 1024
"""The drawn sizes are multiples of this (13 sizes in the range)."""


def draw_write_buffer_bytes(rng: random.Random | None = None) -> int:
    """A memtable size drawn in ``WRITE_BUFFER_BYTES``, so that validators' stores do not compact in step.

    Validators write the same bytes at the same pace; with one memtable size their stores flushed and ran
    their level-0 compactions (4 memtables and the level-1 files they overlap, about 40 MB written in
    1.5-1.7 s) at the same moment, every 15-20 s at 3,000 tx/s, and all four event loops stalled 250-420 ms
    together (two cores shared by four compactions and their writes), which stalls the height everywhere.
    Apart, a compaction slows one node at a time, and a height needs only two thirds of them.  What a store
    holds does not depend on it."""
    low, high = WRITE_BUFFER_BYTES
    return (rng or random).randrange(low, high + 1, WRITE_BUFFER_STEP)


MMAP_LIMIT_SYMBOL = "_ZN7leveldb12_GLOBAL__N_112g_mmap_limitE"
"""``leveldb::(anonymous namespace)::g_mmap_limit``: how many table files LevelDB may map (env_posix.cc)."""
ENV_GUARD_SYMBOL = "_ZGVZN7leveldb3Env7DefaultEvE13env_container"
"""The 8-byte guard of ``Env::Default()``'s static environment: all zero until the environment is being made."""
LEVELDB_DEFAULT_MMAP_LIMIT = 1000
"""The limit's value in a 64-bit build that nothing changed."""

_SHT_SYMTAB, _SHT_STRTAB, _STT_OBJECT, _EHDR_SIZE, _SHDR_SIZE, _SYM_SIZE = 2, 3, 1, 64, 64, 24
_lock = threading.Lock()
_outcome: str | None = None


def _leveldb_mappings(maps_path: str = "/proc/self/maps") -> tuple[str, int, list[tuple[int, int, str]]] | None:
    """The LevelDB library plyvel loaded (the one in plyvel's folder when there are several): its path, its
    load address and its mappings (start, end, permissions)."""
    found: dict[str, list[tuple[int, int, str, int]]] = {}
    with open(maps_path) as maps:
        for line in maps:
            parts = line.split(maxsplit=5)
            if len(parts) == 6 and "libleveldb" in parts[5]:
                start, end = (int(x, 16) for x in parts[0].split("-"))
                found.setdefault(parts[5].strip(), []).append((start, end, parts[1], int(parts[2], 16)))
    if not found:
        return None
    path = next((p for p in found if "plyvel" in p), next(iter(found)))
    base = next((start for start, _, _, offset in found[path] if offset == 0), None)
    return None if base is None else (path, base, [(start, end, perms) for start, end, perms, _ in found[path]])


def elf_objects(path: str, names: set[str]) -> dict[str, tuple[int, int]]:
    """(value, size) of each data object of ``names`` defined in the ``.symtab`` of the 64-bit little-endian
    ELF file ``path``: those not found (a stripped library) are left out.  Raises ``ValueError`` on a file whose
    headers do not hold together."""
    with open(path, "rb") as handle:
        data = handle.read()
    if len(data) < _EHDR_SIZE or data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        return {}
    (shoff,) = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum = struct.unpack_from("<HH", data, 0x3A)
    if shentsize != _SHDR_SIZE or shoff + shnum * _SHDR_SIZE > len(data):
        raise ValueError("section header table out of the file")
    sections = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * _SHDR_SIZE) for i in range(shnum)]
    wanted = {name.encode(): name for name in names}
    out: dict[str, tuple[int, int]] = {}
    for _name, kind, _flags, _addr, offset, size, link, _info, _align, entsize in sections:
        if kind != _SHT_SYMTAB:
            continue
        if entsize != _SYM_SIZE or offset + size > len(data) or link >= shnum or sections[link][1] != _SHT_STRTAB:
            raise ValueError("symbol table malformed")
        strings, strings_size = sections[link][4], sections[link][5]
        if strings + strings_size > len(data):
            raise ValueError("string table out of the file")
        for i in range(size // _SYM_SIZE):
            st_name, st_info, _other, st_shndx, value, st_size = struct.unpack_from(
                "<IBBHQQ", data, offset + i * _SYM_SIZE)
            if st_name >= strings_size or st_info & 0xF != _STT_OBJECT or st_shndx == 0:
                continue
            end = data.find(b"\0", strings + st_name, strings + strings_size)
            name = wanted.get(data[strings + st_name:end]) if end >= 0 else None
            if name is not None:
                out[name] = (value, st_size)
    return out


def read_tables_without_mmap() -> str:
    """Make LevelDB read table files with ``pread`` (it takes effect only before this process opens its first
    database; later calls return the first one's outcome).  Returns what was done."""
    global _outcome
    with _lock:
        if _outcome is None:
            try:
                _outcome = _set_mmap_limit_to_zero()
            except Exception as exc:  # noqa: BLE001  (whatever went wrong, LevelDB reads as it did: say why)
                _outcome = f"through mappings (could not set the mmap limit: {type(exc).__name__}: {exc})"
            log.log(logging.DEBUG if _outcome.startswith("pread") else logging.INFO, "LevelDB table reads: %s",
                    _outcome)
        return _outcome


def _set_mmap_limit_to_zero() -> str:
    import plyvel  # noqa: F401  (loads the library whose variable is set)

    found = _leveldb_mappings()
    if found is None:
        return "through mappings (the LevelDB library is not a separate file here)"
    path, base, ranges = found
    symbols = elf_objects(path, {MMAP_LIMIT_SYMBOL, ENV_GUARD_SYMBOL})
    if len(symbols) != 2:
        return f"through mappings ({path} has no symbol table naming the mmap limit)"

    def writable(value: int, size: int) -> bool:
        return any(start <= base + value and base + value + size <= end and perms.startswith("rw")
                   for start, end, perms in ranges)

    (limit_at, limit_size), (guard_at, guard_size) = symbols[MMAP_LIMIT_SYMBOL], symbols[ENV_GUARD_SYMBOL]
    if limit_size != 4 or guard_size != 8 or not writable(limit_at, 4) or not writable(guard_at, 8):
        return "through mappings (the mmap limit is not a writable 4-byte variable of the library)"
    if ctypes.c_uint64.from_address(base + guard_at).value != 0:  # made, or being made (the pending byte)
        return "through mappings (too late: this process opened a database before, which made LevelDB's environment)"
    limit = ctypes.c_int.from_address(base + limit_at)
    if limit.value != LEVELDB_DEFAULT_MMAP_LIMIT:
        return f"through mappings (the mmap limit reads {limit.value}, not LevelDB's default)"
    limit.value = 0
    return "pread into the block cache (LevelDB's mmap limit set to 0)"
