"""CPU cost per transaction of each stage a validator runs, measured in-process on real ``Node`` objects.

    python scripts/node_pipeline_cpu.py [--blocks 8] [--txs 1000] [--utxos 0]

Two nodes of one 4-validator genesis: the proposer admits the transfers as a
client batch (``admit_client_txs``) and builds the block (``get_value``); the
other admits them as gossip (``receive_peer_txs``), validates the proposal
(``is_valid``) and commits it the way a decision does (``decode_block`` +
``_commit``).  Process CPU time per stage, per transaction: the mean over
all blocks, and the median block's (which a neighbour's burst on a shared
machine, or the first block's warm-up, moves less).  Not a
throughput figure: no HTTP, no consensus messages, no other processes; it
shows where one node's CPU goes per transaction, and compares code versions
without the noise of a shared machine (run it from another checkout's root
to measure that checkout).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.getcwd())

from devnet.bench import Signer, Workload, bench_params  # noqa: E402 (after the sys.path line)
from genesis.build import make_genesis  # noqa: E402 (after the sys.path line)
from node.config import load_config  # noqa: E402 (after the sys.path line)
from node.consensus.messages import VoteType, vote_digest  # noqa: E402 (after the sys.path line)
from node.crypto import address_hash, derive_public_key, generate_private_key, sign_digest  # noqa: E402 (after the sys.path line)
from node.ledger.state import genesis_outpoint  # noqa: E402 (after the sys.path line)
from node.runtime import Node  # noqa: E402 (after the sys.path line)
from node.types.commit import Commit, CommitSig  # noqa: E402 (after the sys.path line)

try:  # the homes writer: devnet.cluster, or devnet.bench in a checkout from before devnet.cluster
    from devnet.cluster import write_network
except ImportError:
    from devnet.bench import write_homes  # type: ignore[attr-defined]  # only in checkouts before devnet.cluster
else:
    def write_homes(base, genesis, validator_keys, overrides):
        return write_network(base, genesis, validator_keys, config_overrides=overrides)


class _OnTheNode:
    """A checkout from before ``node.application``: the same methods on the node, with a leading underscore."""

    def __init__(self, node):
        object.__setattr__(self, "node", node)

    def __getattr__(self, name):
        return getattr(self.node, "_" + name)

    def __setattr__(self, name, value):  # last_commit was a public attribute of the node
        setattr(self.node, name, value)


def tune_node_gc(config) -> None:
    """Collect garbage the way ``ledger-node start`` does (in checkouts that tune it), so the figures match."""
    import importlib

    for where in ("node.gc_policy", "node.cli"):  # older checkouts kept them in node.cli, or had none
        try:
            module = importlib.import_module(where)
        except ImportError:
            continue
        if hasattr(module, "tune_gc"):
            break
    else:
        return
    module.tune_gc(config.gc_gen0_threshold)
    module.freeze_startup_heap()
    if getattr(config, "gc_freeze_survivors", False):
        from node.gc_policy import SURVIVOR_FREEZER

        SURVIVOR_FREEZER.install()


def parts(node):
    """(application adapter, admission) of ``node``, in this checkout's layout or an older one's."""
    return getattr(node, "application", None) or _OnTheNode(node), getattr(node, "admission", node)


def certificate(chain_id, keys, height, block_hash):
    sigs = []
    time_ms = int(time.time() * 1000) + height  # BFT time: the next block is dated by these, after this one
    digest = vote_digest(chain_id, VoteType.PRECOMMIT, height, 0, block_hash, time_ms)
    for key in keys:
        sigs.append(CommitSig(address_hash(derive_public_key(key)), time_ms, sign_digest(key, digest)))
    return Commit(height, 0, block_hash, tuple(sorted(sigs, key=lambda s: s.validator)))


async def main_async(args) -> None:
    base = Path(tempfile.mkdtemp(prefix="pipeline-"))
    signers = [Signer(generate_private_key()) for _ in range(50)]
    n_slots = args.txs * args.blocks
    amount = 10 ** 8
    allocations = [(signers[i % 50].address, amount) for i in range(n_slots)]
    allocations += [(os.urandom(20), 1) for _ in range(args.utxos)]
    genesis, vkeys = make_genesis("bench", 4, allocations, bench_params())
    specs = write_homes(base, genesis, vkeys, {"log_level": "WARNING"})
    nodes = [Node(s.home, load_config(s.home)) for s in specs[:2]]
    if args.gc == "node":
        tune_node_gc(nodes[0].config)
    proposer, validator = nodes
    (proposer_app, proposer_in), (validator_app, validator_in) = parts(proposer), parts(validator)
    wl = Workload("bench", signers, 1)
    for i in range(n_slots):
        wl.add_slot(i % 50, genesis_outpoint("bench", i), amount)
    wl.presign(n_slots)
    raws = [bytes.fromhex(s.queue[0].hex) for s in wl.slots]
    keys = list(vkeys.values())
    stages = {k: 0.0 for k in ("admit_client", "admit_peer", "propose", "validate", "decide_commit",
                               "proposer_commit")}
    per_block: dict[str, list[float]] = {k: [] for k in stages}
    from node.api.app import decode_tx_hex  # the REST path decodes hex (imported before the clock starts)
    for b in range(args.blocks):
        before = dict(stages)
        chunk = raws[b * args.txs:(b + 1) * args.txs]
        t = time.process_time()
        txs = [decode_tx_hex(raw.hex()) for raw in chunk]
        if hasattr(proposer_in, "admit_client_txs"):
            proposer_in.admit_client_txs(txs)
        else:
            for tx in txs:
                proposer.submit_transaction(tx)  # type: ignore[attr-defined]  # checkouts before admit_client_txs
        stages["admit_client"] += time.process_time() - t
        t = time.process_time()
        validator_in.receive_peer_txs(chunk)
        stages["admit_peer"] += time.process_time() - t
        height = proposer.store.height + 1
        t = time.process_time()
        value = proposer_app.get_value(height, 0)
        stages["propose"] += time.process_time() - t
        t = time.process_time()
        assert validator_app.is_valid(height, value)
        stages["validate"] += time.process_time() - t
        block = validator_app.decode_block(value)
        commit = certificate("bench", keys, height, block.hash)
        t = time.process_time()
        block = validator_app.decode_block(value)
        validator._commit(block, commit, validator_app.execute(block), 0)
        stages["decide_commit"] += time.process_time() - t
        t = time.process_time()
        pblock = proposer_app.decode_block(value)
        proposer._commit(pblock, commit, proposer_app.execute(pblock), 0)
        stages["proposer_commit"] += time.process_time() - t
        assert len(block.txs) == len(chunk), (len(block.txs), len(chunk))
        for app in (proposer_app, validator_app):
            app.last_commit = commit
        for k in stages:
            per_block[k].append(stages[k] - before[k])
    total_txs = args.txs * args.blocks
    print(f"{args.blocks} blocks x {args.txs} txs, {args.utxos} extra UTXOs, code from {os.getcwd()}")
    print(f"  {'stage':16s} {'mean':>8s}        {'median block':>12s} (less noisy on a shared machine)")
    for k, v in stages.items():
        median = statistics.median(per_block[k]) / args.txs
        print(f"  {k:16s} {1e6 * v / total_txs:8.1f} us/tx  {1e6 * median:8.1f} us/tx")
    per_validator = stages["admit_peer"] * 0.75 + stages["admit_client"] * 0.25 + stages["validate"] \
        + stages["decide_commit"]
    print(f"  {'validator total':16s} {1e6 * per_validator / total_txs:8.1f} us/tx "
          f"(3/4 of txs by gossip, 1/4 from clients; validate + commit)")
    for node in nodes:
        node.store.close()


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--blocks", type=int, default=8)
    p.add_argument("--txs", type=int, default=1000)
    p.add_argument("--utxos", type=int, default=0)
    p.add_argument("--gc", choices=("node", "python"), default="node",
                   help="garbage collection as a started node tunes it (default), or Python's defaults")
    asyncio.run(main_async(p.parse_args()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
