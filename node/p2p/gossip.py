"""Outbound gossip: one link per persistent peer, each with its own bounded
queues and its own task, so a peer that is down or slow never blocks the
others or consensus.

Transactions travel in batches (one HTTP request carries up to
``gossip_batch_txs``; a partial batch waits ``gossip_flush_ms`` for company).
Consensus messages go first, in their own batch, and are never held back by
transactions.  A failed send is retried with exponential backoff.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time

import httpx

from node.p2p.wire import encode_consensus_batch, encode_tx_batch

log = logging.getLogger("ledger.p2p")

PEER_HEADER = "x-ledger-peer"
MAX_CONSENSUS_QUEUE = 20_000
BACKOFF_START_S = 0.1
BACKOFF_MAX_S = 3.0


class PeerLink:
    """Queues and the sender task for one peer."""

    def __init__(self, url: str, own_name: str, batch_txs: int, flush_s: float, queue_max: int, timeout_s: float):
        self.url = url.rstrip("/")
        self.own_name = own_name
        self.batch_txs = batch_txs
        self.flush_s = flush_s
        self.timeout_s = timeout_s
        self.txs: collections.deque[bytes] = collections.deque(maxlen=queue_max)
        self.consensus: collections.deque[bytes] = collections.deque(maxlen=MAX_CONSENSUS_QUEUE)
        self.wakeup = asyncio.Event()
        self.up = False
        self.last_error = ""
        self.sent_txs = 0
        self.sent_messages = 0
        self.failures = 0
        self.height = 0
        """Last height the peer reported (from block sync polling)."""
        self._task: asyncio.Task | None = None
        self._client: httpx.AsyncClient | None = None

    def start(self) -> None:
        self._client = httpx.AsyncClient(timeout=self.timeout_s, headers={PEER_HEADER: self.own_name},
                                         limits=httpx.Limits(max_connections=4, max_keepalive_connections=2))
        self._task = asyncio.create_task(self._run(), name=f"gossip:{self.url}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
        if self._client is not None:
            await self._client.aclose()

    @property
    def client(self) -> httpx.AsyncClient:
        assert self._client is not None
        return self._client

    def queue_txs(self, raw_txs: list[bytes]) -> None:
        self.txs.extend(raw_txs)
        self.wakeup.set()

    def queue_consensus(self, encoded: bytes) -> None:
        self.consensus.append(encoded)
        self.wakeup.set()

    def _mark(self, up: bool, error: str = "") -> None:
        if up != self.up:
            if up:
                log.info("peer up url=%s", self.url)
            else:
                log.info("peer down url=%s error=%s", self.url, error)
        self.up = up
        self.last_error = error

    async def _post(self, path: str, body: bytes) -> bool:
        try:
            response = await self.client.post(self.url + path, content=body,
                                              headers={"content-type": "application/octet-stream"})
        except (httpx.HTTPError, OSError) as exc:
            self.failures += 1
            self._mark(False, type(exc).__name__)
            return False
        if response.status_code >= 500:
            self.failures += 1
            self._mark(False, f"HTTP {response.status_code}")
            return False
        self._mark(True)
        return True

    async def _send(self, path: str, body: bytes, batch: list[bytes], queue: collections.deque,
                    backoff: float) -> float:
        """Post one batch; on failure put it back at the front and wait. Returns the next backoff."""
        if await self._post(path, body):
            if queue is self.txs:
                self.sent_txs += len(batch)
            else:
                self.sent_messages += len(batch)
            return BACKOFF_START_S
        queue.extendleft(reversed(batch))
        await asyncio.sleep(backoff)
        return min(backoff * 2, BACKOFF_MAX_S)

    async def _run(self) -> None:
        backoff = BACKOFF_START_S
        while True:
            if not self.consensus and not self.txs:
                self.wakeup.clear()
                await self.wakeup.wait()
            if self.consensus:
                batch = [self.consensus.popleft() for _ in range(len(self.consensus))]
                backoff = await self._send("/p2p/consensus", encode_consensus_batch(batch), batch,
                                           self.consensus, backoff)
                continue
            if len(self.txs) < self.batch_txs:
                # Let a partial batch fill up a little, but never delay consensus messages.
                deadline = time.monotonic() + self.flush_s
                while len(self.txs) < self.batch_txs and not self.consensus:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self.wakeup.clear()
                    try:
                        await asyncio.wait_for(self.wakeup.wait(), remaining)
                    except asyncio.TimeoutError:
                        break
                if self.consensus:
                    continue
            n = min(len(self.txs), self.batch_txs)
            batch = [self.txs.popleft() for _ in range(n)]
            if not batch:
                continue
            backoff = await self._send("/p2p/txs", encode_tx_batch(batch), batch, self.txs, backoff)


class Gossip:
    """All peer links; fan-out helpers used by the node runtime."""

    def __init__(self, peers: list[str], own_name: str, batch_txs: int, flush_ms: int, queue_max: int,
                 timeout_ms: int):
        self.links = [PeerLink(url, own_name, batch_txs, flush_ms / 1000, queue_max, timeout_ms / 1000)
                      for url in peers]

    def start(self) -> None:
        for link in self.links:
            link.start()

    async def stop(self) -> None:
        await asyncio.gather(*(link.stop() for link in self.links))

    def broadcast_txs(self, raw_txs: list[bytes]) -> None:
        """Send client-submitted transactions to every peer.

        Transactions learned from a peer are not relayed again: validators
        are fully meshed by configuration, and a transaction a node missed
        still reaches it inside a block.
        """
        if not raw_txs:
            return
        for link in self.links:
            link.queue_txs(raw_txs)

    def broadcast_consensus(self, encoded: bytes) -> None:
        for link in self.links:
            link.queue_consensus(encoded)

    @property
    def peers_up(self) -> int:
        return sum(1 for link in self.links if link.up)
