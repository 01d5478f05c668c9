"""The genesis write: the height-0 UTXO set, its address index and the metadata that make a store initialized.

A large genesis is written in chunks of synced batches.  A ``genesis_pending``
marker (the genesis hash) goes first and the height marker last, in the final
batch that also removes the pending marker: a crash during init leaves an
uninitialized store that only the same genesis can finish (``Store`` checks
the marker before calling ``write_genesis``).
"""

from __future__ import annotations

from collections.abc import Sequence

import plyvel

from node.ledger.muhash import MuHash
from node.ledger.rules import check_genesis_allocations, genesis_utxos
from node.ledger.state import utxo_element
from node.ledger.store_layout import (
    META_APP_HASH,
    META_CHAIN_ID,
    META_GENESIS_APP_HASH,
    META_GENESIS_DOC,
    META_GENESIS_HASH,
    META_GENESIS_PENDING,
    META_HEIGHT,
    META_MUHASH,
    META_VALIDATOR_STATE,
    P_ADDR_UTXO,
    P_BALANCE,
    P_BALANCE_AT,
    P_HISTORY,
    P_UTXO,
    P_VALSET,
    U32,
    U64,
    meta_key,
    outpoint_key,
)
from node.ledger.validator_state import ValidatorState, encode_named_set


def write_genesis(db: plyvel.DB, chain_id: str, genesis_hash: bytes, allocations: Sequence[tuple[bytes, int]],
                  genesis_doc: bytes, chunk: int, validator_state: ValidatorState | None = None) -> tuple[bytes, bytes]:
    """Check ``allocations`` and durably write the genesis state, at most ``chunk`` allocations a batch, with
    the genesis validator state (the set of height 1) when given; return its app hash and serialized MuHash."""
    check_genesis_allocations(allocations)
    db.put(meta_key(META_GENESIS_PENDING), genesis_hash, sync=True)
    muhash = MuHash()
    balances: dict[bytes, int] = {}
    zero = U64.pack(0)
    batch = db.write_batch(sync=True)
    pending_count = 0
    for outpoint, entry in genesis_utxos(chain_id, allocations):
        key = outpoint_key(outpoint)
        value = entry.encode()
        batch.put(P_UTXO + key, value)
        batch.put(P_ADDR_UTXO + entry.address + key, value)
        batch.put(P_HISTORY + entry.address + zero + U32.pack(outpoint.index), outpoint.txid)
        balances[entry.address] = balances.get(entry.address, 0) + entry.amount
        muhash.add(utxo_element(outpoint, entry))
        pending_count += 1
        if pending_count >= chunk:
            batch.write()
            batch = db.write_batch(sync=True)
            pending_count = 0
    for address, balance in balances.items():
        batch.put(P_BALANCE + address, U64.pack(balance))
        batch.put(P_BALANCE_AT + address + zero, U64.pack(balance))
    app_hash = muhash.digest()
    muhash_state = muhash.serialize()
    batch.put(meta_key(META_CHAIN_ID), chain_id.encode("utf-8"))
    batch.put(meta_key(META_GENESIS_HASH), bytes(genesis_hash))
    batch.put(meta_key(META_GENESIS_DOC), bytes(genesis_doc))
    batch.put(meta_key(META_GENESIS_APP_HASH), app_hash)
    batch.put(meta_key(META_APP_HASH), app_hash)
    batch.put(meta_key(META_MUHASH), muhash_state)
    if validator_state is not None:
        batch.put(meta_key(META_VALIDATOR_STATE), validator_state.encoded)
        batch.put(P_VALSET + U64.pack(1), encode_named_set(validator_state.current))
    batch.put(meta_key(META_HEIGHT), zero)
    batch.delete(meta_key(META_GENESIS_PENDING))
    batch.write()
    return app_hash, muhash_state
