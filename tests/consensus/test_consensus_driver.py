"""The driver: intake checks, upon-rules through real signed messages, decisions, restarts."""

from dataclasses import replace

from consensus_helpers import CHAIN, PARAMS, Harness, make_set, value, vote
from node.consensus.certificate import build_commit, verify_commit
from node.consensus.driver import BroadcastProposal, BroadcastVote, Decide, ReportEvidence, ScheduleTimeout
from node.consensus.intake import MAX_FUTURE_ROUNDS_PER_VALIDATOR
from node.consensus.messages import VoteType
from node.consensus.round_machine import Step, Timeout, TimeoutKind
from node.consensus.signer import MemorySigner
from node.consensus.wal import MemoryWAL
from node.crypto import sha256

PV, PC = VoteType.PREVOTE, VoteType.PRECOMMIT
VAL = value("a")
VID = sha256(VAL)


def votes_of(actions, vote_type=None):
    return [a.vote for a in actions if isinstance(a, BroadcastVote)
            and (vote_type is None or a.vote.vote_type == vote_type)]


def of_type(actions, cls):
    return [a for a in actions if isinstance(a, cls)]


def non_proposer(powers=(1, 1, 1, 1), **kw) -> Harness:
    """A harness whose node (third in address order) does not propose in rounds 0 and 1 of height 1."""
    h = Harness(list(powers), me=2, **kw)
    assert h.proposer_index(1, 0) != 2 and h.proposer_index(1, 1) != 2
    return h


def skip_to(h: Harness, round_: int) -> None:
    """Two nil precommits from round ``round_`` (f+1 of 4): L55 takes us there."""
    feed_votes(h, h.others()[:2], PC, round_, None)
    assert h.driver.round == round_


def feed_votes(h: Harness, who, vote_type, round_, block, height=1):
    actions = []
    for a in who:
        actions += h.driver.on_vote(h.vote(a, vote_type, height, round_, block))
    return actions


# ---------------------------------------------------------------------------- whole heights


def test_single_validator_decides_alone_with_its_own_messages_fed_back():
    h = Harness([1], me=0)
    actions = h.driver.start_height(1)
    assert len(of_type(actions, BroadcastProposal)) == 1
    assert [v.vote_type for v in votes_of(actions)] == [PV, PC]
    [decide] = of_type(actions, Decide)
    assert decide.height == 1 and decide.round == 0 and decide.block_hash == sha256(decide.value)
    verify_commit(CHAIN, h.vs, decide.commit, decide.block_hash, 1)
    assert h.driver.step == Step.COMMIT and h.driver.commit_complete


def test_non_proposer_goes_through_a_height():
    h = non_proposer()
    a = h.addresses
    start = h.driver.start_height(1)
    assert start == [ScheduleTimeout(Timeout(TimeoutKind.PROPOSE, 1, 0), PARAMS.propose_ms)]
    actions = h.driver.on_proposal(h.proposal(1, 0, VAL))  # L22
    assert [(v.vote_type, v.round, v.block_hash) for v in votes_of(actions)] == [(PV, 0, VID)]
    assert h.driver.step == Step.PREVOTE
    others = [x for x in a if x != h.me]
    assert feed_votes(h, others[:1], PV, 0, VID) == []
    actions = feed_votes(h, others[1:2], PV, 0, VID)  # polka: L36
    assert [(v.vote_type, v.block_hash) for v in votes_of(actions)] == [(PC, VID)]
    assert h.driver.locked_round == 0 and h.driver.locked_value == VID
    assert feed_votes(h, others[:1], PC, 0, VID) == []
    [decide] = of_type(feed_votes(h, others[1:2], PC, 0, VID), Decide)  # L49
    assert (decide.height, decide.round, decide.value, decide.block_hash) == (1, 0, VAL, VID)
    assert len(decide.commit.signatures) == 3
    verify_commit(CHAIN, h.vs, decide.commit, VID, 1)
    # Late precommits still count toward the certificate while the caller commits.
    assert not h.driver.commit_complete
    feed_votes(h, others[2:], PC, 0, VID)
    commit = h.driver.commit_for_decided()
    assert commit.round == 0 and len(commit.signatures) == 4
    assert [cs.validator for cs in commit.signatures] == sorted(a)
    assert h.driver.commit_complete
    assert h.driver.height == 1  # stays until told
    h.driver.start_height(2)
    assert (h.driver.height, h.driver.round, h.driver.locked_round) == (2, 0, -1)


def test_proposer_builds_a_value_and_reproposes_its_valid_value():
    h = Harness([1, 1, 1, 1], me=0)
    assert h.proposer_index(1, 0) == 0
    [proposal] = [x.proposal for x in of_type(h.driver.start_height(1), BroadcastProposal)]
    assert proposal.pol_round == -1 and h.built == 1 and proposal.block_hash == sha256(proposal.value)
    others = h.others()
    feed_votes(h, others[:2], PV, 0, proposal.block_hash)  # polka -> locked and valid at round 0
    assert h.driver.valid_round == 0
    feed_votes(h, others, PC, 0, None)  # L47, then L65 -> round 1
    h.driver.on_timeout(Timeout(TimeoutKind.PRECOMMIT, 1, 0))
    assert h.driver.round == 1
    proposer_round = next(r for r in range(1, 20) if h.proposer_index(1, r) == 0)
    feed_votes(h, others[:2], PV, proposer_round, None)  # f+1 at that round: L55 skips there
    assert h.driver.round == proposer_round
    [again] = h.driver.proposals_in(proposer_round)
    assert (again.value, again.pol_round) == (proposal.value, 0) and h.built == 1


def test_non_validator_follows_and_decides_without_sending_anything():
    h = Harness([1, 1, 1, 1], me=None)
    a = h.addresses
    actions = h.driver.start_height(1)
    actions += h.driver.on_proposal(h.proposal(1, 0, VAL))
    actions += feed_votes(h, a[:3], PV, 0, VID)
    actions += feed_votes(h, a[:3], PC, 0, VID)
    assert not votes_of(actions) and not of_type(actions, BroadcastProposal)
    assert of_type(actions, Decide)[0].value == VAL


# ---------------------------------------------------------------------------- intake checks


def test_drops_bad_input():
    h = non_proposer()
    h.driver.start_height(1)
    other = [x for x in h.others() if x != h.addresses[h.proposer_index(1, 0)]][0]
    good = h.vote(other, PV, 1, 0, VID)
    stranger_vs, stranger_keys = make_set([1, 1, 1, 1, 1])
    stranger = [x for x in stranger_vs.addresses if x not in h.vs][0]
    assert h.driver.on_vote(replace(good, signature=b"\x01" * 64)) == []  # bad signature
    assert h.driver.on_vote(replace(good, block_hash=sha256(b"other"))) == []  # signature for something else
    assert h.driver.on_vote(vote(stranger_keys, stranger, PV, 1, 0, VID)) == []  # not a validator
    assert h.driver.on_vote(replace(good, round=-1)) == []  # malformed
    assert h.driver.on_vote(replace(good, validator=b"short")) == []
    assert h.driver.on_vote("not a vote") == []
    assert h.driver.on_proposal(h.vote(other, PV, 1, 0, VID)) == []
    wrong_proposer = replace(h.proposal(1, 0, VAL), proposer=other)
    assert h.driver.on_proposal(wrong_proposer) == []
    p = h.proposal(1, 0, VAL)
    assert h.driver.on_proposal(replace(p, value=b"tampered")) == []  # value does not hash to block_hash
    assert h.driver.on_proposal(replace(p, pol_round=0)) == []  # pol_round must be < round
    assert h.driver.on_proposal(replace(p, signature=bytes(64))) == []
    assert h.driver.step == Step.PROPOSE  # none of it counted
    assert h.driver.on_vote(good) == []  # the good one is taken (no threshold yet)


def test_proposal_from_someone_other_than_the_rounds_proposer_is_dropped():
    h = non_proposer()
    h.driver.start_height(1)
    from node.consensus.messages import sign_proposal
    impostor = [x for x in h.others() if x != h.addresses[h.proposer_index(1, 0)]][0]
    p = sign_proposal(CHAIN, h.keys[impostor], impostor, 1, 0, -1, VID, VAL)
    assert h.driver.on_proposal(p) == []


def test_past_far_future_and_next_height_messages():
    h = non_proposer()
    others = h.others()
    h.driver.start_height(1)
    assert feed_votes(h, others, PV, 0, VID, height=3) == []  # far ahead: dropped, not buffered
    next_val = value("next")
    assert h.proposer_index(2, 0) != 2
    assert h.driver.on_proposal(h.proposal(2, 0, next_val)) == []  # next height: buffered
    assert feed_votes(h, others, PV, 0, sha256(next_val), height=2) == []
    assert h.driver.step == Step.PROPOSE and h.driver.round == 0
    actions = h.driver.start_height(2)
    # Replayed: our prevote for the proposal, then the buffered polka makes us precommit.
    assert [(v.vote_type, v.block_hash) for v in votes_of(actions)] == [(PV, sha256(next_val)),
                                                                          (PC, sha256(next_val))]
    assert feed_votes(h, others, PC, 0, VID, height=1) == []  # past
    h.driver.start_height(3)
    assert [v.validator for v in h.driver._keeper.votes(0, PV)] in ([], [h.me])  # height-3 votes were not kept


def test_validity_is_checked_once_per_block_and_invalid_gets_nil():
    h = non_proposer()
    h.driver.start_height(1)
    bad = b"bad block"
    actions = h.driver.on_proposal(h.proposal(1, 0, bad))
    assert [(v.vote_type, v.block_hash) for v in votes_of(actions)] == [(PV, None)]
    others = h.others()
    feed_votes(h, others, PV, 0, sha256(bad))  # even a polka for it does not make us precommit it
    assert h.driver.locked_round == -1
    feed_votes(h, others, PC, 0, sha256(bad))  # nor decide it
    assert h.driver.decision is None
    assert h.valid_calls == [bad]


def test_equivocation_is_reported():
    h = non_proposer()
    h.driver.start_height(1)
    other = h.others()[0]
    h.driver.on_vote(h.vote(other, PV, 1, 0, VID))
    actions = h.driver.on_vote(h.vote(other, PV, 1, 0, None))
    [report] = of_type(actions, ReportEvidence)
    assert report.evidence.first.block_hash == VID and report.evidence.second.block_hash is None
    assert h.driver.evidence == [report.evidence]


def test_future_rounds_per_validator_are_bounded():
    h = non_proposer()
    h.driver.start_height(1)
    spammer = h.others()[0]
    for r in range(10, 30):
        h.driver.on_vote(h.vote(spammer, PV, 1, r, VID))
    assert len(h.driver._keeper.rounds()) == MAX_FUTURE_ROUNDS_PER_VALIDATOR


# ---------------------------------------------------------------------------- upon-rules via messages


def run_round_0_to_nil(h: Harness):
    """Round 0 ends with nil precommits: we time out on the proposal, everyone else prevotes V."""
    others = h.others()
    h.driver.on_timeout(Timeout(TimeoutKind.PROPOSE, 1, 0))  # L57: prevote nil
    actions = feed_votes(h, others, PV, 0, VID)  # polka for V, but no proposal: L34 timer only
    assert of_type(actions, ScheduleTimeout)[0].timeout == Timeout(TimeoutKind.PREVOTE, 1, 0)
    assert h.driver.locked_round == -1
    actions = h.driver.on_timeout(Timeout(TimeoutKind.PREVOTE, 1, 0))  # L61
    assert [(v.vote_type, v.block_hash) for v in votes_of(actions)] == [(PC, None)]
    feed_votes(h, others, PC, 0, None)  # L47
    actions = h.driver.on_timeout(Timeout(TimeoutKind.PRECOMMIT, 1, 0))  # L65
    assert h.driver.round == 1


def test_L28_prevotes_a_reproposal_backed_by_an_earlier_polka():
    h = Harness([1, 1, 1, 1], me=2)
    h.driver.start_height(1)
    run_round_0_to_nil(h)
    assert h.proposer_index(1, 1) != 2
    actions = h.driver.on_proposal(h.proposal(1, 1, VAL, pol_round=0))
    assert [(v.vote_type, v.round, v.block_hash) for v in votes_of(actions)] == [(PV, 1, VID)]


def test_L28_near_miss_without_the_polka_waits_for_the_timeout():
    h = Harness([1, 1, 1, 1], me=2)
    h.driver.start_height(1)
    h.driver.on_timeout(Timeout(TimeoutKind.PROPOSE, 1, 0))
    feed_votes(h, h.others(), PV, 0, None)
    h.driver.on_timeout(Timeout(TimeoutKind.PREVOTE, 1, 0))
    feed_votes(h, h.others(), PC, 0, None)
    h.driver.on_timeout(Timeout(TimeoutKind.PRECOMMIT, 1, 0))
    assert h.driver.on_proposal(h.proposal(1, 1, VAL, pol_round=0)) == []
    actions = h.driver.on_timeout(Timeout(TimeoutKind.PROPOSE, 1, 1))
    assert [(v.vote_type, v.block_hash) for v in votes_of(actions)] == [(PV, None)]


def test_L36_locked_node_rejects_other_value_until_a_newer_polka():
    h = non_proposer()
    h.driver.start_height(1)
    others = h.others()
    h.driver.on_proposal(h.proposal(1, 0, VAL))
    feed_votes(h, others[:2], PV, 0, VID)  # lock on VAL at round 0
    feed_votes(h, others, PC, 0, None)
    h.driver.on_timeout(Timeout(TimeoutKind.PRECOMMIT, 1, 0))
    other = value("b")
    r = next(r for r in range(1, 10) if h.proposer_index(1, r) != 2)
    skip_to(h, r)
    actions = h.driver.on_proposal(h.proposal(1, r, other))  # L22 while locked on another value
    assert [(v.vote_type, v.block_hash) for v in votes_of(actions)] == [(PV, None)]


def test_L55_skips_on_f_plus_1_and_not_on_f():
    h = non_proposer()
    h.driver.start_height(1)
    others = h.others()
    feed_votes(h, others[:1], PC, 5, None)
    assert h.driver.round == 0  # 1 of 4 is not > 1/3
    actions = feed_votes(h, others[1:2], PV, 5, None)
    assert h.driver.round == 5
    assert any(isinstance(x, ScheduleTimeout) and x.timeout.round == 5 for x in actions) or \
        of_type(actions, BroadcastProposal)


def test_timeouts_grow_with_the_round():
    h = non_proposer()
    h.driver.start_height(1)
    skip_to(h, 3)
    assert not of_type(h.driver.on_timeout(Timeout(TimeoutKind.PROPOSE, 1, 3)), ScheduleTimeout)
    actions = feed_votes(h, h.others()[:2], PV, 3, VID)  # nil, V, V: 2f+1 prevotes for nothing in particular
    [t] = of_type(actions, ScheduleTimeout)
    assert t.timeout == Timeout(TimeoutKind.PREVOTE, 1, 3) and t.delay_ms == PARAMS.prevote_ms + 3 * PARAMS.delta_ms


# ---------------------------------------------------------------------------- catch-up by certificate


def test_on_commit_decides_from_a_verified_certificate_only():
    h = non_proposer()
    h.driver.start_height(1)
    a = h.addresses
    precommits = [h.vote(x, PC, 1, 3, VID) for x in a[:3]]
    commit = build_commit(1, 3, VID, precommits)
    assert h.driver.on_commit(VAL, replace(commit, round=2)) == []  # signatures are for round 3
    assert h.driver.on_commit(value("other"), commit) == []  # not the certified block
    assert h.driver.on_commit(VAL, build_commit(1, 3, VID, precommits[:2])) == []  # not enough power
    [decide] = of_type(h.driver.on_commit(VAL, commit), Decide)
    assert (decide.round, decide.value) == (3, VAL)
    verify_commit(CHAIN, h.vs, decide.commit, VID, 1)


def test_on_commit_refuses_an_invalid_block():
    h = non_proposer()
    h.driver.start_height(1)
    bad = b"bad block"
    commit = build_commit(1, 0, sha256(bad), [h.vote(x, PC, 1, 0, sha256(bad)) for x in h.addresses])
    assert h.driver.on_commit(bad, commit) == []


# ---------------------------------------------------------------------------- restarts


def test_restart_replays_the_wal_and_resumes_the_round():
    wal = MemoryWAL()
    h = non_proposer(wal=wal)
    h.driver.start_height(1)
    others = h.others()
    h.driver.on_proposal(h.proposal(1, 0, VAL))
    feed_votes(h, others[:2], PV, 0, VID)  # locked, precommitted
    feed_votes(h, others, PC, 0, None)
    h.driver.on_timeout(Timeout(TimeoutKind.PRECOMMIT, 1, 0))  # now in round 1
    h.driver.on_timeout(Timeout(TimeoutKind.PROPOSE, 1, 1))  # prevoted nil in round 1
    own_before = [m for t in (PV, PC) for m in h.driver.votes_in(0, t) if m.validator == h.me]
    wal.crash()
    h.driver = h.new_driver()  # same signer, same WAL
    actions = h.driver.start_height(1)
    assert (h.driver.round, h.driver.step, h.driver.locked_round) == (1, Step.PREVOTE, 0)
    resent = votes_of(actions)
    assert {(v.vote_type, v.round, v.block_hash) for v in resent} == \
        {(PV, 0, VID), (PC, 0, VID), (PV, 1, None)}
    assert {v for v in resent if v.round == 0} >= set(own_before)
    # It carries on: a polka for nil in round 1 makes it precommit nil.
    actions = feed_votes(h, others, PV, 1, None)
    assert [(v.vote_type, v.round, v.block_hash) for v in votes_of(actions)] == [(PC, 1, None)]


def test_restart_of_a_proposer_resends_the_same_proposal():
    wal = MemoryWAL()
    h = Harness([1, 1, 1, 1], me=0, wal=wal)
    [first] = of_type(h.driver.start_height(1), BroadcastProposal)
    h.driver = h.new_driver()
    actions = h.driver.start_height(1)
    assert of_type(actions, BroadcastProposal) == [first] and h.built == 1


def test_restart_without_wal_restores_the_lock_and_never_signs_twice():
    h = non_proposer()
    signer = h.signer
    h.driver.start_height(1)
    others = h.others()
    h.driver.on_proposal(h.proposal(1, 0, VAL))
    feed_votes(h, others[:2], PV, 0, VID)
    assert h.driver.locked_round == 0
    h.driver = h.new_driver()  # the log is gone, the signer's file is not
    h.driver.start_height(1)
    assert (h.driver.locked_round, h.driver.locked_value) == (0, VID)
    # Round 0 again: the node would now prevote nil on a timeout, but it already prevoted VAL there:
    # it never signs the nil prevote, and sends the one it holds again instead of staying silent.
    actions = h.driver.on_timeout(Timeout(TimeoutKind.PROPOSE, 1, 0))
    assert [(v.vote_type, v.round, v.block_hash) for v in votes_of(actions)] == [(PV, 0, VID)]
    assert isinstance(signer, MemorySigner)
    # And in a later round the restored lock decides its prevote.
    skip_to(h, 1)
    actions = h.driver.on_proposal(h.proposal(1, 1, value("other")))
    assert [(v.vote_type, v.block_hash) for v in votes_of(actions)] == [(PV, None)]


def test_callbacks_that_raise_on_untrusted_bytes_do_not_stop_the_driver():
    def picky_id(v: bytes) -> bytes:
        if v.startswith(b"garbage"):
            raise ValueError("cannot decode")
        return sha256(v)

    def exploding_valid(height: int, v: bytes) -> bool:
        if v.startswith(b"boom"):
            raise RuntimeError("ledger bug")
        return True

    h = non_proposer(valid=exploding_valid)
    h.driver = type(h.driver)(chain_id=CHAIN, validators=h.vs, signer=h.signer, params=PARAMS,
                              is_valid=exploding_valid, value_id=picky_id, get_value=lambda hh, r: b"x",
                              now_ms=lambda: 0)
    h.driver.start_height(1)
    from node.consensus.messages import sign_proposal
    proposer = h.addresses[h.proposer_index(1, 0)]
    garbage = b"garbage block"
    p = sign_proposal(CHAIN, h.keys[proposer], proposer, 1, 0, -1, sha256(garbage), garbage)
    assert h.driver.on_proposal(p) == []
    actions = h.driver.on_proposal(h.proposal(1, 0, b"boom block"))
    assert [(v.vote_type, v.block_hash) for v in votes_of(actions)] == [(PV, None)]
