"""The simulated world: a virtual clock, a network that obeys the fault mix, and the nodes.

One ``random.Random(seed)`` drives everything, and events run in the order of
their virtual time (ties in the order they were scheduled), so a seed replays
exactly.  Every node runs the node's own relay (``node.consensus.relay``)
around its driver, as the runtime does; only the network is simulated.
"""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass

from node.consensus.actions import BroadcastProposal, BroadcastVote, Decide, ReportEvidence, ScheduleTimeout
from node.consensus.messages import Proposal, Vote
from node.consensus.relay import STATUS_INTERVAL_MS, Relay
from node.consensus.round_status import Decided, RoundStatus
from node.crypto import address_hash, derive_public_key
from node.types.validators import Validator, ValidatorSet
from simulation.byzantine import BEHAVIOURS, send_proposal, send_vote, tampered, tampered_proposal
from simulation.chain import CHAIN_ID
from simulation.faults import FAULT_MIXES, POST_GST_DELAY_MS
from simulation.invariants import (
    HEIGHT_BOUND_MS,
    SimResult,
    check_decision,
    check_decision_height,
    check_end,
    check_liveness,
    check_validator_state,
)
from simulation.nodes import SimNode, key_for
from simulation.reconfig import EXPIRY_MARGIN, Operator, plan_changes

GOSSIP_MS = STATUS_INTERVAL_MS
"""Each honest node sends its peers its round status this often (the runtime's interval)."""
MAX_SIM_EVENTS = 5_000_000


@dataclass(frozen=True)
class StatusMessage:
    """A node's round status on its way to a peer (the runtime posts it to ``/p2p/round-state``)."""

    sender: int
    """Node index of the sender, who gets the answer."""
    status: RoundStatus
    """What the sender holds."""


class Simulation:
    """One seeded run: the nodes, the event queue and the network between them."""

    def __init__(self, seed: int, validators: int, byzantine: int, heights: int, fault_mix: str | None,
                 behaviours: tuple[str, ...] | None, weighted: bool = False, reconfig: bool = False):
        self.rng = random.Random(seed)
        self.wal_rng = random.Random(f"wal-{seed}")
        """How much of an unsynced log tail a crash keeps (its own stream: the main one, and so every seed's
        run, is what it was before crashes kept any)."""
        rng = self.rng
        self.mix = FAULT_MIXES[fault_mix] if fault_mix is not None else FAULT_MIXES[rng.choice(sorted(FAULT_MIXES))]
        self.gst = rng.randint(*self.mix.gst_ms)
        self.heights = heights
        keys = [key_for(seed, i) for i in range(validators)]
        order = list(range(validators))
        rng.shuffle(order)
        byz = set(order[:byzantine])
        powers = [rng.randint(1, 4) if weighted else 1 for _ in keys]
        if weighted and 3 * byzantine < validators and 3 * sum(powers[i] for i in byz) >= sum(powers):
            for i in byz:  # keep the Byzantine power below a third, as the bound requires
                powers[i] = 1
        self.validators = ValidatorSet(Validator(f"sim{i}", derive_public_key(k), powers[i])
                                       for i, k in enumerate(keys))
        """The genesis set (the set of every height in a run without reconfiguration)."""
        self.reconfig = reconfig
        spares = rng.randint(1, 2) if reconfig else 0
        keys += [key_for(seed, i) for i in range(validators, validators + spares)]  # followers that may join
        pool = behaviours or BEHAVIOURS
        self.nodes: list[SimNode] = []
        for i, key in enumerate(keys):
            behaviour = rng.choice(pool) if i in byz else None
            self.nodes.append(SimNode(self, i, key, behaviour, self.validators))
        self.operator: Operator | None = None
        """The operators' schedule of set changes (None: the set never changes)."""
        if reconfig:
            node_of = {address_hash(derive_public_key(k)): i for i, k in enumerate(keys)}
            members = [node_of[v.address] for v in self.validators]
            changes = plan_changes(rng, self.validators, members, byz, range(validators, len(keys)), heights)
            self.operator = Operator(CHAIN_ID, keys, byz, changes, heights + EXPIRY_MARGIN)
        self.honest = [n for n in self.nodes if n.honest]
        self.byzantine = [n for n in self.nodes if not n.honest]
        self.byzantine_addresses = {n.signer.address for n in self.byzantine}
        shuffled = [n.index for n in self.honest]
        rng.shuffle(shuffled)
        self.group = {idx: (pos % 2) for pos, idx in enumerate(shuffled)}  # split attack halves
        self.side = {n.index: rng.random() < 0.5 for n in self.nodes}  # network partition halves
        self.conspiracy: dict[tuple[int, int], dict[int, bytes]] = {}
        self.queue: list[tuple] = []
        self.seq = 0
        self.now = 0
        self.decisions: dict[int, bytes] = {}
        """Per height, the value the first honest node decided."""
        self.state_hashes: dict[int, bytes] = {}
        """Per height, the hash of the validator state after it, as the first honest node computed it."""
        self.next_deadline = self.gst + HEIGHT_BOUND_MS
        """When liveness is checked next."""
        self.result = SimResult(seed, validators, byzantine, heights, self.mix.name,
                                tuple(n.behaviour for n in self.byzantine if n.behaviour is not None), self.gst,
                                reconfig=reconfig)

    # ------------------------------------------------------------------ clock and network

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

    def perform(self, node: SimNode, actions: list) -> None:
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

    def byzantine_proposal(self, node: SimNode, p: Proposal) -> None:
        """A Byzantine node sends its driver's proposal its own way (``simulation.byzantine``)."""
        send_proposal(self, node, p)

    def byzantine_vote(self, node: SimNode, v: Vote) -> None:
        """A Byzantine node sends its driver's vote its own way."""
        send_vote(self, node, v)

    def on_decide(self, node: SimNode, d: Decide) -> None:
        if not check_decision_height(self, node, d):
            return
        proposal = node.driver.proposal_for(d.block_hash)
        node.decided[d.height] = (d.value, proposal, d.commit)
        if node.honest:
            check_decision(self, node, d)
            node.decide_times.append(self.now)
        if self.result.safety_violations:
            return
        try:
            state = node.ledger.commit(d.height, d.value)
        except ValueError as exc:  # a decision this node's ledger cannot apply
            if node.honest:
                self.result.safety_violations.append(f"node {node.index}: {exc}")
            node.up = False
            return
        if node.honest:
            check_validator_state(self, node, state)
            if self.result.safety_violations:
                return
        self.start_height(node, d.height + 1)

    # ------------------------------------------------------------------ gossip

    def gossip_tick(self, node: SimNode) -> None:
        """The round-state exchange: an honest node sends each peer its status."""
        if node.honest:
            self.broadcast(node.index, StatusMessage(node.index, node.relay.status()))
        self.push(self.now + GOSSIP_MS, "gossip", node.index, node.epoch)

    def answer_status(self, node: SimNode, message: StatusMessage) -> None:
        """An honest peer answers with what the sender lacks; a Byzantine one keeps its own counsel, except
        a tamperer, which answers with tampered copies (blocks under their genuine ids and certificates)."""
        if not node.honest and node.behaviour != "tamper":
            return
        for missing in node.relay.answer(message.status):
            self.send(node.index, message.sender, tampered(missing) if node.behaviour == "tamper" else missing)

    def start_height(self, node: SimNode, height: int) -> None:
        actions, reoffered = node.relay.start_height(height)
        self.perform(node, actions)
        for message, received in reoffered:
            self.after_receive(node, None, message, received)

    def after_receive(self, node: SimNode, src: int | None, message: object, received) -> None:
        if received.flood and node.honest:
            self.broadcast(node.index, message, skip=src)
        elif received.flood and node.behaviour == "tamper" and isinstance(message, Proposal):
            self.broadcast(node.index, tampered_proposal(message), skip=src)  # a relay that tampers
        if received.actions:
            self.perform(node, received.actions)

    def deliver(self, node: SimNode, src: int, message: object) -> None:
        """Everything a node hears goes through its relay, as in the runtime."""
        if isinstance(message, StatusMessage):
            self.answer_status(node, message)
        elif isinstance(message, (Proposal, Vote, Decided)):
            # Messages are immutable objects here: the object itself stands for the digest of its bytes.
            received = node.relay.receive(message, message)
            self.after_receive(node, src, message, received)

    # ------------------------------------------------------------------ crashes and pauses

    def crash(self, node: SimNode) -> None:
        node.up = False
        node.epoch += 1
        assert node.wal is not None
        node.wal.crash(keep_unsynced=self.wal_rng.randint(0, node.wal.unsynced))  # a power cut (0) to a kill

    def restart(self, node: SimNode) -> None:
        self.result.restarts += 1
        node.up = True
        node.epoch += 1
        node.driver = node.new_driver()
        node.relay = Relay(node.driver, node.decided_at)  # what it had seen is gone with the process
        self.start_height(node, node.next_height)
        self.push(self.now + GOSSIP_MS, "gossip", node.index, node.epoch)

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
            if check_liveness(self) or events > MAX_SIM_EVENTS:
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
        check_end(self)
        return result


def run_simulation(seed: int, validators: int = 4, byzantine: int = 1, heights: int = 8, *,
                   fault_mix: str | None = None, behaviours: tuple[str, ...] | None = None,
                   weighted: bool = False, reconfig: bool = False) -> SimResult:
    """One deterministic run; ``fault_mix`` and ``behaviours`` default to a choice made by the seed.

    With ``weighted`` validators get powers 1-4 (Byzantine power kept below a third when the count is).
    With ``reconfig`` the set changes during the run (``simulation.reconfig``): spare nodes follow from the
    start and may join, members quit, change power or rotate keys; the run uses the ``ledger-node
    simulate`` default (on) only when asked, so the seeds kept as regressions replay as they always did."""
    if validators < 1 or byzantine < 0 or byzantine >= validators or heights < 1:
        raise ValueError("need 1 <= validators, 0 <= byzantine < validators, heights >= 1")
    if fault_mix is not None and fault_mix not in FAULT_MIXES:
        raise ValueError(f"unknown fault mix {fault_mix!r}; choose from {sorted(FAULT_MIXES)}")
    if behaviours is not None and not set(behaviours) <= set(BEHAVIOURS):
        raise ValueError(f"unknown behaviour; choose from {BEHAVIOURS}")
    return Simulation(seed, validators, byzantine, heights, fault_mix, behaviours, weighted, reconfig).run()
