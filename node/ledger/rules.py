"""The state transition function: which transactions and blocks are valid, and what they do.

Plain functions over a ``StateView``, no I/O: the same genesis and the same
blocks give the same UTXO set and app hash on every node.  Every rejection
is a ``TxError``/``BlockError`` with a stable code from ``node.ledger.errors``.
The rules live in one module per concept; this module is their one import:

* ``tx_rules``: a transaction's validity (stateless, then against the UTXO
  set) and what applying it does;
* ``block_rules``: a block's bytes and header, ``BlockBuilder`` for a
  proposer, ``execute_block`` for everyone (the block's life is told there);
* ``genesis_state``: the height-0 UTXO set and its app hash;
* ``signatures``: the signature check and ``SignatureCache``;
* ``pubkey``: the public-key check, with its gmpy2 fast path.

What a block must say about the chain it extends (parent, time, proposer,
validator set, certificate) is in ``node.ledger.chain``; how reconfiguration
inputs change the validator set is in ``node.ledger.reconfig_rules``.
"""

from __future__ import annotations

from node.ledger.block_rules import (
    BlockBuilder,
    BlockResult,
    block_tx_bytes,
    check_block_body,
    check_block_header,
    execute_block,
    execute_reconfig,
)
from node.ledger.genesis_state import (
    check_genesis_allocations,
    compute_genesis_app_hash,
    compute_genesis_muhash,
    genesis_utxos,
)
from node.ledger.pubkey import is_valid_public_key
from node.ledger.signatures import SignatureCache, verify_transaction_signatures
from node.ledger.tx_rules import (
    apply_transaction,
    check_chain_id,
    check_transaction_stateless,
    validate_inputs,
    validate_transaction,
)

__all__ = [
    "BlockBuilder",
    "BlockResult",
    "SignatureCache",
    "apply_transaction",
    "block_tx_bytes",
    "check_block_body",
    "check_block_header",
    "check_chain_id",
    "check_genesis_allocations",
    "check_transaction_stateless",
    "compute_genesis_app_hash",
    "compute_genesis_muhash",
    "execute_block",
    "execute_reconfig",
    "genesis_utxos",
    "is_valid_public_key",
    "validate_inputs",
    "validate_transaction",
    "verify_transaction_signatures",
]
