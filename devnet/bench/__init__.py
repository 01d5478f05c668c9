"""``ledger-devnet bench``: committed throughput and latency of a real devnet.

What it does, in order:

1. Measures this machine's ceiling: single-core signature verifications per
   second with the node's own verifier (``node.crypto.verify_signature``);
   ``ceiling_tps = verify_per_s * cores / validators``, because every
   validator checks every signature once and all of them share these cores.
2. Starts a fresh devnet (or attaches to a running one with ``--attach``).
   The genesis it builds funds ``--slots`` outputs (one genesis allocation
   each, owned round-robin by ``--accounts`` keys) and, with ``--utxos U``,
   U more outputs nobody spends, so the UTXO set starts at that size.
3. Pre-signs every transfer before the clock starts: one input, two outputs
   (a payment and the change), like a real payment.  Each slot is a chain:
   transfer j+1 of a slot spends the change of transfer j, and is only sent
   once transfer j is seen committed, so no transaction ever depends on an
   unconfirmed one and every slot always sends to the same node.
4. Offers the load open-loop at ``--rate`` to every node round-robin through
   ``POST /v1/txs/batch``, for ``--duration`` seconds after a warm-up.  With
   ``--max`` it first ramps the rate up in short steps (a step that fails is
   tried once more) to the highest one with latency to spare, then measures
   at that rate, and if it does not hold for the whole duration (p50 within
   ``--target-p50``, p99 within 3x, commits keeping up) measures again 10%
   lower, up to ``--attempts`` times.
5. Learns commits from the blocks (a long poll on ``GET /v1/blocks`` with
   ``min_height``, never one request per transaction), so each transaction's
   latency is submission to the moment its block is visible.
6. Samples every node process (CPU seconds, RSS, peak RSS from /proc) and
   its LevelDB size, then checks that all nodes hold the same blocks and app
   hashes and that every submitted transaction was committed exactly once or
   rejected with a reason.  A run that loses a transaction exits non-zero.

``python -m devnet.bench --help`` runs it without the ``ledger-devnet`` CLI.

Modules, one concept each: ``options`` (arguments, budget), ``accounts``
(accounts, genesis, funding), ``workload`` (slots and pre-signed
transfers), ``load`` (offering the load, following the chain), ``measure``
(ceiling, processes, verdicts, result), ``minutes`` (the measured window
minute by minute), ``report`` (live view, table, plot;
the plot needs the ``bench`` extra, matplotlib) and ``cli`` (the command
line).  The network itself comes from ``devnet.cluster``.
"""

from devnet.bench.accounts import CHAIN_ID, Signer, build_fresh, find_faucet_key, fund_attached
from devnet.bench.cli import build_parser, main, run_bench
from devnet.bench.load import Bench
from devnet.bench.measure import percentile, proc_sample, summarize
from devnet.bench.options import BenchError, Options, add_bench_arguments, bench_params, default_slots, transfer_budget
from devnet.bench.workload import FEE, PAYMENT, Slot, TxRecord, Workload, slot_amount

__all__ = [
    "CHAIN_ID", "FEE", "PAYMENT", "Bench", "BenchError", "Options", "Signer", "Slot", "TxRecord", "Workload",
    "add_bench_arguments", "bench_params", "build_fresh", "build_parser", "default_slots", "find_faucet_key",
    "fund_attached", "main", "percentile", "proc_sample", "run_bench", "slot_amount", "summarize", "transfer_budget",
]
