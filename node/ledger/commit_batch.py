"""The commit batch: every write of one block staged in one synced LevelDB ``WriteBatch``.

``build_commit_batch`` checks that a block extends the store's tip, that its
bytes are the ones its id commits to and that the execution result belongs
to it, then stages the block, its header, hash indexes and certificate, the
UTXO deletions and insertions, the txid, history and balance indexes, the new
app hash, MuHash state and height marker.  ``CommitBatch.write()`` writes them
at once (``sync=True``), so a crash leaves the store at the old height or the
new one, never between.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from node.ledger.address_index import stage_balances
from node.ledger.errors import (
    BLK_APPHASH,
    BLK_CHAIN_ID,
    BLK_COMMIT,
    BLK_HEIGHT,
    BLK_PREVHASH,
    BLK_RESULT,
    STORE_CORRUPT,
    BlockError,
    StoreError,
)
from node.ledger.rules import BlockResult, check_block_body
from node.ledger.state import fee_outpoint
from node.ledger.store_layout import (
    FEE_INDEX,
    META_APP_HASH,
    META_HEIGHT,
    META_MUHASH,
    META_VALIDATOR_STATE,
    P_ADDR_UTXO,
    P_BLOCK,
    P_BLOCK_HASH,
    P_COMMIT,
    P_HASH_HEIGHT,
    P_HEADER,
    P_HISTORY,
    P_TXID,
    P_UTXO,
    P_VALSET,
    TX_LOCATION,
    U32,
    U64,
    meta_key,
)
from node.ledger.validator_state import encode_named_set
from node.types.block import Block
from node.types.commit import Commit

if TYPE_CHECKING:
    import plyvel

    from node.ledger.store import Store


class CommitBatch:
    """A block's writes, built but not yet written: ``write()`` makes them durable at once."""

    def __init__(self, store: Store, batch, block: Block, result: BlockResult):
        self._store = store
        self._batch = batch
        self._block = block
        self._result = result
        self.height = block.height
        """Height the store will be at after ``write()``."""
        self.block_hash = block.hash
        self.app_hash = result.app_hash
        self.muhash_state = result.muhash_state
        self._written = False

    def write(self) -> None:
        """Apply every write in one synced LevelDB batch, then move the store's tip."""
        if self._written:
            raise StoreError(STORE_CORRUPT, "this commit batch was already written")
        store = self._store
        if store.height != self.height - 1:
            raise BlockError(BLK_HEIGHT, f"batch is for height {self.height}, store is at {store.height}")
        self._batch.write()
        self._written = True
        store._advance_tip(self.height, self.app_hash, self.muhash_state, self.block_hash,
                           self._result.validator_state)
        store.recent_utxos.apply(self._result.spent, self._result.created)
        store.recent_blocks.add(self._block)


def build_commit_batch(store: Store, db: plyvel.DB, block: Block, commit: Commit, result: BlockResult) -> CommitBatch:
    """Check ``block``, ``commit`` and ``result`` against the tip of ``store`` (initialized, its database
    ``db``) and stage every write of the block."""
    header = block.header
    height = header.height
    chain_id, tip_hash = store.chain_id, store.tip_hash
    if height != store.height + 1:
        raise BlockError(BLK_HEIGHT, f"block height {height}, the store is at {store.height}")
    if header.chain_id != chain_id:
        raise BlockError(BLK_CHAIN_ID, f"block is for chain {header.chain_id!r}, the store holds {chain_id!r}")
    if header.prev_hash != tip_hash:
        raise BlockError(BLK_PREVHASH, f"prev_hash {header.prev_hash.hex()} is not the tip {tip_hash.hex()}")
    block_hash = block.hash
    if commit.height != height or commit.block_hash != block_hash:
        raise BlockError(BLK_COMMIT, f"certificate is for block {commit.block_hash.hex()} at {commit.height}")
    check_block_body(block)  # never store bytes other than those the certified id covers
    if result.height != height or result.proposer != header.proposer or result.tx_root != header.tx_root:
        raise BlockError(BLK_RESULT, "the execution result was computed for another block")
    if result.base_app_hash != store.app_hash:
        raise BlockError(BLK_RESULT, "the execution result was computed on another state than the tip")
    if result.app_hash != header.app_hash:
        raise BlockError(BLK_APPHASH, f"header app_hash {header.app_hash.hex()}, result {result.app_hash.hex()}")
    if len(result.tx_fees) != len(block.txs) or len(result.tx_addresses) != len(block.txs):
        raise BlockError(BLK_RESULT, "the execution result has another number of transactions")
    before, after = store.validator_state, result.validator_state
    if (before is None) != (after is None) or (after is not None and (
            after.height != height or after.hash != header.reconfig_hash)):
        raise BlockError(BLK_RESULT, "the execution result's validator state does not belong to this block")

    batch = db.write_batch(sync=True)
    put, delete = batch.put, batch.delete
    h = U64.pack(height)
    encoded = block.encoded
    put(P_BLOCK + h, encoded)
    put(P_HEADER + h, header.encode())
    put(P_BLOCK_HASH + h, block_hash)
    put(P_HASH_HEIGHT + block_hash, h)
    put(P_COMMIT + h, commit.encode())

    deltas: dict[bytes, int] = {}
    pack_u32, get_delta = U32.pack, deltas.get
    for (txid, index), entry in result.spent:
        key = txid + pack_u32(index)
        address = entry.address
        delete(P_UTXO + key)
        delete(P_ADDR_UTXO + address + key)
        deltas[address] = get_delta(address, 0) - entry.amount
    for (txid, index), entry in result.created:
        key = txid + pack_u32(index)
        address = entry.address
        value = entry.encode()
        put(P_UTXO + key, value)
        put(P_ADDR_UTXO + address + key, value)
        deltas[address] = get_delta(address, 0) + entry.amount

    # Transactions sit in the block encoding as u32 length || bytes, after the u32-length-prefixed
    # header and the u32 count; remember each one's slice so a lookup does not decode the block.
    offset = 4 + U32.unpack_from(encoded, 0)[0] + 4
    tx_addresses = result.tx_addresses
    pack_location = TX_LOCATION.pack
    for index, tx in enumerate(block.txs):
        size = len(tx.encoded)
        offset += 4
        txid = tx.txid
        ih = h + pack_u32(index)
        put(P_TXID + txid, pack_location(height, index, offset, size))
        for address in tx_addresses[index]:
            put(P_HISTORY + address + ih, txid)
        offset += size
    if result.fees > 0:
        put(P_HISTORY + header.proposer + h + U32.pack(FEE_INDEX), fee_outpoint(chain_id, height).txid)

    stage_balances(db.get, put, delete, deltas, h)

    if after is not None and before is not None:
        put(meta_key(META_VALIDATOR_STATE), after.encoded)
        if after.next != before.next:  # names too: a set's hash covers keys and powers only
            put(P_VALSET + U64.pack(height + 2), encode_named_set(after.next))
    put(meta_key(META_APP_HASH), result.app_hash)
    put(meta_key(META_MUHASH), result.muhash_state)
    put(meta_key(META_HEIGHT), h)
    return CommitBatch(store, batch, block, result)
