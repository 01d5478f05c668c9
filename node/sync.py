"""Block sync: a node that fell behind fetches certified blocks from its peers and commits them.

Peers announce their height on the block-sync channel on connect and after
every commit.  Every ``sync_interval_ms`` (or sooner, when woken: a peer's
round status or a buffered message says the network is heights ahead) the
node fetches what it lacks from the peers ahead of it, in batches, on the same
channel.  A block served with a certificate that does not prove
exactly those bytes is the peer's lie: the peer is dropped and the same
heights come from another.  Certified bytes that fail here are a state
divergence.  Blocks go through the node's own commit path.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from node.application import Application
from node.consensus.certificate import CertificateError, verify_commit
from node.encoding import DecodeError
from node.ledger.errors import BlockError, LedgerError
from node.ledger.rules import BlockResult, check_block_body
from node.ledger.store import Store
from node.mempool import Mempool
from node.p2p.reactor import PeerReactor
from node.p2p.switch import PeerLink
from node.p2p.wire import decode_block_batch
from node.stages import CLOCK
from node.types.block import Block
from node.types.commit import Commit

log = logging.getLogger("ledger.node")

BENCH_S = 30.0
"""How long a peer that did not serve what it announced (or served it slowly) is skipped by block sync."""
SYNC_BATCH = 50
"""Blocks asked of a peer in one request."""


class BlockSync:
    """Catching up with the peers' certified blocks."""

    def __init__(self, *, chain_id: str, genesis_hash: bytes, store: Store,
                 peers: PeerReactor, application: Application, mempool: Mempool,
                 commit: Callable[[Block, Commit, BlockResult, int], None], diverge: Callable[[int, str], None],
                 start_height: Callable[[int], None], failed: Callable[[], bool], interval_ms: int):
        """``commit`` writes a block (the node's commit path), ``diverge`` stops the node on a state
        divergence, ``start_height`` starts consensus at a height and ``failed`` says the node has stopped
        on an error (sync then does nothing)."""
        self.chain_id = chain_id
        self.genesis_hash = genesis_hash
        self.store = store
        self.peers = peers
        self.application = application
        self.mempool = mempool
        self._commit = commit
        self._diverge = diverge
        self._start_height = start_height
        self._failed = failed
        self.interval_ms = interval_ms
        self.catching_up = False
        """True while a peer is more than one block ahead and this node is fetching blocks from it (a peer's
        claim alone does not make it: a peer that announces heights it cannot serve stops no client)."""
        self._wakeup = asyncio.Event()
        self._benched: dict[str, float] = {}
        """Peers that announced heights they did not serve (or served slowly), and until when they are skipped."""

    def wake(self) -> None:
        """Sync now rather than at the next interval (peers are heights ahead)."""
        self._wakeup.set()

    async def run(self) -> None:
        interval = self.interval_ms / 1000
        while True:
            try:
                async with asyncio.timeout(interval):  # (not wait_for: on 3.11 it can swallow a cancellation)
                    await self._wakeup.wait()
            except TimeoutError:
                pass
            self._wakeup.clear()
            if not self.peers.links or self._failed():
                continue
            try:
                await self.sync_once()
            except asyncio.CancelledError:
                raise
            except Exception:  # a peer's bad answer must never end block sync
                log.exception("block sync round failed")

    async def sync_once(self) -> None:
        now = time.monotonic()
        if len(self._benched) > 256:
            self._benched = {node_id: until for node_id, until in self._benched.items() if until > now}
        links = [link for link in self.peers.links if link.up and self._benched.get(link.node_id, 0.0) <= now]
        best = max((link.height for link in links), default=-1)
        if best <= self.store.height:
            return
        candidates = sorted((link for link in links if link.height > self.store.height),
                            key=lambda link: -link.height)
        try:
            for link in candidates:
                while self.store.height < link.height and link.up and not self._failed():
                    start = self.store.height + 1
                    end = min(link.height, start + SYNC_BATCH - 1)
                    asked = time.monotonic()
                    body = await self.peers.request_blocks(link, start, end)
                    try:
                        items = decode_block_batch(body) if body is not None else []
                    except DecodeError as exc:
                        link.last_error = f"a malformed block batch: {exc}"
                        items = []
                    slow = time.monotonic() - asked > self.peers.request_timeout_s / 2 and len(items) < end - start + 1
                    if not items or slow:  # it does not serve what it announced, or barely: others first for a while
                        self._benched[link.node_id] = time.monotonic() + BENCH_S
                        link.last_error = f"block sync: {'no blocks' if not items else 'slow answer'}; other " \
                                          f"peers first for {BENCH_S:g} s"
                    if not items:
                        break
                    self.catching_up = best > self.store.height + 1  # only once a peer backs its height with blocks
                    with CLOCK.stage("sync"):
                        applied, honest = self.apply_synced(items, link)
                    if applied == 0 or not honest:
                        break  # the next candidate serves the same heights
                if self.store.height >= best:
                    break
        finally:
            self.catching_up = False

    def apply_synced(self, items: list[tuple[Block, Commit]], link: PeerLink) -> tuple[int, bool]:
        """Commit, in order, the certified blocks ``link`` served; return (how many, whether the peer was honest).

        A block whose bytes are not the ones its certificate covers (a certificate for another header or
        height, one that does not verify, or a body its header does not commit to: ``check_block_body``) is
        the peer's lie, not this node's problem: the rest of the batch is dropped, the peer is marked down,
        and the caller fetches the same heights from another peer.  Only certified bytes that fail to execute
        here, or execute to another app hash than their header's, are a state divergence.
        """
        applied, honest = 0, True
        for block, commit in items:
            height = block.height
            if height != self.store.height + 1:
                continue
            lie = None
            if commit.block_hash != block.hash or commit.height != height:
                lie = f"its certificate is for block {commit.block_hash.hex()[:16]} at height {commit.height}"
            else:
                try:
                    verify_commit(self.chain_id, self.application.validators, commit, block.hash, height)
                    check_block_body(block)
                except (CertificateError, BlockError) as exc:
                    lie = f"{exc.code}: {exc.message}"
            if lie is not None:
                log.warning("sync: peer %s served block %d that is not the certified one (%s); dropping the peer "
                            "and fetching these heights from another", link.name, height, lie)
                if link.connection is not None:
                    link.connection.close("uncertified-block")
                honest = False
                break
            try:
                result = self.application.execute(block)
            except (LedgerError, DecodeError) as exc:
                self._diverge(height, f"certified block fails here: {getattr(exc, 'code', '')} {exc}")
                return applied, True
            self._commit(block, commit, result, commit.round)
            applied += 1
        if applied:
            self.mempool.recheck()
            log.info("block sync applied=%d height=%d", applied, self.store.height)
            self._start_height(self.store.height + 1)
        return applied, honest
