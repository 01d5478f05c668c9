"""The reconfiguration rules: joins, approvals, quits, power changes, their bounds and every refusal code.

Each refusal leaves the state unchanged (the builder raises before touching
it); ``TESTED`` collects the codes shown here, and the last test checks that
every reconfiguration code of ``ERROR_CODES`` is among them.
"""

from __future__ import annotations

import dataclasses
from collections import Counter

import pytest

from node.consensus.proposer import proposer_for
from node.crypto import address_hash, derive_public_key, sha256
from node.ledger import errors as E
from node.ledger.reconfig_rules import (
    MAX_BLOCK_INPUTS,
    MAX_OPEN_APPROVALS,
    RECONFIG_WINDOW,
    ReconfigBuilder,
    apply_inputs,
)
from node.ledger.rules import check_block_body, execute_reconfig
from node.ledger.validator_state import ValidatorState, genesis_validator_state
from node.types.block import Block, Header
from node.types.hashes import ZERO_HASH
from node.types.merkle import EMPTY_ROOT
from node.types.reconfig import (
    Approval,
    ChangeRequest,
    decode_input,
    inputs_hash,
    power_request,
    sign_approval,
    sign_join,
    sign_quit,
)
from node.types.validators import MAX_TOTAL_POWER, Validator, ValidatorSet

CHAIN = "reconfig-test"
TESTED: set[str] = set()
RECONFIG_CODES = {c for c in E.ERROR_CODES if c.startswith("reconfig-")} | {
    E.BLK_INPUTS, E.BLK_NEXT_VALIDATORS, E.BLK_RECONFIG_HASH}


def key(i: int) -> bytes:
    return sha256(b"reconfig-key-%d" % i)


def pub(i: int) -> bytes:
    return derive_public_key(key(i))


def address(i: int) -> bytes:
    return address_hash(pub(i))


def validator_set(*powers: int) -> ValidatorSet:
    return ValidatorSet(Validator(f"v{i}", pub(i), p) for i, p in enumerate(powers))


def genesis(*powers: int) -> ValidatorState:
    return genesis_validator_state(validator_set(*(powers or (10, 10, 10, 10))))


def approve(request: ChangeRequest, *approvers: int) -> list[Approval]:
    return [sign_approval(CHAIN, key(i), request) for i in approvers]


def step(state: ValidatorState, *inputs) -> ValidatorState:
    return apply_inputs(state, CHAIN, state.height + 1, list(inputs))


def refused(code: str, state: ValidatorState, item, height: int | None = None) -> None:
    builder = ReconfigBuilder(state, CHAIN, state.height + 1 if height is None else height)
    before = builder.state.encoded
    with pytest.raises(E.ReconfigError) as info:
        builder.add(item)
    assert info.value.code == code, info.value
    assert info.value.message and code in E.ERROR_CODES
    assert builder.inputs == [] and builder.state.encoded == before
    assert builder.finish() == apply_inputs(state, CHAIN, builder.height, [])  # as if it had never been offered
    TESTED.add(code)


# ---------------------------------------------------------------------------- what changes, and when


def test_a_join_approved_by_two_thirds_applies_two_heights_later():
    state = genesis()
    join = sign_join(CHAIN, key(9), 10, "newcomer", expires=50)
    after1 = step(state, *approve(join, 0, 1, 2))  # 30 of 40 > 2/3
    assert address(9) not in after1.current and address(9) in after1.next  # committed at 1: in the set of 3
    assert after1.next.get(address(9)).name == "newcomer"
    after2 = step(after1)
    assert address(9) in after2.current and after2.current.total_power == 50
    assert after1.pending == () and dict(after1.done)[join.id] == 50


def test_approvals_accumulate_across_blocks_and_count_once():
    state = genesis()
    join = sign_join(CHAIN, key(9), 10, "n", expires=50)
    a0, a1, a2 = approve(join, 0, 1, 2)
    s1 = step(state, a0)
    assert [p.approvers for p in s1.pending] == [(address(0),)] and address(9) not in s1.next
    refused(E.RECONFIG_DUPLICATE_APPROVAL, s1, a0)
    s2 = step(s1, a1)
    assert address(9) not in s2.next  # 20 of 40 is not more than 2/3
    s3 = step(s2, a2)
    assert address(9) in s3.next and s3.pending == ()
    refused(E.RECONFIG_DONE, s3, a0)  # replayed after it applied


def test_a_quit_needs_no_approval_and_the_leaver_still_decides_the_next_height():
    state = genesis()
    s1 = step(state, sign_quit(CHAIN, key(0), expires=10))
    assert address(0) in s1.current and address(0) not in s1.next
    refused(E.RECONFIG_NOT_VALIDATOR, s1, sign_quit(CHAIN, key(0), expires=11))  # already leaving
    refused(E.RECONFIG_DONE, s1, sign_quit(CHAIN, key(0), expires=10))
    s2 = step(s1)
    assert address(0) not in s2.current and s2.current.total_power == 30


def test_a_quit_signed_for_an_earlier_membership_is_refused():
    state = genesis()
    first, second = sign_quit(CHAIN, key(0), 10, since=1), sign_quit(CHAIN, key(0), 20, since=1)
    state = step(step(state, first))
    assert address(0) not in state.current and state.since_of(address(0)) is None
    rejoin = sign_join(CHAIN, key(0), 9, "back", 50)
    state = step(state, *approve(rejoin, 1, 2, 3))
    assert state.since_of(address(0)) == state.height + 2  # its new membership begins where it applies
    refused(E.RECONFIG_STALE, state, second)  # signed before it left: cannot end the new membership
    since = state.since_of(address(0))
    assert address(0) not in step(state, sign_quit(CHAIN, key(0), 30, since=since)).next


def test_power_change_and_forced_removal():
    state = genesis()
    raise_power = power_request(pub(1), 13, expires=20)
    s1 = step(state, *approve(raise_power, 0, 1, 2))
    assert s1.next.power_of(address(1)) == 13
    remove = power_request(pub(3), 0, expires=20)
    s2 = step(s1, *approve(remove, 0, 1, 2))
    assert address(3) not in s2.next and address(3) in s2.current


def test_changes_that_do_not_fit_under_one_third_wait_for_a_later_block():
    state = genesis()
    a, b = sign_join(CHAIN, key(8), 10, "a", 50), sign_join(CHAIN, key(9), 10, "b", 50)
    s1 = step(state, *approve(a, 0, 1, 2), *approve(b, 0, 1, 2))  # 10 + 10 of 40 would be 1/2
    assert address(8) in s1.next and address(9) not in s1.next
    assert [p.request.id for p in s1.pending] == [b.id]
    s2 = step(s1)  # b still has its approvals; now measured against 50
    assert address(9) in s2.next and s2.pending == ()


def test_requests_expire_with_their_approvals():
    state = genesis()
    join = sign_join(CHAIN, key(9), 10, "n", expires=2)
    s1 = step(state, approve(join, 0)[0])
    s2 = step(s1)
    assert s2.pending == ()  # expired at 2: forgotten
    refused(E.RECONFIG_EXPIRED, s2, approve(join, 1)[0])


def test_state_encoding_round_trips_and_hashes_everything():
    state = genesis()
    join = sign_join(CHAIN, key(9), 10, "n", expires=40)
    s1 = step(state, approve(join, 0)[0], sign_quit(CHAIN, key(3), 30))
    again = ValidatorState.decode(s1.encoded)
    assert again == s1 and again.hash == s1.hash and again.current.priorities == s1.current.priorities
    assert dataclasses.replace(s1, done=()).hash != s1.hash
    for item in (approve(join, 0)[0], sign_quit(CHAIN, key(3), 30)):
        assert decode_input(item.encoded) == item


# ---------------------------------------------------------------------------- proposer priorities


def test_priorities_carried_by_the_state_match_the_static_schedule():
    vs = validator_set(5, 3, 1, 1)
    state = genesis_validator_state(vs)
    for height in range(1, 60):
        for round_ in (0, 1, 3):
            assert proposer_for(state.current, height, round_) == proposer_for(vs, height, round_)
        state = step(state)


def test_a_newcomer_starts_behind_and_then_proposes_its_share():
    state = genesis()
    join = sign_join(CHAIN, key(9), 10, "n", expires=50)
    state = step(step(state, *approve(join, 0, 1, 2)))
    assert address(9) in state.current
    newcomer = state.current.priorities[state.current.index_of(address(9))]
    assert newcomer == -(50 + 50 // 8)
    counts: Counter[bytes] = Counter()
    first_turn = None
    for i in range(500):
        chosen = proposer_for(state.current, state.height + 1, 0)
        counts[chosen] += 1
        if chosen == address(9) and first_turn is None:
            first_turn = i
        state = step(state)
    assert first_turn is not None and first_turn >= 4  # not favoured: it waits behind the members
    assert set(counts.values()) <= {99, 100, 101}  # five equal powers: their share of 500 heights, give or take one


# ---------------------------------------------------------------------------- refusals, one per code


def test_join_refusals():
    state = genesis()
    forged = dataclasses.replace(sign_join(CHAIN, key(9), 10, "n", 50), signature=sign_join(CHAIN, key(8), 10, "n",
                                                                                              50).signature)
    refused(E.RECONFIG_BAD_SIGNATURE, state, approve(forged, 0)[0])
    refused(E.RECONFIG_BAD_SIGNATURE, state, approve(sign_join("another-chain", key(9), 10, "n", 50), 0)[0])
    refused(E.RECONFIG_BAD_POWER, state, approve(sign_join(CHAIN, key(9), 0, "n", 50), 0)[0])
    refused(E.RECONFIG_BAD_POWER, state, approve(sign_join(CHAIN, key(9), MAX_TOTAL_POWER + 1, "n", 50), 0)[0])
    refused(E.RECONFIG_TOO_MUCH_CHANGE, state, approve(sign_join(CHAIN, key(9), 14, "n", 50), 0)[0])
    refused(E.RECONFIG_ALREADY_VALIDATOR, state, approve(sign_join(CHAIN, key(2), 1, "again", 50), 0)[0])
    refused(E.RECONFIG_EXPIRED, step(step(state)), approve(sign_join(CHAIN, key(9), 1, "n", 2), 0)[0])
    refused(E.RECONFIG_EXPIRY_TOO_FAR, state, approve(sign_join(CHAIN, key(9), 1, "n", RECONFIG_WINDOW + 2), 0)[0])
    bad_key = ChangeRequest(1, b"\x02" + b"\xff" * 32, 1, "n", 50, bytes(64))
    refused(E.RECONFIG_MALFORMED, state, approve(bad_key, 0)[0])


def test_approval_refusals():
    state = genesis()
    join = sign_join(CHAIN, key(9), 10, "n", 50)
    refused(E.RECONFIG_NOT_VALIDATOR, state, sign_approval(CHAIN, key(7), join))  # not a member
    wrong_signer = dataclasses.replace(approve(join, 0)[0], approver=pub(1))
    refused(E.RECONFIG_BAD_SIGNATURE, state, wrong_signer)
    many = state
    for i in range(MAX_OPEN_APPROVALS):
        many = step(many, approve(sign_join(CHAIN, key(20 + i), 1, "n", 50), 0)[0])
    refused(E.RECONFIG_TOO_MANY_PENDING, many, approve(sign_join(CHAIN, key(40), 1, "n", 50), 0)[0])
    assert step(many, approve(sign_join(CHAIN, key(40), 1, "n", 50), 1)[0])  # another validator still can


def test_quit_and_power_refusals():
    state = genesis()
    forged = dataclasses.replace(sign_quit(CHAIN, key(0), 10), signature=sign_quit(CHAIN, key(1), 10).signature)
    refused(E.RECONFIG_BAD_SIGNATURE, state, forged)
    refused(E.RECONFIG_NOT_VALIDATOR, state, sign_quit(CHAIN, key(9), 10))
    refused(E.RECONFIG_EXPIRED, step(step(state)), sign_quit(CHAIN, key(0), 1))
    refused(E.RECONFIG_NOT_VALIDATOR, state, approve(power_request(pub(9), 5, 10), 0)[0])
    refused(E.RECONFIG_BAD_POWER, state, approve(power_request(pub(1), 10, 10), 0)[0])  # no change
    refused(E.RECONFIG_TOO_MUCH_CHANGE, state, approve(power_request(pub(1), 30, 10), 0)[0])
    signed_power = dataclasses.replace(power_request(pub(1), 11, 10), name="x")
    refused(E.RECONFIG_MALFORMED, state, approve(signed_power, 0)[0])
    alone = genesis(10)
    refused(E.RECONFIG_EMPTY_SET, alone, sign_quit(CHAIN, key(0), 10))
    refused(E.RECONFIG_EMPTY_SET, alone, approve(power_request(pub(0), 0, 10), 0)[0])
    pending = step(state, approve(sign_join(CHAIN, key(9), 1, "n", 50), 0)[0])
    junk = dataclasses.replace(sign_join(CHAIN, key(9), 1, "n", 50), signature=bytes(64))
    refused(E.RECONFIG_MALFORMED, pending, approve(junk, 1)[0])  # same request id, other signature bytes
    heavy = genesis(*(MAX_TOTAL_POWER // 4,) * 4)
    refused(E.RECONFIG_TOTAL_OVERFLOW, heavy, approve(sign_join(CHAIN, key(9), 10, "n", 50), 0)[0])
    two_big = genesis(10, 10, 10)
    refused(E.RECONFIG_TOO_MUCH_CHANGE, two_big, sign_quit(CHAIN, key(0), 10))  # 10 of 30 is 1/3


# ---------------------------------------------------------------------------- blocks


def _block(state: ValidatorState, inputs, **fields) -> Block:
    after = apply_inputs(state, CHAIN, state.height + 1, inputs)
    header = Header(CHAIN, state.height + 1, 1, ZERO_HASH, EMPTY_ROOT, ZERO_HASH, bytes(20), ZERO_HASH,
                    state.current.hash, fields.get("next_validators_hash", state.next.hash),
                    fields.get("inputs_hash", inputs_hash(inputs)), fields.get("reconfig_hash", after.hash))
    return Block(header, (), None, tuple(inputs))


def test_block_level_checks():
    state = genesis()
    items = [sign_quit(CHAIN, key(0), 10)]
    assert execute_reconfig(_block(state, items), state, CHAIN) == step(state, *items)
    decoded = Block.decode(_block(state, items).encode())
    assert decoded.inputs == tuple(items)
    for block, code in [
        (_block(state, items, next_validators_hash=ZERO_HASH), E.BLK_NEXT_VALIDATORS),
        (_block(state, items, reconfig_hash=ZERO_HASH), E.BLK_RECONFIG_HASH),
    ]:
        with pytest.raises(E.BlockError) as info:
            execute_reconfig(block, state, CHAIN)
        assert info.value.code == code
        TESTED.add(code)
    twice = Block(_block(state, items).header, (), None, tuple(items) * 2)
    with pytest.raises(E.BlockError) as info:
        execute_reconfig(twice, state, CHAIN)
    assert info.value.code == E.RECONFIG_DONE  # a refused input makes the block invalid with its code
    with pytest.raises(E.BlockError) as info:
        check_block_body(_block(state, items, inputs_hash=ZERO_HASH))
    assert info.value.code == E.BLK_INPUTS
    too_many = Block(_block(state, []).header, (), None, tuple(items) * (MAX_BLOCK_INPUTS + 1))
    with pytest.raises(E.BlockError) as info:
        execute_reconfig(too_many, state, CHAIN)
    assert info.value.code == E.BLK_INPUTS
    TESTED.add(E.BLK_INPUTS)


def test_every_reconfiguration_code_is_shown():
    """Runs last in this file."""
    assert RECONFIG_CODES <= TESTED, RECONFIG_CODES - TESTED
