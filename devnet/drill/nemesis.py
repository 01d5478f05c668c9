"""The Nemesis: applies the planned faults in order, heals each one, and at the end heals everything.

Each step waits for its time, then for the last heal's new height (bounded
by the liveness bound), then runs (``devnet.drill.faults``); every event is
printed as it happens and kept for the report.  Before a step runs, the
validators it names must be members of the set now (``net.members``, which
``reconfig`` steps change): the step and the set it met are logged for the
checks (``fault_log``); a step whose targets left the set is skipped.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter

from devnet.drill import faults
from devnet.drill.liveness import HEAL_EVENTS, HeightMonitor
from devnet.drill.network import TWIN_NAME, DrillNetwork
from devnet.drill.plan import FaultStep
from devnet.drill.workload import Workload


class Nemesis:
    """Applies the planned faults in order and heals each one; prints each as it happens."""

    def __init__(self, net: DrillNetwork, plan: list[FaultStep], workload: Workload, out=print):
        self.net = net
        self.plan = plan
        self.workload = workload
        self.out = out
        self.events: list[dict] = []
        self.applied: Counter = Counter()
        self.evidence_seen_during_twin: list[dict] = []
        self.monitor = HeightMonitor(net, workload)
        self.clock_offsets: dict[str, int] = {}
        self.byzantine: set[str] = set()
        self.tamper_runs: list[dict] = []
        self.reconfig_runs: list[dict] = []
        self.fault_log: list[dict] = []
        """Each step as it began: kind, the validators it names, the set then."""

    def event(self, what: str, text: str, **extra) -> None:
        t = self.workload.now()
        self.events.append({"t": round(t, 2), "event": what, "text": text, **extra})
        self.out(f"[{t:7.1f}s] {what:<9} {text}")
        if what in HEAL_EVENTS:
            self.monitor.heal(f"{what} {text}"[:120], t)

    async def sleep(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return
            await asyncio.sleep(min(left, 1.0))
            self.net.check_crashes()

    async def run(self) -> None:
        for step in self.plan:
            wait = step.at_s - self.workload.now()
            if wait > 0:
                await self.sleep(wait)
            await self.monitor.settle()  # the last heal's new height first (quick unless the chain stalls)
            if self.workload.stop.is_set():
                self.event("skip", f"{step.kind}: workload over")
                continue
            if await self.apply(step) is False:
                continue
            self.applied[step.kind if step.kind != "partition" else f"partition/{step.detail['shape']}"] += 1

    async def apply(self, step: FaultStep) -> bool | None:
        """Run one step; False when it could not run here (then it does not count as applied)."""
        targets = step_targets(step)
        members = dict(self.net.members)
        stale = [n for n in targets if n not in members]
        self.fault_log.append({"t": round(self.workload.now(), 2), "kind": step.kind, "targets": targets,
                               "faulty": faulty_of(step), "set": members, "skipped": bool(stale)})
        if stale:
            self.event("skip", f"{step.kind}: {', '.join(stale)} not in the validator set now "
                               f"({', '.join(members)})")
            return False
        return await faults.RUNNERS[step.kind](self, step)

    async def heal_all(self) -> None:
        """Undo everything: links, pauses, Byzantine processes, skewed clocks, dead validators, the twin."""
        net = self.net
        net.check_crashes()  # a validator that died on its own is reported, not silently restarted below
        net.proxy.heal()
        for name in net.names:
            if name in net.paused:
                net.resume(name)
        await faults.heal_byzantine_and_clocks(self)  # they stop here; restarted honest just below
        for name in net.names:
            if not net.running(name):
                net.start(name)
        if TWIN_NAME in net.procs and net.running(TWIN_NAME):
            await net.terminate(TWIN_NAME)
        self.event("heal-all", "links healed, every node running and resumed, twin stopped")


def step_targets(step: FaultStep) -> list[str]:
    """The validators a step names (those of the set it was planned against, for a partition)."""
    d = step.detail
    if step.kind in ("kill", "clock"):
        return [d["node"]]
    if step.kind == "pause":
        return list(d["nodes"])
    if step.kind == "partition":
        return list(d.get("members") or sorted({n for g in d["groups"] for n in g} | {n for p in d["cut"] for n in p}))
    if step.kind == "twin":
        return [d["victim"]]
    if step.kind == "lag":
        return [d["lagger"], d["faulty"]]
    if step.kind == "tamper":
        return sorted({d["victim"], d["lagger"], *d["targets"]})
    if step.kind == "reconfig" and d["op"] in ("quit", "power"):
        return [d["node"]]
    if step.kind == "reconfig" and d["op"] == "rotate":
        return [d["old"]]
    return []


def faulty_of(step: FaultStep) -> list[str]:
    """Validators a step makes Byzantine (a stolen key, tampered blocks, a wrong clock): within f of the set."""
    d = step.detail
    key = {"twin": "victim", "tamper": "victim", "clock": "node"}.get(step.kind)
    return [d[key]] if key is not None and key in d else []
