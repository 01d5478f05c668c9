"""Work on the store that follows commits in the background: snapshots every ``snapshot_interval`` heights, and
pruning below the last ``retain_blocks`` blocks.  Neither holds up consensus; both are finished before the store
is closed."""

from __future__ import annotations

import asyncio
import logging
import time

from node.config import NodeConfig
from node.ledger.errors import SnapshotError
from node.ledger.pruning import BATCH_HEIGHTS, prune_below
from node.ledger.store import Store
from node.ledger.validator_state import encode_named_set
from node.light_client import set_changes_of
from node.memory import page_out_tables, release_free_memory
from node.snapshot_file import encode_anchor
from node.snapshots import SnapshotMaker, SnapshotStore
from node.types.block import Block

log = logging.getLogger("ledger.node")

COMPACT_EVERY = 10
"""Pruning rounds (of ``BATCH_HEIGHTS`` heights each) between two compactions of the whole store: the deletes of
the txid, history and balance-at indexes are spread over the key space, and LevelDB keeps their tombstones and
the data under them until a compaction reaches them, so without this the store of a pruning node keeps growing."""


class StoreMaintenance:
    """Snapshots and pruning for one node's store."""

    def __init__(self, store: Store, snapshots: SnapshotStore, config: NodeConfig):
        self.store = store
        self.config = config
        self.maker = SnapshotMaker(snapshots, store.path, config.snapshot_percent / 100)
        self._prune_task: asyncio.Task | None = None
        self._prunes = 0
        self._snapshot_started = False
        """A snapshot was started and its end not yet seen (``on_commit`` then hands the heap's free pages back)."""
        self._release_task: asyncio.Task | None = None

    def on_commit(self, block: Block) -> None:
        """After ``block`` is committed: a snapshot when its height is due, pruning when enough blocks piled up."""
        if self._snapshot_started and not self.maker.busy:
            self._snapshot_started = False
            # in a worker thread of the loop's priority (the snapshot thread runs at a lower one)
            self._release_task = asyncio.create_task(asyncio.to_thread(release_free_memory))
        interval = self.config.snapshot_interval
        if interval > 0 and block.height % interval == 0:
            self.take_snapshot(block)
        retain = self.config.retain_blocks
        if retain > 0 and self._prune_task is None and \
                block.height - self.store.earliest_height >= retain + BATCH_HEIGHTS:
            self._prune_task = asyncio.create_task(self._prune(retain))

    def take_snapshot(self, block: Block) -> None:
        """Snapshot the state after ``block`` in the background (skipped while the last one is being written)."""
        store = self.store
        state, validators, commit = store.validator_state, store.get_validators(block.height), \
            store.get_commit(block.height)
        assert state is not None and validators is not None and commit is not None  # just committed
        try:
            anchor = encode_anchor(block.encoded, commit, set_changes_of(store, block.height))
        except SnapshotError as exc:  # a node started from a snapshot may lack a change header before it
            log.info("snapshot at height %d: %s", block.height, exc.message)
            anchor = b""
        if self.maker.start(store.db_snapshot(), block.header, encode_named_set(validators), state.encoded, anchor):
            self._snapshot_started = True
        else:
            log.warning("snapshot at height %d skipped: the previous one is still being written", block.height)

    async def _prune(self, retain: int) -> None:
        try:
            earliest = await asyncio.to_thread(prune_below, self.store, retain)
            await asyncio.to_thread(release_free_memory)  # the round's batches were freed in a worker's arena
            log.info("pruned blocks below height %d (retain_blocks=%d)", earliest, retain)
            self._prunes += 1
            if self._prunes % COMPACT_EVERY == 0:  # the indexes' deletes are spread over the key space: compact all
                started = time.monotonic()
                await asyncio.to_thread(self.store.compact)
                await asyncio.to_thread(page_out_tables, self.store.path)  # the compaction read every table
                log.info("compacted the store after pruning in %.1f s", time.monotonic() - started)
        except Exception:  # noqa: BLE001  (pruning that fails is logged; the node goes on with more blocks)
            log.exception("pruning failed")
        finally:
            self._prune_task = None

    async def stop(self) -> None:
        """Abandon a snapshot being written and let a pruning batch finish: the store may be closed after."""
        await asyncio.to_thread(self.maker.stop)
        if self._prune_task is not None:
            await asyncio.wait({self._prune_task})
