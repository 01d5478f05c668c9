"""Peer transactions wait here and are admitted a slice at a time, so consensus never waits behind a batch.

A peer's transaction batch (up to ``gossip_batch_txs``, 500 by default) used
to be admitted the moment it was read: 50-130 us of checks per transaction,
so one batch held the event loop for up to 65 ms while a proposal or a vote
that arrived behind it waited.  Under load every height's critical path
(propose, validate, vote, commit) absorbed the admission work of whatever
arrived meanwhile: heights grew with the load, blocks grew with the heights,
and a 1,250 tx/s run on four validators sharing two cores could settle at
2-second heights of 2,000 transactions (p50 2.1 s).

So the peer channel only queues a batch (``put``), per peer (by node id), and
one task admits a slice at a time (``run``: ``SLICE_TXS`` transactions or
``SLICE_BYTES``, whichever comes first), from each peer in turn, yielding to
the event loop between slices: a consensus message read meanwhile is handled
within one slice.  The admission work is the same; it fills the gaps between
the steps of a height instead of sitting in them.  Before this node builds
a proposal it admits what is queued, for at most ``BEFORE_PROPOSAL_S``
(``admit_for``), so its block can take the transactions it has received
(still by fee rate and within the block's bounds).

Bounds, in bytes charged per transaction (its length plus
``ITEM_OVERHEAD_BYTES``, so a batch of empty items is not free): a peer's
queue holds at most ``MAX_QUEUED_BYTES_PER_PEER``, and what does not fit of a
batch is dropped (the newest go, so a parent queued before its child is
kept); all queues together hold at most ``MAX_QUEUED_BYTES``, and past it
the largest queue loses its newest transactions (a peer that floods fills
only its own share).  Drops are counted (``dropped``).  A transaction one
validator dropped still reaches the chain through another: the validator
that acknowledged it to its client keeps it in its mempool and journal while
it stays valid and unexpired and includes it when it proposes, and the
others take it from that block (a node that is not a validator gossips a
client's transaction once, so one every validator dropped waits there until
it expires, as one dropped from its full send queue does).  A node not
running the task (one copying a state snapshot) queues nothing.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Callable, Hashable

log = logging.getLogger("ledger.p2p")

SLICE_TXS = 64
"""Most transactions admitted between two yields to the event loop (about 3-8 ms of checks for transfers)."""
SLICE_BYTES = 32 * 1024
"""Most transaction bytes admitted between two yields (a slice of large transactions stops earlier)."""
BEFORE_PROPOSAL_S = 0.05
"""How long this node admits queued transactions before building its proposal, at most."""
ITEM_OVERHEAD_BYTES = 64
"""Bytes charged for each queued transaction besides its own (the object and its queue slot)."""
MAX_QUEUED_BYTES_PER_PEER = 4 * 1024 * 1024
"""Charged bytes queued per peer; what does not fit of a batch is dropped."""
MAX_QUEUED_BYTES = 16 * 1024 * 1024
"""Charged bytes queued over all peers; past it the largest queue loses its newest transactions."""
LOG_EVERY_S = 60.0
"""A failing admission is logged with its traceback at most this often."""


def charge(raw: bytes) -> int:
    """The bytes one queued transaction is charged."""
    return len(raw) + ITEM_OVERHEAD_BYTES


class PeerTxIntake:
    """The queues of peer transactions waiting for admission, and the task that admits them."""

    def __init__(self, admit: Callable[[list[bytes]], dict], *, slice_txs: int = SLICE_TXS,
                 slice_bytes: int = SLICE_BYTES, max_bytes_per_peer: int = MAX_QUEUED_BYTES_PER_PEER,
                 max_bytes: int = MAX_QUEUED_BYTES):
        """``admit(raw_txs)`` admits transactions into the mempool and returns counts, ``rejected`` among
        them."""
        self._admit = admit
        self._slice_txs = max(1, slice_txs)
        self._slice_bytes = slice_bytes
        self._max_per_peer = max_bytes_per_peer
        self._max_bytes = max_bytes
        self._queues: dict[Hashable, collections.deque[bytes]] = {}
        """Raw transactions per peer, oldest first; a peer with none queued has no entry."""
        self._charged: dict[Hashable, int] = {}
        """Charged bytes queued per peer."""
        self._turns: collections.deque[Hashable] = collections.deque()
        """Peers with queued transactions, in the order they are served next."""
        self._wakeup = asyncio.Event()
        self._last_log = float("-inf")
        self.open = False
        """True while the task runs: only then are batches queued (else ``put`` ignores them)."""
        self.queued = 0
        """Transactions waiting, over all peers."""
        self.queued_bytes = 0
        """Their charged bytes."""
        self.dropped = 0
        """Transactions dropped unadmitted: a queue was full, or their slice's admission failed."""
        self.rejected = 0
        """Transactions the mempool refused."""

    def put(self, peer: Hashable, raw_txs: list[bytes]) -> None:
        """Queue a peer's batch (``peer`` names the peer: its node id)."""
        if not self.open or not raw_txs:
            return
        queue = self._queues.get(peer)
        if queue is None:
            queue = self._queues[peer] = collections.deque()
            self._charged[peer] = 0
            self._turns.append(peer)
        room = self._max_per_peer - self._charged[peer]
        taken = 0
        for raw in raw_txs:
            cost = charge(raw)
            if cost > room:
                break
            queue.append(raw)
            room -= cost
            taken += 1
            self._charged[peer] += cost
            self.queued_bytes += cost
        self.queued += taken
        self.dropped += len(raw_txs) - taken
        if not queue:
            self._forget(peer)
        while self.queued_bytes > self._max_bytes:
            self._drop_newest(max(self._charged, key=self._charged.__getitem__))
        if self.queued:
            self._wakeup.set()

    def _drop_newest(self, peer: Hashable) -> None:
        queue = self._queues[peer]
        cost = charge(queue.pop())
        self._charged[peer] -= cost
        self.queued_bytes -= cost
        self.queued -= 1
        self.dropped += 1
        if not queue:
            self._forget(peer)

    def _forget(self, peer: Hashable) -> None:
        del self._queues[peer], self._charged[peer]
        self._turns.remove(peer)

    def admit_slice(self) -> int:
        """Admit one slice of the peer whose turn it is; how many transactions were taken."""
        if not self._turns:
            return 0
        peer = self._turns.popleft()
        queue = self._queues[peer]
        taken: list[bytes] = []
        size = charged = 0
        while queue and len(taken) < self._slice_txs and (not taken or size + len(queue[0]) <= self._slice_bytes):
            raw = queue.popleft()
            taken.append(raw)
            size += len(raw)
            charged += charge(raw)
        self._charged[peer] -= charged
        self.queued -= len(taken)
        self.queued_bytes -= charged
        if queue:
            self._turns.append(peer)
        else:
            del self._queues[peer], self._charged[peer]
        try:
            self.rejected += int(self._admit(taken).get("rejected", 0))
        except Exception:  # noqa: BLE001  (a bug in one slice must not stop admission for good)
            self.dropped += len(taken)  # (some of them may have entered the mempool before the failure)
            now = time.monotonic()
            if now - self._last_log >= LOG_EVERY_S:
                self._last_log = now
                log.exception("admitting %d peer transactions failed; they are dropped", len(taken))
        return len(taken)

    def admit_for(self, seconds: float = BEFORE_PROPOSAL_S) -> None:
        """Admit what is queued, for at most ``seconds`` (before this node builds a proposal)."""
        deadline = time.monotonic() + seconds
        while self.admit_slice() and time.monotonic() < deadline:
            pass

    async def run(self) -> None:
        """Admit queued transactions a slice at a time, letting the event loop run between slices."""
        self.open = True
        try:
            while True:
                await self._wakeup.wait()
                self._wakeup.clear()
                while self.admit_slice():
                    await asyncio.sleep(0)
        finally:
            self.open = False
