"""Fault drills: a bank workload on a real devnet under crashes, pauses,
partitions, slow links, overlapping faults, skewed clocks and Byzantine
validators, then a check that nothing was lost and the chain kept moving.

    python -m devnet.drill --seed 1 --duration 300
    ledger-devnet drill --seed 1 --duration 300 --faults kill,partition --json drill.json

The drill starts ``--validators`` real ``ledger-node`` processes on loopback.
Their peer URLs point at a per-link proxy (``devnet/proxy.py``) so links can
be cut and slowed one by one; clients talk to the nodes' own ports.

**Workload** (Jepsen's bank): ``--accounts`` accounts, each funded in
genesis with a few outputs.  ``--clients`` concurrent clients send random
transfers between them (sometimes two inputs, sometimes a deliberate double
spend sent to two nodes at once) to random nodes with ``?wait=commit``, and
read balances from random nodes.  Every acknowledgement (HTTP 200
"committed" with height and block hash) and every balance read (node, the
height the node reported, the balance) is recorded.

**Faults** are planned from ``--seed`` before the run (the same seed gives the
same schedule) and applied one after the other, each followed by a pause to
recover:

- ``kill``: SIGKILL one validator, restart it a few seconds later;
- ``killall``: SIGKILL every validator at once, restart them all;
- ``pause``: SIGSTOP one or two validators, SIGCONT later;
- ``partition``: isolate one validator, split 2/2, or a ring of majorities
  (every node sees a majority, no two nodes the same one), then heal;
- ``slow``: delay, jitter, retransmission stalls and resets on every link;
- ``twin``: a fifth process with a copy of one validator's key (own home, own
  signer state, peered with everyone), so that key signs conflicting votes;
- ``lag``: overlapping faults: SIGSTOP one validator until the others are 3
  heights ahead, take a second one down (SIGSTOP or SIGKILL), SIGCONT the
  first: with 3 of 4 up the chain must move on; then heal the second;
- ``clock``: restart one validator with its clock off by minutes to years
  (``clock_offset_ms``), later with the true time again;
- ``tamper``: replace one validator's process by a Byzantine one
  (``devnet/byzantine.py``) that sends some peers tampered proposals and
  serves them tampered blocks (block sync, round-state answers; same block
  id, one transaction signature changed), while a targeted honest node lags
  behind with only the Byzantine one to fetch from; then restore the honest one;
- ``reconfig``: one change of the validator set per step: a new node is
  added (home, started, caught up) and joins, a validator quits (its process
  keeps running as a full node), a validator's key is rotated (a new key
  joins, the old one quits), or a power changes.  The plan follows the set,
  so every later fault targets the validators of its time; the set keeps at
  least 4 validators, each with less than a third of the power, and the
  twin's victim never leaves it.

After every heal a new height must follow within 30 s (the next fault waits
for it; ``devnet.drill.liveness``).

**Checks** once every fault is healed and the nodes converged: every node has
the same block hash and app hash at every height; replaying the chain from
genesis, no output is spent twice and every input exists; the balances the
nodes serve for every account and validator at every height
(``balance?height=H``) add up to the genesis supply and equal the replay;
every acknowledged transaction is in the chain at the height and block it
was acknowledged with; every balance read matches the replay at the height
the node reported; the twin's equivocation is in ``GET /v1/evidence`` of an
honest node (with valid signatures) and no honest validator is accused; no
request got a 500; no node died on its own; the chain commits a transfer after
healing; no heal is followed by a stall longer than the liveness bound (the
verdict reports the longest); block times strictly increase and lie within
the honest clocks (after the drill's start, before the drill saw the height,
5 s slack each); while a Byzantine validator tampered, the chain moved on and
no honest node stopped; every change of the set happened (the report gives
each one's timings: add-node to caught up, JOIN to in the set, to the first
signed block), every node ends with the set the drill followed, the faults
named validators of the set of their time, and a validator that quit kept
following.  "Every node" includes the nodes added and those that quit.  Any
violation makes the exit status 1.

Modules, one concept each: ``plan`` (the schedule), ``network`` (homes,
processes, proxy), ``workload`` (the clients), ``bank`` (what they record
and may spend), ``liveness`` (the height
monitor), ``faults`` (each kind) and ``nemesis`` (applying them in order),
``membership`` (the set the plan follows) and ``reconfig`` (its changes at
run time), ``replay``, ``checks``, ``fault_checks`` and ``reconfig_checks``
(the checks), ``verdict``,
``run`` (one drill) and ``cli`` (the command line).  The network itself
comes from ``devnet.cluster``.
"""

from devnet.drill.checks import Checker
from devnet.drill.cli import add_drill_arguments, main, parse_faults, run_drill
from devnet.drill.plan import FAULT_KINDS, PARTITION_SHAPES, FaultStep, plan_faults, ring_cut_pairs, validator_names
from devnet.drill.run import DrillOptions, run_drill_async, run_drill_sync
from devnet.drill.verdict import Check, DrillResult, format_table

__all__ = [
    "FAULT_KINDS", "PARTITION_SHAPES", "Check", "Checker", "DrillOptions", "DrillResult", "FaultStep",
    "add_drill_arguments", "format_table", "main", "parse_faults", "plan_faults", "ring_cut_pairs", "run_drill",
    "run_drill_async", "run_drill_sync", "validator_names",
]
