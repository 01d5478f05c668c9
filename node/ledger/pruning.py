"""Pruning: deleting blocks, certificates and per-block indexes below the retained range.

With ``retain_blocks`` = R a node keeps the last R blocks.  Below them it
deletes each block's bytes, header, hash indexes and certificate, its
transactions' txid index, and the history and balance-at-height entries of
the addresses it touched, a bounded number of heights per batch, and moves
``earliest_height`` up in the same batch: a crash leaves every height either
whole or gone.  The UTXO set, the balances now, the validator sets by height
and the snapshots are untouched (a pruned node still serves its snapshots);
so are the header and certificate before each validator-set change, which
prove the node's snapshots from genesis (``node.light_client``).  Reads below
``earliest_height`` answer 410 ``pruned``.  The deleted range of blocks and
certificates is compacted right after, so LevelDB gives their space back at
once instead of at some later compaction.
"""

from __future__ import annotations

from node.crypto import address_hash
from node.ledger.store_layout import (
    FEE_INDEX,
    META_EARLIEST_HEIGHT,
    P_BALANCE_AT,
    P_BLOCK,
    P_BLOCK_HASH,
    P_COMMIT,
    P_HASH_HEIGHT,
    P_HEADER,
    P_HISTORY,
    P_TXID,
    U32,
    U64,
    meta_key,
)
from node.types.block import Block

BATCH_HEIGHTS = 100
"""Heights deleted per synced write batch."""


def prune_below(store, retain: int, limit: int = 10 * BATCH_HEIGHTS) -> int:
    """Delete up to ``limit`` heights from ``store.earliest_height`` up to ``store.height - retain``; the new
    earliest height."""
    db = store._db
    earliest = store.earliest_height
    upto = min(store.height - retain, earliest + limit - 1)
    if retain <= 0 or upto < earliest:
        return earliest
    keep_headers = {h - 1 for h in store.validator_change_heights(2, 1_000_000)}
    height = earliest
    while height <= upto:
        last = min(upto, height + BATCH_HEIGHTS - 1)
        batch = db.write_batch(sync=True)
        touched: set[bytes] = set()
        for h in range(height, last + 1):
            touched |= stage_height_deletes(batch, db, h, keep_header=h in keep_headers)
        for address in touched:  # the balance after `last` carries on (balance_at reads the last entry <= h)
            carried = _balance_entry_at(db, address, last)
            if carried is not None:
                batch.put(P_BALANCE_AT + address + U64.pack(last), carried)
        batch.put(meta_key(META_EARLIEST_HEIGHT), U64.pack(last + 1))
        batch.write()
        height = last + 1
    for prefix in (P_BLOCK, P_COMMIT):  # block bodies and certificates are most of the bytes: give them back now
        db.compact_range(start=prefix + U64.pack(earliest), stop=prefix + U64.pack(upto + 1))
    return upto + 1


def _balance_entry_at(db, address: bytes, height: int) -> bytes | None:
    """The value of ``address``'s last balance-at entry at or below ``height`` (None: it has none)."""
    with db.iterator(start=P_BALANCE_AT + address, stop=P_BALANCE_AT + address + U64.pack(height + 1),
                     reverse=True, include_key=False, fill_cache=False) as it:  # not into the block cache
        return next(it, None)


def stage_height_deletes(batch, db, height: int, keep_header: bool) -> set[bytes]:
    """Stage the deletes of one height's block and indexes (its header and certificate too unless kept); the
    addresses it touched."""
    h = U64.pack(height)
    raw = db.get(P_BLOCK + h, fill_cache=False)  # old blocks: not into the block cache
    addresses: set[bytes] = set()
    if raw is not None:
        block = Block.decode(raw)
        for index, tx in enumerate(block.txs):
            batch.delete(P_TXID + tx.txid)
            touched = {address_hash(txin.public_key) for txin in tx.inputs} | {out.address for out in tx.outputs}
            for address in touched:
                batch.delete(P_HISTORY + address + h + U32.pack(index))
            addresses |= touched
        batch.delete(P_HISTORY + block.header.proposer + h + U32.pack(FEE_INDEX))
        addresses.add(block.header.proposer)
        for address in addresses:
            batch.delete(P_BALANCE_AT + address + h)
        batch.delete(P_HASH_HEIGHT + block.hash)
    batch.delete(P_BLOCK + h)
    batch.delete(P_BLOCK_HASH + h)
    if not keep_header:
        batch.delete(P_HEADER + h)
        batch.delete(P_COMMIT + h)
    return addresses
