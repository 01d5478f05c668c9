"""Mempool admission, conflicts, bounds, block selection, update after commit and expiry."""

from __future__ import annotations

import pytest

from node.api.app import tx_error_status
from node.ledger.errors import TxError
from node.ledger.memory import MemoryState
from node.ledger.rules import SignatureCache
from node.mempool import AlreadyCommitted, Mempool, MempoolConflict, MempoolError, MempoolFull
from node.types.transaction import OutPoint
from tests.ledger.ledger_helpers import CHAIN, addr, allocations, build_block, commit, gen_op, key, transfer


def make_pool(n_accounts: int = 6, **bounds) -> tuple[MemoryState, Mempool]:
    state = MemoryState()
    state.initialize_genesis(CHAIN, b"\x00" * 32, allocations(n_accounts), b"genesis")
    pool = Mempool(state, CHAIN, SignatureCache(), bounds.get("max_txs", 100), bounds.get("max_bytes", 10**6),
                   bounds.get("expiry", 5), 0)
    return state, pool


def test_admits_valid_and_is_idempotent():
    _, pool = make_pool()
    tx = transfer([(gen_op(0), key(0))], [(addr(key(1)), 900_000)])
    entry, new = pool.add(tx)
    assert new and entry.fee == 100_000
    _, again = pool.add(tx)
    assert not again
    assert len(pool) == 1


def test_signatures_are_checked_once():
    _, pool = make_pool()
    tx = transfer([(gen_op(0), key(0))], [(addr(key(1)), 900_000)])
    pool.add(tx)
    assert pool.sig_cache.misses == 1
    # The same transaction seen again (e.g. inside a block) hits the cache.
    pool.sig_cache.verify_transaction(tx, CHAIN)
    assert pool.sig_cache.hits == 1 and pool.sig_cache.misses == 1


def test_first_seen_wins_on_conflict():
    _, pool = make_pool()
    first = transfer([(gen_op(0), key(0))], [(addr(key(1)), 900_000)])
    second = transfer([(gen_op(0), key(0))], [(addr(key(2)), 800_000)])
    pool.add(first)
    with pytest.raises(MempoolConflict) as info:
        pool.add(second)
    assert info.value.code == "txn-mempool-conflict" and tx_error_status(info.value) == 409
    assert info.value.details["conflicting_txid"] == first.txid.hex()


def test_invalid_transaction_is_refused_with_its_code():
    _, pool = make_pool()
    bad = transfer([(gen_op(0), key(1))], [(addr(key(1)), 900_000)])  # key 1 does not own output 0
    with pytest.raises(TxError) as info:
        pool.add(bad)
    assert info.value.code == "bad-txns-pubkey-mismatch" and tx_error_status(info.value) == 422
    assert len(pool) == 0


def test_full_pool_answers_503_and_keeps_what_it_has():
    _, pool = make_pool(max_txs=2)
    for i in range(2):
        pool.add(transfer([(gen_op(i), key(i))], [(addr(key(5)), 900_000)]))
    with pytest.raises(MempoolFull) as info:
        pool.add(transfer([(gen_op(2), key(2))], [(addr(key(5)), 900_000)]))
    assert tx_error_status(info.value) == 503
    assert len(pool) == 2


def test_the_api_not_the_mempool_picks_the_http_status():
    assert not hasattr(MempoolError("x", "y"), "status")
    assert tx_error_status(AlreadyCommitted("txn-already-committed", "in a block")) == 409
    assert tx_error_status(MempoolError("other-refusal", "no")) == 400


def test_chained_spend_and_parent_first_selection():
    _, pool = make_pool()
    parent = transfer([(gen_op(0), key(0))], [(addr(key(1)), 999_000)])  # low fee rate
    child = transfer([(OutPoint(parent.txid, 0), key(1))], [(addr(key(2)), 500_000)])  # high fee rate
    rich = transfer([(gen_op(3), key(3))], [(addr(key(4)), 700_000)])
    pool.add(parent)
    pool.add(child)
    pool.add(rich)
    chosen = pool.select(10, 10**6)
    assert chosen.index(parent) < chosen.index(child)
    assert chosen[0] == rich  # highest fee rate with no parents goes first


def test_update_after_commit_drops_included_and_conflicts():
    state, pool = make_pool()
    a = transfer([(gen_op(0), key(0))], [(addr(key(1)), 900_000)])
    b = transfer([(gen_op(1), key(1))], [(addr(key(2)), 900_000)])
    pool.add(a)
    pool.add(b)
    # A block elsewhere spent output 1 differently: b must go, a stays until included.
    rival = transfer([(gen_op(1), key(1))], [(addr(key(3)), 950_000)])
    block, result = build_block(state, [rival])
    commit(state, block, result)
    dropped = pool.update(1, list(block.txs))
    assert b.txid in dropped and a.txid in pool
    block2, result2 = build_block(state, [a])
    commit(state, block2, result2)
    pool.update(2, list(block2.txs))
    assert len(pool) == 0 and pool.total_bytes == 0 and not pool.spent_by


def test_expiry_after_configured_blocks():
    _, pool = make_pool(expiry=3)
    tx = transfer([(gen_op(0), key(0))], [(addr(key(1)), 900_000)])
    pool.add(tx)
    pool.update(2, [])
    assert tx.txid in pool
    dropped = pool.update(3, [])
    assert dropped == [tx.txid] and len(pool) == 0


def test_a_journal_torn_inside_a_record_opens_with_what_came_before(tmp_path):
    """A batch is several records and one fsync: a power cut may leave the file's new length with zeros from
    inside one of them.  The node still starts, with the records before it; nothing it acknowledged is lost,
    since it acknowledges only after the fsync."""
    from node.consensus.records import frame
    from node.mempool import MempoolJournal

    path = str(tmp_path / "mempool.journal")
    journal = MempoolJournal(path)
    journal.append([b"first" * 20])
    journal.append([b"second" * 20, b"third" * 20])  # one sync for both
    journal.close()
    data = open(path, "rb").read()
    cut = len(frame(b"first" * 20)) + 8 + 10  # the second record's header and ten bytes of its body survive
    with open(path, "wb") as f:
        f.write(data[:cut] + bytes(len(data) - cut))
    assert MempoolJournal(path).recovered == [b"first" * 20]
