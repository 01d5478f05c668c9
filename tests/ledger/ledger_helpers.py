"""Shared builders for the ledger tests: deterministic keys, signed transfers, blocks and certificates."""

from __future__ import annotations

import dataclasses

from node.crypto import N, address_hash, derive_public_key, sha256
from node.ledger.reconfig_rules import apply_inputs
from node.ledger.rules import BlockBuilder, BlockResult
from node.ledger.state import genesis_outpoint
from node.types.block import Block, Header
from node.types.commit import Commit
from node.types.hashes import ZERO_HASH
from node.types.reconfig import EMPTY_INPUTS_HASH
from node.types.transaction import OutPoint, Transaction, TxOutput, sign_transaction

CHAIN = "test-chain"
PROPOSER = bytes(range(20))
VALIDATORS_HASH = sha256(b"validators")


def key(i: int) -> bytes:
    """Deterministic private key number ``i``."""
    return ((int.from_bytes(sha256(b"key" + i.to_bytes(8, "big")), "big") % (N - 1)) + 1).to_bytes(32, "big")


_PUB: dict[bytes, bytes] = {}


def pub(private_key: bytes) -> bytes:
    if private_key not in _PUB:
        _PUB[private_key] = derive_public_key(private_key)
    return _PUB[private_key]


def addr(private_key: bytes) -> bytes:
    return address_hash(pub(private_key))


def allocations(n: int, amount: int = 1_000_000) -> list[tuple[bytes, int]]:
    """Allocation i pays ``amount`` to key i."""
    return [(addr(key(i)), amount) for i in range(n)]


def gen_op(i: int, chain: str = CHAIN) -> OutPoint:
    return genesis_outpoint(chain, i)


def transfer(spends: list[tuple[OutPoint, bytes]], outputs: list[tuple[bytes, int]], chain: str = CHAIN) -> Transaction:
    return sign_transaction(chain, spends, [TxOutput(a, v) for a, v in outputs])


def build_block(state, txs, *, chain: str = CHAIN, proposer: bytes = PROPOSER, time_ms: int | None = None,
                max_txs: int | None = None, max_bytes: int | None = None, sig_cache=None,
                ) -> tuple[Block, BlockResult]:
    """Execute ``txs`` on ``state`` (a Store or MemoryState) as the proposer would and build the block."""
    height = state.height + 1
    builder = BlockBuilder(state, chain, height, proposer, state.muhash_state, max_txs, max_bytes, sig_cache)
    for tx in txs:
        builder.add(tx)
    result = builder.finish()
    prev = state.get_block_hash(height - 1) if height > 1 else ZERO_HASH
    before = getattr(state, "validator_state", None)
    next_hash, reconfig_hash = ZERO_HASH, ZERO_HASH
    if before is not None:  # a store initialized with validators: the block names its sets and state
        after = apply_inputs(before, chain, height, ())
        result = dataclasses.replace(result, validator_state=after)
        next_hash, reconfig_hash = before.next.hash, after.hash
    header = Header(chain, height, time_ms if time_ms is not None else 1_000 * height, prev, result.tx_root,
                    result.app_hash, proposer, ZERO_HASH, VALIDATORS_HASH, next_hash, EMPTY_INPUTS_HASH,
                    reconfig_hash)
    return Block(header, tuple(builder.txs), None), result


def certificate(block: Block) -> Commit:
    return Commit(block.height, 0, block.hash, ())


def commit(state, block: Block, result: BlockResult) -> None:
    state.commit_block(block, certificate(block), result)


def raw_block(state, txs, *, chain: str = CHAIN, proposer: bytes = PROPOSER) -> Block:
    """A block of ``txs`` at the next height with a correct tx root and parent, without executing anything."""
    from node.types.block import compute_tx_root

    height = state.height + 1
    prev = state.get_block_hash(height - 1) if height > 1 else ZERO_HASH
    header = Header(chain, height, 1_000 * height, prev, compute_tx_root(txs), ZERO_HASH, proposer, ZERO_HASH,
                    VALIDATORS_HASH, ZERO_HASH, EMPTY_INPUTS_HASH, ZERO_HASH)
    return Block(header, tuple(txs), None)
