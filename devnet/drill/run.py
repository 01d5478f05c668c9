"""One drill, start to verdict: plan, network, workload and Nemesis together, then the checks.

``run_drill_sync`` runs it in a temporary home unless one is given, and
keeps the home when the drill fails (or with ``keep``).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx

from devnet.cluster import fetch_statuses, wait_for_height_async
from devnet.cluster.termination import exits_on_terminate
from devnet.drill.checks import Checker
from devnet.drill.nemesis import Nemesis
from devnet.drill.network import DrillNetwork
from devnet.drill.plan import FAULT_KINDS, plan_faults
from devnet.drill.verdict import Check, DrillResult
from devnet.drill.workload import Workload


@dataclass
class DrillOptions:
    seed: int = 1
    duration_s: float = 60.0
    faults: tuple[str, ...] = FAULT_KINDS
    validators: int = 4
    accounts: int = 8
    outputs_per_account: int = 4
    clients: int = 4
    home: Path | None = None
    json_path: Path | None = None
    keep: bool = False


async def run_drill_async(opts: DrillOptions, out=print) -> DrillResult:
    unknown = [f for f in opts.faults if f not in FAULT_KINDS]
    if unknown:
        raise ValueError(f"unknown fault kinds {unknown}; known: {', '.join(FAULT_KINDS)}")
    if opts.validators < 1 or opts.accounts < 3 or opts.clients < 1:
        raise ValueError("need at least 1 validator, 3 accounts and 1 client")
    plan = plan_faults(opts.seed, opts.duration_s, list(opts.faults), opts.validators)
    twin_steps = [s for s in plan if s.kind == "twin"]
    victim = twin_steps[0].detail["victim"] if twin_steps else None
    base = opts.home
    assert base is not None
    net = DrillNetwork(base, opts.seed, opts.validators, opts.accounts, opts.outputs_per_account,
                       with_twin=bool(twin_steps), twin_victim=victim, out=out)
    out(f"drill seed={opts.seed} duration={opts.duration_s:g}s validators={opts.validators} "
        f"accounts={opts.accounts} clients={opts.clients} home={base}")
    out("plan:")
    for step in plan:
        out(f"  at {step.at_s:6.1f}s  {step.kind:<9} {step.describe()}")
    workload = Workload(net, opts.seed, opts.clients, out=out)
    nemesis = Nemesis(net, plan, workload, out=out)
    result: DrillResult | None = None
    try:
        await net.setup()
        for name in net.names:
            net.start(name)
        async with httpx.AsyncClient(limits=httpx.Limits(max_connections=64, max_keepalive_connections=32)) as http:
            workload.http = http
            await wait_serving(net, http, 60)
            workload.t0 = time.monotonic()
            nemesis.monitor.start()
            nemesis_task = asyncio.create_task(nemesis.run(), name="nemesis")
            progress_task = asyncio.create_task(progress(workload, net, http, out), name="progress")
            try:
                await workload.run(opts.duration_s)
                try:
                    await asyncio.wait_for(asyncio.shield(nemesis_task), 60)
                except TimeoutError:
                    nemesis_task.cancel()
            finally:
                for task in (nemesis_task, progress_task):
                    task.cancel()
                ended = await asyncio.gather(nemesis_task, progress_task, return_exceptions=True)
                task_errors = [f"{task.get_name()}: {type(exc).__name__}: {exc}"
                               for task, exc in zip((nemesis_task, progress_task), ended, strict=True)
                               if isinstance(exc, Exception)]
                for error in task_errors:
                    out(f"!! drill task failed: {error}")
                await nemesis.heal_all()
                await nemesis.monitor.settle()
                await nemesis.monitor.stop()
            checker = Checker(net, workload, nemesis, http, twin_enabled="twin" in opts.faults and bool(twin_steps),
                              out=out)
            out("checking ...")
            await checker.run()
            applied = ", ".join(f"{k} x{v}" for k, v in sorted(nemesis.applied.items())) or "none"
            checker.checks.insert(0, Check("faults applied", applied, None))
            if task_errors:  # a fault schedule or progress report that died is a failed drill, not a quiet one
                checker.add("drill tasks ended without an error", "; ".join(task_errors), False)
            missing = [k for k in opts.faults if not any(a.split("/")[0] == k for a in nemesis.applied)]
            if missing:
                checker.checks.insert(1, Check("faults planned but not applied", ",".join(missing), None))
            report = {
                "seed": opts.seed, "duration_s": opts.duration_s, "validators": opts.validators,
                "faults": list(opts.faults), "chain_id": net.chain_id, "home": str(base),
                "plan": [asdict(s) for s in plan], "events": nemesis.events,
                "checks": [asdict(c) for c in checker.checks], "violations": checker.violations,
                "ok": not checker.violations, "details": checker.details,
                "counts": dict(workload.counts),
                "acks": len(workload.acks), "submissions": len(workload.submissions), "reads": len(workload.reads),
                "server_errors": workload.server_errors, "unexpected_exits": net.unexpected_exits,
                "liveness": nemesis.monitor.report(),
                "proxy": {k: v for k, v in net.proxy.stats().items() if v["connections"]},
                "nodes": list(net.names), "fault_log": nemesis.fault_log,
                "validator_set": validator_set_report(net, nemesis),
            }
            result = DrillResult(not checker.violations, checker.checks, checker.violations, report)
    finally:
        net.cleanup()
        await net.proxy.close()
    return result



def validator_set_report(net: DrillNetwork, nemesis: Nemesis) -> dict:
    """The set at genesis and at the end, who joined and who quit, and every change with its timings."""
    genesis = [v.name for v in net.genesis.validators]
    runs = nemesis.reconfig_runs
    return {"genesis": genesis, "final": dict(net.members),
            "joined": [r["node"] for r in runs if r["op"] in ("join", "rotate") and "joined_at" in r],
            "quit": [r.get("old", r["node"]) for r in runs if r["op"] in ("quit", "rotate") and "left_at" in r],
            "power_changes": [{"node": r["node"], "from": r.get("old_power"), "to": r["power"]}
                              for r in runs if r["op"] == "power" and "applied_at" in r],
            "steps": runs}


async def wait_serving(net: DrillNetwork, http: httpx.AsyncClient, timeout_s: float) -> None:
    """Every genesis validator serves its first block (one that dies meanwhile is reported and restarted)."""
    specs = [net.specs[name] for name in net.names]
    waited = await wait_for_height_async(specs, 1, timeout_s, client=http, watch_pids=False, poll_s=0.2,
                                         on_poll=net.check_crashes)
    if not waited:
        raise RuntimeError(f"validators not serving a first block after {timeout_s}s:\n" +
                           net.log_tail(net.names[0]))


async def progress(workload: Workload, net: DrillNetwork, http: httpx.AsyncClient, out) -> None:
    for _ in range(100_000):
        await asyncio.sleep(15)
        answers = await fetch_statuses([net.specs[name] for name in net.names], 1, http)
        heights = ["-" if a is None else str(a["height"]) for a in answers]
        c = workload.counts
        out(f"[{workload.now():7.1f}s] progress  acked={len(workload.acks)} unknown={c['unknown']} "
            f"rejected={c['rejected']} unsent={c['unsent']} reads={len(workload.reads)} heights={'/'.join(heights)}")


def run_drill_sync(opts: DrillOptions, out=print) -> DrillResult:
    """Run a drill in a temporary home unless ``opts.home`` is given; keep the home on failure."""
    home = opts.home
    made = home is None
    if home is None:
        home = opts.home = Path(tempfile.mkdtemp(prefix=f"ledger-drill-{opts.seed}-"))
    else:
        home.mkdir(parents=True, exist_ok=True)
    result = None
    try:
        with exits_on_terminate():  # kill PID / timeout: run_drill_async's clean-up stops every process
            result = asyncio.run(run_drill_async(opts, out))
        return result
    finally:
        if result is not None and opts.json_path is not None:
            Path(opts.json_path).write_text(json.dumps(result.report, indent=2, default=str))
        if made and result is not None and result.ok and not opts.keep:
            shutil.rmtree(home, ignore_errors=True)
        else:
            out(f"drill home kept at {home}")
