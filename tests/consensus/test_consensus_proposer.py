"""Proposer choice against sequences worked out by hand (see the comments)."""

import pytest

from consensus_helpers import make_set
from node.consensus.proposer import (
    CHECKPOINT_EVERY,
    PERIOD_SEARCH_LIMIT,
    advance_priorities,
    center_priorities,
    proposer_for,
    rescale_priorities,
)
from node.types.validators import ValidatorSet


def letters(vs: ValidatorSet, seq: list[bytes]) -> str:
    """Name validators A, B, C... in address order."""
    return "".join("ABCDEFG"[vs.index_of(a)] for a in seq)


def test_equal_powers_rotate_in_address_order():
    # Priorities (0,0,0,0): step 1 adds 1 to each, tie -> lowest address A, A -= 4 -> (-3,1,1,1);
    # step 2 -> (-2,2,2,2) -> B ... a plain rotation A B C D.
    vs, _ = make_set([1, 1, 1, 1])
    assert letters(vs, [proposer_for(vs, h, 0) for h in range(1, 9)]) == "ABCDABCD"
    # Round r of height h is r further steps from height h's priorities.
    assert letters(vs, [proposer_for(vs, 1, r) for r in range(6)]) == "ABCDAB"
    assert letters(vs, [proposer_for(vs, 3, r) for r in range(4)]) == "CDAB"


def test_unequal_powers_3_2_1():
    # Address order powers A=3, B=2, C=1 (total 6); (A, B, C) priorities:
    # 1: (3,2,1) -> A -> (-3,2,1)     2: (0,4,2) -> B -> (0,-2,2)
    # 3: (3,0,3) tie A,C -> A -> (-3,0,3)   4: (0,2,4) -> C -> (0,2,-2)
    # 5: (3,4,-1) -> B -> (3,-2,-1)   6: (6,0,0) -> A -> (0,0,0)  (period 6)
    vs, _ = make_set([1, 1, 1])
    powers = {0: 3, 1: 2, 2: 1}
    vs = ValidatorSet(type(v)(v.name, v.public_key, powers[i]) for i, v in enumerate(vs))
    assert [v.power for v in vs] == [3, 2, 1]
    assert letters(vs, [proposer_for(vs, h, 0) for h in range(1, 13)]) == "ABACBA" * 2
    assert letters(vs, [proposer_for(vs, 2, r) for r in range(5)]) == "BACBA"


def test_heavy_validator_10_to_1():
    # A=10, B=1 (total 11).  After k steps choosing A, priorities are (-k, k); B wins at step 6
    # when (5, 6); then (5,-5) and A wins five times back to (0,0): AAAAABAAAAA, period 11.
    vs, _ = make_set([1, 1])
    vs = ValidatorSet(type(v)(v.name, v.public_key, 10 if i == 0 else 1) for i, v in enumerate(vs))
    assert letters(vs, [proposer_for(vs, h, 0) for h in range(1, 23)]) == "AAAAABAAAAA" * 2


def test_rescale_truncates_toward_zero_like_go():
    p = [-30, 10, 20]
    rescale_priorities(p, 20)  # spread 50 > 20: ratio ceil(50/20) = 3
    assert p == [-10, 3, 6]
    p = [-31, 20]
    rescale_priorities(p, 20)  # ratio 3; -31/3 truncates to -10 (floor would be -11)
    assert p == [-10, 6]
    p = [-5, 5]
    rescale_priorities(p, 20)  # within the window: unchanged
    assert p == [-5, 5]


def test_centering_uses_floored_average():
    p = [-10, 6]
    center_priorities(p)  # avg floor(-4/2) = -2
    assert p == [-8, 8]
    p = [-3, 1, 1]
    center_priorities(p)  # avg floor(-1/3) = -1
    assert p == [-2, 2, 2]


def reference(vs: ValidatorSet, steps: int) -> list[bytes]:
    """Step from genesis without any cache."""
    powers = tuple(v.power for v in vs)
    priorities = [0] * len(vs)
    return [vs.addresses[advance_priorities(priorities, powers, vs.total_power)] for _ in range(steps)]


def test_round_r_of_height_h_is_step_h_plus_r():
    vs, _ = make_set([5, 3, 1, 7])
    expected = reference(vs, 200)
    for h, r in [(1, 0), (1, 5), (7, 0), (7, 13), (150, 49)]:
        assert proposer_for(vs, h, r) == expected[h + r - 1]


def test_periodic_schedule_matches_stepping_far_out():
    # Total power 16: priorities return to zero every 16 steps, so height 10**9 costs a lookup.
    vs, _ = make_set([5, 3, 1, 7])
    expected = reference(vs, 64)
    assert expected[:16] == expected[16:32] == expected[32:48]
    assert proposer_for(vs, 10**9, 0) == expected[(10**9 - 1) % 16]
    assert proposer_for(vs, 10**9, 10**6) == expected[(10**9 + 10**6 - 1) % 16]


def test_large_total_power_uses_checkpoints_and_agrees_with_stepping():
    vs, _ = make_set([1, 1, 1])
    big = (40_009, 30_011, 20_021)  # total 90_041 > PERIOD_SEARCH_LIMIT: no period cached
    vs = ValidatorSet(type(v)(v.name, v.public_key, big[i]) for i, v in enumerate(vs))
    assert vs.total_power > PERIOD_SEARCH_LIMIT
    n = PERIOD_SEARCH_LIMIT + 3 * CHECKPOINT_EVERY + 17
    expected = reference(vs, n)
    for step in [n, 5, PERIOD_SEARCH_LIMIT + 1, n - 1, PERIOD_SEARCH_LIMIT + CHECKPOINT_EVERY, 3, n]:
        assert proposer_for(vs, step, 0) == expected[step - 1]
    assert proposer_for(vs, PERIOD_SEARCH_LIMIT, 2 * CHECKPOINT_EVERY) == expected[PERIOD_SEARCH_LIMIT
                                                                               + 2 * CHECKPOINT_EVERY - 1]


def test_frequency_follows_power():
    vs, _ = make_set([1, 2, 3, 4])
    counts = {a: 0 for a in vs.addresses}
    for h in range(1, 1001):
        counts[proposer_for(vs, h, 0)] += 1
    assert [counts[v.address] for v in vs] == [v.power * 100 for v in vs]


def test_heights_start_at_one_and_rounds_at_zero():
    vs, _ = make_set([1, 1])
    with pytest.raises(ValueError):
        proposer_for(vs, 0, 0)
    with pytest.raises(ValueError):
        proposer_for(vs, 1, -1)
