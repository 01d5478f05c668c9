from consensus_helpers import make_set, vote
from node.consensus.messages import VoteType
from node.consensus.vote_keeper import Evidence, ThresholdKind, VoteKeeper
from node.crypto import sha256

PV, PC = VoteType.PREVOTE, VoteType.PRECOMMIT
V, W = sha256(b"v"), sha256(b"w")


def setup(powers):
    vs, keys = make_set(powers)
    return VoteKeeper(vs, 1), vs.addresses, keys


def kinds(result):
    return {(t.kind, t.round, t.value_id) for t in result.thresholds}


def test_polka_for_a_value_needs_more_than_two_thirds_and_fires_once():
    k, a, keys = setup([1, 1, 1, 1])
    assert kinds(k.add_vote(vote(keys, a[0], PV, 1, 0, V))) == set()
    r = k.add_vote(vote(keys, a[1], PV, 1, 0, V))
    assert (ThresholdKind.SKIP_ROUND, 0, None) in kinds(r)  # 2 of 4 > 1/3
    assert k.polka_value(0) is None and not k.has_polka_any(0)
    r = k.add_vote(vote(keys, a[2], PV, 1, 0, V))
    assert kinds(r) == {(ThresholdKind.POLKA_VALUE, 0, V), (ThresholdKind.POLKA_ANY, 0, None)}
    assert k.polka_value(0) == V and k.has_polka_any(0)
    assert kinds(k.add_vote(vote(keys, a[3], PV, 1, 0, V))) == set()  # already emitted


def test_polka_nil_and_polka_any_from_mixed_votes():
    k, a, keys = setup([1, 1, 1, 1])
    k.add_vote(vote(keys, a[0], PV, 1, 2, None))
    k.add_vote(vote(keys, a[1], PV, 1, 2, V))
    r = k.add_vote(vote(keys, a[2], PV, 1, 2, None))
    assert kinds(r) == {(ThresholdKind.POLKA_ANY, 2, None)}  # 3 votes, but no value has 3
    assert not k.has_polka_nil(2)
    r = k.add_vote(vote(keys, a[3], PV, 1, 2, None))
    assert kinds(r) == {(ThresholdKind.POLKA_NIL, 2, None)}
    assert k.has_polka_nil(2) and k.polka_value(2) is None


def test_precommit_thresholds():
    k, a, keys = setup([1, 1, 1, 1])
    k.add_vote(vote(keys, a[0], PC, 1, 0, V))
    k.add_vote(vote(keys, a[1], PC, 1, 0, None))
    r = k.add_vote(vote(keys, a[2], PC, 1, 0, V))
    assert kinds(r) == {(ThresholdKind.PRECOMMIT_ANY, 0, None)}
    assert k.precommit_value(0) is None and k.has_precommit_any(0)
    r = k.add_vote(vote(keys, a[3], PC, 1, 0, V))
    assert kinds(r) == {(ThresholdKind.PRECOMMIT_VALUE, 0, V)}
    assert k.precommit_quorums() == [(0, V)]
    assert [v.validator for v in k.precommits_for(0, V)] == sorted([a[0], a[2], a[3]])


def test_weights_not_heads():
    # Powers 4, 1, 1 (total 6): the big validator alone is > 1/3 but not > 2/3.
    k, a, keys = setup([4, 1, 1])
    big = max(a, key=lambda x: k.validators.power_of(x))
    small = [x for x in a if x != big]
    r = k.add_vote(vote(keys, big, PV, 1, 5, V))
    assert kinds(r) == {(ThresholdKind.SKIP_ROUND, 5, None)}
    assert k.highest_skip_round() == 5
    k2, _, _ = setup([4, 1, 1])
    k2.add_vote(vote(keys, small[0], PV, 1, 0, V))
    r = k2.add_vote(vote(keys, small[1], PV, 1, 0, V))
    assert kinds(r) == set()  # 2 of 6 is not > 1/3
    r = k2.add_vote(vote(keys, big, PV, 1, 0, V))
    assert (ThresholdKind.POLKA_VALUE, 0, V) in kinds(r)


def test_skip_round_counts_distinct_validators_across_vote_types():
    k, a, keys = setup([1, 1, 1, 1])
    k.add_vote(vote(keys, a[0], PV, 1, 3, V))
    r = k.add_vote(vote(keys, a[0], PC, 1, 3, V))  # same validator again: still 1 of 4
    assert kinds(r) == set()
    r = k.add_vote(vote(keys, a[1], PC, 1, 3, None))
    assert (ThresholdKind.SKIP_ROUND, 3, None) in kinds(r)
    assert k.skip_rounds() == [3]


def test_duplicates_count_once_and_wrong_height_or_stranger_not_at_all():
    k, a, keys = setup([1, 1, 1, 1])
    v = vote(keys, a[0], PV, 1, 0, V)
    assert k.add_vote(v).counted
    assert not k.add_vote(v).counted
    assert k.contains(v)
    assert not k.add_vote(vote(keys, a[1], PV, 2, 0, V)).counted
    stranger_vs, stranger_keys = make_set([1, 1, 1, 1, 1])
    outsider = [x for x in stranger_vs.addresses if x not in a][0]
    assert not k.add_vote(vote(stranger_keys, outsider, PV, 1, 0, V)).counted


def test_equivocation_is_evidence_and_does_not_count_toward_anything():
    k, a, keys = setup([1, 1, 1, 1])
    first = vote(keys, a[0], PV, 1, 0, V)
    second = vote(keys, a[0], PV, 1, 0, W)
    third = vote(keys, a[0], PV, 1, 0, None)
    k.add_vote(first)
    r = k.add_vote(second)
    assert not r.counted and r.evidence == Evidence(first, second)
    assert r.evidence.validator == a[0] and r.evidence.round == 0 and r.evidence.vote_type == PV
    assert k.add_vote(third).evidence is None  # reported once per (round, type)
    assert k.evidence == [Evidence(first, second)]
    assert Evidence.decode(r.evidence.encode()) == r.evidence
    # The equivocator still counts once toward "anything".
    k.add_vote(vote(keys, a[1], PV, 1, 0, W))
    assert not k.has_polka_any(0)
    assert kinds(k.add_vote(vote(keys, a[2], PV, 1, 0, W))) == {(ThresholdKind.POLKA_ANY, 0, None)}
    assert k.polka_value(0) is None  # W has a[1], a[2] only


def test_conflicting_vote_may_complete_a_quorum_for_its_own_value():
    # a[0] sent us nil but signed V too (relayed by a peer): V's signers are a[0], a[1], a[2].
    k, a, keys = setup([1, 1, 1, 1])
    k.add_vote(vote(keys, a[0], PC, 1, 0, None))
    k.add_vote(vote(keys, a[1], PC, 1, 0, V))
    k.add_vote(vote(keys, a[2], PC, 1, 0, V))
    assert k.precommit_value(0) is None
    r = k.add_vote(vote(keys, a[0], PC, 1, 0, V), count_conflicting=True)
    assert r.counted and r.evidence is not None
    assert kinds(r) == {(ThresholdKind.PRECOMMIT_VALUE, 0, V)}
    assert [v.validator for v in k.precommits_for(0, V)] == sorted(a[:3])
    assert len(k.votes(0, PC)) == 3  # first votes only
