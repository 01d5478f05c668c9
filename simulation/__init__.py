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

With reconfiguration (``ledger-node simulate``'s default; ``run_simulation(...,
reconfig=True)``) the validator set changes during the run through the
ledger's own rules: values carry signed approvals and quits
(``node.types.reconfig``), every node derives its ``ValidatorState`` per height
with ``apply_inputs`` and gives its driver ``validators_of`` from it, as the
node does.  Spare nodes follow the chain from the start and join; members
quit, change power or rotate keys (and keep following); the operators never
let the Byzantine validators reach a third of any set's power.

Checked at every step: no two honest nodes decide different values at one
height (safety), every decision is a valid value with a certificate that
verifies against its height's set (validity), every honest node computes the
same validator state after each height, and every honest node (followers
included) decides height k by ``GST + k * HEIGHT_BOUND_MS`` (liveness).

The parts: ``world`` (the clock, the network and the run loop), ``nodes``
(the simulated nodes, their keys and signers), ``chain`` (values, validity
and each node's validator state), ``reconfig`` (the operators' schedule of set
changes), ``faults`` (the fault mixes), ``byzantine`` (the behaviours),
``invariants`` (the checks and the result) and ``cli`` (``ledger-node
simulate`` and ``python -m simulation``).
"""

from simulation.byzantine import BEHAVIOURS
from simulation.cli import add_simulate_arguments, run_simulate_command
from simulation.faults import FAULT_MIXES, FaultMix
from simulation.invariants import HEIGHT_BOUND_MS, SimResult
from simulation.world import Simulation, run_simulation

__all__ = [
    "BEHAVIOURS",
    "FAULT_MIXES",
    "HEIGHT_BOUND_MS",
    "FaultMix",
    "SimResult",
    "Simulation",
    "add_simulate_arguments",
    "run_simulate_command",
    "run_simulation",
]
