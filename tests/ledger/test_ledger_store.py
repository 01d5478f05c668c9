"""The LevelDB store: determinism across stores, path independence, atomic commits, crashes, reopen, indexes."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import textwrap

import pytest

from ledger_helpers import CHAIN, PROPOSER, addr, allocations, build_block, certificate, commit, gen_op, key, transfer
from node.ledger.errors import BlockError, StoreError
from node.ledger.memory import MemoryState
from node.ledger.muhash import MuHash
from node.ledger.rules import compute_genesis_app_hash, execute_block
from node.ledger.state import apply_block, genesis_outpoint, genesis_txid, iter_elements
from node.ledger.store import FEE_INDEX, Store
from node.types.block import Block
from node.types.transaction import OutPoint

HERE = os.path.dirname(__file__)
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
GHASH = b"G" * 32
AMOUNT = 1_000_000


def open_store(path, n=8) -> Store:
    s = Store.open(str(path))
    s.initialize_genesis(CHAIN, GHASH, allocations(n, AMOUNT), b'{"doc": 1}')
    return s


def chain_of_blocks(n_blocks=4):
    """A deterministic list of (block, result) built on a MemoryState: transfers that chain across blocks."""
    model = MemoryState()
    model.initialize_genesis(CHAIN, GHASH, allocations(8, AMOUNT))
    owned = {i: (gen_op(i), AMOUNT) for i in range(8)}  # key number -> one output it owns
    out = []
    for b in range(n_blocks):
        txs = []
        for i in range(b % 2, 8, 2):
            op, amount = owned[i]
            j = (i + b + 1) % 8
            tx = transfer([(op, key(i))], [(addr(key(j)), amount // 3), (addr(key(i)), amount - amount // 3 - 7)])
            txs.append(tx)
            owned[i] = (OutPoint(tx.txid, 1), amount - amount // 3 - 7)
        block, result = build_block(model, txs)
        commit(model, block, result)
        out.append((block, result))
    return out, model


def test_same_blocks_give_identical_app_hashes_on_two_fresh_stores(tmp_path):
    blocks, model = chain_of_blocks()
    a, b = open_store(tmp_path / "a"), open_store(tmp_path / "b")
    assert a.app_hash == b.app_hash == compute_genesis_app_hash(CHAIN, allocations(8, AMOUNT))
    for block, _ in blocks:
        # Each store validates the block on its own, then commits its own result.
        for s in (a, b):
            s.commit_block(block, certificate(block), execute_block(block, s, CHAIN, 100, 10**6))
        assert a.app_hash == b.app_hash == block.header.app_hash
    assert a.height == b.height == model.height == len(blocks)
    assert a.app_hash == model.app_hash == a.recompute_app_hash()
    assert dict(a.iter_utxos()) == dict(b.iter_utxos()) == model.utxos
    a.close(), b.close()


def test_app_hash_depends_on_the_set_not_the_insertion_order(tmp_path):
    # Two independent transfers in either order: different blocks (tx roots), same UTXO set, same app hash.
    s1, s2 = open_store(tmp_path / "a"), open_store(tmp_path / "b")
    t1 = transfer([(gen_op(0), key(0))], [(addr(key(5)), 100), (addr(key(0)), AMOUNT - 110)])
    t2 = transfer([(gen_op(1), key(1))], [(addr(key(6)), 200), (addr(key(1)), AMOUNT - 220)])
    b1, r1 = build_block(s1, [t1, t2])
    b2, r2 = build_block(s2, [t2, t1])
    assert b1.header.tx_root != b2.header.tx_root and r1.app_hash == r2.app_hash
    commit(s1, b1, r1), commit(s2, b2, r2)
    assert s1.app_hash == s2.app_hash == s1.recompute_app_hash()
    # And a MuHash fed the final set in any order (here: sorted vs reversed) agrees.
    elems = sorted(iter_elements(dict(s1.iter_utxos())))
    fwd, back = MuHash(), MuHash()
    fwd.add_many(elems)
    back.add_many(reversed(elems))
    assert fwd.digest() == back.digest() == s1.app_hash
    s1.close(), s2.close()


def test_genesis_init_reopen_and_idempotence(tmp_path):
    path = tmp_path / "db"
    s = open_store(path)
    assert (s.height, s.chain_id, s.genesis_hash, s.genesis_doc) == (0, CHAIN, GHASH, b'{"doc": 1}')
    assert s.get_utxo(genesis_outpoint(CHAIN, 3)).amount == AMOUNT
    assert s.get_utxo(genesis_outpoint(CHAIN, 8)) is None
    assert s.balance(addr(key(3))) == AMOUNT == s.balance_at(addr(key(3)), 0)
    assert [e.kind for e in s.history_of(addr(key(3)))] == ["genesis"]
    app = s.app_hash
    s.close()
    s = Store.open(str(path))
    assert (s.height, s.app_hash, s.tip_hash) == (0, app, bytes(32))
    assert s.initialize_genesis(CHAIN, GHASH, allocations(8, AMOUNT), b"") == app
    assert s.get_block(0) is None and s.get_block_hash(0) is None
    s.close()


def test_large_genesis_is_chunked_and_matches(tmp_path, monkeypatch):
    import node.ledger.store as store_mod

    monkeypatch.setattr(store_mod, "GENESIS_CHUNK", 7)
    alloc = allocations(20, 5)
    with Store.open(str(tmp_path / "db")) as s:
        assert s.initialize_genesis(CHAIN, GHASH, alloc, b"") == compute_genesis_app_hash(CHAIN, alloc)
        assert s.recompute_app_hash() == s.app_hash
        assert len(list(s.iter_utxos())) == 20


def test_crash_between_batch_build_and_write_leaves_the_old_height(tmp_path):
    path = tmp_path / "db"
    s = open_store(path)
    block, result = build_block(s, [transfer([(gen_op(0), key(0))], [(addr(key(1)), 10)])])
    s.build_commit_batch(block, certificate(block), result)
    # Built, never written: the store, on disk and in memory, is still at height 0.
    assert s.height == 0 and s.get_block(1) is None and s.get_utxo(gen_op(0)) is not None
    old = s.app_hash
    s.close()
    s = Store.open(str(path))
    assert (s.height, s.app_hash) == (0, old)
    assert s.get_utxo(gen_op(0)) is not None and s.get_tx_location(block.txs[0].txid) is None
    assert s.balance(addr(key(0))) == AMOUNT
    # The same block commits normally afterwards; a stale batch cannot be written twice.
    s.commit_block(block, certificate(block), result)
    assert s.height == 1
    with pytest.raises(BlockError):
        s.build_commit_batch(block, certificate(block), result)
    s.close()


CHILD = textwrap.dedent("""
    import os, sys
    sys.path.insert(0, {here!r})
    from ledger_helpers import *
    from node.ledger.store import Store
    s = Store.open({path!r})
    block, result = build_block(s, [transfer([(gen_op(0), key(0))], [(addr(key(1)), 10)])])
    batch = s.build_commit_batch(block, certificate(block), result)
    if {write}:
        batch.write()
    os._exit(9)  # die without closing anything
""")


@pytest.mark.parametrize("write", [False, True])
def test_process_killed_before_or_after_the_write(tmp_path, write):
    path = str(tmp_path / "db")
    open_store(path).close()
    env = dict(os.environ, PYTHONPATH=ROOT)
    proc = subprocess.run([sys.executable, "-c", CHILD.format(here=HERE, path=path, write=write)], env=env,
                          capture_output=True, timeout=60)
    assert proc.returncode == 9, proc.stderr.decode()
    s = Store.open(path)
    assert s.height == (1 if write else 0)
    assert (s.get_utxo(gen_op(0)) is None) == write
    genesis_app_hash = compute_genesis_app_hash(CHAIN, allocations(8, AMOUNT))
    assert s.app_hash == (s.get_header(1).app_hash if write else genesis_app_hash)
    assert s.recompute_app_hash() == s.app_hash
    s.close()


def test_block_and_transaction_lookups(tmp_path):
    blocks, _ = chain_of_blocks(3)
    s = open_store(tmp_path / "db")
    for block, result in blocks:
        commit(s, block, result)
    for block, _ in blocks:
        h = block.height
        assert s.get_block(h) == block and s.get_block_hash(h) == block.hash
        assert s.get_block_by_hash(block.hash) == block and s.get_header(h) == block.header
        assert s.get_commit(h) == certificate(block)
        for i, tx in enumerate(block.txs):
            assert s.get_tx_location(tx.txid) == (h, i)
            assert s.get_transaction(tx.txid) == tx
    assert s.get_block(4) is None and s.get_commit(0) is None and s.get_transaction(b"\x00" * 32) is None
    assert s.get_block_by_hash(b"\x01" * 32) is None
    s.close()


def test_recent_blocks_are_the_committed_objects_and_older_ones_come_from_leveldb(tmp_path):
    blocks, _ = chain_of_blocks(6)
    s = open_store(tmp_path / "db")
    s.recent_blocks.max_blocks = 2
    for block, result in blocks:
        commit(s, block, result)
    assert s.get_block(6) is blocks[5][0] and s.get_block(5) is blocks[4][0]  # held in memory, not decoded
    assert s.recent_blocks.get(4) is None
    old = s.get_block(4)
    assert old is not blocks[3][0] and old == blocks[3][0] and old.encoded == blocks[3][0].encoded
    s.close()
    s = Store.open(str(tmp_path / "db"))  # a reopened store holds none in memory, and reads the same blocks
    assert s.recent_blocks.get(6) is None and s.get_block(6) == blocks[5][0]
    s.close()


def test_balances_history_and_balance_at(tmp_path):
    s = open_store(tmp_path / "db")
    a0, a1 = addr(key(0)), addr(key(1))
    t1 = transfer([(gen_op(0), key(0))], [(a1, 300), (a0, AMOUNT - 400)])  # fee 100
    b1, r1 = build_block(s, [t1])
    commit(s, b1, r1)
    t2 = transfer([(OutPoint(t1.txid, 0), key(1))], [(a0, 250)])  # fee 50
    b2, r2 = build_block(s, [t2])
    commit(s, b2, r2)
    assert s.balance(a0) == AMOUNT - 400 + 250 and s.balance(a1) == AMOUNT
    assert [s.balance_at(a0, h) for h in (0, 1, 2, 3, 10**6)] == [AMOUNT, AMOUNT - 400, AMOUNT - 150,
                                                                 AMOUNT - 150, AMOUNT - 150]
    assert [s.balance_at(a1, h) for h in (0, 1, 2)] == [AMOUNT, AMOUNT + 300, AMOUNT]
    assert s.balance(PROPOSER) == 150 and s.balance_at(PROPOSER, 1) == 100 and s.balance_at(PROPOSER, 0) == 0
    hist = s.history_of(a0)
    assert [(e.height, e.index, e.txid) for e in hist] == [(2, 0, t2.txid), (1, 0, t1.txid),
                                                           (0, 0, genesis_txid(CHAIN))]
    assert [e.kind for e in s.history_of(PROPOSER)] == ["fee", "fee"]
    assert s.history_of(PROPOSER)[0].index == FEE_INDEX
    # Supply is constant: the sum of all balances equals the genesis allocation.
    assert sum(e.amount for _, e in s.iter_utxos()) == 8 * AMOUNT
    s.close()


def test_pagination_of_utxos_and_history(tmp_path):
    a = addr(key(0))
    with Store.open(str(tmp_path / "db")) as s:
        s.initialize_genesis(CHAIN, GHASH, [(a, i + 1) for i in range(25)] + [(addr(key(1)), 5)], b"")
        pages, after = [], None
        while True:
            page = s.utxos_of(a, limit=10, after=after)
            if not page:
                break
            pages.append(page)
            after = page[-1][0]
        assert [len(p) for p in pages] == [10, 10, 5]
        got = [op for p in pages for op, _ in p]
        assert got == sorted(got, key=lambda op: op.txid + op.index.to_bytes(4, "big")) and len(set(got)) == 25
        assert sum(e.amount for p in pages for _, e in p) == s.balance(a) == 325
        hist, before = [], None
        while True:
            page = s.history_of(a, limit=7, before=before)
            if not page:
                break
            hist += page
            before = (page[-1].height, page[-1].index)
        assert [e.index for e in hist] == list(range(24, -1, -1))
        assert s.utxos_of(a, limit=0) == [] and s.utxos_of(addr(key(2))) == []


def test_store_refuses_blocks_out_of_order_or_off_the_tip(tmp_path):
    blocks, _ = chain_of_blocks(2)
    s = open_store(tmp_path / "db")
    (b1, r1), (b2, r2) = blocks
    with pytest.raises(BlockError) as info:
        s.commit_block(b2, certificate(b2), r2)
    assert info.value.code == "bad-blk-height"
    commit(s, b1, r1)
    forged = Block(dataclasses.replace(b2.header, prev_hash=b"\x09" * 32), b2.txs, None)
    with pytest.raises(BlockError) as info:
        s.commit_block(forged, certificate(forged), r2)
    assert info.value.code == "bad-blk-prevhash"
    assert s.height == 1
    s.close()


def test_apply_block_pure_function_matches_store(tmp_path):
    blocks, model = chain_of_blocks(3)
    fresh = MemoryState()
    fresh.initialize_genesis(CHAIN, GHASH, allocations(8, AMOUNT))
    utxos = dict(fresh.utxos)
    snapshot = dict(utxos)
    for _, result in blocks:
        utxos = apply_block(utxos, result)
    assert utxos == model.utxos and fresh.utxos == snapshot


def test_uninitialized_store_reports_height_minus_one(tmp_path):
    with Store.open(str(tmp_path / "db")) as s:
        assert s.height == -1 and s.app_hash is None and not s.initialized
        (block, result), = chain_of_blocks(1)[0]
        with pytest.raises(StoreError):
            s.build_commit_batch(block, certificate(block), result)


def test_memtable_sizes_are_drawn_so_validators_do_not_compact_in_step():
    import random

    from node.ledger.leveldb_options import WRITE_BUFFER_BYTES, WRITE_BUFFER_STEP, draw_write_buffer_bytes

    rng = random.Random(5)
    sizes = [draw_write_buffer_bytes(rng) for _ in range(200)]
    low, high = WRITE_BUFFER_BYTES
    assert all(low <= size <= high and size % WRITE_BUFFER_STEP == 0 for size in sizes)
    assert len(set(sizes)) >= 10  # spread over the range (four validators share a size about 40% of the time)
