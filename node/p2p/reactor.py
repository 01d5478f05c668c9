"""What the node does with its peers: the switch's channels wired to the mempool, consensus and block sync.

    txs          -> admission (peer transactions into the mempool, queued and admitted a slice at a
                    time between other work: ``node.p2p.tx_intake``)
    consensus    -> the relay (through ``ConsensusIO``)
    round-state  -> the relay's answer: the messages the peer lacks, on consensus
    blocksync    -> heights the peers announce; block requests served from the
                    store; answers to this node's own requests

Outbound: client transactions go to every peer on ``txs``; the driver's and
the relay's messages on ``consensus``; this node's height after every commit
on ``blocksync``.  A message that does not decode is dropped and counted by
its connection; the peer stays.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import time
from collections.abc import Callable

from node.consensus.round_status import RoundStatus
from node.encoding import DecodeError
from node.ledger.errors import SnapshotError
from node.p2p import snapshot_wire
from node.p2p.channels import (
    BLOCKSYNC,
    CONSENSUS,
    MAX_SYNC_ANSWER_BYTES,
    RECONFIG,
    ROUND_STATE,
    SNAPSHOT,
    TXS,
    ChannelSpec,
)
from node.p2p.peer_link import PeerLink
from node.p2p.switch import Switch
from node.p2p.tx_intake import PeerTxIntake
from node.p2p.wire import (
    MAX_BATCH_BLOCKS,
    SYNC_BLOCKS,
    SYNC_HEIGHT,
    SYNC_REQUEST,
    ConsensusMessage,
    decode_consensus_batch,
    decode_sync_message,
    decode_tx_batch,
    encode_block_batch,
    encode_sync_blocks,
    encode_sync_height,
    encode_sync_request,
)

log = logging.getLogger("ledger.p2p")

MAX_QUEUED_BEFORE_ANSWER = 1024 * 1024
"""A peer's round status is answered only while less than this is queued for it on the consensus channel."""
MAX_PENDING_REQUESTS = 16
"""Block and snapshot requests this node has open at once, across peers (each answer may be megabytes); more
wait for a place."""


class PeerReactor:
    """Between the switch and the node's parts; the node sets the ``on_*`` handlers before starting."""

    def __init__(self, switch: Switch, *, serve_block: Callable[[int], tuple[bytes, bytes] | None],
                 request_timeout_s: float):
        """``serve_block(height)`` is the committed block and its certificate, encoded, or None."""
        self.switch = switch
        self._serve_block = serve_block
        self.request_timeout_s = request_timeout_s
        self.on_txs: Callable[[list[bytes]], dict] = lambda raw: {}
        """Admits a slice of peers' transactions (called by ``tx_intake``, never straight from a read)."""
        self.tx_intake = PeerTxIntake(lambda raw: self.on_txs(raw))
        """Peers' transactions waiting for admission, by peer node id; the node runs its task (a reactor whose task
        does not run, as state sync's, queues nothing) and admits what is queued before proposing."""
        self.on_reconfig: Callable[[list[bytes]], None] = lambda raw: None
        self.reconfig_pool: Callable[[], list[bytes]] = lambda: []
        """The pooled reconfiguration records' bytes, sent to each peer that connects."""
        self.on_consensus: Callable[[list[tuple[ConsensusMessage | DecodeError, bytes]], PeerLink | None], dict] = \
            lambda m, link: {}
        """Takes a peer's consensus messages, each with its framed bytes, and the link they came on."""
        self.on_round_status: Callable[[RoundStatus], list[bytes]] = lambda status: []
        """Takes a peer's round status; the encoded messages it lacks."""
        self.on_peer_height: Callable[[PeerLink], None] = lambda link: None
        """A peer announced its height."""
        self.own_height: Callable[[], tuple[int, int]] = lambda: (0, 1)
        """This node's committed height and the earliest height whose block it serves."""
        self.serve_snapshot: Callable[[int, bytes], bytes] = lambda kind, body: b""
        """The answer body to a snapshot request (``snapshot_wire``): a list, an anchor or a chunk."""
        self.skipped_answers = 0
        """Round statuses left unanswered because much was still queued for that peer, and block requests
        dropped for a newer one from the same peer while its last answer had not gone (each peer gets one block
        answer at a time, the next once the last has gone: a small request cannot make this node queue much)."""
        self._requests: dict[int, tuple[PeerLink, asyncio.Future]] = {}
        """Open block requests by id: the peer asked (only it may answer) and the answer's future."""
        self._slots: asyncio.Semaphore | None = None
        """Places for open requests (made in the running loop at the first request)."""
        self._ids = itertools.count(random.getrandbits(32))
        """Request ids, from a random start: an answer a peer still holds for this node's previous run (or
        previous reactor) matches no request of this one."""
        switch.deliver = self.deliver
        switch.on_up = self.link_up
        switch.on_down = self.link_down
        switch.sent = self.message_sent

    @property
    def specs(self) -> dict[int, ChannelSpec]:
        return self.switch.specs

    @property
    def rejected_txs(self) -> int:
        """Transactions peers sent that the mempool refused."""
        return self.tx_intake.rejected

    @property
    def links(self) -> list[PeerLink]:
        return list(self.switch.links.values())

    @property
    def peers_up(self) -> int:
        return self.switch.peers_up

    # ------------------------------------------------------------------ outbound

    def broadcast_txs(self, raw_txs: list[bytes]) -> None:
        """Client transactions to every peer (a peer's own transactions are not relayed again: the
        validators are meshed by configuration, and a transaction a node missed reaches it in a block)."""
        if raw_txs:
            for link in self.switch.links.values():
                link.outbox.put_many(TXS, raw_txs)

    def broadcast_reconfig(self, raw_items: list[bytes]) -> None:
        """Approvals and quits to every connected peer (they are few; each node checks them before pooling)."""
        for link in self.switch.links.values():
            link.outbox.put_many(RECONFIG, raw_items)

    def broadcast_consensus(self, encoded: bytes, skip: PeerLink | None = None) -> None:
        """``encoded`` to every connected peer but ``skip`` (the one it came from)."""
        for link in self.switch.links.values():
            if link.up and link is not skip:
                link.send(CONSENSUS, encoded)

    def send_consensus(self, link: PeerLink, encoded: list[bytes]) -> None:
        if encoded:
            link.outbox.put_many(CONSENSUS, encoded)

    def broadcast_round_status(self, status: bytes) -> None:
        for link in self.switch.links.values():
            if link.up:
                link.send(ROUND_STATE, status)

    def broadcast_height(self) -> None:
        message = encode_sync_height(*self.own_height())
        for link in self.switch.links.values():
            if link.up:
                link.send(BLOCKSYNC, message)

    def link_up(self, link: PeerLink) -> None:
        link.outbox.clear(CONSENSUS)  # stale by now; the round-state exchange re-offers what matters
        link.send(BLOCKSYNC, encode_sync_height(*self.own_height()))
        pooled = self.reconfig_pool()
        if pooled:
            link.outbox.put_many(RECONFIG, pooled)

    def link_down(self, link: PeerLink) -> None:
        """``link``'s connection ended: its open requests get no answer (their callers move on at once instead of
        holding a place until their timeout)."""
        for asked, future in list(self._requests.values()):
            if asked is link and not future.done():
                future.set_result(None)

    async def request_blocks(self, link: PeerLink, start: int, end: int) -> bytes | None:
        """The peer's block batch for ``start..end`` (it may hold fewer), or None when it did not answer."""
        return await self._request(link, BLOCKSYNC, lambda request_id: encode_sync_request(request_id, start, end),
                                   "a block request")

    async def _request(self, link: PeerLink, channel: int, encode: Callable[[int], bytes], what: str) -> bytes | None:
        """Send the request ``encode(request_id)`` to ``link`` and wait for its answer's body; None when the link is
        down or nothing came within ``request_timeout_s`` of sending it.  At most ``MAX_PENDING_REQUESTS`` are open
        at once: more wait for a place first (each open one ends within ``request_timeout_s``), and that wait is
        not counted against the peer."""
        if self._slots is None:
            self._slots = asyncio.Semaphore(MAX_PENDING_REQUESTS)
        async with self._slots:
            if not link.up:
                return None
            request_id = next(self._ids) & 0xFFFFFFFF
            future: asyncio.Future = asyncio.get_running_loop().create_future()
            try:
                self._requests[request_id] = (link, future)
                link.send(channel, encode(request_id))
                link.request_sent_at = time.monotonic()
                async with asyncio.timeout(self.request_timeout_s):  # (not wait_for: on 3.11 it can swallow a cancel)
                    return await future  # (None at once when the link goes down: ``link_down``)
            except TimeoutError:
                link.last_error = f"no answer to {what} within {self.request_timeout_s:g} s"
                return None
            finally:
                self._requests.pop(request_id, None)

    async def request_snapshot(self, link: PeerLink, kind: int, body: bytes = b"") -> bytes | None:
        """The body of the peer's answer to a snapshot-channel request, or None when it did not answer."""
        def encode(request_id: int) -> bytes:
            return snapshot_wire.encode_request(kind, request_id, body)
        return await self._request(link, SNAPSHOT, encode, "a snapshot request")

    def _on_snapshot(self, link: PeerLink, message: bytes) -> None:
        kind, request_id, body = snapshot_wire.decode_message(message)
        if kind in snapshot_wire.REQUESTS:
            if any(link.unsent(SNAPSHOT, answer_kind) for answer_kind in snapshot_wire.ANSWERS):
                self.skipped_answers += 1  # one snapshot answer at a time per peer: it asks again after a timeout
                return
            try:
                answer = self.serve_snapshot(kind, body)
            except (OSError, SnapshotError) as exc:  # this node's snapshot files, not the peer: an empty answer
                log.warning("snapshot request of %s not served: %s", link.name, exc)
                answer = b""
            link.send(SNAPSHOT, snapshot_wire.encode_request(kind + 1, request_id, answer))
            return
        asked, future = self._requests.get(request_id, (None, None))
        if asked is link and future is not None and not future.done():
            future.set_result(body)

    # ------------------------------------------------------------------ inbound

    def deliver(self, link: PeerLink, channel: int, message: bytes) -> None:
        """One whole message from ``link``; ``DecodeError`` when it is malformed."""
        if channel == CONSENSUS:
            messages = decode_consensus_batch(message)
            self.on_consensus(messages, link)  # the batch's good messages count whatever the others are
            malformed = sum(1 for item, _ in messages if isinstance(item, DecodeError))
            if malformed:  # an honest peer sends none: counted against the connection like a malformed message
                raise DecodeError(f"{malformed} of the {len(messages)} consensus messages of a batch do not decode")
        elif channel == ROUND_STATE:
            status = RoundStatus.decode(message)
            if link.outbox.bytes[CONSENSUS] > MAX_QUEUED_BEFORE_ANSWER:  # the last answer has not gone yet:
                self.skipped_answers += 1  # the peer asks again in STATUS_INTERVAL_MS; one answer at a time
                return
            self.send_consensus(link, self.answer_round_status(link, status))
        elif channel == TXS:
            self.tx_intake.put(link.node_id, decode_tx_batch(message))
        elif channel == BLOCKSYNC:
            self._on_sync(link, message)
        elif channel == RECONFIG:
            self.on_reconfig(decode_tx_batch(message))
        elif channel == SNAPSHOT:
            self._on_snapshot(link, message)

    def message_sent(self, link: PeerLink, channel: int, message: bytes) -> None:
        """A block answer has gone: answer the request that waited for it."""
        if channel == BLOCKSYNC and message[:1] == bytes([SYNC_BLOCKS]) and link.deferred_request is not None:
            request_id, start, end = link.deferred_request
            link.deferred_request = None
            link.send(BLOCKSYNC, encode_sync_blocks(request_id, self.answer_blocks(link, start, end)))

    def answer_round_status(self, link: PeerLink, status: RoundStatus) -> list[bytes]:
        """The encoded messages ``link`` lacks according to its ``status``."""
        return self.on_round_status(status)

    def _on_sync(self, link: PeerLink, message: bytes) -> None:
        kind, number, (start, end), batch = decode_sync_message(message)
        if kind == SYNC_HEIGHT:
            link.height, link.earliest = number, start
            self.on_peer_height(link)
        elif kind == SYNC_REQUEST:
            if link.unsent(BLOCKSYNC, SYNC_BLOCKS):  # one answer at a time: this one once the last has gone
                if link.deferred_request is not None:
                    self.skipped_answers += 1  # an honest peer has one request out: an older one is moot
                link.deferred_request = (number, start, end)
                return
            link.send(BLOCKSYNC, encode_sync_blocks(number, self.answer_blocks(link, start, end)))
        elif kind == SYNC_BLOCKS:
            asked, future = self._requests.get(number, (None, None))
            if asked is link and future is not None and not future.done():
                future.set_result(batch)

    def answer_blocks(self, link: PeerLink, start: int, end: int) -> bytes:
        """Committed blocks ``start..end`` with their certificates, as many as fit one message."""
        items: list[tuple[bytes, bytes]] = []
        size, limit = 4, min(self.specs[BLOCKSYNC].max_message_bytes - 16, MAX_SYNC_ANSWER_BYTES)
        for height in range(max(1, start), min(end, start + MAX_BATCH_BLOCKS - 1) + 1):
            served = self._serve_block(height)
            if served is None:
                break
            size += 8 + len(served[0]) + len(served[1])
            if items and size > limit:
                break
            items.append(served)
        return encode_block_batch(items)
