"""Client-centric reads that wait: for a height to be committed, for a transaction to commit.

The REST layer awaits these (``min_height``, ``POST /v1/txs?wait=commit``);
the node's commit path wakes them with ``on_commit``, which also publishes the
block to the event stream (``events``, ``GET /v1/events``).

Waiting for a height is bounded: at most ``max_waiting`` reads wait at once
(``too-many-waiting``), and a height further ahead than the chain can plausibly
commit within the wait is refused at once (``height-not-reached``): twice the
heights the recent commit pace (the mean interval of the last ``PACE_WINDOW``
commits this node saw; ``DEFAULT_INTERVAL_S`` before it saw two) gives in the
wait, plus ``MIN_REACHABLE``.
"""

from __future__ import annotations

import asyncio
import collections
import math
import time
from dataclasses import dataclass

from node.errors import CodedError
from node.events import EventHub
from node.ledger.errors import STORE_CORRUPT, StoreError
from node.ledger.store import Store
from node.types.block import Block

HEIGHT_NOT_REACHED = "height-not-reached"
TOO_MANY_WAITING = "too-many-waiting"
PACE_WINDOW = 16
"""Commits whose times give the recent pace."""
DEFAULT_INTERVAL_S = 0.1
"""The pace assumed before two commits were seen (a node that starts may be catching up quickly)."""
MIN_REACHABLE = 8
"""Heights ahead a read may always wait for, whatever the pace."""


class WaitRefused(CodedError):
    """A waiting read refused at once: too many wait already, or the height is out of reach within the wait."""


def estimate_reachable(timeout_s: float, interval_s: float) -> int:
    """Heights past the tip the chain may plausibly commit within ``timeout_s`` at ``interval_s`` per block:
    twice the pace, plus ``MIN_REACHABLE``."""
    return MIN_REACHABLE + math.ceil(2 * timeout_s / max(interval_s, 1e-3))


@dataclass(frozen=True)
class TxLocation:
    """Where a committed transaction sits."""

    height: int
    index: int
    block_hash: bytes


class Waiters:
    """Whoever waits for a height or a transaction, woken at each commit."""

    def __init__(self, store: Store):
        self.store = store
        self.height_changed = asyncio.Event()
        """Set (and replaced by a fresh event) at each commit."""
        self.commit_waiters: dict[bytes, list[asyncio.Future]] = {}
        self.events = EventHub()
        """Clients of ``GET /v1/events``; each commit is published to them."""
        self.height_waits = 0
        """Reads waiting for a height now."""
        self.refused_waits = 0
        """Waiting reads refused at once (too many, or out of reach) since start."""
        self.commit_times: collections.deque[float] = collections.deque(maxlen=PACE_WINDOW)
        """Monotonic times of the last commits, for the pace."""

    def recent_interval(self) -> float:
        """Mean seconds between the last commits this node saw (``DEFAULT_INTERVAL_S`` before two)."""
        times = self.commit_times
        if len(times) < 2:
            return DEFAULT_INTERVAL_S
        return (times[-1] - times[0]) / (len(times) - 1)

    async def wait_for_height(self, height: int, timeout_s: float, max_waiting: int | None = None) -> bool:
        """True once ``height`` is committed, False when ``timeout_s`` ran out first; ``WaitRefused`` at once
        when ``max_waiting`` reads wait already or ``height`` is out of reach within ``timeout_s``."""
        if self.store.height >= height:
            return True
        ahead = height - self.store.height
        reachable = estimate_reachable(timeout_s, self.recent_interval())
        if ahead > reachable:
            self.refused_waits += 1
            raise WaitRefused(HEIGHT_NOT_REACHED, f"node is at height {self.store.height}, {ahead} below "
                                                  f"min_height {height}: more than the {reachable} heights it can "
                                                  f"plausibly commit within {timeout_s:g} s; retry later or ask "
                                                  f"another node", height=self.store.height)
        if max_waiting is not None and self.height_waits >= max_waiting:
            self.refused_waits += 1
            raise WaitRefused(TOO_MANY_WAITING, f"{self.height_waits} reads wait for a height already, the most "
                                                f"this node holds; retry later or ask another node",
                              height=self.store.height)
        self.height_waits += 1
        try:
            deadline = time.monotonic() + timeout_s
            while self.store.height < height:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                try:
                    await asyncio.wait_for(self.height_changed.wait(), remaining)
                except TimeoutError:
                    return self.store.height >= height
            return True
        finally:
            self.height_waits -= 1

    async def wait_for_commit(self, txid: bytes, timeout_s: float) -> TxLocation | None:
        location = self.locate(txid)
        if location is not None:
            return location
        fut = asyncio.get_running_loop().create_future()
        self.commit_waiters.setdefault(txid, []).append(fut)
        try:
            return await asyncio.wait_for(fut, timeout_s)
        except TimeoutError:
            return self.locate(txid)
        finally:
            waiters = self.commit_waiters.get(txid)
            if waiters and fut in waiters:
                waiters.remove(fut)
                if not waiters:
                    del self.commit_waiters[txid]

    def locate(self, txid: bytes) -> TxLocation | None:
        found = self.store.get_tx_location(txid)
        if found is None:
            return None
        height, index = found
        block_hash = self.store.get_block_hash(height)
        if block_hash is None:
            raise StoreError(STORE_CORRUPT, f"txid index of {txid.hex()} points at missing block {height}")
        return TxLocation(height, index, block_hash)

    def on_commit(self, block: Block) -> None:
        """``block`` was committed: wake whoever waits for its transactions or for a new height."""
        for index, tx in enumerate(block.txs):
            waiters = self.commit_waiters.pop(tx.txid, None)
            if waiters:
                location = TxLocation(block.height, index, block.hash)
                for fut in waiters:
                    if not fut.done():
                        fut.set_result(location)
        self.height_changed.set()
        self.height_changed = asyncio.Event()
        self.commit_times.append(time.monotonic())
        self.events.publish(block)
