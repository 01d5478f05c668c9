"""An equivocator's vote for the value that matters must count, whatever it sent before.

A Byzantine validator that signs several votes in one (round, type) cannot be allowed to decide which of
them the node counts: an honest node may have locked or decided on the strength of its vote for V (sent to
that node only), and the rest of the honest nodes must be able to count the same vote when it is relayed to
them, or they wait for each other forever.
"""

from consensus_helpers import Harness, value
from node.consensus.driver import BroadcastVote, Decide, ReportEvidence
from node.consensus.messages import VoteType
from node.consensus.round_machine import Step
from node.consensus.vote_keeper import MAX_HELD_PER_VALIDATOR
from node.consensus.wal import MemoryWAL
from node.crypto import sha256

PV, PC = VoteType.PREVOTE, VoteType.PRECOMMIT
VAL = value("a")
VID = sha256(VAL)


def non_proposer(**kw) -> Harness:
    h = Harness([1, 1, 1, 1], me=2, **kw)
    assert h.proposer_index(1, 0) != 2
    return h


def votes_of(actions, vote_type=None):
    return [a.vote for a in actions if isinstance(a, BroadcastVote)
            and (vote_type is None or a.vote.vote_type == vote_type)]


def of_type(actions, cls):
    return [a for a in actions if isinstance(a, cls)]


def decoy_proposals(h: Harness, count: int) -> list[bytes]:
    """Proposals from later rounds' proposers (the driver admits a few rounds ahead): values it holds."""
    ids = []
    for r in range(1, 20):
        if len(ids) == count:
            break
        if h.proposer_index(1, r) == 2:
            continue
        decoy = value(f"decoy-{r}")
        h.driver.on_proposal(h.proposal(1, r, decoy))
        if h.driver.proposal_for(sha256(decoy)) is not None:
            ids.append(sha256(decoy))
    assert len(ids) == count
    return ids


def test_vote_after_nil_and_three_other_proposed_values_still_completes_polka_and_commit():
    h = non_proposer()
    h.driver.start_height(1)
    byzantine, honest = h.others()[0], h.others()[1]  # the third other validator is silent
    decoys = decoy_proposals(h, 3)
    actions = h.driver.on_proposal(h.proposal(1, 0, VAL))
    assert [(v.vote_type, v.block_hash) for v in votes_of(actions)] == [(PV, VID)]
    reports = []
    for vote_type in (PV, PC):
        for junk in [None, *decoys]:
            reports += of_type(h.driver.on_vote(h.vote(byzantine, vote_type, 1, 0, junk)), ReportEvidence)
        h.driver.on_vote(h.vote(honest, vote_type, 1, 0, VID))
        actions = h.driver.on_vote(h.vote(byzantine, vote_type, 1, 0, VID))  # the vote that matters
        if vote_type == PV:  # me + honest + byzantine: a polka, so we lock and precommit
            assert [(v.vote_type, v.block_hash) for v in votes_of(actions)] == [(PC, VID)]
            assert (h.driver.locked_round, h.driver.locked_value) == (0, VID)
    [decide] = of_type(actions, Decide)
    assert decide.block_hash == VID and byzantine in [cs.validator for cs in decide.commit.signatures]
    # Evidence once per (round, type), with the first vote (nil) and the first conflicting one.
    assert [(r.evidence.vote_type, r.evidence.first.block_hash, r.evidence.second.block_hash)
            for r in reports] == [(PV, None, decoys[0]), (PC, None, decoys[0])]


def test_many_proposed_values_never_crowd_out_the_one_that_matters():
    h = non_proposer()
    h.driver.start_height(1)
    byzantine, honest = h.others()[0], h.others()[1]
    decoys = decoy_proposals(h, 6)
    h.driver.on_proposal(h.proposal(1, 0, VAL))
    for junk in [None, *decoys]:
        h.driver.on_vote(h.vote(byzantine, PV, 1, 0, junk))
    h.driver.on_vote(h.vote(honest, PV, 1, 0, VID))
    actions = h.driver.on_vote(h.vote(byzantine, PV, 1, 0, VID))
    assert [(v.vote_type, v.block_hash) for v in votes_of(actions)] == [(PC, VID)]


def test_conflicting_vote_before_its_proposal_counts_once_the_proposal_arrives():
    wal = MemoryWAL()
    h = non_proposer(wal=wal)
    h.driver.start_height(1)
    byzantine, honest = h.others()[0], h.others()[1]
    for vote_type in (PV, PC):
        h.driver.on_vote(h.vote(byzantine, vote_type, 1, 0, None))
        h.driver.on_vote(h.vote(byzantine, vote_type, 1, 0, VID))  # no proposal for VID yet: held
        h.driver.on_vote(h.vote(honest, vote_type, 1, 0, VID))
    assert h.driver.step == Step.PROPOSE and h.driver.decision is None
    actions = h.driver.on_proposal(h.proposal(1, 0, VAL))
    # L22 prevote, then a polka with the held prevote (L36), then a commit quorum with the held precommit.
    assert [(v.vote_type, v.block_hash) for v in votes_of(actions)] == [(PV, VID), (PC, VID)]
    [decide] = of_type(actions, Decide)
    assert sorted(cs.validator for cs in decide.commit.signatures) == sorted([h.me, byzantine, honest])
    # The held votes were logged once they counted: a restart replays the same decision.
    wal.crash()
    h.driver = h.new_driver()
    [again] = of_type(h.driver.start_height(1), Decide)
    assert again.block_hash == VID and again.commit == decide.commit


def test_held_votes_are_bounded_per_validator():
    h = non_proposer()
    h.driver.start_height(1)
    byzantine = h.others()[0]
    h.driver.on_vote(h.vote(byzantine, PV, 1, 0, None))
    for i in range(MAX_HELD_PER_VALIDATOR + 5):
        h.driver.on_vote(h.vote(byzantine, PV, 1, 0, sha256(b"junk%d" % i)))
    assert h.driver._keeper.held_count(byzantine) == MAX_HELD_PER_VALIDATOR
    assert len(h.driver.evidence) == 1


# ---------------------------------------------------------------------------- the keeper on its own


def _keeper():
    from consensus_helpers import make_set
    from node.consensus.vote_keeper import VoteKeeper
    vs, keys = make_set([1, 1, 1, 1])
    return VoteKeeper(vs, 1), vs.addresses, keys


def test_keeper_counts_conflicting_votes_per_value_without_slots():
    from consensus_helpers import vote
    k, a, keys = _keeper()
    k.add_vote(vote(keys, a[0], PV, 1, 0, None))
    for i in range(10):
        assert k.add_vote(vote(keys, a[0], PV, 1, 0, sha256(b"other%d" % i)), count_conflicting=True).counted
    k.add_vote(vote(keys, a[1], PV, 1, 0, VID))
    k.add_vote(vote(keys, a[2], PV, 1, 0, VID))
    assert k.polka_value(0) is None
    assert k.add_vote(vote(keys, a[0], PV, 1, 0, VID), count_conflicting=True).counted
    assert k.polka_value(0) == VID
    assert len(k.evidence) == 1 and len(k.votes(0, PV)) == 3  # evidence once; first votes only


def test_keeper_holds_conflicting_votes_until_count_held_and_drops_the_oldest():
    from consensus_helpers import vote
    k, a, keys = _keeper()
    k.add_vote(vote(keys, a[0], PC, 1, 0, None))
    nil_again = vote(keys, a[0], PV, 1, 0, None)
    k.add_vote(vote(keys, a[0], PV, 1, 0, VID))
    r = k.add_vote(nil_again)
    assert not r.counted and not r.held  # nil never waits for a proposal
    for_v = vote(keys, a[0], PC, 1, 0, VID)
    r = k.add_vote(for_v)
    assert not r.counted and r.held and r.evidence is not None
    assert k.contains(for_v) and not k.add_vote(for_v).counted
    k.add_vote(vote(keys, a[1], PC, 1, 0, VID))
    k.add_vote(vote(keys, a[2], PC, 1, 0, VID))
    assert k.precommit_value(0) is None
    [(vote_, result)] = k.count_held(VID)
    assert vote_ == for_v and result.counted and result.evidence is None
    assert k.precommit_value(0) == VID and k.held_count(a[0]) == 0 and k.count_held(VID) == []
    # Bounded per validator: the oldest held vote goes first.
    junk = [vote(keys, a[0], PC, 1, 0, sha256(b"junk%d" % i)) for i in range(MAX_HELD_PER_VALIDATOR + 1)]
    for j in junk:
        k.add_vote(j)
    assert k.held_count(a[0]) == MAX_HELD_PER_VALIDATOR
    assert not k.contains(junk[0]) and k.contains(junk[-1])
