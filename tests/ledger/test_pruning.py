"""Pruning below the retained range: old blocks and per-block indexes go, every answer about the retained range
stays the same, and the headers that prove the validator-set changes are kept."""

from __future__ import annotations

from node.ledger.pruning import prune_below
from node.ledger.reconfig_rules import apply_inputs
from node.ledger.rules import BlockBuilder, execute_block
from node.ledger.store import Store
from node.light_client import set_changes_of
from node.types.block import Block, Header
from node.types.commit import Commit
from node.types.reconfig import inputs_hash, sign_approval, sign_join
from node.types.transaction import OutPoint
from tests.ledger.ledger_helpers import CHAIN, PROPOSER, addr, allocations, gen_op, key, transfer
from tests.ledger.test_reconfig_rules import key as vkey
from tests.ledger.test_reconfig_rules import validator_set


def commit_block(store: Store, txs=(), inputs=()) -> Block:
    height = store.height + 1
    builder = BlockBuilder(store, CHAIN, height, PROPOSER, store.muhash_state)
    for tx in txs:
        builder.add(tx)
    result = builder.finish()
    before = store.validator_state
    after = apply_inputs(before, CHAIN, height, list(inputs))
    header = Header(CHAIN, height, 1_000 * height, store.tip_hash, result.tx_root, result.app_hash, PROPOSER,
                    bytes(32), before.current.hash, before.next.hash, inputs_hash(list(inputs)), after.hash)
    block = Block(header, tuple(builder.txs), None, tuple(inputs))
    store.commit_block(block, Commit(height, 0, block.hash, ()), execute_block(block, store, CHAIN, 1000, 1 << 22))
    return block


def test_prune_keeps_the_retained_range_whole(tmp_path):
    store = Store.open(str(tmp_path / "db"))
    store.initialize_genesis(CHAIN, b"G" * 32, allocations(8, 1_000_000), b"{}",
                             validators=validator_set(10, 10, 10, 10))
    try:
        coins = {i: gen_op(i) for i in range(8)}
        txids = []
        join = sign_join(CHAIN, vkey(9), 3, "joiner", 100)
        for height in range(1, 41):
            i = height % 8
            tx = transfer([(coins[i], key(i))], [(addr(key(i)), 1_000_000 - 10 * height)])
            inputs = [sign_approval(CHAIN, vkey(v), join) for v in (0, 1, 2)] if height == 5 else []
            commit_block(store, [tx], inputs)
            coins[i] = OutPoint(tx.txid, 0)
            txids.append(tx.txid)
        change = store.validator_change_heights()[1]  # the join applied at height 7
        before = {(i, h): store.balance_at(addr(key(i)), h) for i in range(8) for h in range(25, 41)}
        history_before = {i: store.history_of(addr(key(i)), limit=100) for i in range(8)}
        earliest = prune_below(store, retain=16)
        assert earliest == 25 == store.earliest_height
        assert store.get_block(24) is None and store.get_block(25) is not None
        assert store.get_tx_location(txids[10]) is None and store.get_tx_location(txids[30]) is not None
        assert {(i, h): store.balance_at(addr(key(i)), h) for i in range(8) for h in range(25, 41)} == before
        for i in range(8):
            kept = store.history_of(addr(key(i)), limit=100)
            assert kept and all(entry.height >= 25 or entry.height == 0 for entry in kept)
            assert [e for e in history_before[i] if e.height >= 25] == [e for e in kept if e.height >= 25]
        # the header before the set change stays: the node's snapshots are still proven from genesis
        assert store.get_header(change - 1) is not None and store.get_commit(change - 1) is not None
        assert store.get_header(change - 2) is None
        assert [step.validators for step in set_changes_of(store, 40)] == [store.get_validators(change)]
        assert prune_below(store, retain=16) == 25  # nothing more to do yet
        commit_block(store, [transfer([(coins[1], key(1))], [(addr(key(1)), 5)])])
        assert store.recompute_app_hash() == store.app_hash
    finally:
        store.close()
