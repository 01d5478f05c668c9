"""The Byzantine behaviours: what a Byzantine validator does with the proposals and votes its driver produces.

Each Byzantine validator has one behaviour for the whole run:

* ``equivocate``: proposes two different blocks, one to each half of the other nodes;
* ``double-vote``: sends each half a different vote, and sometimes everyone the second;
* ``silent``: sends nothing; ``quits``: goes silent for good at some point;
* ``invalid-votes``: votes for invalid or unknown blocks;
* ``invalid-proposal``: proposes invalid blocks, blocks for another height, or (with reconfiguration) blocks
  whose reconfiguration input the ledger refuses (an honest member's quit under the Byzantine key);
* ``future``: adds messages for later heights and rounds;
* ``split``: colludes with the other "split" validators to show each half of the honest nodes its own
  block, with votes for it;
* ``tamper``: hands out tampered copies of blocks under their genuine ids (as proposer, relay and sync peer);
* ``slot-fill``: fills its vote slots with nil and other values before its real vote.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from node.consensus.messages import Proposal, Vote, VoteType
from node.consensus.round_status import Decided
from node.crypto import SigningKey, sha256
from node.types.reconfig import NO_SIGNATURE, Quit
from simulation.chain import CHAIN_ID, encode_value
from simulation.nodes import SimNode, UnguardedSigner, invalid_value, simulated_value

if TYPE_CHECKING:
    from simulation.world import Simulation

BEHAVIOURS = ("equivocate", "double-vote", "silent", "invalid-votes", "invalid-proposal", "future", "split",
              "quits", "tamper", "slot-fill")


# ---------------------------------------------------------------------------- tampering


def tampered_value(value: bytes) -> bytes:
    """The same block with one byte changed (as if one transaction's signature were altered)."""
    return value[:-1] + bytes([value[-1] ^ 1]) if value else b"\x01"


def tampered_proposal(p: Proposal) -> Proposal:
    """A proposal's tampered copy under its genuine block hash and signature."""
    return Proposal(p.height, p.round, p.pol_round, p.block_hash, tampered_value(p.value), p.proposer, p.signature)


def tampered(message: object) -> object:
    """What a tampering peer answers instead of ``message``: blocks altered under their genuine ids and
    certificates, anything else as it is."""
    if isinstance(message, Proposal):
        return tampered_proposal(message)
    if isinstance(message, Decided):
        return Decided(tampered_value(message.value), message.commit)
    return message


# ---------------------------------------------------------------------------- behaviours


def forged_input_value(sim: Simulation, node: SimNode, height: int, round_: int) -> bytes:
    """A valid payload carrying an honest member's quit signed with this Byzantine node's key: invalid."""
    signer = unguarded_signer(node)
    victim = sim.rng.choice(sim.honest)
    unsigned = Quit(victim.public_key, height + 10, NO_SIGNATURE)
    forged = Quit(unsigned.public_key, unsigned.expires,
                  SigningKey(signer.private_key).sign(unsigned.signing_digest(CHAIN_ID)))
    return encode_value(simulated_value(height, round_, node.index, sim.rng.getrandbits(63)), (forged,))


def _halves(sim: Simulation, node: SimNode) -> tuple[list[int], list[int]]:
    peers = [n.index for n in sim.nodes if n.index != node.index]
    return [p for p in peers if sim.group.get(p, 1) == 0], [p for p in peers if sim.group.get(p, 1) == 1]


def _quiet(sim: Simulation, node: SimNode) -> bool:
    return node.behaviour == "silent" or (node.quit_at is not None and sim.now >= node.quit_at)


def unguarded_signer(node: SimNode) -> UnguardedSigner:
    """A Byzantine node's signer, which signs anything (an honest node's refuses to equivocate)."""
    if not isinstance(node.signer, UnguardedSigner):
        raise TypeError(f"node {node.index} is honest: it has no unguarded signer")
    return node.signer


def send_proposal(sim: Simulation, node: SimNode, p: Proposal) -> None:
    """How a Byzantine ``node`` sends the proposal ``p`` its driver made."""
    signer = unguarded_signer(node)
    b = node.behaviour
    if _quiet(sim, node):
        return
    if b == "equivocate":
        alt_value = simulated_value(p.height, p.round, node.index, sim.rng.getrandbits(63))
        alt = signer.sign_proposal(p.height, p.round, -1, sha256(alt_value), alt_value)
        first, second = _halves(sim, node)
        for peer in first:
            sim.send(node.index, peer, p)
        for peer in second:
            sim.send(node.index, peer, alt)
        return
    if b == "tamper":
        first, second = _halves(sim, node)
        for peer in first:
            sim.send(node.index, peer, p)
        for peer in second:
            sim.send(node.index, peer, tampered_proposal(p))
        return
    if b == "invalid-proposal":
        if sim.reconfig and sim.rng.random() < 1 / 3:
            bad = forged_input_value(sim, node, p.height, p.round)
        elif sim.rng.random() < 0.5:
            bad = invalid_value(p.height, sim.rng.getrandbits(63))
        else:
            bad = simulated_value(p.height + 1, p.round, node.index, sim.rng.getrandbits(63))
        sim.broadcast(node.index, signer.sign_proposal(p.height, p.round, -1, sha256(bad), bad))
        return
    if b == "split":
        values = {g: simulated_value(p.height, p.round, node.index, sim.rng.getrandbits(63)) for g in (0, 1)}
        sim.conspiracy[(p.height, p.round)] = {g: sha256(v) for g, v in values.items()}
        first, second = _halves(sim, node)
        for g, peers in ((0, first), (1, second)):
            proposal = signer.sign_proposal(p.height, p.round, -1, sha256(values[g]), values[g])
            for peer in peers:
                sim.send(node.index, peer, proposal)
        for colluder in sim.byzantine:
            if colluder.behaviour == "split":
                split_votes(sim, colluder, p.height, p.round)
        return
    sim.broadcast(node.index, p)
    if b == "future":
        future_messages(sim, node, p.height, p.round)


def split_votes(sim: Simulation, node: SimNode, height: int, round_: int) -> None:
    """A colluder's prevote and precommit for each half's block, sent to that half."""
    signer = unguarded_signer(node)
    targets = sim.conspiracy[(height, round_)]
    halves = _halves(sim, node)
    for g in (0, 1):
        for vote_type in (VoteType.PREVOTE, VoteType.PRECOMMIT):
            vote = signer.sign_vote(vote_type, height, round_, targets[g])
            for peer in halves[g]:
                sim.send(node.index, peer, vote)


def send_vote(sim: Simulation, node: SimNode, v: Vote) -> None:
    """How a Byzantine ``node`` sends the vote ``v`` its driver cast."""
    signer = unguarded_signer(node)
    b, rng = node.behaviour, sim.rng
    if _quiet(sim, node):
        return
    if b == "split":
        if (v.height, v.round) not in sim.conspiracy:
            sim.broadcast(node.index, v)
        return
    if b == "double-vote":
        other = None if v.block_hash is not None else sha256(rng.getrandbits(64).to_bytes(8, "big"))
        alt = signer.sign_vote(v.vote_type, v.height, v.round, other)
        first, second = _halves(sim, node)
        for peer in first:
            sim.send(node.index, peer, v)
        for peer in second:
            sim.send(node.index, peer, alt)
        if rng.random() < 0.5:
            sim.broadcast(node.index, alt)
        return
    if b == "slot-fill":
        # Fill the validator's slots with nil and other values proposed at this height before the real vote.
        fillers: list[bytes | None] = [None] if v.block_hash is not None else []
        for r in node.driver.rounds_held():
            fillers.extend(p.block_hash for p in node.driver.proposals_in(r) if p.block_hash != v.block_hash)
        while len(fillers) < 4:
            fillers.append(sha256(rng.getrandbits(64).to_bytes(8, "big")))
        for target in fillers[:6]:
            sim.broadcast(node.index, signer.sign_vote(v.vote_type, v.height, v.round, target))
        sim.broadcast(node.index, v)
        return
    if b == "invalid-votes":
        if rng.random() < 0.5:
            target = sha256(invalid_value(v.height, rng.getrandbits(63)))
        else:
            target = sha256(rng.getrandbits(64).to_bytes(8, "big"))
        sim.broadcast(node.index, signer.sign_vote(v.vote_type, v.height, v.round, target))
        return
    sim.broadcast(node.index, v)
    if b == "future":
        future_messages(sim, node, v.height, v.round)


def future_messages(sim: Simulation, node: SimNode, height: int, round_: int) -> None:
    """Votes and proposals for the next height, later rounds, far heights and far rounds."""
    signer = unguarded_signer(node)
    rng = sim.rng
    for h, r in ((height + 1, 0), (height, round_ + rng.randint(1, 5)), (height + rng.randint(2, 50), 0),
                 (height, round_ + rng.randint(100, 10_000))):
        value = simulated_value(h, r, node.index, rng.getrandbits(63))
        vote_type = rng.choice((VoteType.PREVOTE, VoteType.PRECOMMIT))
        sim.broadcast(node.index, signer.sign_vote(vote_type, h, r, sha256(value)))
        sim.broadcast(node.index, signer.sign_proposal(h, r, -1, sha256(value), value))
