"""Freed heap pages go back to the system after a big job in a thread (node.memory.release_free_memory)."""

import threading

import pytest

from node.memory import release_free_memory


def _anon_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) / 1024
    pytest.skip("no /proc/self/status RssAnon here")


def test_what_a_thread_freed_is_returned_to_the_system():
    kept: list[bytes] = []

    def job():  # like a snapshot: many buffers of a few KB, a few of them outliving the job
        buffers = [bytes([i % 251]) * 3000 for i in range(40_000)]  # about 120 MB, from this thread's arena
        kept.extend(buffers[::200])
        del buffers

    worker = threading.Thread(target=job)
    worker.start()
    worker.join()
    held = _anon_mb()
    if not release_free_memory():
        pytest.skip("this C library has no malloc_trim")
    released = held - _anon_mb()
    assert released > 40, f"only {released:.0f} MB of about 120 MB freed went back"
    assert len(kept) == 200


def test_a_running_node_releases_memory_every_so_often(monkeypatch):
    import asyncio

    from node import memory

    calls: list[int] = []
    monkeypatch.setattr(memory, "_MALLOC_TRIM", lambda pad: calls.append(pad) or 1)

    async def run_a_while():
        task = asyncio.create_task(memory.release_memory_periodically(every_s=0.02))
        await asyncio.sleep(0.15)
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass

    asyncio.run(run_a_while())
    assert 3 <= len(calls) <= 8 and set(calls) == {0}


def _file_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("RssFile:"):
                return int(line.split()[1]) / 1024
    pytest.skip("no /proc/self/status RssFile here")


def test_pages_of_the_stores_mapped_tables_leave_resident_memory_and_reads_still_work(tmp_path):
    import random

    import plyvel

    from node.memory import release_mapped_tables
    from node.snapshots import releasing_mapped_tables

    values = random.Random(7)
    db = plyvel.DB(str(tmp_path / "db"), create_if_missing=True, write_buffer_size=1 << 20, compression=None)
    try:
        for batch in range(40):  # about 40 MB in 2 MB tables: compactions write .ldb files
            with db.write_batch() as wb:
                for i in range(1000):
                    wb.put(batch.to_bytes(2, "big") + i.to_bytes(4, "big"), values.randbytes(1000))
        db.compact_range()
        before = _file_mb()
        read = sum(len(v) for _, v in db.iterator())  # a snapshot's pass: maps and touches every table
        touched = _file_mb() - before
        if touched < 10:
            pytest.skip(f"LevelDB did not map its tables here ({touched:.0f} MB of file pages touched)")
        assert release_mapped_tables() > 0
        dropped = before + touched - _file_mb()
        assert dropped > 0.8 * touched, f"only {dropped:.0f} of {touched:.0f} MB of table pages left"
        again = list(releasing_mapped_tables(db.iterator(), every=10_000))  # a snapshot drops them as it goes
        assert sum(len(v) for _, v in again) == read == 40 * 1000 * 1000
        assert _file_mb() - before < 0.5 * touched
    finally:
        db.close()
