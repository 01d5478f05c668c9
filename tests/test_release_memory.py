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


PAGE_OUT = r"""
import json, os, sys
import plyvel
from node.memory import mapped_tables, page_out_tables

def table_rss_kb(folder):
    # resident kB of this process's mappings of LevelDB table files under folder
    prefix, total, inside = os.path.realpath(folder) + "/", 0, False
    for line in open("/proc/self/smaps"):
        first = line.split(maxsplit=1)[0]
        if "-" in first and not first.endswith(":"):
            parts = line.split(maxsplit=5)
            inside = len(parts) == 6 and parts[5].strip().startswith(prefix) and parts[5].strip().endswith(".ldb")
        elif inside and first == "Rss:":
            total += int(line.split()[1])
    return total

folder = sys.argv[1]
db = plyvel.DB(folder, create_if_missing=True, compression=None, max_open_files=74)
value = bytes(range(256)) * 16  # 4 KB, one page each
for start in range(0, 8000, 1000):  # about 32 MB of tables
    with db.write_batch() as wb:
        for i in range(start, start + 1000):
            wb.put(i.to_bytes(4, "big"), value[i % 256:] + value[:i % 256])
db.compact_range()
before = sum(len(v) for _, v in db.iterator())  # a full read, as a snapshot does
resident = table_rss_kb(folder)
mapped = len(mapped_tables(folder))
advised = page_out_tables(folder)
left = table_rss_kb(folder)
same = sum(len(v) for _, v in db.iterator()) == before and \
    db.get((4321).to_bytes(4, "big")) == value[4321 % 256:] + value[:4321 % 256]
print(json.dumps({"resident": resident, "mapped": mapped, "advised": advised, "left": left, "same": same}))
"""


def test_table_pages_a_full_read_left_resident_are_handed_back_and_reads_still_agree(tmp_path):
    """In a new process, which maps its tables (LevelDB's default: nothing switched it to pread there)."""
    import json
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", PAGE_OUT, str(tmp_path / "db")], capture_output=True, text=True,
                          timeout=120, check=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["mapped"] > 0 and result["resident"] > 16 * 1024, result
    if result["advised"] == 0:
        pytest.skip("this kernel has no MADV_PAGEOUT")
    assert result["left"] < result["resident"] / 4, result
    assert result["same"]


def test_page_out_names_only_the_table_files_of_its_folder(tmp_path):
    from node.memory import mapped_tables

    maps = tmp_path / "maps"
    maps.write_text(
        f"7f0000000000-7f0000200000 r--s 00000000 fd:01 11 {tmp_path}/db/000005.ldb\n"
        f"7f0000200000-7f0000300000 r--s 00000000 fd:01 12 {tmp_path}/db/MANIFEST-000002\n"
        f"7f0000300000-7f0000400000 r--s 00000000 fd:01 13 {tmp_path}/other/000007.ldb\n"
        "7f0000400000-7f0000500000 rw-p 00000000 00:00 0 \n"
        f"7f0000500000-7f0000600000 r--s 00000000 fd:01 14 {tmp_path}/db/000009.sst\n")
    assert mapped_tables(str(tmp_path / "db"), str(maps)) == [(0x7F0000000000, 0x7F0000200000),
                                                              (0x7F0000500000, 0x7F0000600000)]


def test_a_running_node_releases_memory_every_so_often_and_less_often_when_a_call_is_slow(monkeypatch):
    import asyncio

    from node import memory

    took = iter([0.001, 0.001, 0.05, 0.001, 0.001, 0.001])  # each call's time in its thread: the third is slow
    pauses: list[float] = []
    calls: list[int] = []

    async def sleep(seconds: float) -> None:
        pauses.append(seconds)
        if len(pauses) > 5:
            raise asyncio.CancelledError

    def timed_release() -> float:
        calls.append(1)
        return next(took)

    monkeypatch.setattr(memory, "_MALLOC_TRIM", lambda pad: 1)
    monkeypatch.setattr(memory.asyncio, "sleep", sleep)
    monkeypatch.setattr(memory, "timed_release", timed_release)

    async def run() -> None:
        try:
            await memory.release_memory_periodically(every_s=0.02, duty=0.05)
        except asyncio.CancelledError:
            pass

    asyncio.run(run())
    # 0.05 s at a duty of 0.05 is a pause of 1 s; the others, the shortest pause
    assert len(calls) == 5 and pauses == pytest.approx([0.02, 0.02, 0.02, 1.0, 0.02, 0.02]), pauses
    assert memory.release_pause(0.001) == memory.RELEASE_EVERY_S
    assert memory.release_pause(0.2) == 0.2 / memory.RELEASE_DUTY
    assert memory.release_pause(60.0) == memory.RELEASE_MAX_PAUSE_S


def test_a_release_is_timed_in_the_thread_that_makes_it(monkeypatch):
    import time

    from node import memory

    monkeypatch.setattr(memory, "_MALLOC_TRIM", lambda pad: time.sleep(0.03) or 1)
    assert 0.03 <= memory.timed_release() < 5
