"""Outbound gossip: one link per persistent peer, each with its own bounded
queues and its own task, so a peer that is down or slow never blocks the
others or consensus.

Transactions travel in batches (one HTTP request carries up to
``gossip_batch_txs``; a partial batch waits ``gossip_flush_ms`` for company).
Consensus messages go first, in their own batch, and are never held back by
transactions.

Every batch is cut to the peer's limits: at most ``MAX_BATCH_MESSAGES``
consensus messages or ``MAX_BATCH_TXS`` transactions, and at most
``max_batch_bytes`` of body (the peer's request-body limit).  A batch counts as
delivered only on a 2xx answer.  A 413 splits it and the halves are retried
(and the link lowers its byte limit, so later batches fit); a single message
that is still too large, or a batch the peer refuses with another 4xx
(malformed in its eyes: the same bytes would be refused again), is dropped
with a warning and counted as rejected, never as sent.  A failed send
(connection error, 5xx, 408, 429) is retried with exponential backoff.
"""

from __future__ import annotations

import asyncio
import collections
import enum
import logging
import time
from collections.abc import Callable

import httpx

from node.p2p.wire import (
    BATCH_HEADER_BYTES,
    MAX_BATCH_BYTES,
    MAX_BATCH_MESSAGES,
    MAX_BATCH_TXS,
    encode_consensus_batch,
    encode_tx_batch,
    tx_batch_item_bytes,
)

log = logging.getLogger("ledger.p2p")

PEER_HEADER = "x-ledger-peer"
MAX_CONSENSUS_QUEUE = 20_000
BACKOFF_START_S = 0.1
BACKOFF_MAX_S = 3.0
RETRY_STATUSES = frozenset({408, 429})
"""4xx answers that mean "not now" rather than "never": retried like a 5xx."""


class Outcome(enum.Enum):
    """How a peer answered one batch."""

    DELIVERED = "delivered"
    """2xx: the peer took the batch."""
    TOO_LARGE = "too-large"
    """413: over the peer's body limit; split and retry."""
    REJECTED = "rejected"
    """Another 4xx (or a 1xx/3xx): refused for good; drop it."""
    FAILED = "failed"
    """No answer, a 5xx, 408 or 429: retry the same items with backoff."""


class PeerLink:
    """Queues and the sender task for one peer."""

    def __init__(self, url: str, own_name: str, batch_txs: int, flush_s: float, queue_max: int, timeout_s: float,
                 max_batch_bytes: int = MAX_BATCH_BYTES):
        self.url = url.rstrip("/")
        self.own_name = own_name
        self.batch_txs = max(1, min(batch_txs, MAX_BATCH_TXS))
        self.max_batch_bytes = max_batch_bytes
        """Largest body sent to this peer; lowered when the peer answers 413."""
        self.flush_s = flush_s
        self.timeout_s = timeout_s
        self.txs: collections.deque[bytes] = collections.deque(maxlen=queue_max)
        self.consensus: collections.deque[bytes] = collections.deque(maxlen=MAX_CONSENSUS_QUEUE)
        self.wakeup = asyncio.Event()
        self.up = False
        self.last_error = ""
        self.sent_txs = 0
        """Transactions the peer acknowledged (2xx)."""
        self.sent_messages = 0
        """Consensus messages the peer acknowledged (2xx)."""
        self.rejected_txs = 0
        """Transactions dropped because the peer refused them (4xx, or 413 for one alone)."""
        self.rejected_messages = 0
        """Consensus messages dropped because the peer refused them."""
        self.last_rejection = ""
        """The peer's last refusal (status and error code), for status and logs."""
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
            except asyncio.CancelledError:
                pass
            except Exception:  # the link had died of it; stopping goes on
                log.exception("gossip link to %s had failed", self.url)
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

    async def _post(self, path: str, body: bytes) -> tuple[Outcome, str]:
        """Post one body; how the peer answered, and its status and error code when it refused."""
        try:
            response = await self.client.post(self.url + path, content=body,
                                              headers={"content-type": "application/octet-stream"})
        except (httpx.HTTPError, OSError) as exc:
            self.failures += 1
            self._mark(False, type(exc).__name__)
            return Outcome.FAILED, type(exc).__name__
        status = response.status_code
        if status >= 500 or status in RETRY_STATUSES:
            self.failures += 1
            self._mark(False, f"HTTP {status}")
            return Outcome.FAILED, f"HTTP {status}"
        self._mark(True)
        if 200 <= status < 300:
            return Outcome.DELIVERED, ""
        try:  # the node's error shape; for anything else (not JSON, other shape) the status says enough
            code = str(response.json()["error"]["code"])[:64]
        except (ValueError, LookupError, TypeError, RecursionError):
            code = ""
        detail = f"HTTP {status} {code}".rstrip()
        return (Outcome.TOO_LARGE if status == 413 else Outcome.REJECTED), detail

    def _take(self, queue: collections.deque, max_items: int, item_bytes: Callable[[bytes], int]) -> list[bytes]:
        """Pop the longest prefix of ``queue`` that fits one batch for this peer (always at least one item:
        one that is too large on its own is refused by the peer and counted as rejected)."""
        batch: list[bytes] = []
        size = BATCH_HEADER_BYTES
        while queue and len(batch) < max_items:
            n = item_bytes(queue[0])
            if batch and size + n > self.max_batch_bytes:
                break
            batch.append(queue.popleft())
            size += n
        return batch

    def _count(self, is_txs: bool, n: int, delivered: bool) -> None:
        if is_txs:
            if delivered:
                self.sent_txs += n
            else:
                self.rejected_txs += n
        elif delivered:
            self.sent_messages += n
        else:
            self.rejected_messages += n

    async def _send(self, path: str, batch: list[bytes], queue: collections.deque, backoff: float) -> float:
        """Post one batch, splitting it on 413; drop what the peer refuses (counted as rejected, never as
        sent); on failure put what is left back at the front of the queue and wait. Returns the next backoff."""
        is_txs = queue is self.txs
        encode = encode_tx_batch if is_txs else encode_consensus_batch
        parts = [batch]  # a stack: the next part to post is the last one
        while parts:
            if is_txs and self.consensus:  # consensus first: what is left of a split batch waits in the queue
                queue.extendleft(reversed([item for rest in reversed(parts) for item in rest]))
                break
            part = parts.pop()
            body = encode(part)
            if len(part) > 1 and len(body) > self.max_batch_bytes:  # a 413 taught us it cannot fit: split now
                half = len(part) // 2
                parts += [part[half:], part[:half]]
                continue
            outcome, detail = await self._post(path, body)
            if outcome is Outcome.DELIVERED:
                self._count(is_txs, len(part), delivered=True)
            elif outcome is Outcome.TOO_LARGE and len(part) > 1:
                self.max_batch_bytes = min(self.max_batch_bytes, max(1, len(body) // 2))
                half = len(part) // 2
                parts += [part[half:], part[:half]]
                log.info("peer %s: %d-byte batch too large (%s); splitting it, batches now up to %d bytes",
                         self.url, len(body), detail, self.max_batch_bytes)
            elif outcome is Outcome.FAILED:
                left = part + [item for rest in reversed(parts) for item in rest]
                queue.extendleft(reversed(left))
                await asyncio.sleep(backoff)
                return min(backoff * 2, BACKOFF_MAX_S)
            else:
                self._count(is_txs, len(part), delivered=False)
                self.last_rejection = f"{path} {detail}"
                log.warning("peer %s refused %d %s in a %d-byte batch (%s); dropped", self.url, len(part),
                            "transactions" if is_txs else "consensus messages", len(body), detail)
        return BACKOFF_START_S

    async def _run(self) -> None:
        backoff = BACKOFF_START_S
        while True:
            if not self.consensus and not self.txs:
                self.wakeup.clear()
                await self.wakeup.wait()
            if self.consensus:
                batch = self._take(self.consensus, MAX_BATCH_MESSAGES, len)
                backoff = await self._send("/p2p/consensus", batch, self.consensus, backoff)
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
                    except TimeoutError:
                        break
                if self.consensus:
                    continue
            batch = self._take(self.txs, self.batch_txs, tx_batch_item_bytes)
            if not batch:
                continue
            backoff = await self._send("/p2p/txs", batch, self.txs, backoff)


class Gossip:
    """All peer links; fan-out helpers used by the node runtime."""

    def __init__(self, peers: list[str], own_name: str, batch_txs: int, flush_ms: int, queue_max: int,
                 timeout_ms: int, max_batch_bytes: int = MAX_BATCH_BYTES):
        self.links = [PeerLink(url, own_name, batch_txs, flush_ms / 1000, queue_max, timeout_ms / 1000,
                               max_batch_bytes) for url in peers]

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

    @property
    def rejected_txs(self) -> int:
        """Transactions the peers refused (summed over links)."""
        return sum(link.rejected_txs for link in self.links)

    @property
    def rejected_messages(self) -> int:
        """Consensus messages the peers refused (summed over links)."""
        return sum(link.rejected_messages for link in self.links)
