"""Peer transactions wait here and are admitted a slice at a time, so consensus never waits behind a batch.

A peer's transaction batch (up to ``gossip_batch_txs``, 500 by default) used
to be admitted the moment it was read: 50-130 us of checks per transaction,
so one batch held the event loop for up to 65 ms while a proposal or a vote
that arrived behind it waited.  Under load every height's critical path
(propose, validate, vote, commit) absorbed the admission work of whatever
arrived meanwhile: heights grew with the load, blocks grew with the heights,
and a 1,250 tx/s run on four validators sharing two cores could settle at
2-second heights of 2,000 transactions (p50 2.1 s).

So the peer channel only queues a batch (``put``), per peer, and one task
admits ``SLICE_TXS`` transactions at a time (``run``), from each peer in
turn, yielding to the event loop between slices: a consensus message read
meanwhile is handled within one slice.  The admission work is the same; it
fills the gaps between the steps of a height instead of sitting in them.
Before this node builds a proposal the queue is emptied (``admit_all``), so
the block holds every transaction the node has received.

Bounds: a peer's queue holds at most ``MAX_QUEUED_BYTES_PER_PEER`` (its oldest
transactions are dropped first) and all queues together at most
``MAX_QUEUED_BYTES`` (a batch that does not fit is dropped whole).  Nothing
acknowledged is lost by a drop: the node that acknowledged a transaction
journaled it and keeps it until it is committed, and a transaction missing
here arrives inside a block.  Drops are counted (``dropped``).
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Callable, Hashable

log = logging.getLogger("ledger.p2p")

SLICE_TXS = 64
"""Transactions admitted between two yields to the event loop (about 3-8 ms of checks)."""
MAX_QUEUED_BYTES_PER_PEER = 4 * 1024 * 1024
"""Queued transaction bytes per peer; past it, that peer's oldest queued transactions are dropped."""
MAX_QUEUED_BYTES = 16 * 1024 * 1024
"""Queued transaction bytes over all peers; a batch that would go past it is dropped."""


class PeerTxIntake:
    """The queues of peer transactions waiting for admission, and the task that admits them."""

    def __init__(self, admit: Callable[[list[bytes]], dict], *, slice_txs: int = SLICE_TXS,
                 max_bytes_per_peer: int = MAX_QUEUED_BYTES_PER_PEER, max_bytes: int = MAX_QUEUED_BYTES):
        """``admit(raw_txs)`` admits transactions into the mempool and returns counts, ``rejected`` among
        them."""
        self._admit = admit
        self._slice = max(1, slice_txs)
        self._max_per_peer = max_bytes_per_peer
        self._max_bytes = max_bytes
        self._queues: dict[Hashable, collections.deque[bytes]] = {}
        """Raw transactions per peer, oldest first; a peer with none queued has no entry."""
        self._bytes: dict[Hashable, int] = {}
        self._turns: collections.deque[Hashable] = collections.deque()
        """Peers with queued transactions, in the order they are served next."""
        self._wakeup = asyncio.Event()
        self.queued = 0
        """Transactions waiting, over all peers."""
        self.queued_bytes = 0
        self.dropped = 0
        """Transactions dropped unadmitted because a queue was full."""
        self.rejected = 0
        """Transactions the mempool refused."""

    def put(self, peer: Hashable, raw_txs: list[bytes]) -> None:
        """Queue a peer's batch (``peer`` names the peer: its link)."""
        if not raw_txs:
            return
        size = sum(len(raw) for raw in raw_txs)
        if self.queued_bytes + size > self._max_bytes or size > self._max_per_peer:
            self.dropped += len(raw_txs)
            return
        queue = self._queues.get(peer)
        if queue is None:
            queue = self._queues[peer] = collections.deque()
            self._bytes[peer] = 0
            self._turns.append(peer)
        queue.extend(raw_txs)
        self._bytes[peer] += size
        self.queued += len(raw_txs)
        self.queued_bytes += size
        while self._bytes[peer] > self._max_per_peer:
            oldest = queue.popleft()
            self._bytes[peer] -= len(oldest)
            self.queued -= 1
            self.queued_bytes -= len(oldest)
            self.dropped += 1
        self._wakeup.set()

    def admit_slice(self) -> int:
        """Admit up to ``SLICE_TXS`` transactions of the peer whose turn it is; how many were taken."""
        if not self._turns:
            return 0
        peer = self._turns.popleft()
        queue = self._queues[peer]
        taken = [queue.popleft() for _ in range(min(self._slice, len(queue)))]
        size = sum(len(raw) for raw in taken)
        self._bytes[peer] -= size
        self.queued -= len(taken)
        self.queued_bytes -= size
        if queue:
            self._turns.append(peer)
        else:
            del self._queues[peer], self._bytes[peer]
        try:
            self.rejected += int(self._admit(taken).get("rejected", 0))
        except Exception:  # noqa: BLE001  (a bug in one slice must not stop admission for good)
            log.exception("admitting %d peer transactions failed; they are dropped", len(taken))
            self.dropped += len(taken)
        return len(taken)

    def admit_all(self) -> None:
        """Admit everything queued now (before this node builds a proposal)."""
        while self._turns:
            self.admit_slice()

    async def run(self) -> None:
        """Admit queued transactions a slice at a time, letting the event loop run between slices."""
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self.admit_slice():
                await asyncio.sleep(0)
