"""Signer and WAL ordering: the input that causes a signature is durable before the signature exists,
the signer keeps the full messages it signed at the current height, and a restarted node re-sends
them (instead of going silent when the replay reaches a different vote than the one it holds)."""

from __future__ import annotations

import pytest

from consensus_helpers import CHAIN, Harness, key, value
from node.consensus.driver import BroadcastProposal, BroadcastVote, Decide
from node.consensus.messages import Proposal, Vote, VoteType
from node.consensus.records import frame
from node.consensus.round_machine import Timeout, TimeoutKind
from node.consensus.signer import DurableSigner, MemorySigner, SignerError
from node.consensus.wal import FileWAL, MemoryWAL, WALError
from node.crypto import sha256
from node.encoding import Writer

PV, PC = VoteType.PREVOTE, VoteType.PRECOMMIT
VAL = value("a")
VID = sha256(VAL)


class PowerCut(Exception):
    """The machine lost power right after the signer's fsync."""


class CrashingSigner(MemorySigner):
    """A signer after whose next signature the power goes: the WAL loses what it had not synced."""

    def __init__(self, private_key: bytes, chain_id: str):
        super().__init__(private_key, chain_id)
        self.wal: MemoryWAL | None = None
        self.armed = False
        self.wal_durable_at_signing: list[bool] = []

    def _check(self) -> None:
        if self.wal is not None:
            self.wal_durable_at_signing.append(self.wal._synced == len(self.wal._entries))
        if self.armed:
            self.armed = False
            if self.wal is not None:
                self.wal.crash()
            raise PowerCut()

    def sign_vote(self, *args, **kwargs) -> Vote:
        vote = super().sign_vote(*args, **kwargs)
        self._check()
        return vote

    def sign_proposal(self, *args, **kwargs) -> Proposal:
        proposal = super().sign_proposal(*args, **kwargs)
        self._check()
        return proposal


def crashing_harness(me: int = 2, wal: MemoryWAL | None = None) -> Harness:
    wal = wal if wal is not None else MemoryWAL()
    h = Harness([1, 1, 1, 1], me=me, wal=wal)
    signer = CrashingSigner(h.keys[h.me], CHAIN)
    signer.wal = wal
    h.signer = signer
    h.driver = h.new_driver()
    return h


def votes_of(actions):
    return [(a.vote.vote_type, a.vote.round, a.vote.block_hash) for a in actions if isinstance(a, BroadcastVote)]


def feed(h, who, vote_type, round_, block):
    actions = []
    for a in who:
        actions += h.driver.on_vote(h.vote(a, vote_type, 1, round_, block))
    return actions


def test_the_input_is_durable_in_the_wal_before_the_vote_is_signed():
    h = crashing_harness()
    assert h.proposer_index(1, 0) != 2
    h.driver.start_height(1)
    h.driver.on_proposal(h.proposal(1, 0, VAL))
    others = h.others()
    feed(h, others[:2], PV, 0, VID)
    assert h.signer.wal_durable_at_signing == [True, True]  # prevote, then precommit


class CountingWAL(MemoryWAL):
    """A log that counts its syncs (each one an fsync on the node's event loop)."""

    def __init__(self) -> None:
        super().__init__()
        self.syncs = 0

    def sync(self) -> None:
        self.syncs += 1
        super().sync()


def test_the_log_is_synced_before_each_signature_and_at_no_other_step():
    """A whole height at a validator that does not propose: two signatures, two syncs.  The timers armed on
    the way, the other votes, the decision and the late precommit add none (they made six in all)."""
    wal = CountingWAL()
    h = crashing_harness(wal=wal)
    assert h.proposer_index(1, 0) != 2
    h.driver.start_height(1)
    h.driver.on_proposal(h.proposal(1, 0, VAL))
    others = h.others()
    feed(h, others, PV, 0, VID)
    actions = feed(h, others[:2], PC, 0, VID)
    assert [a.value for a in actions if isinstance(a, Decide)] == [VAL]
    feed(h, others[2:], PC, 0, VID)  # the late one
    assert len(h.signer.signed_messages(1)) == 2
    assert h.signer.wal_durable_at_signing == [True, True]
    assert wal.syncs == 2


def test_a_node_that_signs_nothing_never_syncs_its_log():
    wal = CountingWAL()
    h = Harness([1, 1, 1, 1], me=None, wal=wal)
    h.driver.start_height(1)
    h.driver.on_proposal(h.proposal(1, 0, VAL))
    feed(h, h.addresses, PV, 0, VID)
    actions = feed(h, h.addresses, PC, 0, VID)
    assert [a.value for a in actions if isinstance(a, Decide)] == [VAL]
    assert len(wal.entries(1)) == 9 and wal.syncs == 0


def test_crash_between_signing_and_wal_sync_resends_the_held_vote_and_decides():
    h = crashing_harness()
    h.driver.start_height(1)
    h.signer.armed = True
    with pytest.raises(PowerCut):
        h.driver.on_proposal(h.proposal(1, 0, VAL))  # prevote signed, then the power goes
    [held] = h.signer.signed_messages(1)
    assert (held.vote_type, held.block_hash) == (PV, VID)
    h.driver = h.new_driver()  # restart: same signer, what the WAL kept
    actions = h.driver.start_height(1)
    assert [a.vote for a in actions if isinstance(a, BroadcastVote)] == [held]
    # The height still decides.
    others = h.others()
    actions = feed(h, others[:2], PV, 0, VID)
    assert votes_of(actions) == [(PC, 0, VID)]
    actions = feed(h, others[:2], PC, 0, VID)
    [decide] = [a for a in actions if isinstance(a, Decide)]
    assert decide.value == VAL


def test_replay_that_reaches_another_vote_resends_the_held_one_instead_of_going_silent():
    h = crashing_harness()
    h.driver.start_height(1)
    h.driver.on_proposal(h.proposal(1, 0, VAL))  # prevoted VAL
    [held] = h.signer.signed_messages(1)
    h.wal = MemoryWAL()  # the log is gone (a lost disk, a wiped file): only the signer remembers
    h.signer.wal = h.wal
    h.driver = h.new_driver()
    actions = h.driver.start_height(1)
    assert [a.vote for a in actions if isinstance(a, BroadcastVote)] == [held]
    # The proposal is gone; the propose timeout would make it prevote nil, but it prevoted VAL here:
    # it counts and re-sends that vote.
    actions = h.driver.on_timeout(Timeout(TimeoutKind.PROPOSE, 1, 0))
    assert [a.vote for a in actions if isinstance(a, BroadcastVote)] == [held]
    others = h.others()
    h.driver.on_proposal(h.proposal(1, 0, VAL))  # a peer relays the proposal
    feed(h, others[:1], PV, 0, VID)  # with its own prevote that is a polka (3 of 4)
    actions = feed(h, others[1:2], PV, 0, VID)
    assert (PC, 0, VID) in votes_of(actions)
    actions = feed(h, others[:2], PC, 0, VID)
    assert [a.value for a in actions if isinstance(a, Decide)] == [VAL]


def test_crash_after_signing_a_proposal_resends_the_same_proposal():
    wal = MemoryWAL()
    h = crashing_harness(me=0, wal=wal)
    assert h.proposer_index(1, 0) == 0
    h.signer.armed = True
    with pytest.raises(PowerCut):
        h.driver.start_height(1)
    [held] = h.signer.signed_messages(1)
    assert isinstance(held, Proposal) and held.value and h.built == 1
    h.driver = h.new_driver()
    actions = h.driver.start_height(1)
    assert [a.proposal for a in actions if isinstance(a, BroadcastProposal)] == [held]
    assert h.built == 1  # not built again
    assert votes_of(actions) == [(PV, 0, held.block_hash)]


# ---------------------------------------------------------------------------- the signer's memory


def test_the_signer_keeps_full_messages_across_a_reopen(tmp_path):
    path = tmp_path / "signer"
    s = DurableSigner(path, key(0), CHAIN)
    p = s.sign_proposal(3, 0, -1, VID, VAL)
    v = s.sign_vote(PV, 3, 0, VID, 1_111)
    c = s.sign_vote(PC, 3, 0, VID, 2_222)
    assert s.signed_messages(3) == [p, v, c]
    # an identical request at another time gets the held vote, not a new signature
    assert s.sign_vote(PV, 3, 0, VID, 9_999) == v
    s.close()
    s = DurableSigner(path, key(0), CHAIN)
    assert s.signed_messages(3) == [p, v, c]
    assert s.signed_messages(4) == []
    assert s.sign_vote(PC, 3, 0, VID, 5) == c


def test_an_old_signer_file_is_refused_with_what_to_do(tmp_path):
    path = tmp_path / "signer"
    s = DurableSigner(path, key(0), CHAIN)
    address = s.address
    s.close()
    old_header = Writer().text("ledger/signer/1").text(CHAIN).fixed(address, 20).getvalue()
    old_record = Writer().u8(1).u64(7).u32(2).i32(-1).boolean(False).fixed(b"\x01" * 64, 64).getvalue()
    path.write_bytes(frame(old_header) + frame(old_record))
    with pytest.raises(SignerError) as exc:
        DurableSigner(path, key(0), CHAIN)
    assert exc.value.code == "signer-format-old"
    assert "ledger/signer/1" in exc.value.message and "height 7" in exc.value.message
    assert "move" in exc.value.message


def test_an_old_wal_is_refused_with_what_to_do(tmp_path):
    path = tmp_path / "wal"
    path.write_bytes(frame(Writer().u8(0).u64(3).getvalue()))
    with pytest.raises(WALError) as exc:
        FileWAL(path)
    assert exc.value.code == "wal-format-old"
    assert "delete" in exc.value.message or "remove" in exc.value.message
    wal = FileWAL(tmp_path / "new")
    wal.start_height(3)
    wal.close()
    assert FileWAL(tmp_path / "new").height == 3
