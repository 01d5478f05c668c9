"""What holds a node's memory, as ``/metrics`` reports it (``node.memory``): the C heap, Python's own
allocator, resident memory by kind.  Each figure must move with what the process holds."""

from __future__ import annotations

import pytest

from node.memory import heap_usage, parse_python_malloc_stats, python_heap, resident_bytes
from tests.cycles import cycles_left_by


def test_python_heap_reads_the_interpreters_own_report():
    before = python_heap()
    assert before is not None and 0 < before.in_use <= before.arenas and before.arenas % (1 << 20) == 0
    held = [bytes(200) for _ in range(50_000)]  # about 11 MB of small objects
    after = python_heap()
    assert after is not None and after.in_use - before.in_use > 9_000_000, (before, after)
    del held
    assert parse_python_malloc_stats("# bytes in allocated blocks = 5\n") is None
    assert parse_python_malloc_stats("# bytes in allocated blocks        =  1,024\n"
                                     "Total                              =  2,097,152\n"
                                     "Total                              =    786,432\n").arenas == 2_097_152


def test_reading_the_memory_figures_leaves_no_reference_cycle():
    """Every scrape reads them: a cycle per read is garbage only a full collection frees, and the gc refreeze
    rounds, finding some every time, never slowed down (a ``ctypes.cast`` left two objects per read)."""
    def read_them() -> None:
        for _ in range(10):
            python_heap()
            heap_usage()
            resident_bytes()

    assert cycles_left_by(read_them) == []


def test_heap_usage_counts_what_the_c_allocator_hands_out():
    if heap_usage() is None:
        pytest.skip("this C library has no mallinfo2")
    before = heap_usage()
    held = [bytearray(4096) for _ in range(5_000)]  # over Python's 512-byte limit: the C allocator's, 20 MB
    after = heap_usage()
    assert before is not None and after is not None
    assert after.in_use - before.in_use > 18_000_000, (before, after)
    del held


def test_resident_bytes_reads_anon_and_file_from_the_status_file(tmp_path):
    status = tmp_path / "status"
    status.write_text("Name:\tpython\nRssAnon:\t  1024 kB\nRssFile:\t   512 kB\nRssShmem:\t0 kB\n")
    assert resident_bytes(str(status)) == {"anon": 1024 * 1024, "file": 512 * 1024}
    assert resident_bytes(str(tmp_path / "missing")) == {}
    assert resident_bytes()["anon"] > 0
