"""A block's id covers every byte of it (SPEC section 9, first invariant).

The header's tx_root is the merkle root of the wtxids, ``sha256(signed
transaction encoding)``, so two blocks that differ in one signature have
different ids, and ``check_block_body`` tells a body that is not the one its
header commits to before anything is executed.
"""

from __future__ import annotations

import dataclasses

import pytest

from ledger_helpers import CHAIN, addr, allocations, build_block, gen_op, key, transfer
from node.crypto import sha256
from node.ledger.errors import BLK_COMMIT, BLK_TXROOT, BlockError
from node.ledger.memory import MemoryState
from node.ledger.rules import check_block_body
from node.types.block import Block, compute_tx_root
from node.types.commit import Commit
from node.types.merkle import verify_merkle_proof
from node.types.transaction import Transaction

A1, A2 = addr(key(1)), addr(key(2))


@pytest.fixture
def state():
    s = MemoryState()
    s.initialize_genesis(CHAIN, b"G" * 32, allocations(4))
    return s


def resigned(tx: Transaction, index: int = 0) -> Transaction:
    """``tx`` with one byte of input ``index``'s signature flipped: same txid, other bytes."""
    txin = tx.inputs[index]
    sig = bytearray(txin.signature)
    sig[40] ^= 0x01
    inputs = list(tx.inputs)
    inputs[index] = dataclasses.replace(txin, signature=bytes(sig))
    return Transaction(tuple(inputs), tx.outputs)


def two_txs():
    return [transfer([(gen_op(0), key(0))], [(A1, 10), (A2, 900_000)]),
            transfer([(gen_op(1), key(1))], [(A2, 5)])]


def test_wtxid_covers_the_signatures_and_txid_does_not():
    tx = two_txs()[1]
    other = resigned(tx)
    assert other.txid == tx.txid
    assert tx.wtxid == sha256(tx.encoded) and other.wtxid == sha256(other.encoded)
    assert other.wtxid != tx.wtxid


def test_blocks_differing_in_one_signature_have_different_ids(state):
    block, _ = build_block(state, two_txs())
    txs = list(block.txs)
    txs[1] = resigned(txs[1])
    header = dataclasses.replace(block.header, tx_root=compute_tx_root(txs))
    copy = Block(header, tuple(txs), block.last_commit)
    assert copy.txids == block.txids  # identities unchanged ...
    assert copy.header.tx_root != block.header.tx_root  # ... but the header commits to the bytes
    assert copy.hash != block.hash
    check_block_body(block)
    check_block_body(copy)


def test_body_check_refuses_a_tampered_transaction_under_the_original_header(state):
    block, _ = build_block(state, two_txs())
    txs = list(block.txs)
    txs[0] = resigned(txs[0])
    tampered = Block(block.header, tuple(txs), block.last_commit)
    assert tampered.hash == block.hash  # the id is the header's, the body is not what it commits to
    with pytest.raises(BlockError) as info:
        check_block_body(tampered)
    assert info.value.code == BLK_TXROOT
    # through the decoder too: bytes -> Block -> check
    with pytest.raises(BlockError):
        check_block_body(Block.decode(tampered.encode()))
    check_block_body(Block.decode(block.encode()))


def test_body_check_refuses_a_swapped_last_commit(state):
    block, _ = build_block(state, two_txs())
    carried = Commit(0, 0, b"\x01" * 32, ())
    with pytest.raises(BlockError) as info:
        check_block_body(Block(block.header, block.txs, carried))  # header says: no last commit
    assert info.value.code == BLK_COMMIT


def test_proof_is_over_wtxids(state):
    block, _ = build_block(state, two_txs())
    for index, tx in enumerate(block.txs):
        proof = block.proof(index)
        assert verify_merkle_proof(tx.wtxid, proof, block.header.tx_root)
        assert not verify_merkle_proof(tx.txid, proof, block.header.tx_root)
        assert not verify_merkle_proof(resigned(tx).wtxid, proof, block.header.tx_root)
