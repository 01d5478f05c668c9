"""Threads the node did not start in Python (LevelDB's compaction thread) run at a lower priority than its loop."""

import os
import random
import threading

import plyvel
import pytest

from node.thread_priority import ThreadLowering, foreign_thread_ids


def _nice(tid: int) -> int:
    return os.getpriority(os.PRIO_PROCESS, tid)


def _start_leveldb_thread(path) -> plyvel.DB:
    db = plyvel.DB(str(path), create_if_missing=True, write_buffer_size=64 * 1024)
    values = random.Random(7)
    for i in range(2_000):  # several memtables: flushes and a compaction run in LevelDB's own thread
        db.put(i.to_bytes(4, "big"), values.randbytes(100))
    db.compact_range()
    return db


def test_leveldbs_thread_is_lowered_and_python_threads_are_not(tmp_path):
    if not os.path.isdir("/proc/self/task"):
        pytest.skip("no /proc/self/task here")
    db = _start_leveldb_thread(tmp_path / "db")
    parked = threading.Event()
    worker = threading.Thread(target=parked.wait, args=(30,))
    worker.start()
    try:
        main_nice, worker_nice = _nice(threading.get_native_id()), _nice(worker.native_id)
        foreign = foreign_thread_ids()
        assert foreign, "LevelDB's background thread should be running"
        assert threading.get_native_id() not in foreign and worker.native_id not in foreign
        if main_nice >= 19:
            pytest.skip("the test runner already runs at the lowest priority")
        target = min(19, main_nice + 5)  # below whatever priority the test runner itself was started at
        assert all(_nice(tid) < target for tid in foreign)
        lowering = ThreadLowering(nice=target)
        first = lowering.scan()
        assert first == []  # seen once: maybe a Python thread in the microseconds of its start
        second = lowering.scan()
        assert set(second) == foreign  # all of them, the second time
        assert all(_nice(tid) == target for tid in second)
        assert _nice(threading.get_native_id()) == main_nice and _nice(worker.native_id) == worker_nice
        assert lowering.scan() == []  # once each
    finally:
        parked.set()
        worker.join()
        db.close()
