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
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from node.application import Application
from node.block_collector import read_collected
from node.consensus.certificate import CertificateError, verify_commit
from node.encoding import DecodeError
from node.ledger.errors import BlockError, LedgerError
from node.ledger.rules import BlockResult, check_block_body
from node.ledger.store import Store
from node.mempool import Mempool
from node.p2p.peer_link import PeerLink
from node.p2p.reactor import PeerReactor
from node.p2p.wire import decode_block_batch
from node.stages import CLOCK
from node.types.block import Block
from node.types.commit import Commit

log = logging.getLogger("ledger.node")

BENCH_S = 30.0
"""How long a peer that did not serve what it announced (or served it slowly) is skipped by block sync."""
SYNC_BATCH = 50
"""Blocks asked of a peer in one request."""
PRUNED_GRACE_S = 5.0
"""How long every peer ahead must have pruned the next height before the node gives up on blocks and asks for
state sync (a peer that just restarted from a snapshot announces a high earliest height for a moment, too)."""


class BlockSync:
    """Catching up with the peers' certified blocks."""

    def __init__(self, *, chain_id: str, genesis_hash: bytes, store: Store,
                 peers: PeerReactor, application: Application, mempool: Mempool,
                 commit: Callable[[Block, Commit, BlockResult, int], None], diverge: Callable[[int, str], None],
                 start_height: Callable[[int], None], failed: Callable[[], bool], interval_ms: int,
                 behind_pruned: Callable[[int], None] = lambda earliest: None, collected: Path | None = None):
        """``commit`` writes a block (the node's commit path), ``diverge`` stops the node on a state
        divergence, ``start_height`` starts consensus at a height, ``failed`` says the node has stopped
        on an error (sync then does nothing) and ``behind_pruned(earliest)`` says that no peer ahead serves
        the next height any more (the lowest earliest height among them: the node needs a snapshot);
        ``collected`` holds blocks state sync collected, applied first (``apply_collected``)."""
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
        self._behind_pruned = behind_pruned
        self.collected = collected
        self._pruned_since: float | None = None
        """Since when every peer ahead has said it pruned the next height (None: some peer serves it), without this
        node committing anything meanwhile."""
        self._pruned_height = -1
        """This node's height when ``_pruned_since`` was set."""

    def wake(self) -> None:
        """Sync now rather than at the next interval (peers are heights ahead)."""
        self._wakeup.set()

    async def run(self) -> None:
        interval = self.interval_ms / 1000
        if self.collected is not None:
            await self.apply_collected(self.collected)
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
        if self._check_pruned(now):
            return
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
                    body = await self.peers.request_blocks(link, start, end)
                    try:
                        items = decode_block_batch(body) if body is not None else []
                    except DecodeError as exc:
                        link.last_error = f"a malformed block batch: {exc}"
                        items = []
                    slow = time.monotonic() - link.request_sent_at > self.peers.request_timeout_s / 2 \
                        and len(items) < end - start + 1  # (from when it went: a wait for a place is not the peer's)
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

    def _check_pruned(self, now: float) -> bool:
        """Whether every peer ahead has pruned the next height (no block can come from any of them); after
        ``PRUNED_GRACE_S`` of that, ``behind_pruned`` is told."""
        ahead = [link for link in self.peers.links if link.up and link.height > self.store.height
                 and self._benched.get(link.node_id, 0.0) <= now]  # (one that lied about its blocks is left out)
        earliest = min((link.earliest for link in ahead), default=0)
        if not ahead or earliest <= self.store.height + 1:
            self._pruned_since = None
            return False
        if self._pruned_since is None or self._pruned_height != self.store.height:  # (a node that commits is not stuck)
            first = self._pruned_since is None
            self._pruned_since, self._pruned_height = now, self.store.height
            if first:
                log.warning("block sync: every peer ahead pruned height %d (the lowest earliest height is %d)",
                            self.store.height + 1, earliest)
        elif now - self._pruned_since >= PRUNED_GRACE_S:
            self._pruned_since = now  # (told again after another grace period if nothing changed)
            self._behind_pruned(earliest)
        return True

    async def apply_collected(self, folder: Path) -> int:
        """Apply the blocks state sync collected in ``folder`` (``node.block_collector``) as blocks from a peer,
        then delete them; how many were committed.  The first batch that does not check out ends it: block sync
        fetches those heights from the peers."""
        applied = 0
        try:
            for _path, items in read_collected(folder):
                with CLOCK.stage("sync"):
                    done, honest = self.apply_synced(items, None)
                applied += done
                if not honest or self._failed():
                    break
                await asyncio.sleep(0)  # a batch at a time: peers and clients are served in between
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        if applied:
            log.info("applied %d blocks collected during state sync; height=%d", applied, self.store.height)
        return applied

    def apply_synced(self, items: list[tuple[Block, Commit]], link: PeerLink | None) -> tuple[int, bool]:
        """Commit, in order, the certified blocks ``link`` served (None: blocks collected during state sync);
        return (how many, whether the source was honest).

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
                log.warning("sync: %s served block %d that is not the certified one (%s); dropping it "
                            "and fetching these heights from another", "the collected blocks" if link is None
                            else f"peer {link.name}", height, lie)
                if link is not None and link.connection is not None:
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
