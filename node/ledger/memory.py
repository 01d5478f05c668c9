"""An in-memory chain state with the Store's commit semantics and no indexes.

For deterministic simulations that run many nodes in one process (and for
tests): it gives the same heights, app hashes and refusals as the LevelDB
``Store``, with a plain dict as the UTXO set.
"""

from __future__ import annotations

from collections.abc import Sequence

from node.ledger.errors import (
    BLK_APPHASH,
    BLK_CHAIN_ID,
    BLK_COMMIT,
    BLK_HEIGHT,
    BLK_PREVHASH,
    BLK_RESULT,
    STORE_GENESIS_MISMATCH,
    STORE_NOT_INITIALIZED,
    BlockError,
    StoreError,
)
from node.ledger.rules import BlockResult, check_block_body, compute_genesis_muhash, genesis_utxos
from node.ledger.state import UtxoEntry
from node.types.block import Block
from node.types.commit import Commit
from node.types.hashes import ZERO_HASH
from node.types.transaction import OutPoint


class MemoryState:
    """A ``ChainView`` over a dict: genesis, committed blocks and the UTXO set, all in memory."""

    def __init__(self) -> None:
        self.utxos: dict[OutPoint, UtxoEntry] = {}
        """The UTXO set."""
        self.blocks: dict[int, Block] = {}
        """Committed blocks by height."""
        self.commits: dict[int, Commit] = {}
        """Their certificates by height."""
        self.height = -1
        """Height of the last committed block (0 after genesis, -1 before)."""
        self.app_hash: bytes | None = None
        self.muhash_state: bytes | None = None
        self.chain_id: str | None = None
        self.genesis_hash: bytes | None = None
        self.tip_hash: bytes = ZERO_HASH

    def get_utxo(self, outpoint: OutPoint) -> UtxoEntry | None:
        return self.utxos.get(outpoint)

    def get_block_hash(self, height: int) -> bytes | None:
        block = self.blocks.get(height)
        return block.hash if block is not None else None

    def initialize_genesis(self, chain_id: str, genesis_hash: bytes,
                           allocations: Sequence[tuple[bytes, int]], genesis_doc: bytes = b"") -> bytes:
        if self.height >= 0:
            if genesis_hash != self.genesis_hash or chain_id != self.chain_id:
                raise StoreError(STORE_GENESIS_MISMATCH, "already initialized with another genesis")
            return self.app_hash or b""
        muhash = compute_genesis_muhash(chain_id, allocations)
        self.utxos = dict(genesis_utxos(chain_id, allocations))
        self.app_hash = muhash.digest()
        self.muhash_state = muhash.serialize()
        self.chain_id, self.genesis_hash, self.height = chain_id, genesis_hash, 0
        return self.app_hash

    def commit_block(self, block: Block, commit: Commit, result: BlockResult) -> None:
        """Same checks as ``Store.build_commit_batch``, then apply ``result``."""
        if self.height < 0:
            raise StoreError(STORE_NOT_INITIALIZED, "no genesis yet")
        header = block.header
        if header.height != self.height + 1:
            raise BlockError(BLK_HEIGHT, f"block height {header.height}, state at {self.height}")
        if header.chain_id != self.chain_id:
            raise BlockError(BLK_CHAIN_ID, "block is for another chain")
        if header.prev_hash != self.tip_hash:
            raise BlockError(BLK_PREVHASH, "prev_hash is not the tip")
        if commit.height != header.height or commit.block_hash != block.hash:
            raise BlockError(BLK_COMMIT, "certificate is for another block")
        check_block_body(block)
        if (result.height != header.height or result.proposer != header.proposer
                or result.tx_root != header.tx_root or result.base_app_hash != self.app_hash):
            raise BlockError(BLK_RESULT, "the execution result belongs to another block or state")
        if result.app_hash != header.app_hash:
            raise BlockError(BLK_APPHASH, "header app_hash differs from the result")
        for outpoint, _entry in result.spent:
            del self.utxos[outpoint]
        for outpoint, entry in result.created:
            self.utxos[outpoint] = entry
        self.blocks[header.height] = block
        self.commits[header.height] = commit
        self.height = header.height
        self.app_hash = result.app_hash
        self.muhash_state = result.muhash_state
        self.tip_hash = block.hash
