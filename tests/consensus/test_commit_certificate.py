from dataclasses import replace

import pytest

from consensus_helpers import CHAIN, make_set, vote
from node.consensus.certificate import CertificateError, build_commit, commit_votes, verify_commit
from node.consensus.messages import VoteType
from node.crypto import sha256
from node.types.commit import Commit, CommitSig

BLOCK = sha256(b"block")
PC = VoteType.PRECOMMIT


def certificate(signers, height=5, round_=2, block=BLOCK, powers=(1, 1, 1, 1)):
    vs, keys = make_set(list(powers))
    a = vs.addresses
    votes = [vote(keys, a[i], PC, height, round_, block) for i in signers]
    return vs, keys, build_commit(height, round_, block, votes)


def code_of(vs, commit, block=BLOCK, height=5, chain=CHAIN):
    with pytest.raises(CertificateError) as exc:
        verify_commit(chain, vs, commit, block, height)
    return exc.value.code


def test_valid_certificate_verifies_and_round_trips():
    vs, _, commit = certificate([3, 0, 2])
    assert [cs.validator for cs in commit.signatures] == sorted(cs.validator for cs in commit.signatures)
    verify_commit(CHAIN, vs, commit, BLOCK, 5)
    verify_commit(CHAIN, vs, Commit.decode(commit.encode()), BLOCK, 5)
    assert [v.validator for v in commit_votes(commit)] == [cs.validator for cs in commit.signatures]


def test_forged_signature_is_rejected_even_with_enough_other_power():
    vs, _, commit = certificate([0, 1, 2, 3])
    sigs = list(commit.signatures)
    sigs[1] = replace(sigs[1], signature=sigs[0].signature)
    assert code_of(vs, replace(commit, signatures=tuple(sigs))) == "bad-signature"


def test_insufficient_power():
    vs, _, commit = certificate([0, 1])
    assert code_of(vs, commit) == "insufficient-power"


def test_power_is_weighted():
    # Powers 3, 1, 1, 1 (total 6, quorum 5): the heavy validator alone is not enough, with two more it is.
    vs, keys = make_set([3, 1, 1, 1])
    heavy = [v.address for v in vs if v.power == 3][0]
    light = [v.address for v in vs if v.power == 1]

    def signs(signers):
        return build_commit(5, 2, BLOCK, [vote(keys, a, PC, 5, 2, BLOCK) for a in signers])

    assert code_of(vs, signs([heavy])) == "insufficient-power"
    assert code_of(vs, signs([heavy, light[0]])) == "insufficient-power"
    assert code_of(vs, signs(light)) == "insufficient-power"
    verify_commit(CHAIN, vs, signs([heavy, light[0], light[1]]), BLOCK, 5)


def test_duplicate_signer_cannot_count_twice():
    vs, _, commit = certificate([0, 1])
    doubled = replace(commit, signatures=(commit.signatures[0], commit.signatures[0], commit.signatures[1]))
    assert code_of(vs, doubled) == "duplicate-signer"


def test_wrong_block_height_round_or_chain():
    vs, keys, commit = certificate([0, 1, 2])
    assert code_of(vs, commit, block=sha256(b"other")) == "wrong-block"
    assert code_of(vs, commit, height=6) == "wrong-height"
    assert code_of(vs, replace(commit, round=3)) == "bad-signature"  # signed for round 2
    assert code_of(vs, commit, chain="other-chain") == "bad-signature"
    prevotes = build_commit(5, 2, BLOCK, [])
    prevote = {a: vote(keys, a, VoteType.PREVOTE, 5, 2, BLOCK) for a in vs.addresses}
    sigs = tuple(CommitSig(a, prevote[a].time_ms, prevote[a].signature) for a in vs.addresses)
    assert code_of(vs, replace(prevotes, signatures=sigs)) == "bad-signature"  # prevotes are not precommits


def test_unknown_validator_and_unsorted_signatures():
    vs, _, commit = certificate([0, 1, 2])
    other_vs, other_keys = make_set([1, 1, 1, 1, 1])
    stranger = [a for a in other_vs.addresses if a not in vs][0]
    stranger_vote = vote(other_keys, stranger, PC, 5, 2, BLOCK)
    stranger_sig = CommitSig(stranger, stranger_vote.time_ms, stranger_vote.signature)
    sigs = tuple(sorted(commit.signatures + (stranger_sig,), key=lambda cs: cs.validator))
    assert code_of(vs, replace(commit, signatures=sigs)) == "unknown-validator"
    assert code_of(vs, replace(commit, signatures=tuple(reversed(commit.signatures)))) == "unsorted-signatures"


def test_build_commit_keeps_only_matching_precommits_once_each():
    vs, keys = make_set([1, 1, 1, 1])
    a = vs.addresses
    votes = [vote(keys, a[0], PC, 5, 2, BLOCK), vote(keys, a[0], PC, 5, 2, BLOCK),
             vote(keys, a[1], PC, 5, 2, None), vote(keys, a[2], PC, 5, 1, BLOCK),
             vote(keys, a[3], VoteType.PREVOTE, 5, 2, BLOCK), vote(keys, a[1], PC, 4, 2, BLOCK)]
    commit = build_commit(5, 2, BLOCK, votes)
    assert [cs.validator for cs in commit.signatures] == [a[0]]
