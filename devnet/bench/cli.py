"""The bench's command line: ``ledger-devnet bench ...`` and ``python -m devnet.bench ...``.

One run: measure the ceiling, start a fresh devnet (or attach to a running
one), pre-sign, offer the load, then check that every node holds the same
chain and that every transaction was committed exactly once or refused
with a reason; print (and write) the result, stop what it started.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

from devnet.bench.accounts import build_fresh, find_faucet_key, fund_attached
from devnet.bench.load import Bench
from devnet.bench.measure import dir_bytes, machine_cores, measure_verify_rate, summarize
from devnet.bench.options import BenchError, Options, add_bench_arguments, transfer_budget
from devnet.bench.report import load_pyplot, print_summary, write_plot
from devnet.cluster import (
    DevnetError,
    NodeSpec,
    load_network,
    netns,
    node_status,
    same_chain,
    start_nodes,
    stop_nodes,
    wait_for_height,
)
from devnet.cluster.termination import exits_on_terminate, terminate_deferred
from node.config import DATA_DIR

__all__ = ["add_bench_arguments", "build_parser", "main", "run_bench"]


def run_bench(args: argparse.Namespace) -> int:
    """``ledger-devnet bench``: returns the exit code (0 ok, 1 lost/duplicated/diverged, 2 could not run)."""
    from rich.console import Console

    try:
        opts = Options.from_args(args)
        if opts.plot is not None:
            load_pyplot()  # say so now, not after the run
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    console = Console(stderr=True)
    out = Console()

    def log(message: str) -> None:
        if not opts.quiet:
            console.log(message)

    try:
        with exits_on_terminate():  # kill PID / timeout: the finally below stops the nodes
            return _run(opts, console, out, log)
    except (BenchError, DevnetError) as exc:
        console.print(f"[red]bench failed:[/red] {exc}")
        return 2


def _run(opts: Options, console, out, log) -> int:
    cores = machine_cores()
    verify_per_s = measure_verify_rate(opts.verify_seconds)
    log(f"ceiling: {verify_per_s:.0f} verifications/s per core x {cores} cores / {opts.validators} validators "
        f"= {verify_per_s * cores / opts.validators:.0f} tx/s")
    timings: dict[str, float] = {}
    started: list[NodeSpec] = []
    temp_base = None
    netns_base: Path | None = None
    extra: dict = {}
    try:
        if opts.attach is not None:
            specs = load_network(opts.attach)
            opts.validators = len(specs)
            status = node_status(specs[0])
            if status is None:
                raise BenchError(f"{specs[0].name} at {specs[0].url} does not answer")
            t = time.perf_counter()
            workload = fund_attached(opts, specs, status["chain_id"], find_faucet_key(opts.attach, opts.faucet),
                                     log)
            timings["fund_s"] = time.perf_counter() - t
        else:
            if opts.home is not None:
                base = opts.home
            else:
                base = temp_base = Path(tempfile.mkdtemp(prefix="ledger-bench-"))
            if opts.netns:
                netns_base = base
            specs, workload, t_fresh = build_fresh(opts, base, log)
            timings.update(t_fresh)
            t = time.perf_counter()
            if opts.netns:
                layout = netns.ensure(base)
                if layout is not None:
                    extra["netns"] = {"subnet": layout.subnet, "bridge": layout.bridge,
                                      "nodes": {n.name: n.address for n in layout.nodes}}
                    log(f"namespaces: {len(layout.nodes)} nodes on {layout.subnet} (bridge {layout.bridge})")
            for spec in specs:
                with terminate_deferred():  # started and recorded, or neither
                    start_nodes([spec])
                    started.append(spec)
            wait = 60 + (opts.utxos + len(workload.slots)) * 0.0005 * len(specs)
            waited = wait_for_height(specs, 1, wait, poll_s=0.2)
            if not waited:
                raise BenchError(f"the devnet did not reach height 1: {waited.problem}; logs in {base}")
            timings["start_s"] = time.perf_counter() - t
            log(f"devnet of {len(specs)} validators up in {timings['start_s']:.1f} s ({base})")
        first, _whole = transfer_budget(opts)
        t = time.perf_counter()
        signed = workload.presign(first)
        timings["presign_s"] = time.perf_counter() - t
        log(f"pre-signed {signed} transfers in {timings['presign_s']:.1f} s over {len(workload.slots)} slots")
        disk_before = {s.name: dir_bytes(s.home / DATA_DIR) for s in specs}
        bench = Bench(opts, specs, workload, log, console)

        def presign_more(rate: float) -> int:
            return workload.presign(int(rate * (opts.warmup + opts.duration) * 1.05) + opts.batch)

        cpu0 = time.process_time()
        asyncio.run(bench.run(presign_more))
        extra["client_cpu_s"] = round(time.process_time() - cpu0, 2)
        chain = same_chain(specs, start=max(1, bench.start_height))
        extra["app_hash_consistent"] = chain.ok
        extra["app_hash_height"] = chain.height
        extra["app_hashes"] = {name: tip[1] for name, tip in chain.tips.items()}
        if not chain.ok:
            extra["chain_check"] = chain.describe()
        extra["disk"] = {s.name: (disk_before[s.name], dir_bytes(s.home / DATA_DIR)) for s in specs}
        extra["setup"] = {k: round(v, 2) for k, v in timings.items()}
        extra["drained"] = bench.drained
        if bench.node_failed:
            extra["node_failed"] = bench.node_failed
        result = summarize(bench, opts, verify_per_s, machine_cores(), extra)
        if bench.node_failed:
            result["ok"] = False
        print_summary(result, out)
        if opts.json is not None:
            opts.json.write_text(json.dumps(result, indent=2) + "\n")
        if opts.plot is not None:
            write_plot(bench, opts.plot)
        if not result["ok"]:
            console.print(f"[red]FAILED[/red]: lost {result['lost']}, duplicated {result['duplicates']}, "
                          f"app hashes consistent: {result['app_hash_consistent']}"
                          + (f", {bench.node_failed}" if bench.node_failed else ""))
            return 1
        return 0
    finally:
        try:
            stop_nodes(started)
        except OSError:
            pass
        if netns_base is not None:
            try:
                netns.teardown(netns_base)
            except DevnetError as exc:
                console.print(f"[red]could not remove the namespaces:[/red] {exc}")
        if temp_base is not None and not opts.keep:
            shutil.rmtree(temp_base, ignore_errors=True)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m devnet.bench",
                                     description="Benchmark committed throughput and latency of a local devnet.")
    add_bench_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    return run_bench(build_parser().parse_args(argv))
