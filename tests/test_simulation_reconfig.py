"""The simulator with reconfiguration: joins, quits, power changes and key rotations through the ledger's rules.

Runs use ``run_simulation(..., reconfig=True)`` (what ``ledger-node simulate`` does by default).  Seeds are
(validators, Byzantine, seed) and were picked for what they exercise; every one must stay safe and live.
"""

from __future__ import annotations

import argparse

import pytest

from node.crypto import derive_public_key
from node.ledger.reconfig_rules import apply_inputs
from node.ledger.validator_state import genesis_validator_state
from node.types.reconfig import sign_quit
from node.types.validators import Validator, ValidatorSet
from simulation import add_simulate_arguments, run_simulate_command, run_simulation
from simulation.chain import CHAIN_ID, NodeLedger, decode_value, encode_value, simulated_value
from simulation.nodes import key_for
from simulation.reconfig import Change, Operator
from simulation.world import Simulation

ROTATIONS = [(4, 1, 1), (4, 1, 14), (5, 1, 30), (7, 2, 1), (7, 2, 2)]
"""Two key rotations each (4/1/1, 4/1/14, 5/1/30), or a rotation beside another join (7/2/2)."""
MIXED = [(4, 1, 13), (4, 1, 36), (5, 1, 27), (6, 1, 3), (7, 2, 3)]
"""Quits, power changes and rotations in one run, under crashes, partitions and chaos."""


def assert_ok(result):
    assert not result.safety_violations, (result.seed, result.safety_violations)
    assert not result.liveness_failures, (result.seed, result.liveness_failures)
    assert result.heights_decided == result.heights


def run(validators: int, byzantine: int, seed: int) -> Simulation:
    sim = Simulation(seed, validators, byzantine, 8, None, None, reconfig=True)
    sim.run()
    return sim


def reference_states(sim: Simulation):
    return max(sim.honest, key=lambda n: len(n.ledger.states)).ledger.states


@pytest.mark.parametrize(("validators", "byzantine", "seed"), ROTATIONS + MIXED)
def test_seeds_with_joins_quits_and_rotations_stay_safe_and_live(validators, byzantine, seed):
    sim = run(validators, byzantine, seed)
    assert_ok(sim.result)
    assert sim.result.set_changes >= 2
    assert sim.result.joined >= 1 and sim.result.left >= 1


def test_the_changes_apply_and_every_honest_node_holds_the_same_validator_state():
    sims = [run(validators, byzantine, seed) for validators, byzantine, seed in ROTATIONS[:3]]
    for sim in sims:
        states = reference_states(sim)
        assert states[max(states)].next != sim.validators  # the final set differs from genesis
        for node in sim.honest:  # followers included: every one decided every height and agrees
            assert len(node.decided) >= sim.heights
            for height, state in node.ledger.states.items():
                if height in states:
                    assert state.hash == states[height].hash


def test_a_rotated_key_replaces_the_old_one_which_keeps_following():
    sim = run(4, 1, 14)
    assert_ok(sim.result)
    states = reference_states(sim)
    final = states[max(states)].next
    rotations = [c for c in sim.operator.changes if c.label == "rotate" and c.kind == "quit"] if sim.operator else []
    assert rotations
    for quit_ in rotations:
        old, new = sim.nodes[quit_.node], sim.nodes[quit_.after_joined or 0]
        assert old.signer.address not in final and new.signer.address in final
        assert final.power_of(new.signer.address) == sim.validators.power_of(old.signer.address)
        assert len(old.decided) >= sim.heights  # the old key's node follows the chain after quitting
        assert old.driver.address is None and new.driver.address is not None


def test_a_byzantine_validator_stays_in_the_set_across_changes():
    sim = run(7, 2, 1)  # a split colluder and an invalid voter stay while a key rotates
    assert_ok(sim.result)
    assert sim.result.byzantine_across_changes >= 2
    states = reference_states(sim)
    changed = [h for h in range(1, max(states) + 1) if states[h].next != states[h - 1].next]
    for height in changed:
        before, after = states[height - 1].next, states[height].next
        assert any(a in before and a in after for a in sim.byzantine_addresses)
        byzantine_power = sum(v.power for v in after if v.address in sim.byzantine_addresses)
        assert 3 * byzantine_power < after.total_power


def test_joiners_follow_before_they_vote():
    sim = run(4, 1, 14)
    states = reference_states(sim)
    spares = [n for n in sim.nodes if n.signer.address not in sim.validators]
    assert spares
    for node in spares:
        joined = [h for h in states if node.signer.address in states[h].current]
        assert joined, "the spare joined"
        first = min(joined) + 1  # the first height whose set holds it
        assert first > 2 and node.signer.address not in node.ledger.validators_of(first - 1)
        assert len(node.decided) >= sim.heights


def test_static_runs_have_no_spares_and_no_changes():
    sim = Simulation(3, 4, 1, 4, "calm", None)
    result = sim.run()
    assert_ok(result)
    assert sim.operator is None and len(sim.nodes) == 4
    assert result.set_changes == 0 and not result.final_set_differs


# ---------------------------------------------------------------------------- values and the operators


def small_set(powers: list[int]) -> ValidatorSet:
    return ValidatorSet(Validator(f"sim{i}", derive_public_key(key_for(0, i)), p)
                        for i, p in enumerate(powers))


def test_values_carry_inputs_and_validity_runs_the_ledger_rules():
    genesis = small_set([1, 1, 1, 1])
    ledger = NodeLedger(genesis)
    payload = simulated_value(1, 0, 0, 7)
    quit_ = sign_quit(CHAIN_ID, key_for(0, 3), 50)
    value = encode_value(payload, (quit_,))
    assert decode_value(value) == (payload, (quit_,)) and encode_value(payload) == payload
    assert ledger.is_valid(1, value) and ledger.is_valid(1, payload)
    assert not ledger.is_valid(1, value[:-1] + bytes([value[-1] ^ 1]))  # the quit's signature broken
    assert not ledger.is_valid(1, encode_value(payload, (sign_quit(CHAIN_ID, key_for(0, 9), 50),)))  # a stranger
    assert not ledger.is_valid(2, value)  # the payload names height 1
    state = ledger.commit(1, value)
    assert state == apply_inputs(genesis_validator_state(genesis), CHAIN_ID, 1, [quit_])
    assert ledger.validators_of(2) == genesis and ledger.validators_of(3) == state.next
    assert ledger.validators_of(2).priorities is not None
    with pytest.raises(LookupError):
        ledger.validators_of(4)


def test_the_operators_never_let_the_byzantine_power_reach_a_third():
    genesis = small_set([1, 1, 1, 1])
    keys = [key_for(0, i) for i in range(5)]
    state = genesis_validator_state(genesis)
    quit_honest = Change("quit", 0, 0, 1)
    byzantine_up = Change("power", 3, 2, 1)
    operator = Operator(CHAIN_ID, keys, {3}, [quit_honest, byzantine_up], 100)
    assert operator.inputs_for(state, 1) == ()  # 1 of 3 Byzantine, or 2 of 5: both refused
    join = Change("join", 4, 1, 1)
    operator = Operator(CHAIN_ID, keys, {3}, [join, Change("quit", 0, 0, 3)], 100)
    inputs = operator.inputs_for(state, 1)
    assert inputs and all(i.request.public_key == operator.public_keys[4] for i in inputs)  # approvals
    state = apply_inputs(state, CHAIN_ID, 1, list(inputs))
    assert operator.addresses[4] in state.next
    state = apply_inputs(state, CHAIN_ID, 2, list(operator.inputs_for(state, 2)))
    quits = operator.inputs_for(state, 3)  # 1 Byzantine of 4 once the joiner is in: the quit may go
    assert len(quits) == 1
    assert operator.addresses[0] not in apply_inputs(state, CHAIN_ID, 3, list(quits)).next


# ---------------------------------------------------------------------------- the checker and the command


class _DivergentSim(Simulation):
    """One honest node's ledger computes another state after height 2: the checker must notice."""

    def on_decide(self, node, d):
        if node is self.honest[0] and d.height == 2:
            original = node.ledger.commit

            def commit(height, value):
                node.ledger.commit = original
                return original(height, encode_value(value, (sign_quit(CHAIN_ID, key_for(self.result.seed, 1), 90),)))
            node.ledger.commit = commit
        super().on_decide(node, d)


def test_the_checker_detects_nodes_that_disagree_on_the_validator_state():
    sim = _DivergentSim(5, 4, 0, 4, "calm", None)
    result = sim.run()
    assert any("validator state" in v for v in result.safety_violations)


def parse(argv):
    parser = argparse.ArgumentParser()
    add_simulate_arguments(parser)
    return parser.parse_args(argv)


def test_command_takes_a_range_of_validators_and_f_byzantine(capsys):
    args = parse(["--seeds", "4", "--seed-start", "0", "--validators", "4-7", "--byzantine", "f", "--heights", "3"])
    assert args.validators == (4, 7) and args.byzantine is None and args.reconfig
    assert run_simulate_command(args) == 0
    assert capsys.readouterr().out.strip() == "runs=4 safety_violations=0 liveness_failures=0 heights=12"
    assert not parse(["--no-reconfig"]).reconfig
    for bad in (["--validators", "7-4"], ["--validators", "x"], ["--byzantine", "g"]):
        with pytest.raises(SystemExit):
            parse(bad)
    capsys.readouterr()


RELAY_FORGED_SEEDS = [(4, 24), (5, 381), (4, 436), (5, 573), (4, 764), (7, 767)]
"""(validators, seed), f = (validators - 1) // 3: the liveness failures of ``ledger-node simulate --seeds 1000
--validators 4-7 --byzantine f`` while the relay checked a later height's message against the set of the height
it was at: a joiner's vote received a height early was remembered as forged and its bytes refused for good, so a
node missed a vote the quorum needed (a deadlock with no timeout running, or rounds that never showed it the
POL of the value the others had locked on)."""


@pytest.mark.parametrize(("validators", "seed"), RELAY_FORGED_SEEDS)
def test_a_joiners_vote_received_a_height_early_is_not_lost(validators, seed):
    assert_ok(run_simulation(seed, validators, (validators - 1) // 3, 8, reconfig=True))
