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
