"""Client-centric reads that wait: for a height to be committed, for a transaction to commit.

The REST layer awaits these (``min_height``, ``POST /v1/txs?wait=commit``);
the node's commit path wakes them with ``on_commit``.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from node.ledger.errors import STORE_CORRUPT, StoreError
from node.ledger.store import Store
from node.types.block import Block


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

    async def wait_for_height(self, height: int, timeout_s: float) -> bool:
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
