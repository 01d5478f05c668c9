"""What every run is checked for, at every step, and what it reports.

Safety: no two honest nodes decide different values at one height, and a
node decides the heights in order.  Validity: every decision is a valid
value (payload and reconfiguration inputs, on the deciding node's own
validator state) with a commit certificate that verifies against the set of
that height.  Replicated validator state: every honest node computes the same
``ValidatorState`` hash after each height.  Liveness: every honest node
(followers included) decides height k by ``GST + k * HEIGHT_BOUND_MS``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from node.consensus.actions import Decide
from node.consensus.certificate import CertificateError, verify_commit
from node.crypto import sha256
from node.ledger.validator_state import ValidatorState
from simulation.chain import CHAIN_ID
from simulation.nodes import SimNode

if TYPE_CHECKING:
    from simulation.world import Simulation

HEIGHT_BOUND_MS = 15_000
"""Liveness bound: every honest node decides height k by GST + k * HEIGHT_BOUND_MS."""


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
    reconfig: bool = False
    """The validator set could change during the run."""
    set_changes: int = 0
    """Heights after which the set of the height two on differs from the one before (an honest node's view)."""
    joined: int = 0
    """Keys that entered the set during the run."""
    left: int = 0
    """Keys that left the set during the run."""
    byzantine_across_changes: int = 0
    """Set changes with a Byzantine validator in the set both before and after."""
    final_set_differs: bool = False
    """The last set known differs from the genesis set."""

    @property
    def ok(self) -> bool:
        return not self.safety_violations and not self.liveness_failures


def check_decision_height(sim: Simulation, node: SimNode, d: Decide) -> bool:
    """Safety: a node decides the next height, never another; False (and a violation) if not."""
    if d.height != node.next_height:
        sim.result.safety_violations.append(f"node {node.index} decided height {d.height} "
                                            f"while expecting {node.next_height}")
        return False
    return True


def check_decision(sim: Simulation, node: SimNode, d: Decide) -> None:
    """Safety and validity of an honest node's decision, before the node records its time."""
    result = sim.result
    first = sim.decisions.get(d.height)
    if first is None:
        sim.decisions[d.height] = d.value
        result.decision_rounds.append(d.round)
    elif first != d.value:
        result.safety_violations.append(f"height {d.height}: node {node.index} decided {d.value.hex()} "
                                        f"but another honest node decided {first.hex()}")
    if not node.ledger.is_valid(d.height, d.value):
        result.safety_violations.append(f"height {d.height}: node {node.index} decided invalid {d.value.hex()}")
    try:
        verify_commit(CHAIN_ID, node.ledger.validators_of(d.height), d.commit, sha256(d.value), d.height)
    except CertificateError as exc:
        result.safety_violations.append(f"height {d.height}: node {node.index} certificate: {exc.code}")
    if sim.now > sim.gst:
        since = sim.now - max(sim.gst, node.decide_times[-1] if node.decide_times else 0)
        result.worst_latency_after_gst_ms = max(result.worst_latency_after_gst_ms, since)


def check_validator_state(sim: Simulation, node: SimNode, state: ValidatorState) -> None:
    """Replicated state: an honest node's validator state after a height hashes like every other's; and the
    premise of the run (Byzantine power below a third) holds in the set it names for two heights on."""
    first = sim.state_hashes.setdefault(state.height, state.hash)
    if first != state.hash:
        sim.result.safety_violations.append(f"height {state.height}: node {node.index} computed validator state "
                                            f"{state.hash.hex()} but another honest node {first.hex()}")
    byzantine = sum(v.power for v in state.next if v.address in sim.byzantine_addresses)
    if 3 * byzantine >= state.next.total_power and 3 * len(sim.byzantine) < len(sim.validators):
        sim.result.safety_violations.append(f"height {state.height + 2}: the Byzantine validators hold "
                                            f"{byzantine} of {state.next.total_power} power (the run's premise)")


def count_set_changes(sim: Simulation) -> None:
    """The set changes an honest node that decided the most heights saw, for the result."""
    result = sim.result
    if not sim.honest:
        return
    states = max(sim.honest, key=lambda n: len(n.ledger.states)).ledger.states
    byzantine = sim.byzantine_addresses
    for height in range(1, max(states) + 1):
        before, after = states[height - 1].next, states[height].next
        if before == after:
            continue
        result.set_changes += 1
        result.joined += sum(1 for a in after.addresses if a not in before)
        result.left += sum(1 for a in before.addresses if a not in after)
        result.byzantine_across_changes += any(a in before and a in after for a in byzantine)
    result.final_set_differs = states[max(states)].next != sim.validators


def check_liveness(sim: Simulation) -> bool:
    """Liveness at the current time: True (and a failure) once an honest node misses its deadline."""
    if sim.now <= sim.next_deadline:
        return False
    lagging = min(sim.honest, key=lambda n: len(n.decided))
    k = len(lagging.decided) + 1
    if k > sim.heights:
        sim.next_deadline = 1 << 62
        return False
    sim.next_deadline = sim.gst + k * HEIGHT_BOUND_MS
    if sim.now > sim.next_deadline:
        sim.result.liveness_failures.append(
            f"node {lagging.index} had not decided height {k} by t={sim.now}ms (GST {sim.gst}ms)")
        return True
    return False


def check_end(sim: Simulation) -> None:
    """When the run stops: count the heights every honest node decided; too few is a liveness failure."""
    result = sim.result
    honest = sim.honest
    count_set_changes(sim)
    result.heights_decided = min(min(len(n.decided) for n in honest), sim.heights) if honest else 0
    result.extra_heights = max(0, min(len(n.decided) for n in honest) - sim.heights) if honest else 0
    if not result.safety_violations and not result.liveness_failures and result.heights_decided < sim.heights:
        result.liveness_failures.append(f"stopped at t={sim.now}ms with {result.heights_decided} heights decided")
