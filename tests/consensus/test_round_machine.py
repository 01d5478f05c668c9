"""Each upon-rule of Algorithm 1 in isolation: the event that triggers it, the output it must
produce, and a near-miss that must not trigger it."""

from dataclasses import replace

import pytest

from node.consensus.messages import VoteType
from node.consensus.round_machine import (
    CastVote,
    Decision,
    EnterRound,
    PolkaAny,
    PolkaNil,
    PrecommitAny,
    ProposalReceived,
    ProposalWithCommitQuorum,
    ProposalWithPolka,
    ProposalWithPolkaCurrent,
    Propose,
    RoundState,
    SkipRound,
    StartRound,
    StartTimer,
    Step,
    Timeout,
    TimeoutElapsed,
    TimeoutKind,
    TimeoutParams,
    apply_input,
    restore_lock,
)

V, W = b"v" * 32, b"w" * 32
PV, PC = VoteType.PREVOTE, VoteType.PRECOMMIT


def at(step: Step, round_: int = 0, **kw) -> RoundState:
    return replace(RoundState(height=7, round=round_, step=step), **kw)


def no_change(state, inp):
    assert apply_input(state, inp) == (state, None)


# L11 ---------------------------------------------------------------------------------------------

def test_L11_proposer_with_no_valid_value_asks_for_a_fresh_one():
    state, out = apply_input(RoundState(7), StartRound(0, True))
    assert (state.round, state.step) == (0, Step.PROPOSE)
    assert out == Propose(0, None, -1)


def test_L11_proposer_reproposes_valid_value_with_its_round():
    state, out = apply_input(at(Step.PRECOMMIT, 2, valid_value=V, valid_round=1), StartRound(3, True))
    assert (state.round, state.step) == (3, Step.PROPOSE)
    assert out == Propose(3, V, 1)


def test_L11_non_proposer_schedules_timeout_propose():
    state, out = apply_input(at(Step.PRECOMMIT, 0, prevote_timer_started=True), StartRound(1, False))
    assert out == StartTimer(Timeout(TimeoutKind.PROPOSE, 7, 1))
    assert not state.prevote_timer_started  # "for the first time" flags are per round


def test_L11_near_miss_never_goes_back_or_restarts_a_round():
    no_change(at(Step.PREVOTE, 2), StartRound(2, True))
    no_change(at(Step.PREVOTE, 2), StartRound(1, False))


# L22 ---------------------------------------------------------------------------------------------

def test_L22_prevotes_valid_proposal_when_unlocked():
    state, out = apply_input(at(Step.PROPOSE), ProposalReceived(V, True))
    assert state.step == Step.PREVOTE and out == CastVote(PV, 0, V)


def test_L22_prevotes_nil_for_invalid_or_against_the_lock():
    assert apply_input(at(Step.PROPOSE), ProposalReceived(V, False))[1] == CastVote(PV, 0, None)
    locked = at(Step.PROPOSE, 2, locked_value=W, locked_round=1)
    assert apply_input(locked, ProposalReceived(V, True))[1] == CastVote(PV, 2, None)
    assert apply_input(locked, ProposalReceived(W, True))[1] == CastVote(PV, 2, W)


def test_L22_near_miss_after_prevoting():
    no_change(at(Step.PREVOTE), ProposalReceived(V, True))


# L28 ---------------------------------------------------------------------------------------------

def test_L28_prevotes_value_with_polka_at_or_after_the_lock():
    state = at(Step.PROPOSE, 3, locked_value=W, locked_round=1)
    new, out = apply_input(state, ProposalWithPolka(V, 2, True))  # lockedRound 1 <= vr 2
    assert new.step == Step.PREVOTE and out == CastVote(PV, 3, V)
    assert apply_input(state, ProposalWithPolka(V, 1, True))[1] == CastVote(PV, 3, V)  # 1 <= 1


def test_L28_prevotes_nil_for_older_polka_or_invalid_value():
    state = at(Step.PROPOSE, 3, locked_value=W, locked_round=2)
    assert apply_input(state, ProposalWithPolka(V, 1, True))[1] == CastVote(PV, 3, None)
    assert apply_input(state, ProposalWithPolka(W, 1, True))[1] == CastVote(PV, 3, W)  # lockedValue = v
    assert apply_input(at(Step.PROPOSE, 3), ProposalWithPolka(V, 1, False))[1] == CastVote(PV, 3, None)


def test_L28_near_miss_vr_not_below_round_or_wrong_step():
    no_change(at(Step.PROPOSE, 2), ProposalWithPolka(V, 2, True))
    no_change(at(Step.PROPOSE, 2), ProposalWithPolka(V, -1, True))
    no_change(at(Step.PREVOTE, 2), ProposalWithPolka(V, 1, True))


# L34 ---------------------------------------------------------------------------------------------

def test_L34_polka_any_schedules_prevote_timeout_once():
    state, out = apply_input(at(Step.PREVOTE, 1), PolkaAny())
    assert out == StartTimer(Timeout(TimeoutKind.PREVOTE, 7, 1))
    no_change(state, PolkaAny())


def test_L34_near_miss_outside_prevote_step():
    no_change(at(Step.PROPOSE), PolkaAny())
    no_change(at(Step.PRECOMMIT), PolkaAny())


# L36 ---------------------------------------------------------------------------------------------

def test_L36_in_prevote_locks_precommits_and_sets_valid():
    state, out = apply_input(at(Step.PREVOTE, 2), ProposalWithPolkaCurrent(V))
    assert out == CastVote(PC, 2, V)
    assert (state.step, state.locked_value, state.locked_round, state.valid_value, state.valid_round) == \
        (Step.PRECOMMIT, V, 2, V, 2)


def test_L36_in_precommit_only_updates_valid_value():
    state, out = apply_input(at(Step.PRECOMMIT, 2, locked_value=W, locked_round=1), ProposalWithPolkaCurrent(V))
    assert out is None
    assert (state.locked_value, state.locked_round, state.valid_value, state.valid_round) == (W, 1, V, 2)


def test_L36_near_miss_in_propose_or_second_time():
    no_change(at(Step.PROPOSE), ProposalWithPolkaCurrent(V))
    state, _ = apply_input(at(Step.PREVOTE), ProposalWithPolkaCurrent(V))
    no_change(state, ProposalWithPolkaCurrent(V))


# L44 ---------------------------------------------------------------------------------------------

def test_L44_polka_nil_precommits_nil():
    state, out = apply_input(at(Step.PREVOTE, 1), PolkaNil())
    assert state.step == Step.PRECOMMIT and out == CastVote(PC, 1, None)


def test_L44_near_miss_outside_prevote():
    no_change(at(Step.PROPOSE), PolkaNil())
    no_change(at(Step.PRECOMMIT), PolkaNil())


# L47 ---------------------------------------------------------------------------------------------

def test_L47_precommit_any_schedules_precommit_timeout_once_in_any_step():
    for step in (Step.PROPOSE, Step.PREVOTE, Step.PRECOMMIT):
        state, out = apply_input(at(step, 4), PrecommitAny())
        assert out == StartTimer(Timeout(TimeoutKind.PRECOMMIT, 7, 4))
        no_change(state, PrecommitAny())


def test_L47_near_miss_before_the_height_started():
    no_change(RoundState(7), PrecommitAny())


# L49 ---------------------------------------------------------------------------------------------

def test_L49_decides_in_any_round_and_step():
    for step in (Step.PROPOSE, Step.PREVOTE, Step.PRECOMMIT):
        state, out = apply_input(at(step, 5), ProposalWithCommitQuorum(2, V))
        assert out == Decision(2, V)
        assert (state.step, state.decision, state.decision_round) == (Step.COMMIT, V, 2)


def test_L49_near_miss_once_decided_nothing_else_happens():
    state, _ = apply_input(at(Step.PRECOMMIT), ProposalWithCommitQuorum(0, V))
    for inp in (ProposalWithCommitQuorum(1, W), SkipRound(9), PrecommitAny(), StartRound(3, True),
                TimeoutElapsed(Timeout(TimeoutKind.PRECOMMIT, 7, 0))):
        no_change(state, inp)


# L55 ---------------------------------------------------------------------------------------------

def test_L55_skips_to_a_higher_round():
    assert apply_input(at(Step.PREVOTE, 1), SkipRound(4)) == (at(Step.PREVOTE, 1), EnterRound(4))


def test_L55_near_miss_same_or_lower_round():
    no_change(at(Step.PREVOTE, 4), SkipRound(4))
    no_change(at(Step.PREVOTE, 4), SkipRound(2))


# L57 L61 L65 ---------------------------------------------------------------------------------------

def timeout(kind, round_=1, height=7):
    return TimeoutElapsed(Timeout(kind, height, round_))


def test_L57_timeout_propose_prevotes_nil():
    state, out = apply_input(at(Step.PROPOSE, 1), timeout(TimeoutKind.PROPOSE))
    assert state.step == Step.PREVOTE and out == CastVote(PV, 1, None)


def test_L57_near_miss_stale_timer_or_step_already_past_propose():
    no_change(at(Step.PROPOSE, 2), timeout(TimeoutKind.PROPOSE, 1))
    no_change(at(Step.PROPOSE, 1), timeout(TimeoutKind.PROPOSE, 1, height=6))
    no_change(at(Step.PREVOTE, 1), timeout(TimeoutKind.PROPOSE))


def test_L61_timeout_prevote_precommits_nil():
    state, out = apply_input(at(Step.PREVOTE, 1), timeout(TimeoutKind.PREVOTE))
    assert state.step == Step.PRECOMMIT and out == CastVote(PC, 1, None)


def test_L61_near_miss():
    no_change(at(Step.PRECOMMIT, 1), timeout(TimeoutKind.PREVOTE))
    no_change(at(Step.PREVOTE, 2), timeout(TimeoutKind.PREVOTE, 1))


def test_L65_timeout_precommit_starts_next_round_from_any_step():
    for step in (Step.PROPOSE, Step.PREVOTE, Step.PRECOMMIT):
        assert apply_input(at(step, 1), timeout(TimeoutKind.PRECOMMIT))[1] == EnterRound(2)


def test_L65_near_miss_stale_round():
    no_change(at(Step.PRECOMMIT, 2), timeout(TimeoutKind.PRECOMMIT, 1))


# the rest ---------------------------------------------------------------------------------------

def test_timeouts_grow_per_round():
    p = TimeoutParams(propose_ms=300, prevote_ms=100, precommit_ms=200, delta_ms=50)
    assert [p.duration(TimeoutKind.PROPOSE, r) for r in range(3)] == [300, 350, 400]
    assert p.duration(TimeoutKind.PREVOTE, 4) == 300
    assert p.duration(TimeoutKind.PRECOMMIT, 2) == 300


def test_restore_lock_never_lowers_a_lock():
    state = restore_lock(at(Step.PROPOSE, 3), 2, V)
    assert (state.locked_value, state.locked_round, state.valid_value, state.valid_round) == (V, 2, V, 2)
    assert restore_lock(state, 1, W) == state


def test_unknown_input_is_a_type_error():
    with pytest.raises(TypeError):
        apply_input(at(Step.PROPOSE), object())
