"""LevelDB reads table files with pread into its block cache, not through mappings (node.ledger.leveldb_options):
a full read of the store leaves no table mapped and no table page resident, and reads the same values.

Each check runs in a new Python process: LevelDB fixes how it reads when its environment is made, at the
first database a process opens, and this test process has opened many."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from node.ledger.leveldb_options import MMAP_LIMIT_SYMBOL, elf_objects

FULL_READ = r"""
import json, os, sys
from node.ledger.leveldb_options import read_tables_without_mmap
outcome = read_tables_without_mmap() if sys.argv[2] == "pread" else "left alone"
import plyvel

def rss_file_kb():
    for line in open("/proc/self/status"):
        if line.startswith("RssFile:"):
            return int(line.split()[1])

db = plyvel.DB(sys.argv[1], create_if_missing=True, compression=None, max_open_files=74,
               lru_cache_size=8 * 1024 * 1024)
value = bytes(range(256)) * 16
for start in range(0, 8000, 1000):  # about 32 MB of tables
    with db.write_batch() as wb:
        for i in range(start, start + 1000):
            wb.put(i.to_bytes(4, "big"), value[i % 256:] + value[:i % 256])
db.compact_range()
before = rss_file_kb()
total = sum(len(v) for _, v in db.iterator(fill_cache=False))  # a full read, as a snapshot does
same = all(db.get(i.to_bytes(4, "big")) == value[i % 256:] + value[:i % 256] for i in range(0, 8000, 7))
mapped = sum(1 for line in open("/proc/self/maps") if line.rstrip().endswith(".ldb"))
print(json.dumps({"outcome": outcome, "total": total, "same": same, "mapped": mapped,
                  "grew_kb": rss_file_kb() - before}))
"""


def full_read(tmp_path, mode: str) -> dict:
    done = subprocess.run([sys.executable, "-c", FULL_READ, str(tmp_path / mode), mode], capture_output=True,
                          text=True, timeout=120, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_full_read_maps_no_table_and_leaves_no_page_resident(tmp_path):
    result = full_read(tmp_path, "pread")
    assert result["outcome"].startswith("pread"), result["outcome"]
    assert result["total"] == 8000 * 4096 and result["same"]
    assert result["mapped"] == 0
    assert result["grew_kb"] < 4 * 1024, f"RSS of file pages grew {result['grew_kb']} kB"


def test_without_it_the_same_read_maps_the_tables_and_their_pages_stay_resident(tmp_path):
    result = full_read(tmp_path, "mmap")  # what the node did before: the difference the other test checks
    assert result["total"] == 8000 * 4096 and result["same"]
    assert result["mapped"] > 0
    assert result["grew_kb"] > 16 * 1024


def test_the_symbols_are_found_in_the_library_and_not_in_other_files(tmp_path):
    import plyvel

    from node.ledger.leveldb_options import ENV_GUARD_SYMBOL, _leveldb_mappings

    found = _leveldb_mappings()
    assert found is not None and plyvel is not None
    path, _base, ranges = found
    symbols = elf_objects(path, {MMAP_LIMIT_SYMBOL, ENV_GUARD_SYMBOL, MMAP_LIMIT_SYMBOL + "x"})
    assert set(symbols) == {MMAP_LIMIT_SYMBOL, ENV_GUARD_SYMBOL} and symbols[MMAP_LIMIT_SYMBOL][1] == 4 and ranges
    other = tmp_path / "not-elf"
    other.write_bytes(b"#!/bin/sh\n" * 100)
    assert elf_objects(str(other), {MMAP_LIMIT_SYMBOL}) == {}


def test_a_library_whose_headers_do_not_hold_together_is_refused_not_read_past(tmp_path):
    import struct

    from node.ledger.leveldb_options import _leveldb_mappings

    found = _leveldb_mappings()
    assert found is not None
    data = bytearray(open(found[0], "rb").read())
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shnum, = struct.unpack_from("<H", data, 0x3C)
    for i in range(shnum):  # point the symbol table's string table link past the section table
        if struct.unpack_from("<I", data, shoff + i * 64 + 4)[0] == 2:
            struct.pack_into("<I", data, shoff + i * 64 + 40, shnum + 5)
    broken = tmp_path / "libleveldb-broken.so"
    broken.write_bytes(bytes(data))
    with pytest.raises(ValueError):
        elf_objects(str(broken), {MMAP_LIMIT_SYMBOL})
    struct.pack_into("<Q", data, 0x28, len(data) + 4096)  # the section table itself past the end
    broken.write_bytes(bytes(data))
    with pytest.raises(ValueError):
        elf_objects(str(broken), {MMAP_LIMIT_SYMBOL})


TOO_LATE = r"""
import sys, plyvel
db = plyvel.DB(sys.argv[1], create_if_missing=True)  # LevelDB's environment is made here
db.put(b"k", b"v")
from node.ledger.leveldb_options import read_tables_without_mmap
print(read_tables_without_mmap())
"""


def test_once_a_database_was_opened_it_says_too_late_and_changes_nothing(tmp_path):
    done = subprocess.run([sys.executable, "-c", TOO_LATE, str(tmp_path / "db")], capture_output=True, text=True,
                          timeout=60, check=True)
    assert done.stdout.strip().startswith("through mappings (too late"), done.stdout


STORE_READ = r"""
import json, sys
from node.ledger.leveldb_options import read_tables_without_mmap
from node.ledger.store import Store
from node.ledger.store_layout import P_UTXO
store = Store.open(sys.argv[1])  # the node's one way in: it must switch the reads before LevelDB's first open
db = store._db
value = bytes(range(256)) * 16
for start in range(0, 4000, 1000):  # about 16 MB of tables under the UTXO prefix
    with db.write_batch() as wb:
        for i in range(start, start + 1000):
            wb.put(P_UTXO + i.to_bytes(36, "big"), value)
db.compact_range()
total = sum(len(v) for _, v in db.iterator(prefix=P_UTXO, fill_cache=False))
mapped = sum(1 for line in open("/proc/self/maps") if line.rstrip().endswith(".ldb"))
print(json.dumps({"outcome": read_tables_without_mmap(), "total": total, "mapped": mapped}))
store.close()
"""


def test_the_store_switches_the_reads_before_it_opens_its_database(tmp_path):
    done = subprocess.run([sys.executable, "-c", STORE_READ, str(tmp_path / "data")], capture_output=True,
                          text=True, timeout=120, check=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["outcome"].startswith("pread"), result["outcome"]
    assert result["total"] == 4000 * 4096 and result["mapped"] == 0


def test_the_library_plyvel_loaded_is_chosen_at_the_mapping_of_its_first_byte(tmp_path):
    from node.ledger.leveldb_options import _leveldb_mappings

    maps = tmp_path / "maps"
    maps.write_text(
        "7f0000000000-7f0000010000 r--p 00000000 fd:01 11 /usr/lib/libleveldb.so.1\n"
        "7f1000001000-7f1000050000 r-xp 00001000 fd:01 12 /venv/site-packages/plyvel.libs/libleveldb-x.so\n"
        "7f1000000000-7f1000001000 r--p 00000000 fd:01 12 /venv/site-packages/plyvel.libs/libleveldb-x.so\n"
        "7f1000063000-7f1000064000 rw-p 00062000 fd:01 12 /venv/site-packages/plyvel.libs/libleveldb-x.so\n")
    path, base, ranges = _leveldb_mappings(str(maps)) or ("", 0, [])
    assert path.endswith("plyvel.libs/libleveldb-x.so") and base == 0x7F1000000000 and len(ranges) == 3
    (tmp_path / "no-leveldb").write_text("7f0000000000-7f0000010000 r--p 00000000 fd:01 11 /usr/lib/libc.so.6\n")
    assert _leveldb_mappings(str(tmp_path / "no-leveldb")) is None


def test_a_truncated_library_is_not_read_past(tmp_path):
    short = tmp_path / "libleveldb-short.so"
    short.write_bytes(b"\x7fELF")
    assert elf_objects(str(short), {MMAP_LIMIT_SYMBOL}) == {}
    short.write_bytes(b"\x7fELF\x02\x01" + b"\0" * 30)
    assert elf_objects(str(short), {MMAP_LIMIT_SYMBOL}) == {}
