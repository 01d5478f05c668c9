"""Deterministic simulation of many consensus nodes under faults and attack.

Everything runs in one process on a virtual clock driven by one
``random.Random(seed)``: no wall clock, no threads, so a seed replays exactly.
Each run picks a fault mix (message loss, duplication and reordering,
partitions, crashes with restarts from the in-memory signer and WAL) that
lasts until a global stabilisation time (GST), after which every message
between live honest nodes arrives within ``POST_GST_DELAY_MS``.  Up to the
given number of validators are Byzantine, each with one behaviour: an
equivocating proposer, a double voter, a silent node, votes for invalid or
unknown blocks, an invalid proposer, messages for future heights and rounds,
or a colluding "split" that feeds two halves of the honest nodes two
different blocks and votes for each half's block towards it.

Every node runs the node's own relay (``node.consensus.relay``) around its
driver, exactly as the runtime does: a message is re-flooded to the other
nodes when the relay says the driver kept it, messages for later heights are
buffered and offered again, and every ``STATUS_INTERVAL_MS`` each honest node
sends its peers its ``RoundStatus``; a peer answers with the proposals and
votes the node lacks, or with the decided block and its certificate when the
node is still at a height the peer has decided.  The simulator has no gossip
model of its own: only the network (delay, loss, partitions) is simulated.

A "lag" fault mix pauses one honest node (it hears nothing and its timers
wait, as under SIGSTOP) long enough to fall heights behind, while a
Byzantine node that "quits" goes silent during the pause.

Checked at every step: no two honest nodes decide different values at one
height (safety), every decision is a valid value with a certificate that
verifies (validity), and every honest node decides height k by
``GST + k * HEIGHT_BOUND_MS`` (liveness).
"""

from __future__ import annotations

import argparse
import heapq
import random
import sys
import time
from dataclasses import dataclass, field

from node.consensus.certificate import CertificateError, verify_commit
from node.consensus.driver import (
    BroadcastProposal,
    BroadcastVote,
    ConsensusDriver,
    Decide,
    ReportEvidence,
    ScheduleTimeout,
)
from node.consensus.messages import Commit, Proposal, Vote, VoteType, sign_proposal, sign_vote
from node.consensus.relay import STATUS_INTERVAL_MS, Relay
from node.consensus.round_machine import TimeoutParams
from node.consensus.round_status import Decided, RoundStatus
from node.consensus.signer import MemorySigner, SignerLock
from node.consensus.validators import Validator, ValidatorSet
from node.consensus.wal import MemoryWAL
from node.crypto import N as CURVE_ORDER
from node.crypto import address_hash, derive_public_key, sha256

CHAIN_ID = "sim"
SIM_TIMEOUTS = TimeoutParams(propose_ms=200, prevote_ms=100, precommit_ms=100, delta_ms=50)
POST_GST_DELAY_MS = 30
"""Upper bound on message delay after GST."""
GOSSIP_MS = STATUS_INTERVAL_MS
"""Each honest node sends its peers its round status this often (the runtime's interval)."""
HEIGHT_BOUND_MS = 15_000
"""Liveness bound: every honest node decides height k by GST + k * HEIGHT_BOUND_MS."""
MAX_SIM_EVENTS = 5_000_000

BEHAVIOURS = ("equivocate", "double-vote", "silent", "invalid-votes", "invalid-proposal", "future", "split",
              "quits", "tamper", "slot-fill")


@dataclass(frozen=True)
class FaultMix:
    """How the network and the honest nodes misbehave before GST."""

    name: str
    """Label used in reports."""
    gst_ms: tuple[int, int]
    """GST is drawn uniformly from this range."""
    drop: float
    """Probability a message is lost before GST."""
    duplicate: float
    """Probability a message is delivered twice."""
    delay_ms: tuple[int, int]
    """Delay range before GST (wide ranges reorder)."""
    partition: bool
    """Split the nodes in two until GST."""
    crashes: int
    """Honest nodes that crash and restart before GST."""
    pause: bool = False
    """One honest node is paused (SIGSTOP-like) for a while before GST, long enough to fall behind."""
    torn: bool = False
    """Crashes strike right after the node signed something, before it could send it."""


FAULT_MIXES: dict[str, FaultMix] = {m.name: m for m in (
    FaultMix("calm", (0, 0), 0.0, 0.0, (1, POST_GST_DELAY_MS), False, 0),
    FaultMix("lossy", (500, 4000), 0.3, 0.1, (1, 400), False, 0),
    FaultMix("partition", (1000, 5000), 0.05, 0.02, (1, 60), True, 0),
    FaultMix("crash", (1000, 4000), 0.05, 0.02, (1, 60), False, 2),
    FaultMix("chaos", (1000, 6000), 0.25, 0.1, (1, 500), True, 2),
    FaultMix("lag", (3000, 7000), 0.02, 0.02, (1, 60), False, 0, pause=True),
    FaultMix("torn", (1000, 4000), 0.05, 0.02, (1, 60), False, 2, torn=True),
)}


@dataclass(frozen=True)
class StatusMessage:
    """A node's round status on its way to a peer (the runtime posts it to ``/p2p/round-state``)."""

    sender: int
    """Node index of the sender, who gets the answer."""
    status: RoundStatus
    """What the sender holds."""


@dataclass
class SimResult:
    """The outcome of one seeded run."""

    seed: int
    validators: int
    byzantine: int
    heights: int
    """Heights every honest node had to decide."""
    fault_mix: str
    behaviours: tuple[str, ...]
    """Behaviour of each Byzantine validator."""
    gst_ms: int
    safety_violations: list[str] = field(default_factory=list)
    """Disagreements, invalid decisions and bad certificates."""
    liveness_failures: list[str] = field(default_factory=list)
    heights_decided: int = 0
    """Heights decided by every honest node."""
    decision_rounds: list[int] = field(default_factory=list)
    """Per height, the round of the first honest decision."""
    sim_time_ms: int = 0
    """Virtual time when the run ended."""
    messages: int = 0
    """Messages delivered."""
    evidence: int = 0
    """Equivocation reports by honest nodes."""
    extra_heights: int = 0
    """Heights decided beyond ``heights`` while waiting for crashed nodes to restart (also checked)."""
    restarts: int = 0
    """Honest nodes restarted from their signer and WAL after a crash."""
    worst_latency_after_gst_ms: int = 0
    """Longest wait, after GST, between an honest node's decisions."""

    @property
    def ok(self) -> bool:
        return not self.safety_violations and not self.liveness_failures


# ---------------------------------------------------------------------------- values


def simulated_value(height: int, round_: int, node: int, nonce: int) -> bytes:
    return b"V" + height.to_bytes(8, "big") + round_.to_bytes(4, "big") + node.to_bytes(2, "big") \
        + nonce.to_bytes(8, "big")


def invalid_value(height: int, nonce: int) -> bytes:
    return b"X" + height.to_bytes(8, "big") + nonce.to_bytes(8, "big")


def tampered_value(value: bytes) -> bytes:
    """The same block with one byte changed (as if one transaction's signature were altered)."""
    return value[:-1] + bytes([value[-1] ^ 1]) if value else b"\x01"


def tampered_proposal(p: Proposal) -> Proposal:
    """A proposal's tampered copy under its genuine block hash and signature."""
    return Proposal(p.height, p.round, p.pol_round, p.block_hash, tampered_value(p.value), p.proposer, p.signature)


def is_valid_value(height: int, value: bytes) -> bool:
    """The simulated ledger rule: a 23-byte 'V' record naming its own height."""
    return len(value) == 23 and value[:1] == b"V" and int.from_bytes(value[1:9], "big") == height


def _key_for(seed: int, index: int) -> bytes:
    scalar = int.from_bytes(sha256(b"sim-key" + seed.to_bytes(8, "big") + index.to_bytes(4, "big")), "big")
    return (scalar % (CURVE_ORDER - 1) + 1).to_bytes(32, "big")


class _UnguardedSigner:
    """A Byzantine validator's signer: signs anything."""

    def __init__(self, private_key: bytes, chain_id: str):
        self.chain_id = chain_id
        self.private_key = private_key
        self.address = address_hash(derive_public_key(private_key))

    def sign_proposal(self, height: int, round_: int, pol_round: int, block_hash: bytes, value: bytes) -> Proposal:
        return sign_proposal(self.chain_id, self.private_key, self.address, height, round_, pol_round,
                             block_hash, value)

    def sign_vote(self, vote_type: VoteType, height: int, round_: int, block_hash: bytes | None,
                  time_ms: int = 0) -> Vote:
        """Any vote, at any time it is asked for (0, a stopped clock, when none is given)."""
        return sign_vote(self.chain_id, self.private_key, self.address, vote_type, height, round_, block_hash,
                         time_ms)

    @property
    def last_locked(self) -> SignerLock | None:
        return None

    def signed_messages(self, height: int) -> list[Proposal | Vote]:
        """It remembers nothing."""
        return []


# ---------------------------------------------------------------------------- the world


class _Node:
    """One validator: a driver plus what survives a crash (signer, WAL, decided blocks)."""

    def __init__(self, sim: "_Simulation", index: int, key: bytes, behaviour: str | None):
        self.sim = sim
        self.index = index
        self.key = key
        self.behaviour = behaviour
        self.honest = behaviour is None
        self.signer = MemorySigner(key, CHAIN_ID) if self.honest else _UnguardedSigner(key, CHAIN_ID)
        self.wal = MemoryWAL() if self.honest else None
        self.up = True
        self.epoch = 0
        self.decided: dict[int, tuple[bytes, Proposal | None, Commit]] = {}
        self.decide_times: list[int] = []
        self.nonce = 0
        self.paused_until = 0
        """Virtual time until which the node is paused (it hears nothing; its timers wait)."""
        self.quit_at: int | None = None
        """For the "quits" behaviour: when it goes silent for good."""
        self.crash_on_sign = False
        """Crash right after the next signature, before the message leaves (the "torn" mix)."""
        self.driver = self._new_driver()
        self.relay = Relay(self.driver, self._decided_at)

    def _decided_at(self, height: int) -> tuple[bytes, Commit] | None:
        entry = self.decided.get(height)
        return None if entry is None else (entry[0], entry[2])

    def _get_value(self, height: int, round_: int) -> bytes:
        self.nonce += 1
        return simulated_value(height, round_, self.index, self.sim.rng.getrandbits(63) ^ self.nonce)

    def _new_driver(self) -> ConsensusDriver:
        return ConsensusDriver(chain_id=CHAIN_ID, validators=self.sim.validators, signer=self.signer,
                               params=SIM_TIMEOUTS, is_valid=is_valid_value, value_id=sha256,
                               get_value=self._get_value, now_ms=lambda: self.sim.now, wal=self.wal)

    @property
    def next_height(self) -> int:
        return len(self.decided) + 1


class _Simulation:
    def __init__(self, seed: int, validators: int, byzantine: int, heights: int, fault_mix: str | None,
                 behaviours: tuple[str, ...] | None, weighted: bool = False):
        self.rng = random.Random(seed)
        rng = self.rng
        self.mix = FAULT_MIXES[fault_mix] if fault_mix is not None else FAULT_MIXES[rng.choice(sorted(FAULT_MIXES))]
        self.gst = rng.randint(*self.mix.gst_ms)
        self.heights = heights
        keys = [_key_for(seed, i) for i in range(validators)]
        order = list(range(validators))
        rng.shuffle(order)
        byz = set(order[:byzantine])
        powers = [rng.randint(1, 4) if weighted else 1 for _ in keys]
        if weighted and 3 * byzantine < validators and 3 * sum(powers[i] for i in byz) >= sum(powers):
            for i in byz:  # keep the Byzantine power below a third, as the bound requires
                powers[i] = 1
        self.validators = ValidatorSet(Validator(f"sim{i}", derive_public_key(k), powers[i])
                                       for i, k in enumerate(keys))
        pool = behaviours or BEHAVIOURS
        self.nodes: list[_Node] = []
        for i, key in enumerate(keys):
            behaviour = rng.choice(pool) if i in byz else None
            self.nodes.append(_Node(self, i, key, behaviour))
        self.by_address = {n.signer.address: n for n in self.nodes}
        self.honest = [n for n in self.nodes if n.honest]
        self.byzantine = [n for n in self.nodes if not n.honest]
        shuffled = [n.index for n in self.honest]
        rng.shuffle(shuffled)
        self.group = {idx: (pos % 2) for pos, idx in enumerate(shuffled)}  # split attack halves
        self.side = {n.index: rng.random() < 0.5 for n in self.nodes}  # network partition halves
        self.conspiracy: dict[tuple[int, int], dict[int, bytes]] = {}
        self.queue: list[tuple] = []
        self.seq = 0
        self.now = 0
        self.decisions: dict[int, bytes] = {}
        self.next_deadline = self.gst + HEIGHT_BOUND_MS
        self.result = SimResult(seed, validators, byzantine, heights, self.mix.name,
                                tuple(n.behaviour for n in self.byzantine), self.gst)

    # ------------------------------------------------------------------ scheduling

    def push(self, at: int, kind: str, *payload) -> None:
        self.seq += 1
        heapq.heappush(self.queue, (at, self.seq, kind, payload))

    def send(self, src: int, dst: int, message: object) -> None:
        rng, mix = self.rng, self.mix
        before_gst = self.now < self.gst
        if before_gst:
            if mix.partition and self.side[src] != self.side[dst]:
                return
            if rng.random() < mix.drop:
                return
            delay = rng.randint(*mix.delay_ms)
        else:
            delay = rng.randint(1, POST_GST_DELAY_MS)
        self.push(self.now + delay, "deliver", dst, src, message)
        if rng.random() < (mix.duplicate if before_gst else 0.02):
            self.push(self.now + rng.randint(1, POST_GST_DELAY_MS if not before_gst else mix.delay_ms[1]),
                      "deliver", dst, src, message)

    def broadcast(self, src: int, message: object, skip: int | None = None) -> None:
        for node in self.nodes:
            if node.index != src and node.index != skip:
                self.send(src, node.index, message)

    # ------------------------------------------------------------------ node actions

    def perform(self, node: _Node, actions: list) -> None:
        for action in actions:
            if node.crash_on_sign and isinstance(action, (BroadcastProposal, BroadcastVote)):
                node.crash_on_sign = False
                self.crash(node)  # signed and durable in the signer, never sent
                return
            if isinstance(action, BroadcastProposal):
                if node.honest:
                    self.broadcast(node.index, action.proposal)
                else:
                    self.byzantine_proposal(node, action.proposal)
            elif isinstance(action, BroadcastVote):
                if node.honest:
                    self.broadcast(node.index, action.vote)
                else:
                    self.byzantine_vote(node, action.vote)
            elif isinstance(action, ScheduleTimeout):
                self.push(self.now + action.delay_ms, "timer", node.index, node.epoch, action.timeout)
            elif isinstance(action, Decide):
                self.on_decide(node, action)
                if self.result.safety_violations:
                    return
            elif isinstance(action, ReportEvidence):
                if node.honest:
                    self.result.evidence += 1

    def on_decide(self, node: _Node, d: Decide) -> None:
        if d.height != node.next_height:
            self.result.safety_violations.append(f"node {node.index} decided height {d.height} "
                                                 f"while expecting {node.next_height}")
            return
        proposal = node.driver.proposal_for(d.block_hash)
        node.decided[d.height] = (d.value, proposal, d.commit)
        if node.honest:
            self.check_decision(node, d)
            node.decide_times.append(self.now)
        if self.result.safety_violations:
            return
        self.start_height(node, d.height + 1)

    def check_decision(self, node: _Node, d: Decide) -> None:
        result = self.result
        first = self.decisions.get(d.height)
        if first is None:
            self.decisions[d.height] = d.value
            result.decision_rounds.append(d.round)
        elif first != d.value:
            result.safety_violations.append(f"height {d.height}: node {node.index} decided {d.value.hex()} "
                                            f"but another honest node decided {first.hex()}")
        if not is_valid_value(d.height, d.value):
            result.safety_violations.append(f"height {d.height}: node {node.index} decided invalid {d.value.hex()}")
        try:
            verify_commit(CHAIN_ID, self.validators, d.commit, sha256(d.value), d.height)
        except CertificateError as exc:
            result.safety_violations.append(f"height {d.height}: node {node.index} certificate: {exc.code}")
        if self.now > self.gst:
            since = self.now - max(self.gst, node.decide_times[-1] if node.decide_times else 0)
            result.worst_latency_after_gst_ms = max(result.worst_latency_after_gst_ms, since)

    # ------------------------------------------------------------------ Byzantine behaviour

    def _halves(self, node: _Node) -> tuple[list[int], list[int]]:
        peers = [n.index for n in self.nodes if n.index != node.index]
        return [p for p in peers if self.group.get(p, 1) == 0], [p for p in peers if self.group.get(p, 1) == 1]

    def byzantine_proposal(self, node: _Node, p: Proposal) -> None:
        signer: _UnguardedSigner = node.signer  # type: ignore[assignment]
        b = node.behaviour
        if b == "silent" or (node.quit_at is not None and self.now >= node.quit_at):
            return
        if b == "equivocate":
            alt_value = simulated_value(p.height, p.round, node.index, self.rng.getrandbits(63))
            alt = signer.sign_proposal(p.height, p.round, -1, sha256(alt_value), alt_value)
            first, second = self._halves(node)
            for peer in first:
                self.send(node.index, peer, p)
            for peer in second:
                self.send(node.index, peer, alt)
            return
        if b == "tamper":
            first, second = self._halves(node)
            for peer in first:
                self.send(node.index, peer, p)
            for peer in second:
                self.send(node.index, peer, tampered_proposal(p))
            return
        if b == "invalid-proposal":
            bad = invalid_value(p.height, self.rng.getrandbits(63)) if self.rng.random() < 0.5 \
                else simulated_value(p.height + 1, p.round, node.index, self.rng.getrandbits(63))
            self.broadcast(node.index, signer.sign_proposal(p.height, p.round, -1, sha256(bad), bad))
            return
        if b == "split":
            values = {g: simulated_value(p.height, p.round, node.index, self.rng.getrandbits(63)) for g in (0, 1)}
            self.conspiracy[(p.height, p.round)] = {g: sha256(v) for g, v in values.items()}
            first, second = self._halves(node)
            for g, peers in ((0, first), (1, second)):
                proposal = signer.sign_proposal(p.height, p.round, -1, sha256(values[g]), values[g])
                for peer in peers:
                    self.send(node.index, peer, proposal)
            for colluder in self.byzantine:
                if colluder.behaviour == "split":
                    self.split_votes(colluder, p.height, p.round)
            return
        self.broadcast(node.index, p)
        if b == "future":
            self.future_messages(node, p.height, p.round)

    def split_votes(self, node: _Node, height: int, round_: int) -> None:
        signer: _UnguardedSigner = node.signer  # type: ignore[assignment]
        targets = self.conspiracy[(height, round_)]
        halves = self._halves(node)
        for g in (0, 1):
            for vote_type in (VoteType.PREVOTE, VoteType.PRECOMMIT):
                vote = signer.sign_vote(vote_type, height, round_, targets[g])
                for peer in halves[g]:
                    self.send(node.index, peer, vote)

    def byzantine_vote(self, node: _Node, v: Vote) -> None:
        signer: _UnguardedSigner = node.signer  # type: ignore[assignment]
        b, rng = node.behaviour, self.rng
        if b == "silent" or (node.quit_at is not None and self.now >= node.quit_at):
            return
        if b == "split":
            if (v.height, v.round) not in self.conspiracy:
                self.broadcast(node.index, v)
            return
        if b == "double-vote":
            other = None if v.block_hash is not None else sha256(rng.getrandbits(64).to_bytes(8, "big"))
            alt = signer.sign_vote(v.vote_type, v.height, v.round, other)
            first, second = self._halves(node)
            for peer in first:
                self.send(node.index, peer, v)
            for peer in second:
                self.send(node.index, peer, alt)
            if rng.random() < 0.5:
                self.broadcast(node.index, alt)
            return
        if b == "slot-fill":
            # Fill the validator's slots with nil and other values proposed at this height before the real vote.
            fillers: list[bytes | None] = [None] if v.block_hash is not None else []
            for r in node.driver.rounds_held():
                fillers.extend(p.block_hash for p in node.driver.proposals_in(r) if p.block_hash != v.block_hash)
            while len(fillers) < 4:
                fillers.append(sha256(rng.getrandbits(64).to_bytes(8, "big")))
            for target in fillers[:6]:
                self.broadcast(node.index, signer.sign_vote(v.vote_type, v.height, v.round, target))
            self.broadcast(node.index, v)
            return
        if b == "invalid-votes":
            if rng.random() < 0.5:
                target = sha256(invalid_value(v.height, rng.getrandbits(63)))
            else:
                target = sha256(rng.getrandbits(64).to_bytes(8, "big"))
            self.broadcast(node.index, signer.sign_vote(v.vote_type, v.height, v.round, target))
            return
        self.broadcast(node.index, v)
        if b == "future":
            self.future_messages(node, v.height, v.round)

    def future_messages(self, node: _Node, height: int, round_: int) -> None:
        signer: _UnguardedSigner = node.signer  # type: ignore[assignment]
        rng = self.rng
        for h, r in ((height + 1, 0), (height, round_ + rng.randint(1, 5)), (height + rng.randint(2, 50), 0),
                     (height, round_ + rng.randint(100, 10_000))):
            value = simulated_value(h, r, node.index, rng.getrandbits(63))
            vote_type = rng.choice((VoteType.PREVOTE, VoteType.PRECOMMIT))
            self.broadcast(node.index, signer.sign_vote(vote_type, h, r, sha256(value)))
            self.broadcast(node.index, signer.sign_proposal(h, r, -1, sha256(value), value))

    # ------------------------------------------------------------------ gossip

    def gossip_tick(self, node: _Node) -> None:
        """The round-state exchange: an honest node sends each peer its status."""
        if node.honest:
            self.broadcast(node.index, StatusMessage(node.index, node.relay.status()))
        self.push(self.now + GOSSIP_MS, "gossip", node.index, node.epoch)

    def answer_status(self, node: _Node, message: StatusMessage) -> None:
        """An honest peer answers with what the sender lacks; a Byzantine one keeps its own counsel, except
        a tamperer, which answers with tampered copies (blocks under their genuine ids and certificates)."""
        if not node.honest and node.behaviour != "tamper":
            return
        for missing in node.relay.answer(message.status):
            if node.behaviour == "tamper":
                missing = tampered_proposal(missing) if isinstance(missing, Proposal) else \
                    Decided(tampered_value(missing.value), missing.commit) if isinstance(missing, Decided) else missing
            self.send(node.index, message.sender, missing)

    def start_height(self, node: _Node, height: int) -> None:
        actions, reoffered = node.relay.start_height(height)
        self.perform(node, actions)
        for message, received in reoffered:
            self.after_receive(node, None, message, received)

    def after_receive(self, node: _Node, src: int | None, message: object, received) -> None:
        if received.flood and node.honest:
            self.broadcast(node.index, message, skip=src)
        elif received.flood and node.behaviour == "tamper" and isinstance(message, Proposal):
            self.broadcast(node.index, tampered_proposal(message), skip=src)  # a relay that tampers
        if received.actions:
            self.perform(node, received.actions)

    # ------------------------------------------------------------------ crashes

    def crash(self, node: _Node) -> None:
        node.up = False
        node.epoch += 1
        assert node.wal is not None
        node.wal.crash()

    def restart(self, node: _Node) -> None:
        self.result.restarts += 1
        node.up = True
        node.epoch += 1
        node.driver = node._new_driver()
        node.relay = Relay(node.driver, node._decided_at)  # what it had seen is gone with the process
        self.start_height(node, node.next_height)
        self.push(self.now + GOSSIP_MS, "gossip", node.index, node.epoch)

    # ------------------------------------------------------------------ main loop

    def run(self) -> SimResult:
        rng, result = self.rng, self.result
        for node in self.nodes:
            if node.behaviour == "silent":
                node.up = False
                continue
            self.start_height(node, 1)
            self.push(rng.randint(1, GOSSIP_MS), "gossip", node.index, node.epoch)
        faults_end = 0
        if self.mix.crashes and self.gst > 1:
            for node in rng.sample(self.honest, min(self.mix.crashes, len(self.honest))):
                down = rng.randint(0, self.gst // 2)
                up = rng.randint(down + 1, self.gst)
                self.push(down, "torn-crash" if self.mix.torn else "crash", node.index)
                self.push(up, "restart", node.index)
                faults_end = max(faults_end, up)
        if self.mix.pause and self.honest:
            faults_end = max(faults_end, self.schedule_pause())
        for node in self.byzantine:
            if node.behaviour == "quits" and node.quit_at is None:
                node.quit_at = rng.randint(0, max(self.gst, 1))
        events = 0
        while self.queue:
            at, _, kind, payload = heapq.heappop(self.queue)
            self.now = at
            events += 1
            if self.check_liveness() or events > MAX_SIM_EVENTS:
                if events > MAX_SIM_EVENTS:
                    result.liveness_failures.append(f"event budget exhausted at t={at}ms")
                break
            if kind in ("timer", "gossip") and self.nodes[payload[0]].paused_until > self.now:
                self.push(self.nodes[payload[0]].paused_until, kind, *payload)  # runs when the node resumes
                continue
            if kind == "deliver":
                node = self.nodes[payload[0]]
                if node.up and node.paused_until <= self.now:
                    result.messages += 1
                    self.deliver(node, payload[1], payload[2])
            elif kind == "timer":
                node = self.nodes[payload[0]]
                if node.up and node.epoch == payload[1]:
                    self.perform(node, node.driver.on_timeout(payload[2]))
            elif kind == "gossip":
                node = self.nodes[payload[0]]
                if node.up and node.epoch == payload[1]:
                    self.gossip_tick(node)
            elif kind == "pause":
                self.nodes[payload[0]].paused_until = payload[1]
            elif kind == "crash":
                self.crash(self.nodes[payload[0]])
            elif kind == "torn-crash":
                self.nodes[payload[0]].crash_on_sign = True
            elif kind == "restart":
                node = self.nodes[payload[0]]
                if node.up:  # a torn crash that found nothing to sign crashes now
                    node.crash_on_sign = False
                    self.crash(node)
                self.restart(node)
            if result.safety_violations:
                break
            if self.now >= faults_end and all(len(n.decided) >= self.heights for n in self.honest):
                break  # every height decided, and every crash has been followed by its restart
        result.sim_time_ms = self.now
        result.heights_decided = min(min(len(n.decided) for n in self.honest), self.heights) if self.honest else 0
        result.extra_heights = max(0, min(len(n.decided) for n in self.honest) - self.heights) if self.honest else 0
        if not result.safety_violations and not result.liveness_failures and result.heights_decided < self.heights:
            result.liveness_failures.append(f"stopped at t={self.now}ms with {result.heights_decided} heights decided")
        return result

    def schedule_pause(self) -> int:
        """Pause one honest node for a while before GST; a Byzantine node that quits does so meanwhile.
        Returns when the pause ends."""
        rng = self.rng
        node = rng.choice(self.honest)
        start = rng.randint(0, self.gst // 3)
        end = rng.randint(start + (self.gst - start) // 2, self.gst)
        self.push(start, "pause", node.index, end)
        for byz in self.byzantine:
            if byz.behaviour == "quits":
                byz.quit_at = rng.randint((start + end) // 2, end)
        return end

    def deliver(self, node: _Node, src: int, message: object) -> None:
        """Everything a node hears goes through its relay, as in the runtime."""
        if isinstance(message, StatusMessage):
            self.answer_status(node, message)
        elif isinstance(message, (Proposal, Vote, Decided)):
            # Messages are immutable objects here: the object itself stands for the digest of its bytes.
            received = node.relay.receive(message, message)  # type: ignore[arg-type]
            self.after_receive(node, src, message, received)

    def check_liveness(self) -> bool:
        if self.now <= self.next_deadline:
            return False
        lagging = min(self.honest, key=lambda n: len(n.decided))
        k = len(lagging.decided) + 1
        if k > self.heights:
            self.next_deadline = 1 << 62
            return False
        self.next_deadline = self.gst + k * HEIGHT_BOUND_MS
        if self.now > self.next_deadline:
            self.result.liveness_failures.append(
                f"node {lagging.index} had not decided height {k} by t={self.now}ms (GST {self.gst}ms)")
            return True
        return False


def run_simulation(seed: int, validators: int = 4, byzantine: int = 1, heights: int = 8, *,
                   fault_mix: str | None = None, behaviours: tuple[str, ...] | None = None,
                   weighted: bool = False) -> SimResult:
    """One deterministic run; ``fault_mix`` and ``behaviours`` default to a choice made by the seed.

    With ``weighted`` validators get powers 1-4 (Byzantine power kept below a third when the count is)."""
    if validators < 1 or byzantine < 0 or byzantine >= validators or heights < 1:
        raise ValueError("need 1 <= validators, 0 <= byzantine < validators, heights >= 1")
    if fault_mix is not None and fault_mix not in FAULT_MIXES:
        raise ValueError(f"unknown fault mix {fault_mix!r}; choose from {sorted(FAULT_MIXES)}")
    if behaviours is not None and not set(behaviours) <= set(BEHAVIOURS):
        raise ValueError(f"unknown behaviour; choose from {BEHAVIOURS}")
    return _Simulation(seed, validators, byzantine, heights, fault_mix, behaviours, weighted).run()


# ---------------------------------------------------------------------------- command line


def add_simulate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seeds", type=int, default=100, help="number of seeded runs (default 100)")
    parser.add_argument("--validators", type=int, default=4, help="validators per run (default 4)")
    parser.add_argument("--byzantine", type=int, default=1, help="Byzantine validators per run (default 1)")
    parser.add_argument("--seed-start", type=int, default=0, help="first seed (default 0)")
    parser.add_argument("--heights", type=int, default=8, help="heights each run must decide (default 8)")
    parser.add_argument("--fault-mix", choices=sorted(FAULT_MIXES), default=None,
                        help="force one fault mix (default: chosen per seed)")
    parser.add_argument("--behaviour", choices=BEHAVIOURS, action="append", default=None,
                        help="restrict Byzantine behaviours (repeatable; default: all)")
    parser.add_argument("--weighted", action="store_true", help="unequal voting powers (1-4)")
    parser.add_argument("--stats", action="store_true", help="print figures per fault mix before the summary")


def _replay_hint(args: argparse.Namespace, seed: int) -> str:
    extra = f" --fault-mix {args.fault_mix}" if args.fault_mix else ""
    extra += " --weighted" if args.weighted else ""
    for b in args.behaviour or ():
        extra += f" --behaviour {b}"
    return (f"ledger-node simulate --seeds 1 --seed-start {seed} --validators {args.validators} "
            f"--byzantine {args.byzantine} --heights {args.heights}{extra}")


def run_simulate_command(args: argparse.Namespace) -> int:
    """Run the seeds, print one summary line; non-zero exit on any violation."""
    if args.seeds < 1 or args.validators < 1 or not 0 <= args.byzantine < args.validators or args.heights < 1:
        print("simulate: need --seeds >= 1, --validators >= 1, 0 <= --byzantine < --validators, --heights >= 1",
              file=sys.stderr)
        return 2
    if 3 * args.byzantine >= args.validators:
        print(f"simulate: warning: {args.byzantine} Byzantine of {args.validators} exceeds f < n/3; "
              "violations are expected", file=sys.stderr)
    behaviours = tuple(args.behaviour) if args.behaviour else None
    started = time.perf_counter()
    runs = safety = liveness = heights = 0
    failures: list[SimResult] = []
    results: list[SimResult] = []
    for seed in range(args.seed_start, args.seed_start + args.seeds):
        result = run_simulation(seed, args.validators, args.byzantine, args.heights,
                                fault_mix=args.fault_mix, behaviours=behaviours, weighted=args.weighted)
        runs += 1
        safety += len(result.safety_violations) > 0
        liveness += len(result.liveness_failures) > 0
        heights += result.heights_decided
        results.append(result)
        if not result.ok:
            failures.append(result)
    wall = time.perf_counter() - started
    if args.stats:
        for line in format_stats(results, wall):
            print(line)
    for result in failures[:10]:
        reason = (result.safety_violations or result.liveness_failures)[0]
        print(f"FAILED seed={result.seed} mix={result.fault_mix} byzantine={','.join(result.behaviours) or '-'}: "
              f"{reason}")
        print(f"  replay: {_replay_hint(args, result.seed)}")
    print(f"runs={runs} safety_violations={safety} liveness_failures={liveness} heights={heights}")
    return 1 if failures else 0


def _stats_line(name: str, results: list[SimResult]) -> str:
    rounds = [r + 1 for res in results for r in res.decision_rounds]
    decided = sum(res.heights_decided + res.extra_heights for res in results)
    sim_s = sum(res.sim_time_ms for res in results) / 1000
    return (f"{name:<17} {len(results):>5}  {decided:>7}  {sum(rounds) / max(len(rounds), 1):>13.2f}"
            f"  {max(rounds, default=0) - 1:>9}  {decided / max(sim_s, 1e-9):>13.2f}"
            f"  {max(res.worst_latency_after_gst_ms for res in results):>18}")


def format_stats(results: list[SimResult], wall_seconds: float) -> list[str]:
    """Per fault mix and per Byzantine behaviour: runs, heights decided, rounds per height (1 = decided
    in round 0), the highest decision round, heights per simulated second, and the longest wait for a
    decision after GST; then totals with heights per wall-clock second."""
    header = "{:<17} {:>5}  {:>7}  {:>13}  {:>9}  {:>13}  {:>18}".format(
        "", "runs", "heights", "rounds/height", "max_round", "heights/sim-s", "worst_after_gst_ms")
    lines = [header.replace(" " * 17, "fault mix".ljust(17), 1)]
    by_mix: dict[str, list[SimResult]] = {}
    by_behaviour: dict[str, list[SimResult]] = {}
    for res in results:
        by_mix.setdefault(res.fault_mix, []).append(res)
        for b in sorted(set(res.behaviours)) or ["(none)"]:
            by_behaviour.setdefault(b, []).append(res)
    lines += [_stats_line(name, by_mix[name]) for name in sorted(by_mix)]
    lines.append(header.replace(" " * 17, "byzantine".ljust(17), 1))
    lines += [_stats_line(name, by_behaviour[name]) for name in sorted(by_behaviour)]
    decided = sum(res.heights_decided + res.extra_heights for res in results)
    sim_s = sum(res.sim_time_ms for res in results) / 1000
    lines.append(f"total heights={decided} simulated={sim_s:.1f}s wall={wall_seconds:.1f}s "
                 f"heights/sim-s={decided / max(sim_s, 1e-9):.2f} "
                 f"heights/wall-s={decided / max(wall_seconds, 1e-9):.1f}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m node.consensus.simulate",
                                     description="Deterministic multi-node consensus simulation")
    add_simulate_arguments(parser)
    return run_simulate_command(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
