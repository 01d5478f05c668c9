#!/usr/bin/env python3
"""Micro-benchmark of the ledger core: transfers validated and applied per second on one core.

Not a test.  For each UTXO-set size it initializes a real LevelDB store in a
temporary directory with that many genesis outputs, pre-signs 1-input
2-output transfers spending randomly chosen outputs (signing is not timed),
then times, block by block:

* ``execute``: ``execute_block`` on the store (stateless checks, UTXO
  lookups, key/address checks, sums, every signature verified, fee output,
  MuHash update, tx root);
* ``commit``: ``Store.commit_block`` (block, certificate, UTXO deletions and
  insertions, address/txid/history/balance indexes, metadata: one synced
  WriteBatch).

It runs each size twice: signatures verified inside ``execute_block`` (a
node that never saw the transactions), and with a ``SignatureCache`` warmed
beforehand (the normal case: the mempool verified them on admission).

    .venv/bin/python scripts/bench_ledger.py                  # 10^5 and 10^6 UTXOs
    .venv/bin/python scripts/bench_ledger.py --utxos 100000 --blocks 5 --profile
"""

from __future__ import annotations

import argparse
import cProfile
import dataclasses
import os
import pstats
import random
import shutil
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from node import crypto  # noqa: E402 (after the sys.path line)
from node.crypto import N, address_hash, derive_public_key, sha256  # noqa: E402 (after the sys.path line)
from node.ledger.rules import SignatureCache, execute_block  # noqa: E402 (after the sys.path line)
from node.ledger.state import genesis_outpoint  # noqa: E402 (after the sys.path line)
from node.ledger.store import Store  # noqa: E402 (after the sys.path line)
from node.types.block import Block, Header, compute_tx_root  # noqa: E402 (after the sys.path line)
from node.types.commit import Commit  # noqa: E402 (after the sys.path line)
from node.types.hashes import ZERO_HASH  # noqa: E402 (after the sys.path line)
from node.types.reconfig import EMPTY_INPUTS_HASH
from node.types.transaction import Transaction, TxOutput, sign_transaction  # noqa: E402 (after the sys.path line)

CHAIN = "bench-chain"
AMOUNT = 1_000_000
FEE = 10
PROPOSER = address_hash(b"\x02" + bytes(32))


def private_key(i: int) -> bytes:
    return ((int.from_bytes(sha256(b"bench" + i.to_bytes(8, "big")), "big") % (N - 1)) + 1).to_bytes(32, "big")


def make_transfers(n_utxos: int, n_txs: int, keys: list[bytes], addresses: list[bytes], rng: random.Random):
    """``n_txs`` signed transfers, each spending a distinct random genesis output to a payee plus change."""
    picks = rng.sample(range(n_utxos), n_txs)
    txs = []
    for j in picks:
        owner = j % len(keys)
        payee = addresses[rng.randrange(len(addresses))]
        amount = rng.randrange(1, AMOUNT - FEE)
        tx = sign_transaction(CHAIN, [(genesis_outpoint(CHAIN, j), keys[owner])],
                              [TxOutput(payee, amount), TxOutput(addresses[owner], AMOUNT - FEE - amount)])
        txs.append(Transaction.decode(tx.encode()))  # as a validator receives it: bytes, cached encoding
    return txs


def run_size(n_utxos: int, n_blocks: int, block_txs: int, n_keys: int, cached: bool, profile: bool,
             workdir: str) -> dict:
    rng = random.Random(n_utxos)
    keys = [private_key(i) for i in range(n_keys)]
    addresses = [address_hash(derive_public_key(k)) for k in keys]
    path = tempfile.mkdtemp(prefix="bench-ledger-", dir=workdir)
    try:
        store = Store.open(path, write_buffer_bytes=16 * 1024 * 1024)  # fixed: runs stay comparable
        t0 = time.perf_counter()
        store.initialize_genesis(CHAIN, sha256(b"bench-genesis"), [(addresses[i % n_keys], AMOUNT)
                                                                  for i in range(n_utxos)], b"{}")
        genesis_s = time.perf_counter() - t0
        store._db.compact_range()  # settle the genesis write so its compaction does not land in the timed part
        t0 = time.perf_counter()
        txs = make_transfers(n_utxos, n_blocks * block_txs, keys, addresses, rng)
        sign_s = time.perf_counter() - t0
        blocks_txs = [tuple(txs[b * block_txs:(b + 1) * block_txs]) for b in range(n_blocks)]
        roots = [compute_tx_root(bt) for bt in blocks_txs]
        cache = SignatureCache(max_entries=len(txs) + 1)
        if cached:
            for tx in txs:
                cache.verify_transaction(tx, CHAIN)
        profiler = cProfile.Profile() if profile else None
        walls, cpus, execute_s, commit_s = [], [], 0.0, 0.0
        for bt, root in zip(blocks_txs, roots, strict=True):
            height = store.height + 1
            header = Header(CHAIN, height, 1000 * height, store.tip_hash, root, ZERO_HASH, PROPOSER, ZERO_HASH,
                            ZERO_HASH, ZERO_HASH, EMPTY_INPUTS_HASH, ZERO_HASH)
            if profiler:
                profiler.enable()
            c0, t0 = time.thread_time(), time.perf_counter()
            result = execute_block(Block(header, bt, None), store, CHAIN, block_txs, 64 * 1024 * 1024,
                                   expected_app_hash_check=False, sig_cache=cache if cached else None)
            t1 = time.perf_counter()
            block = Block(dataclasses.replace(header, app_hash=result.app_hash), bt, None)
            store.commit_block(block, Commit(height, 0, block.hash, ()), result)
            t2, c2 = time.perf_counter(), time.thread_time()
            if profiler:
                profiler.disable()
            execute_s += t1 - t0
            commit_s += t2 - t1
            walls.append(t2 - t0)
            cpus.append(c2 - c0)
        assert store.height == n_blocks
        store.close()
        n = n_blocks * block_txs
        if profiler:
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)
        return {
            "utxos": n_utxos, "cached": cached, "txs": n, "genesis_s": genesis_s, "sign_s": sign_s,
            "execute_tps": n / execute_s, "commit_tps": n / commit_s, "total_tps": n / (execute_s + commit_s),
            "median_block_tps": block_txs / statistics.median(walls), "cpu_tps": n / sum(cpus),
            "us_per_tx": 1e6 * (execute_s + commit_s) / n,
        }
    finally:
        shutil.rmtree(path, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--utxos", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--blocks", type=int, default=10)
    parser.add_argument("--block-txs", type=int, default=1000)
    parser.add_argument("--keys", type=int, default=2000, help="distinct owners of the genesis outputs")
    parser.add_argument("--profile", action="store_true", help="print a cProfile of the timed part")
    parser.add_argument("--dir", default=None, help="where the temporary stores go (default: system temp)")
    args = parser.parse_args()
    print(f"ledger micro-benchmark: {args.blocks} blocks x {args.block_txs} transfers (1 input, 2 outputs); "
          f"fast signature backend: {crypto.HAVE_FAST_BACKEND}")
    print("tx/s columns: execute = execute_block alone, commit = commit_block alone, total = both (wall clock),")
    print("median blk = total for the median block; cpu = total per CPU-second of the benchmark thread (one core,")
    print("robust to a busy host; leaves out fsync waits and LevelDB's background compaction thread)")
    print(f"{'utxos':>9} {'signatures':>18} {'execute':>9} {'commit':>9} {'total':>9} {'median blk':>11} "
          f"{'cpu':>9} {'us/tx':>7} {'genesis s':>10}")
    for n_utxos in args.utxos:
        for cached in (False, True):
            r = run_size(n_utxos, args.blocks, args.block_txs, args.keys, cached, args.profile, args.dir)
            label = "cached by mempool" if cached else "verified in block"
            print(f"{r['utxos']:>9} {label:>18} {r['execute_tps']:>9,.0f} {r['commit_tps']:>9,.0f} "
                  f"{r['total_tps']:>9,.0f} {r['median_block_tps']:>11,.0f} {r['cpu_tps']:>9,.0f} "
                  f"{r['us_per_tx']:>7.1f} {r['genesis_s']:>10.1f}", flush=True)


if __name__ == "__main__":
    main()
