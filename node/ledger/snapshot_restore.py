"""Making a checked snapshot a store's state: a fresh store starts at the snapshot's height.

The caller has verified everything first (``node.ledger.snapshot``: the
manifest against a certified header, each chunk against the manifest, the
outputs' MuHash against the app hash); this writes it.  The writes go in
batches with a pending marker first and the height marker last, so a crash
leaves a store that is not initialized (the restore starts again) and never
a half state.  What is written: the genesis identity (chain id, genesis
hash and document, so the node checks peers and files as any node does),
the UTXO set with its address index and balances, block H with its
certificate, the validator sets of H, H+1 and H+2 and the validator state,
the app hash and MuHash, and ``earliest_height`` = H: blocks, transactions
and balances below it are not on this node (``pruned``).
"""

from __future__ import annotations

from collections.abc import Iterable

from node.ledger.errors import STORE_GENESIS_MISMATCH, StoreError
from node.ledger.muhash import MuHash
from node.ledger.state import UtxoEntry
from node.ledger.store_layout import (
    META_APP_HASH,
    META_CHAIN_ID,
    META_EARLIEST_HEIGHT,
    META_GENESIS_DOC,
    META_GENESIS_HASH,
    META_GENESIS_PENDING,
    META_HEIGHT,
    META_MUHASH,
    META_VALIDATOR_STATE,
    P_ADDR_UTXO,
    P_BALANCE,
    P_BALANCE_AT,
    P_BLOCK,
    P_BLOCK_HASH,
    P_COMMIT,
    P_HASH_HEIGHT,
    P_HEADER,
    P_UTXO,
    P_VALSET,
    U64,
    meta_key,
    outpoint_key,
)
from node.ledger.validator_state import ValidatorState, encode_named_set
from node.types.block import Block
from node.types.commit import Commit
from node.types.transaction import OutPoint
from node.types.validators import ValidatorSet

BATCH_OUTPUTS = 50_000


def write_snapshot_state(db, *, chain_id: str, genesis_hash: bytes, genesis_doc: bytes, block: Block, commit: Commit,
                         validators: ValidatorSet, state: ValidatorState, muhash: MuHash,
                         chunks: Iterable[list[tuple[OutPoint, UtxoEntry]]]) -> None:
    """Write a verified snapshot into the empty database ``db`` (see the module docstring)."""
    pending = db.get(meta_key(META_GENESIS_PENDING))
    if db.get(meta_key(META_HEIGHT)) is not None or (pending is not None and pending != genesis_hash):
        raise StoreError(STORE_GENESIS_MISMATCH, "a snapshot is restored into a fresh store only")
    db.put(meta_key(META_GENESIS_PENDING), genesis_hash, sync=True)
    height = block.height
    h = U64.pack(height)
    balances: dict[bytes, int] = {}
    batch = db.write_batch(sync=True)
    count = 0
    for outputs in chunks:
        for outpoint, entry in outputs:
            key = outpoint_key(outpoint)
            value = entry.encode()
            batch.put(P_UTXO + key, value)
            batch.put(P_ADDR_UTXO + entry.address + key, value)
            balances[entry.address] = balances.get(entry.address, 0) + entry.amount
            count += 1
            if count % BATCH_OUTPUTS == 0:
                batch.write()
                batch = db.write_batch(sync=True)
    for address, balance in balances.items():
        batch.put(P_BALANCE + address, U64.pack(balance))
        batch.put(P_BALANCE_AT + address + h, U64.pack(balance))
    block_hash = block.hash
    batch.put(P_BLOCK + h, block.encoded)
    batch.put(P_HEADER + h, block.header.encode())
    batch.put(P_BLOCK_HASH + h, block_hash)
    batch.put(P_HASH_HEIGHT + block_hash, h)
    batch.put(P_COMMIT + h, commit.encode())
    batch.put(P_VALSET + h, encode_named_set(validators))
    if state.current != validators:  # names too, as the commit batch compares them
        batch.put(P_VALSET + U64.pack(height + 1), encode_named_set(state.current))
    if state.next != state.current:
        batch.put(P_VALSET + U64.pack(height + 2), encode_named_set(state.next))
    batch.put(meta_key(META_VALIDATOR_STATE), state.encoded)
    batch.put(meta_key(META_CHAIN_ID), chain_id.encode("utf-8"))
    batch.put(meta_key(META_GENESIS_HASH), bytes(genesis_hash))
    batch.put(meta_key(META_GENESIS_DOC), bytes(genesis_doc))
    muhash.normalize()
    batch.put(meta_key(META_APP_HASH), muhash.digest())
    batch.put(meta_key(META_MUHASH), muhash.serialize())
    batch.put(meta_key(META_EARLIEST_HEIGHT), h)
    batch.put(meta_key(META_HEIGHT), h)
    batch.delete(meta_key(META_GENESIS_PENDING))
    batch.write()
