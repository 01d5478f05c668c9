"""The relay: seen only once kept, later heights buffered and offered again, and the round-state exchange."""

from __future__ import annotations

import dataclasses

import pytest

from node.consensus.messages import VoteType
from node.consensus.relay import Relay, Verdict
from node.consensus.round_status import RELAY_PROTOCOL_VERSION, Decided, RoundStatus
from node.consensus.simulate import _Simulation, run_simulation
from node.crypto import sha256
from node.encoding import DecodeError
from tests.consensus.consensus_helpers import Harness, value

PV, PC = VoteType.PREVOTE, VoteType.PRECOMMIT
VAL = value("block")
VID = sha256(VAL)


def follower() -> tuple[Harness, Relay]:
    """A non-validator driver with its relay (it only listens, so every vote in a test is someone else's)."""
    h = Harness([1, 1, 1, 1], me=None)
    return h, Relay(h.driver, lambda height: None)


def digest(message) -> bytes:
    return sha256(repr(message).encode())


def feed(relay: Relay, messages, peer="peer") -> list:
    return [relay.receive(peer, m, digest(m)) for m in messages]


def test_seen_means_kept_a_message_refused_earlier_is_taken_when_it_can_be_used():
    h, relay = follower()
    vote = h.vote(h.addresses[0], PV, 1, 0, VID)
    assert relay.receive("a", vote, b"d").verdict is Verdict.DROPPED  # not started yet
    assert not relay.is_seen(b"d")
    relay.start_height(1)
    assert relay.receive("a", vote, b"d").verdict is Verdict.KEPT
    assert relay.is_seen(b"d")
    assert relay.receive("b", vote, b"d").verdict is Verdict.DUPLICATE


def test_an_earlier_height_is_stale_and_remembered():
    h, relay = follower()
    relay.start_height(2)
    old = h.vote(h.addresses[1], PC, 1, 0, VID)
    assert relay.receive("a", old, b"old").verdict is Verdict.STALE
    assert relay.is_seen(b"old")


def test_later_heights_are_buffered_per_peer_and_offered_again():
    h, relay = follower()
    relay.start_height(1)
    p3 = h.proposal(3, 0, value("three"))
    v3 = h.vote(h.addresses[2], PV, 3, 0, sha256(value("three")))
    assert [r.verdict for r in feed(relay, [p3, v3])] == [Verdict.BUFFERED, Verdict.BUFFERED]
    assert relay.buffered == 2 and not relay.is_seen(digest(p3))
    _, reoffered = relay.start_height(3)
    assert [received.verdict for _, received in reoffered] == [Verdict.KEPT, Verdict.KEPT]
    assert h.driver.proposals_in(0) == [p3]
    assert h.driver.votes_in(0, PV) == [v3]
    assert relay.buffered == 0


def test_a_forged_message_for_a_later_height_is_not_buffered():
    h, relay = follower()
    relay.start_height(1)
    real = h.vote(h.addresses[1], PV, 4, 0, VID)
    forged = dataclasses.replace(real, validator=h.addresses[2])  # someone else's signature
    assert relay.receive("a", forged, b"f").verdict is Verdict.DROPPED
    assert relay.buffered == 0


def test_the_buffer_is_bounded_per_peer_and_by_height():
    h = Harness([1, 1, 1, 1], me=None)
    relay = Relay(h.driver, lambda height: None, max_buffered_per_peer=2, max_heights_ahead=5)
    relay.start_height(1)
    votes = [h.vote(h.addresses[i], PV, 3, 0, VID) for i in range(3)]
    assert [r.verdict for r in feed(relay, votes, "a")] == [Verdict.BUFFERED, Verdict.BUFFERED, Verdict.DROPPED]
    assert feed(relay, votes[2:], "b")[0].verdict is Verdict.BUFFERED  # another peer has its own room
    far = h.vote(h.addresses[0], PV, 7, 0, VID)
    assert relay.receive("c", far, b"far").verdict is Verdict.DROPPED


def test_a_status_gets_back_exactly_what_the_asker_lacks():
    a, relay_a = follower()
    b, relay_b = follower()
    relay_a.start_height(1)
    relay_b.start_height(1)
    proposal = a.proposal(1, 0, VAL)
    prevotes = [a.vote(a.addresses[i], PV, 1, 0, VID) for i in (0, 1, 3)]
    precommits = [a.vote(a.addresses[i], PC, 1, 0, VID) for i in (0, 1)]
    feed(relay_a, [proposal, *prevotes, *precommits])
    feed(relay_b, prevotes[:1])  # b already has one prevote
    missing = relay_a.answer(relay_b.status())
    assert set(missing) == {proposal, *prevotes[1:], *precommits}
    assert all(r.verdict is Verdict.KEPT for r in feed(relay_b, missing))
    assert relay_a.answer(relay_b.status()) == []
    assert b.driver.locked_round == 0  # it saw the polka the others saw
    assert b.driver.votes_in(0, PV) and len(b.driver.votes_in(0, PC)) == 2


def test_a_peer_that_decided_sends_the_block_and_certificate():
    a, relay_a = follower()
    b, relay_b = follower()
    relay_a.start_height(1)
    relay_b.start_height(1)
    proposal = a.proposal(1, 0, VAL)
    feed(relay_a, [proposal, *(a.vote(a.addresses[i], PC, 1, 0, VID) for i in (0, 1, 2))])
    assert a.driver.decision is not None
    [decided] = relay_a.answer(relay_b.status())
    assert isinstance(decided, Decided) and decided.value == VAL
    assert relay_b.receive("a", decided, b"dec").verdict is Verdict.KEPT
    assert b.driver.decision is not None and b.driver.decision.block_hash == VID
    assert relay_a.answer(relay_b.status()) == []  # b says it decided: nothing more to send


def test_a_node_one_height_behind_gets_the_stored_block():
    a, _ = follower()
    proposal_value, commit_source = VAL, Harness([1, 1, 1, 1], me=None)
    relay_src = Relay(commit_source.driver, lambda height: None)
    relay_src.start_height(1)
    feed(relay_src, [a.proposal(1, 0, VAL), *(a.vote(a.addresses[i], PC, 1, 0, VID) for i in (0, 1, 2))])
    commit = commit_source.driver.commit_for_decided()
    relay_a = Relay(a.driver, lambda height: (proposal_value, commit) if height == 1 else None)
    relay_a.start_height(2)
    b, relay_b = follower()
    relay_b.start_height(1)
    [decided] = relay_a.answer(relay_b.status())
    assert relay_b.receive("a", decided, b"x").verdict is Verdict.KEPT
    assert b.driver.decision is not None
    assert relay_b.peer_is_ahead(relay_a.status()) is False  # one ahead: the exchange does it
    relay_a.start_height(5)
    assert relay_b.peer_is_ahead(relay_a.status()) is True  # further: block sync


def test_status_encoding_round_trips_and_another_version_is_refused():
    a, relay_a = follower()
    relay_a.start_height(1)
    feed(relay_a, [a.proposal(1, 0, VAL), a.vote(a.addresses[0], PV, 1, 0, VID), a.vote(a.addresses[2], PV, 1, 0, None)])
    status = relay_a.status()
    assert RoundStatus.decode(status.encode()) == status
    assert status.held(0).proposals == (VID,)
    wrong = bytes([RELAY_PROTOCOL_VERSION + 1]) + status.encode()[1:]
    with pytest.raises(DecodeError, match="same ledger-node release"):
        RoundStatus.decode(wrong)


# ---------------------------------------------------------------------------- the simulator runs the relay


def test_a_lagging_validator_returns_while_another_quits_and_the_chain_goes_on():
    """The devnet stall, simulated: one honest node paused for heights while a Byzantine one goes silent."""
    for validators, byzantine in ((4, 1), (7, 2)):
        for seed in range(12):
            result = run_simulation(seed, validators, byzantine, 6, fault_mix="lag", behaviours=("quits",))
            assert result.ok, (validators, seed, result.liveness_failures, result.safety_violations)


def test_without_the_round_state_exchange_the_same_runs_stall(monkeypatch):
    """The check above can fail: the same runs with the exchange switched off lose liveness."""
    monkeypatch.setattr(_Simulation, "gossip_tick", lambda self, node: None)
    results = [run_simulation(seed, 4, 1, 6, fault_mix="lag", behaviours=("quits",)) for seed in range(12)]
    assert any(r.liveness_failures for r in results)
