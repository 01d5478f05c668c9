"""One test per error code in ERROR_CODES, and a check that none is left untested."""

from __future__ import annotations

import dataclasses

import plyvel
import pytest

from ledger_helpers import (
    CHAIN,
    PROPOSER,
    VALIDATORS_HASH,
    addr,
    allocations,
    build_block,
    certificate,
    commit,
    gen_op,
    key,
    raw_block,
    transfer,
)
from node.crypto import sha256
from node.ledger import errors as E
from node.ledger.chain import ChainTip, check_chain_fields
from node.ledger.errors import ERROR_CODES, BlockError, GenesisAllocationError, StoreError, TxError
from node.ledger.memory import MemoryState
from node.ledger.rules import (
    SignatureCache,
    check_block_body,
    check_chain_id,
    check_transaction_stateless,
    execute_block,
    validate_transaction,
)
from node.ledger.state import OverlayState
from node.ledger.store import STORE_FORMAT_VERSION, Store
from node.types.block import Block
from node.types.hashes import ZERO_HASH
from node.types.transaction import MAX_SUPPLY, MAX_TX_INPUTS, ZERO_SIGNATURE, OutPoint, Transaction, TxInput, TxOutput

TESTED: set[str] = set()
A0, A1, A2 = addr(key(0)), addr(key(1)), addr(key(2))
BIG = 10**6


@pytest.fixture
def state():
    s = MemoryState()
    s.initialize_genesis(CHAIN, b"G" * 32, allocations(4))
    return s


@pytest.fixture
def store(tmp_path):
    s = Store.open(str(tmp_path / "db"))
    s.initialize_genesis(CHAIN, b"G" * 32, allocations(4), b"{}")
    yield s
    s.close()


def raises(exc_type, code, fn, *args, **kwargs):
    with pytest.raises(exc_type) as info:
        fn(*args, **kwargs)
    assert info.value.code == code, info.value
    assert info.value.message and code in ERROR_CODES
    TESTED.add(code)
    return info.value


def good_tx(i=0, out=(1, 999_000)):
    return transfer([(gen_op(i), key(i))], [(A1, out[0]), (A2, out[1])])


def with_outputs(tx, outputs):
    return Transaction(tx.inputs, tuple(TxOutput(a, v) for a, v in outputs))


# ------------------------------------------------------------------ transaction codes


def test_vin_empty():
    raises(TxError, E.TX_VIN_EMPTY, check_transaction_stateless, Transaction((), (TxOutput(A0, 1),)))


def test_vout_empty():
    raises(TxError, E.TX_VOUT_EMPTY, check_transaction_stateless, Transaction(good_tx().inputs, ()))


def test_vout_negative():
    raises(TxError, E.TX_VOUT_NEGATIVE, check_transaction_stateless, with_outputs(good_tx(), [(A0, -5)]))


def test_vout_zero():
    raises(TxError, E.TX_VOUT_ZERO, check_transaction_stateless, with_outputs(good_tx(), [(A0, 0)]))


def test_vout_toolarge():
    raises(TxError, E.TX_VOUT_TOOLARGE, check_transaction_stateless, with_outputs(good_tx(), [(A0, MAX_SUPPLY + 1)]))


def test_txouttotal_toolarge():
    raises(TxError, E.TX_TXOUTTOTAL_TOOLARGE, check_transaction_stateless,
           with_outputs(good_tx(), [(A0, MAX_SUPPLY), (A1, 1)]))


def test_inputs_duplicate():
    tx = transfer([(gen_op(0), key(0)), (gen_op(0), key(0))], [(A1, 10)])
    raises(TxError, E.TX_INPUTS_DUPLICATE, check_transaction_stateless, tx)


def test_inputs_missingorspent(state):
    tx = transfer([(OutPoint(b"\x07" * 32, 0), key(0))], [(A1, 10)])
    raises(TxError, E.TX_INPUTS_MISSINGORSPENT, validate_transaction, tx, state, CHAIN)
    # Spent: after a block spends genesis output 0, spending it again is "missing or spent".
    block, result = build_block(state, [good_tx()])
    commit(state, block, result)
    raises(TxError, E.TX_INPUTS_MISSINGORSPENT, validate_transaction, good_tx(out=(5, 5)), state, CHAIN)


def test_in_belowout(state):
    raises(TxError, E.TX_IN_BELOWOUT, validate_transaction, good_tx(out=(1, BIG)), state, CHAIN)


def test_oversize():
    txin = good_tx().inputs[0]
    many = tuple(TxInput(OutPoint(sha256(i.to_bytes(4, "big")), 0), txin.public_key, ZERO_SIGNATURE)
                 for i in range(800))
    tx = Transaction(many, (TxOutput(A0, 1),))
    assert tx.size > 100_000
    raises(TxError, E.TX_OVERSIZE, check_transaction_stateless, tx)
    too_many = Transaction(tuple(many[0] for _ in range(MAX_TX_INPUTS + 1)), (TxOutput(A0, 1),))
    raises(TxError, E.TX_OVERSIZE, check_transaction_stateless, too_many)


def test_malformed():
    raises(TxError, E.TX_MALFORMED, check_transaction_stateless, with_outputs(good_tx(), [(A0[:19], 5)]))
    txin = good_tx().inputs[0]
    bad = Transaction((dataclasses.replace(txin, signature=b"\x01" * 63),), good_tx().outputs)
    raises(TxError, E.TX_MALFORMED, check_transaction_stateless, bad)


def test_sig(state):
    tx = good_tx()
    other = transfer([(gen_op(0), key(0))], [(A1, 2), (A2, 3)])
    forged = Transaction(tuple(dataclasses.replace(t, signature=o.signature)
                               for t, o in zip(tx.inputs, other.inputs, strict=True)), tx.outputs)
    raises(TxError, E.TX_SIG, validate_transaction, forged, state, CHAIN)
    # A cache never remembers a failure.
    cache = SignatureCache()
    raises(TxError, E.TX_SIG, validate_transaction, forged, state, CHAIN, cache)
    assert len(cache) == 0


def test_wrong_chain_signature_shows_as_sig_and_explicit_chain_is_wrong_chain(state):
    foreign = transfer([(gen_op(0), key(0))], [(A1, 10)], chain="other-chain")
    raises(TxError, E.TX_SIG, validate_transaction, foreign, state, CHAIN)
    raises(TxError, E.TX_WRONG_CHAIN, check_chain_id, "other-chain", CHAIN)
    check_chain_id(CHAIN, CHAIN)


def test_pubkey_mismatch(state):
    # Key 1 signs a spend of key 0's output: the signature is fine, the key is not the owner.
    tx = transfer([(gen_op(0), key(1))], [(A1, 10)])
    raises(TxError, E.TX_PUBKEY_MISMATCH, validate_transaction, tx, state, CHAIN)


def test_bad_pubkey():
    txin = good_tx().inputs[0]
    x = 5  # x^3 + 7 = 132 is not a square mod p, so no point has x = 5
    bad_key = b"\x02" + x.to_bytes(32, "big")
    bad = Transaction((dataclasses.replace(txin, public_key=bad_key),), good_tx().outputs)
    raises(TxError, E.TX_BAD_PUBKEY, check_transaction_stateless, bad)
    wrong_prefix = Transaction((dataclasses.replace(txin, public_key=b"\x04" + txin.public_key[1:]),),
                               good_tx().outputs)
    raises(TxError, E.TX_BAD_PUBKEY, check_transaction_stateless, wrong_prefix)


def test_mempool_conflict_is_detectable_from_an_overlay(state):
    """The mempool's code: an overlay tells a pending spend apart from a missing output."""
    overlay = OverlayState(state)
    validate_transaction(good_tx(), overlay, CHAIN)
    overlay.spend(gen_op(0))
    second = good_tx(out=(7, 7))
    with pytest.raises(TxError) as info:
        validate_transaction(second, overlay, CHAIN)
    assert info.value.code == E.TX_INPUTS_MISSINGORSPENT
    assert overlay.is_spent_here(gen_op(0)) and not overlay.is_spent_here(gen_op(1))
    assert state.get_utxo(gen_op(0)) is not None  # the base is untouched
    TESTED.add(E.TX_MEMPOOL_CONFLICT)


# ------------------------------------------------------------------ block codes


def tamper(block: Block, **changes) -> Block:
    return Block(dataclasses.replace(block.header, **changes), block.txs, block.last_commit)


def test_blk_double_spend(state):
    a = good_tx()
    b = good_tx(out=(2, 2))
    block = raw_block(state, [a, b])
    err = raises(BlockError, E.BLK_DOUBLE_SPEND, execute_block, block, state, CHAIN, 100, BIG)
    assert err.tx_index == 1
    # An output created and spent inside the block, then spent again, is a double spend too.
    c = transfer([(OutPoint(a.txid, 0), key(1))], [(A0, 1)])
    c2 = transfer([(OutPoint(a.txid, 0), key(1))], [(A2, 1)])
    block = raw_block(state, [a, c, c2])
    raises(BlockError, E.BLK_DOUBLE_SPEND, execute_block, block, state, CHAIN, 100, BIG)


def test_invalid_tx_in_block_keeps_its_code_and_index(state):
    block = raw_block(state, [good_tx(), good_tx(1, out=(1, BIG))])
    err = raises(BlockError, E.TX_IN_BELOWOUT, execute_block, block, state, CHAIN, 100, BIG)
    assert err.tx_index == 1 and isinstance(err.tx_error, TxError)


def test_blk_length(state):
    block, _ = build_block(state, [good_tx(0), good_tx(1)])
    raises(BlockError, E.BLK_LENGTH, execute_block, block, state, CHAIN, 1, BIG)


def test_blk_size(state):
    block, _ = build_block(state, [good_tx(0), good_tx(1)])
    raises(BlockError, E.BLK_SIZE, execute_block, block, state, CHAIN, 100, good_tx().size + 10)


def test_blk_txroot(state):
    block, _ = build_block(state, [good_tx()])
    raises(BlockError, E.BLK_TXROOT, execute_block, tamper(block, tx_root=b"\x01" * 32), state, CHAIN, 100, BIG)
    # the same header over a transaction with other signature bytes: same id, not the body the id commits to
    tx = block.txs[0]
    sig = bytes([tx.inputs[0].signature[0] ^ 1]) + tx.inputs[0].signature[1:]
    resigned = Transaction((dataclasses.replace(tx.inputs[0], signature=sig),), tx.outputs)
    swapped = Block(block.header, (resigned,), block.last_commit)
    assert swapped.hash == block.hash
    raises(BlockError, E.BLK_TXROOT, check_block_body, swapped)
    raises(BlockError, E.BLK_TXROOT, execute_block, swapped, state, CHAIN, 100, BIG)


def test_store_refuses_a_body_its_certified_id_does_not_cover(store):
    block, result = build_block(store, [good_tx()])
    tx = block.txs[0]
    sig = bytes([tx.inputs[0].signature[0] ^ 1]) + tx.inputs[0].signature[1:]
    swapped = Block(block.header, (Transaction((dataclasses.replace(tx.inputs[0], signature=sig),), tx.outputs),),
                    None)
    raises(BlockError, E.BLK_TXROOT, store.commit_block, swapped, certificate(block), result)
    raises(BlockError, E.BLK_COMMIT, store.commit_block, Block(block.header, block.txs, certificate(block)),
           certificate(block), result)
    assert store.height == 0


def test_blk_apphash(state):
    block, _ = build_block(state, [good_tx()])
    raises(BlockError, E.BLK_APPHASH, execute_block, tamper(block, app_hash=b"\x01" * 32), state, CHAIN, 100, BIG)
    execute_block(tamper(block, app_hash=b"\x01" * 32), state, CHAIN, 100, BIG, expected_app_hash_check=False)


def test_blk_chain_id(state):
    block, _ = build_block(state, [good_tx()])
    raises(BlockError, E.BLK_CHAIN_ID, execute_block, tamper(block, chain_id="other"), state, CHAIN, 100, BIG)


def test_blk_height(state):
    block, _ = build_block(state, [good_tx()])
    raises(BlockError, E.BLK_HEIGHT, execute_block, tamper(block, height=2), state, CHAIN, 100, BIG)


def test_blk_prevhash(state):
    block, result = build_block(state, [good_tx()])
    commit(state, block, result)
    block2, _ = build_block(state, [good_tx(1)])
    raises(BlockError, E.BLK_PREVHASH, execute_block, tamper(block2, prev_hash=b"\x02" * 32), state, CHAIN, 100, BIG)


def test_blk_commit(store):
    block, result = build_block(store, [good_tx()])
    wrong = dataclasses.replace(certificate(block), block_hash=b"\x03" * 32)
    raises(BlockError, E.BLK_COMMIT, store.commit_block, block, wrong, result)
    assert store.height == 0


def test_blk_result(store):
    block, result = build_block(store, [good_tx()])
    stale = dataclasses.replace(result, base_app_hash=b"\x04" * 32)
    raises(BlockError, E.BLK_RESULT, store.commit_block, block, certificate(block), stale)
    other_height = dataclasses.replace(result, height=7)
    raises(BlockError, E.BLK_RESULT, store.commit_block, block, certificate(block), other_height)
    assert store.height == 0


# ------------------------------------------------------------------ chain codes (node.ledger.chain)


class Members:
    """The validator set as the chain rules see it: its hash and who is in it."""

    def __init__(self, *addresses: bytes, hash: bytes = VALIDATORS_HASH):
        self.hash = hash
        self.addresses = set(addresses)

    def get(self, address: bytes) -> object | None:
        return address if address in self.addresses else None


GENESIS_TIP = ChainTip(0, ZERO_HASH, 500)
GENESIS_MEMBERS = Members(PROPOSER)


def chain_check(block: Block, tip: ChainTip = GENESIS_TIP, validators: Members = GENESIS_MEMBERS,
                verify=lambda commit, block_hash, height: None, time_of=lambda height, last_commit: 1_000 * height):
    """``check_chain_fields`` with a certificate check that accepts everything and ``build_block``'s dates."""
    check_chain_fields(block, tip, validators, verify_commit=verify, block_time=time_of)


def test_chain_fields_accept_the_next_block(state):
    block, result = build_block(state, [good_tx()])
    chain_check(block)
    commit(state, block, result)
    block2, _ = build_block(state, [good_tx(1)])
    carried = certificate(block)
    block2 = Block(dataclasses.replace(block2.header, last_commit_hash=carried.hash), block2.txs, carried)
    chain_check(block2, ChainTip(1, block.hash, block.header.time_ms))


def test_blk_time(state):
    block, result = build_block(state, [good_tx()])
    err = raises(BlockError, E.BLK_TIME, chain_check, block, time_of=lambda height, last_commit: 999)
    assert "genesis time + 1" in err.message
    err = raises(BlockError, E.BLK_TIME, chain_check, block, ChainTip(0, ZERO_HASH, 1_000))
    assert "not after 1000" in err.message
    commit(state, block, result)
    block2, _ = build_block(state, [good_tx(1)])
    carried = certificate(block)
    block2 = Block(dataclasses.replace(block2.header, last_commit_hash=carried.hash), block2.txs, carried)
    tip = ChainTip(1, block.hash, block.header.time_ms)
    err = raises(BlockError, E.BLK_TIME, chain_check, block2, tip, time_of=lambda height, last_commit: 2_001)
    assert "weighted median" in err.message


def test_blk_validators(state):
    block, _ = build_block(state, [good_tx()])
    raises(BlockError, E.BLK_VALIDATORS, chain_check, tamper(block, validators_hash=b"\x06" * 32))
    raises(BlockError, E.BLK_VALIDATORS, chain_check, block, validators=Members(PROPOSER, hash=b"\x07" * 32))


def test_blk_proposer(state):
    block, _ = build_block(state, [good_tx()])
    raises(BlockError, E.BLK_PROPOSER, chain_check, block, validators=Members(A0, A1))
    raises(BlockError, E.BLK_PROPOSER, chain_check, tamper(block, proposer=A2))


def test_chain_fields_height_prevhash_and_parent_certificate(state):
    block, result = build_block(state, [good_tx()])
    raises(BlockError, E.BLK_HEIGHT, chain_check, tamper(block, height=2))
    raises(BlockError, E.BLK_PREVHASH, chain_check, tamper(block, prev_hash=b"\x02" * 32))
    carried = certificate(block)
    # the first block carries no certificate, and names none
    raises(BlockError, E.BLK_COMMIT, chain_check, Block(block.header, block.txs, carried))
    raises(BlockError, E.BLK_COMMIT, chain_check, tamper(block, last_commit_hash=carried.hash))
    commit(state, block, result)
    block2, _ = build_block(state, [good_tx(1)])
    tip = ChainTip(1, block.hash, block.header.time_ms)
    raises(BlockError, E.BLK_COMMIT, chain_check, block2, tip)  # no certificate for its parent
    named = Block(dataclasses.replace(block2.header, last_commit_hash=carried.hash), block2.txs, carried)
    raises(BlockError, E.BLK_COMMIT, chain_check, Block(block2.header, block2.txs, carried), tip)  # not the named one
    err = raises(BlockError, E.BLK_COMMIT, chain_check, named, tip,
                 verify=lambda commit, block_hash, height: f"no quorum for {block_hash.hex()[:8]} at {height}")
    assert err.message == f"parent certificate: no quorum for {block.hash.hex()[:8]} at 1"


# ------------------------------------------------------------------ genesis and store codes


def test_genesis_allocation(tmp_path):
    with Store.open(str(tmp_path / "db")) as s:
        raises(GenesisAllocationError, E.GENESIS_ALLOCATION, s.initialize_genesis, CHAIN, b"G" * 32, [(A0, 0)], b"")
        raises(GenesisAllocationError, E.GENESIS_ALLOCATION, s.initialize_genesis, CHAIN, b"G" * 32,
               [(A0, MAX_SUPPLY), (A1, 1)], b"")
        raises(GenesisAllocationError, E.GENESIS_ALLOCATION, s.initialize_genesis, CHAIN, b"G" * 32, [(A0[:5], 1)], b"")
        assert not s.initialized


def test_store_not_initialized(tmp_path, state):
    block, result = build_block(state, [good_tx()])
    with Store.open(str(tmp_path / "db")) as s:
        raises(StoreError, E.STORE_NOT_INITIALIZED, s.commit_block, block, certificate(block), result)


def test_store_genesis_mismatch(store):
    assert store.initialize_genesis(CHAIN, b"G" * 32, allocations(4), b"{}") == store.genesis_app_hash
    raises(StoreError, E.STORE_GENESIS_MISMATCH, store.initialize_genesis, CHAIN, b"H" * 32, allocations(4), b"{}")


def test_store_corrupt(tmp_path):
    path = str(tmp_path / "db")
    with Store.open(path) as s:
        s.initialize_genesis(CHAIN, b"G" * 32, allocations(4), b"{}")
        block, result = build_block(s, [good_tx()])
        commit(s, block, result)
    db = plyvel.DB(path)
    db.put(b"Mapp_hash", b"\x05" * 32)
    db.close()
    raises(StoreError, E.STORE_CORRUPT, Store.open, path)
    db = plyvel.DB(path)
    db.put(b"Mapp_hash", result.app_hash)
    db.delete(b"R" + (1).to_bytes(8, "big"))
    db.close()
    raises(StoreError, E.STORE_CORRUPT, Store.open, path)


def test_store_locked(store):
    raises(StoreError, E.STORE_LOCKED, Store.open, store.path)


def test_store_reserved_key(store):
    raises(StoreError, E.STORE_RESERVED_KEY, store.put_meta, "height", b"\x00" * 8)
    store.put_meta("consensus/wal", b"x")
    assert store.get_meta("consensus/wal") == b"x"


def test_store_format(tmp_path):
    """A new store is stamped with STORE_FORMAT_VERSION; one without it, or with another, is refused."""
    path = str(tmp_path / "db")
    with Store.open(path) as s:
        s.initialize_genesis(CHAIN, b"G" * 32, allocations(4), b"{}")
        assert s.format_version == STORE_FORMAT_VERSION == 3
        raises(StoreError, E.STORE_RESERVED_KEY, s.put_meta, "format_version", b"\x00\x00\x00\x01")
    db = plyvel.DB(path)
    db.delete(b"Mformat_version")  # what a store written before versions existed looks like
    db.close()
    err = raises(StoreError, E.STORE_FORMAT, Store.open, path)
    assert "re-run `ledger-node init` on a fresh home, or for a devnet `ledger-devnet up --fresh`" in err.message
    db = plyvel.DB(path)
    db.put(b"Mformat_version", (1).to_bytes(4, "big"))
    db.close()
    assert "format version 1" in raises(StoreError, E.STORE_FORMAT, Store.open, path).message
    db = plyvel.DB(path)
    db.put(b"Mformat_version", STORE_FORMAT_VERSION.to_bytes(4, "big"))
    db.close()
    with Store.open(path) as s:
        assert s.height == 0


def test_every_code_has_a_test():
    """Runs last in this file: every documented code was raised (or shown) above."""
    from tests.ledger.test_reconfig_rules import RECONFIG_CODES  # shown there, one test per code
    from tests.ledger.test_snapshot import SNAPSHOT_CODES  # shown there

    assert set(ERROR_CODES) == TESTED | {E.TX_MEMPOOL_CONFLICT} | RECONFIG_CODES | SNAPSHOT_CODES, \
        set(ERROR_CODES) ^ TESTED
