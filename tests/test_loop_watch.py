"""A stalled event loop is noticed, timed and attributed (node.loop_watch)."""

import asyncio
import logging
import time

from node.loop_watch import STALL_S, LoopWatch


def _hold_the_loop(seconds: float) -> None:
    time.sleep(seconds)  # a synchronous step that keeps every other task waiting


async def _watch_while(body) -> LoopWatch:
    watch = LoopWatch()
    task = asyncio.create_task(watch.run())
    await asyncio.sleep(0.15)  # a few beats first
    await body()
    await asyncio.sleep(0.15)  # the beat after the stall
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
    return watch


def test_a_stall_is_counted_timed_and_logged_with_what_held_the_loop(caplog):
    async def stall():
        _hold_the_loop(STALL_S + 0.25)

    with caplog.at_level(logging.WARNING, logger="ledger.node"):
        watch = asyncio.run(_watch_while(stall))
    assert watch.stalls.count == 1
    assert STALL_S + 0.2 <= watch.stalls.longest_s < STALL_S + 1.0
    (record,) = [r for r in caplog.records if "event loop stalled" in r.getMessage()]
    assert "_hold_the_loop" in record.getMessage() and "test_loop_watch.py" in record.getMessage()


def test_a_loop_that_keeps_running_has_no_stall(caplog):
    async def busy_but_yielding():
        for _ in range(10):
            _hold_the_loop(0.03)
            await asyncio.sleep(0)

    with caplog.at_level(logging.WARNING, logger="ledger.node"):
        watch = asyncio.run(_watch_while(busy_but_yielding))
    assert watch.stalls.count == 0 and watch.stalls.longest_s == 0.0
    assert not [r for r in caplog.records if "event loop stalled" in r.getMessage()]
