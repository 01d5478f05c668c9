import os

import pytest

from consensus_helpers import CHAIN, key
from node.consensus import signer as signer_module
from node.consensus.messages import VoteType, proposal_digest, vote_digest
from node.consensus.signer import DoubleSignError, DurableSigner, MemorySigner, SignerError, SignerLock
from node.crypto import derive_public_key, sha256, verify_signature

V, W = sha256(b"v"), sha256(b"w")
T = 1_700_000_000_000
PV, PC = VoteType.PREVOTE, VoteType.PRECOMMIT


def test_signatures_verify(tmp_path):
    s = DurableSigner(tmp_path / "signer", key(0), CHAIN)
    pub = derive_public_key(key(0))
    v = s.sign_vote(PV, 3, 1, V, T)
    assert verify_signature(pub, vote_digest(CHAIN, PV, 3, 1, V, T), v.signature)
    p = s.sign_proposal(3, 2, 1, W, b"block")
    assert verify_signature(pub, proposal_digest(CHAIN, 3, 2, 1, W), p.signature)
    assert p.value == b"block" and p.proposer == s.address


def test_refuses_conflicting_signature_after_reopening_from_disk(tmp_path):
    path = tmp_path / "signer"
    s = DurableSigner(path, key(0), CHAIN)
    first = s.sign_vote(PV, 3, 1, V, T)
    s.sign_proposal(3, 1, -1, V, b"x")
    s.close()
    s = DurableSigner(path, key(0), CHAIN)
    for block in (W, None):
        with pytest.raises(DoubleSignError) as exc:
            s.sign_vote(PV, 3, 1, block, T)
        assert exc.value.code == "double-sign"
    with pytest.raises(DoubleSignError):
        s.sign_proposal(3, 1, 0, V, b"x")  # same block, other POL round: a different proposal
    assert s.sign_vote(PV, 3, 1, V, T) == first  # idempotent
    s.sign_vote(PC, 3, 1, None, T)  # other type: fine


def test_restores_the_last_lock(tmp_path):
    path = tmp_path / "signer"
    s = DurableSigner(path, key(0), CHAIN)
    assert s.last_locked is None
    s.sign_vote(PC, 4, 0, V, T)
    s.sign_vote(PC, 4, 1, None, T)
    s.sign_vote(PC, 4, 2, W, T)
    s.sign_vote(PC, 4, 3, None, T)
    s.close()
    s = DurableSigner(path, key(0), CHAIN)
    assert s.last_locked == SignerLock(4, 2, W)
    assert s.last_signed == (4, 3)


def test_refuses_to_go_back_in_height_or_round(tmp_path):
    s = DurableSigner(tmp_path / "signer", key(0), CHAIN)
    s.sign_vote(PV, 5, 2, V, T)
    with pytest.raises(DoubleSignError) as exc:
        s.sign_vote(PV, 4, 9, V, T)
    assert exc.value.code == "height-regression"
    with pytest.raises(DoubleSignError) as exc:
        s.sign_vote(PC, 5, 1, V, T)
    assert exc.value.code == "round-regression"


def test_a_new_height_past_the_size_limit_compacts_the_file(tmp_path, monkeypatch):
    monkeypatch.setattr(signer_module, "COMPACT_BYTES", 1_000)
    path = tmp_path / "signer"
    s = DurableSigner(path, key(0), CHAIN)
    for r in range(20):
        s.sign_vote(PV, 1, r, V, T)
    big = os.path.getsize(path)
    assert big > 1_000
    s.sign_vote(PV, 2, 0, V, T)
    assert os.path.getsize(path) < big / 5
    s.close()
    s = DurableSigner(path, key(0), CHAIN)
    assert s.last_signed == (2, 0)
    with pytest.raises(DoubleSignError):
        s.sign_vote(PV, 1, 19, V, T)


def test_new_heights_are_appended_and_reading_keeps_only_the_latest(tmp_path):
    """Below the size limit a new height costs one append and fsync, not a rewrite of the file; what is read
    back is the latest height's records alone, so the rules are the same as after a compaction."""
    path = tmp_path / "signer"
    s = DurableSigner(path, key(0), CHAIN)
    s.sign_vote(PV, 1, 0, V, T)
    s.sign_vote(PC, 1, 0, V, T)
    size = os.path.getsize(path)
    s.sign_vote(PV, 2, 0, W, T)
    s.sign_vote(PC, 2, 1, W, T)
    assert os.path.getsize(path) > size  # appended
    s.close()
    s = DurableSigner(path, key(0), CHAIN)
    assert s.last_signed == (2, 1)
    assert s.last_locked == SignerLock(2, 1, W)  # height 1's lock on V is gone with height 1
    assert [m.height for m in s.signed_messages(2)] == [2, 2] and s.signed_messages(1) == []
    with pytest.raises(DoubleSignError) as exc:
        s.sign_vote(PV, 2, 0, V, T)
    assert exc.value.code == "double-sign"
    with pytest.raises(DoubleSignError) as exc:
        s.sign_vote(PC, 1, 5, V, T)
    assert exc.value.code == "height-regression"


def test_torn_last_record_is_dropped(tmp_path):
    path = tmp_path / "signer"
    s = DurableSigner(path, key(0), CHAIN)
    s.sign_vote(PV, 1, 0, V, T)
    s.sign_vote(PC, 1, 0, V, T)
    s.close()
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        f.truncate(size - 10)  # the precommit's record was being written when the power went
    s = DurableSigner(path, key(0), CHAIN)
    assert os.path.getsize(path) < size - 10  # the torn tail is cut off
    assert s.last_locked is None  # that precommit never left the node
    s.sign_vote(PC, 1, 0, None, T)  # so a different one is fine


def test_state_of_another_key_or_chain_is_refused(tmp_path):
    path = tmp_path / "signer"
    DurableSigner(path, key(0), CHAIN).close()
    for k, chain in ((key(1), CHAIN), (key(0), "other")):
        with pytest.raises(SignerError) as exc:
            DurableSigner(path, k, chain)
        assert exc.value.code == "signer-state-mismatch"


def test_memory_signer_follows_the_same_rules():
    s = MemorySigner(key(0), CHAIN)
    s.sign_vote(PC, 1, 0, V, T)
    with pytest.raises(DoubleSignError):
        s.sign_vote(PC, 1, 0, W, T)
    assert s.last_locked == SignerLock(1, 0, V)
