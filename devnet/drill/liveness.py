"""The drill's liveness watch: after every heal a new height must follow within a bound.

``HeightMonitor`` polls every validator's height.  Each heal (restart,
resume, healed links, twin stopped, heal-all, a change of the validator set) is a point after which a new
height must follow within ``LIVENESS_BOUND_S``; the Nemesis waits for that
(bounded) before the next fault, so a stall is charged to the heal that
preceded it.  The verdict reports the longest stall after a heal.  The
monitor also keeps when the drill first saw each height (the honest clocks'
bound on block times).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict, dataclass

from devnet.cluster import fetch_status

LIVENESS_BOUND_S = 30.0
"""After a heal, a new height must follow within this many seconds."""
POLL_S = 0.5
STATUS_TIMEOUT_S = 1.0
HEAL_EVENTS = frozenset({"restart", "resume", "heal", "twin-stop", "heal-all", "reconfig"})
"""Nemesis events after which the chain must move on (``reconfig``: a change of the validator set ended)."""


@dataclass
class HealPoint:
    """A moment after which the chain must move on."""

    label: str
    t: float
    """time.monotonic() of the heal."""
    at_s: float
    """Seconds into the workload."""
    baseline: int
    """The highest height reached before the heal, as far as answers to requests sent before it tell."""
    stall_s: float | None = None
    """Seconds until a status asked after the heal showed a higher height."""
    timed_out: bool = False


class HeightMonitor:
    """Polls every validator's height; keeps the tip, when each height was first seen, and the heal points."""

    def __init__(self, net, workload, bound_s: float = LIVENESS_BOUND_S):
        self.net = net
        self.workload = workload
        self.bound_s = bound_s
        self.heights: dict[str, int] = {}
        self.tip = 0
        self.seen_wall: dict[int, float] = {}
        """Height -> wall-clock time (time.time()) the drill first saw a validator at or above it."""
        self.points: list[HealPoint] = []
        self._task: asyncio.Task | None = None
        self.error: str | None = None
        """Why the monitor stopped early, if it did (then stalls after later heals are not measured)."""

    def observe(self, name: str, height: int, sent: float, now: float, wall: float) -> None:
        """A status answer: ``sent``/``now`` are monotonic times of the request and the answer."""
        self.heights[name] = height
        if height > self.tip:
            for h in range(self.tip + 1, height + 1):
                self.seen_wall.setdefault(h, wall)
            self.tip = height
        for p in self.points:
            if p.stall_s is not None or p.timed_out:
                continue
            if sent < p.t:  # asked before the heal: that height may have been reached before it
                p.baseline = max(p.baseline, height)
            elif height > p.baseline:
                p.stall_s = round(now - p.t, 2)

    def heal(self, label: str, at_s: float) -> HealPoint:
        point = HealPoint(label, time.monotonic(), round(at_s, 2), self.tip)
        self.points.append(point)
        return point

    def pending(self) -> list[HealPoint]:
        now = time.monotonic()
        for p in self.points:
            if p.stall_s is None and not p.timed_out and now - p.t > self.bound_s:
                p.timed_out = True
        return [p for p in self.points if p.stall_s is None and not p.timed_out]

    async def _fetch(self, http, name: str) -> int | None:
        sent = time.monotonic()
        status = await fetch_status(http, self.net.specs[name], STATUS_TIMEOUT_S)
        if status is None:
            return None
        height = int(status["height"])
        self.observe(name, height, sent, time.monotonic(), time.time())
        return height

    async def height_of(self, name: str) -> int:
        """``name``'s height asked now (the last one polled, or the tip, if it does not answer)."""
        height = await self._fetch(self.workload.http, name) if self.workload.http is not None else None
        return height if height is not None else self.heights.get(name, self.tip)

    async def poll(self) -> None:
        http = self.workload.http
        if http is not None:
            await asyncio.gather(*(self._fetch(http, n) for n in self.net.names))
        self.pending()

    async def run(self) -> None:
        for _ in range(10_000_000):
            await self.poll()
            self.net.check_crashes()  # also between fault steps and after the last one
            await asyncio.sleep(POLL_S)

    def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name="height-monitor")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            ended = (await asyncio.gather(self._task, return_exceptions=True))[0]
            self._task = None
            if isinstance(ended, Exception):
                self.error = f"{type(ended).__name__}: {ended}"
                self.net.out(f"!! height monitor failed: {self.error}")

    async def settle(self) -> None:
        """Wait until every heal point saw a new height or ran out of its bound (bounded by it)."""
        for _ in range(int((self.bound_s + 5) / 0.25)):
            if not self.pending():
                return
            self.net.check_crashes()
            await asyncio.sleep(0.25)

    async def wait_tip(self, height: int, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.tip >= height:
                return True
            self.net.check_crashes()
            await asyncio.sleep(0.25)
        return self.tip >= height

    def report(self) -> dict:
        resolved = [p for p in self.points if p.stall_s is not None]
        longest = max(resolved, key=lambda p: p.stall_s or 0.0, default=None)
        return {"bound_s": self.bound_s, "heals": len(self.points), "error": self.error,
                "longest_stall_s": longest.stall_s if longest else None,
                "longest_after": longest.label if longest else None,
                "exceeded": [p.label for p in self.points if p.stall_s is None],
                "points": [{k: v for k, v in asdict(p).items() if k != "t"} for p in self.points]}
