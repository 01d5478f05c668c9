"""The Nemesis: applies the planned faults in order, heals each one, and at the end heals everything.

Each step waits for its time, then for the last heal's new height (bounded
by the liveness bound), then runs (``devnet.drill.faults``); every event is
printed as it happens and kept for the report.
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
        self.event("heal-all", "links healed, every validator running and resumed, twin stopped")
