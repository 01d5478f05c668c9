"""The validator state through the real store: committed with each block, the set of every height kept, reopened
as it was; a block whose header names the wrong next set or state is refused before anything is written."""

from __future__ import annotations

import dataclasses

import pytest

from node.ledger import errors as E
from node.ledger.reconfig_rules import apply_inputs
from node.ledger.rules import BlockBuilder, execute_block
from node.ledger.store import Store
from node.types.block import Block, Header
from node.types.commit import Commit
from node.types.hashes import ZERO_HASH
from node.types.reconfig import inputs_hash, sign_approval, sign_join, sign_quit
from tests.ledger.ledger_helpers import CHAIN, PROPOSER, allocations
from tests.ledger.test_reconfig_rules import address, key, validator_set


def next_block(store: Store, inputs=()) -> tuple[Block, object]:
    height = store.height + 1
    builder = BlockBuilder(store, CHAIN, height, PROPOSER, store.muhash_state)
    result = builder.finish()
    before = store.validator_state
    after = apply_inputs(before, CHAIN, height, list(inputs))
    header = Header(CHAIN, height, 1_000 * height, store.tip_hash, result.tx_root, result.app_hash, PROPOSER,
                    ZERO_HASH, before.current.hash, before.next.hash, inputs_hash(list(inputs)), after.hash)
    return Block(header, (), None, tuple(inputs)), after


def commit(store: Store, inputs=()) -> Block:
    block, _ = next_block(store, inputs)
    result = execute_block(block, store, CHAIN, 100, 1 << 20)
    store.commit_block(block, Commit(block.height, 0, block.hash, ()), result)
    return block


@pytest.fixture
def store(tmp_path):
    s = Store.open(str(tmp_path / "db"))
    s.initialize_genesis(CHAIN, b"G" * 32, allocations(4), b"{}", validators=validator_set(10, 10, 10, 10))
    yield s
    s.close()


def test_sets_by_height_survive_a_restart(store, tmp_path):
    genesis_set = store.get_validators(1)
    join = sign_join(CHAIN, key(9), 10, "joiner", 100)
    commit(store, [sign_approval(CHAIN, key(i), join) for i in (0, 1, 2)])  # height 1: applies at 3
    commit(store)
    commit(store, [sign_quit(CHAIN, key(0), 100)])  # height 3: applies at 5
    commit(store)
    assert store.height == 4
    sets = {h: store.get_validators(h) for h in range(1, 7)}
    assert sets[1] == sets[2] == genesis_set and address(9) not in sets[2]
    assert address(9) in sets[3] and address(0) in sets[4]
    assert address(0) not in sets[5] and sets[5] == sets[6]
    assert store.get_validators(7) is None and store.get_validators(0) is None
    assert store.validator_change_heights() == [1, 3, 5]
    assert sets[3].get(address(9)).name == "joiner"
    state = store.validator_state
    store.close()
    again = Store.open(str(tmp_path / "db"))
    try:
        assert again.validator_state == state and again.validator_state.hash == state.hash
        assert {h: again.get_validators(h) for h in range(1, 7)} == sets
        assert again.get_header(4).reconfig_hash == state.hash
    finally:
        again.close()


def test_the_set_that_decided_a_new_tip_is_kept_by_its_commit_as_the_store_reads_it_back(store, tmp_path):
    # Every node asks for the set of the height it just decided: the commit keeps it, so no read is needed.
    join = sign_join(CHAIN, key(9), 10, "joiner", 100)
    kept = {}
    for inputs in ([sign_approval(CHAIN, key(i), join) for i in (0, 1, 2)], [], [sign_quit(CHAIN, key(0), 100)],
                   [], []):
        commit(store, inputs)
        kept[store.height] = store._sets_by_height.get(store.height)
        assert kept[store.height] is not None and kept[store.height].priorities is None
    assert address(9) in kept[3] and kept[3].get(address(9)).name == "joiner" and address(0) not in kept[5]
    store.close()
    again = Store.open(str(tmp_path / "db"))
    try:
        for height, validators in kept.items():
            read = again.get_validators(height)
            assert read == validators and read.hash == validators.hash
    finally:
        again.close()


def test_a_change_that_only_renames_a_member_is_recorded_so_every_read_gives_the_states_names(store, tmp_path):
    # Key 9 joins as "a" while a second join of it, as "b", stays pending; it quits in the block that completes
    # "b", so the next set has the same keys and powers (the same hash) and a member with another name.
    join_a = sign_join(CHAIN, key(9), 10, "a", 100)
    join_b = sign_join(CHAIN, key(9), 10, "b", 100)
    commit(store, [sign_approval(CHAIN, key(i), join_a) for i in (0, 1, 2)] + [sign_approval(CHAIN, key(0), join_b)])
    commit(store)
    commit(store, [sign_approval(CHAIN, key(i), join_b) for i in (1, 2, 3)] + [sign_quit(CHAIN, key(9), 100, since=3)])
    commit(store)
    commit(store)
    assert store.get_validators(5).get(address(9)).name == "b"
    assert store.validator_change_heights() == [1, 3, 5]
    store.close()
    again = Store.open(str(tmp_path / "db"))
    try:
        assert again.get_validators(5).get(address(9)).name == "b"
        assert again.get_validators(4).get(address(9)).name == "a"
    finally:
        again.close()


def test_a_header_naming_another_next_set_or_state_is_refused(store):
    block, after = next_block(store, [sign_quit(CHAIN, key(0), 100)])
    for field, code in (("next_validators_hash", E.BLK_NEXT_VALIDATORS), ("reconfig_hash", E.BLK_RECONFIG_HASH)):
        bad = Block(dataclasses.replace(block.header, **{field: b"\x01" * 32}), (), None, block.inputs)
        with pytest.raises(E.BlockError) as info:
            execute_block(bad, store, CHAIN, 100, 1 << 20)
        assert info.value.code == code
    assert store.height == 0 and store.validator_state.height == 0
    refused = Block(block.header, (), None, (sign_quit(CHAIN, key(7), 100),))  # not a member; hash not named
    with pytest.raises(E.BlockError) as info:
        execute_block(refused, store, CHAIN, 100, 1 << 20)
    assert info.value.code == E.BLK_INPUTS
