"""The drill's overlapping, clock and Byzantine faults, and its liveness watch.

Used by ``devnet/drill.py`` (the Nemesis applies these steps, the Checker
adds these checks):

- ``lag``: faults overlap, up to f faulty at once plus a lagging honest node.
  One validator is paused (SIGSTOP) until the others are ``LAG_AHEAD``
  heights ahead (bounded in time), then a second one goes down (SIGSTOP or
  SIGKILL: the faulty one), then the first resumes: with 3 of 4 up the chain
  must move on within ``LIVENESS_BOUND_S`` before the second is healed.
- ``clock``: one validator restarts with its clock off (config key
  ``clock_offset_ms``, from -10 minutes to +10 years), keeps it for the
  step, then restarts on the true time.  Block times come from the
  validators' precommits (BFT time), so one skewed clock must not move them:
  every block time lies between the drill's start and the moment the drill
  first saw that height (each with ``TIME_TOLERANCE_S``), strictly increasing.
- ``tamper``: the validator's honest process is replaced by
  ``devnet/byzantine.py`` on the same home, which sends some peers tampered
  proposals, block-sync answers and round-state (decided block) answers
  (same header and id, one transaction signature changed).  Meanwhile one
  targeted honest validator falls behind, cut off from every honest peer and
  from what the Byzantine one pushes, so it can only fetch blocks from the
  Byzantine one.  Then its links heal and the honest process comes back.
  No honest node may stop, and the chain must move on.

**Liveness**: ``HeightMonitor`` polls every validator's height.  Each heal
(restart, resume, healed links, twin stopped, heal-all) is a point after which
a new height must follow within ``LIVENESS_BOUND_S``; the Nemesis waits for
that (bounded) before the next fault, so a stall is charged to the heal that
preceded it.  The verdict reports the longest stall after a heal.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import subprocess
import sys
import time
import tomllib
from dataclasses import asdict, dataclass
from pathlib import Path

import tomli_w

from node.config import CONFIG_FILE, NodeConfig

NEW_KINDS = ("lag", "clock", "tamper")
MIN_VALIDATORS = {"lag": 4, "tamper": 4}
"""Below this many validators a kind is left out of the plan (with f = 0 one node down halts the chain)."""
LAG_AHEAD = 3
"""How many heights the others must get ahead of the paused validator before the second one goes down."""
LAG_WAIT_MAX_S = 20.0
"""Bound on waiting for them to get there."""
LIVENESS_BOUND_S = 30.0
"""After a heal, a new height must follow within this many seconds."""
POLL_S = 0.5
STATUS_TIMEOUT_S = 1.0
TIME_TOLERANCE_S = 5.0
"""Slack on the honest-clock bounds of block times (polling delay, whole-second genesis time)."""
CLOCK_OFFSETS_MS = (-10 * 60_000, -2 * 60_000, 2 * 60_000, 10 * 60_000, 3_600_000, 86_400_000,
                    365 * 86_400_000, 10 * 365 * 86_400_000)
"""Skews a ``clock`` step draws from (plus up to a minute more in the same direction)."""
HEAL_EVENTS = frozenset({"restart", "resume", "heal", "twin-stop", "heal-all"})
"""Nemesis events after which the chain must move on."""
TAMPER_LOG_MARKS = {"proposals": "byzantine: tampered proposal", "sync_answers": "byzantine: tampered sync answer",
                    "decided": "byzantine: tampered decided block"}
TAMPER_LAG_AHEAD = 4
"""How far the targeted honest node falls behind before it is left with only the Byzantine peer."""

# --------------------------------------------------------------------------- plan


def fault_detail(rng, kind: str, names: list[str]) -> dict:
    """Targets and parameters of a new-kind step, drawn from the plan's ``rng``."""
    if kind == "lag":
        lagger, faulty = rng.sample(names, 2)
        return {"lagger": lagger, "faulty": faulty, "mode": rng.choice(["stop", "kill"]), "ahead": LAG_AHEAD,
                "gap_s": round(rng.uniform(1.0, 3.0), 1)}
    if kind == "clock":
        base = rng.choice(CLOCK_OFFSETS_MS)
        extra = rng.randrange(60_000)
        return {"node": rng.choice(names), "offset_ms": base + (extra if base > 0 else -extra)}
    if kind == "tamper":
        victim = rng.choice(names)
        honest = [n for n in names if n != victim]
        targets = sorted(rng.sample(honest, rng.randint(1, max(1, len(honest) - 1))))
        return {"victim": victim, "targets": targets, "lagger": rng.choice(targets)}
    raise ValueError(kind)


def format_offset(ms: int) -> str:
    sign = "+" if ms >= 0 else "-"
    s = abs(ms) / 1000
    for unit, size in (("y", 365 * 86_400), ("d", 86_400), ("h", 3_600), ("min", 60)):
        if s >= size:
            return f"{sign}{s / size:.1f}{unit}"
    return f"{sign}{s:.1f}s"


def describe(step) -> str:
    d = step.detail
    if step.kind == "lag":
        verb = "SIGKILL" if d["mode"] == "kill" else "SIGSTOP"
        return (f"SIGSTOP {d['lagger']} until {d['ahead']} heights behind, {verb} {d['faulty']}, SIGCONT "
                f"{d['lagger']} (3 of 4 up), heal {d['faulty']} after {step.duration_s:.1f}s")
    if step.kind == "clock":
        return f"{d['node']} clock {format_offset(d['offset_ms'])} for {step.duration_s:.1f}s"
    if step.kind == "tamper":
        return (f"Byzantine {d['victim']} tampers with blocks to {','.join(d['targets'])} "
                f"({d['lagger']} lags behind it) for {step.duration_s:.1f}s")
    return step.kind


# --------------------------------------------------------------------------- liveness


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
        with contextlib.suppress(Exception):
            r = await http.get(self.net.url(name) + "/v1/status", timeout=STATUS_TIMEOUT_S)
            if r.status_code == 200:
                height = int(r.json()["height"])
                self.observe(name, height, sent, time.monotonic(), time.time())
                return height
        return None

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
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

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
        longest = max(resolved, key=lambda p: p.stall_s, default=None)
        return {"bound_s": self.bound_s, "heals": len(self.points),
                "longest_stall_s": longest.stall_s if longest else None,
                "longest_after": longest.label if longest else None,
                "exceeded": [p.label for p in self.points if p.stall_s is None],
                "points": [{k: v for k, v in asdict(p).items() if k != "t"} for p in self.points]}


# --------------------------------------------------------------------------- process helpers


def clock_offset_supported() -> bool:
    return "clock_offset_ms" in {f.name for f in dataclasses.fields(NodeConfig)}


def set_clock_offset(home: Path, offset_ms: int) -> None:
    """Write ``clock_offset_ms`` into the home's config.toml (read on the next start)."""
    path = Path(home) / CONFIG_FILE
    data = tomllib.loads(path.read_text())
    data["clock_offset_ms"] = int(offset_ms)
    path.write_text(tomli_w.dumps(data))


def start_byzantine(net, name: str, tamper_to: list[str]) -> int:
    """Start ``python -m devnet.byzantine`` on ``name``'s home in place of its honest process."""
    spec = net.specs[name]
    command = [sys.executable, "-m", "devnet.byzantine", "--home", str(spec.home), "--seed", str(net.seed),
               "--tamper-to", ",".join(tamper_to)]
    with open(spec.home / "stdout.log", "ab") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT,
                                cwd=str(Path(__file__).resolve().parents[1]), start_new_session=True)
    net.procs[name] = proc
    net.all_procs.append(proc)
    net.expected[name] = True
    net.paused.discard(name)
    return proc.pid


def count_tamper_lines(path: Path) -> dict[str, int]:
    counts = {key: 0 for key in TAMPER_LOG_MARKS}
    with contextlib.suppress(OSError), open(path, errors="replace") as handle:
        for line in handle:
            for key, mark in TAMPER_LOG_MARKS.items():
                counts[key] += mark in line
    return counts


# --------------------------------------------------------------------------- the faults


async def apply(nem, step) -> bool:
    """Run one new-kind step; False when it could not run here (then it does not count as applied)."""
    if step.kind == "lag":
        await run_lag(nem, step)
    elif step.kind == "clock":
        return await run_clock(nem, step)
    elif step.kind == "tamper":
        await run_tamper(nem, step)
    return True


async def run_lag(nem, step) -> None:
    net, mon, d = nem.net, nem.monitor, step.detail
    lagger, faulty, kill = d["lagger"], d["faulty"], d["mode"] == "kill"
    started = time.monotonic()
    base = await mon.height_of(lagger)
    pid = net.pause(lagger)
    nem.event("lag", f"SIGSTOP {lagger} (pid {pid}) at height {base}")
    reached = await mon.wait_tip(base + d["ahead"], min(LAG_WAIT_MAX_S, step.duration_s * 0.6))
    if kill:
        pids = await net.kill([faulty])
        what = f"SIGKILL {faulty} (pid {pids[0] if pids else '-'})"
    else:
        what = f"SIGSTOP {faulty} (pid {net.pause(faulty)})"
    short = "" if reached else f" (wanted {d['ahead']}, waited {time.monotonic() - started:.0f}s)"
    nem.event("lag", f"{what} with {lagger} {mon.tip - base} heights behind{short}: 2 of 4 validators up")
    await nem.sleep(d["gap_s"])
    net.resume(lagger)
    nem.event("resume", f"SIGCONT {lagger} {mon.tip - base} heights behind, {faulty} still down: "
                        f"3 of 4 up, the chain must move on")
    await mon.settle()  # the lagging node's recovery is judged before the faulty one comes back
    await nem.sleep(max(0.0, step.duration_s - (time.monotonic() - started)))
    if kill:
        nem.event("restart", f"{faulty} (pid {net.start(faulty)}) after the lag step")
    else:
        net.resume(faulty)
        nem.event("resume", f"SIGCONT {faulty} after the lag step")


async def run_clock(nem, step) -> bool:
    net, d = nem.net, step.detail
    name, offset = d["node"], d["offset_ms"]
    if not clock_offset_supported():
        nem.event("skip", f"clock: this node has no clock_offset_ms config key; {name} keeps the true time")
        return False
    home = net.specs[name].home
    await net.terminate(name)
    set_clock_offset(home, offset)
    nem.clock_offsets[name] = offset
    pid = net.start(name)
    nem.event("clock", f"{name} (pid {pid}) restarted with its clock {format_offset(offset)} ({offset} ms)")
    await nem.sleep(step.duration_s)
    await net.terminate(name)
    set_clock_offset(home, 0)
    nem.clock_offsets.pop(name, None)
    pid = net.start(name)
    nem.event("restart", f"{name} (pid {pid}) with its clock true again after {step.duration_s:.1f}s")
    return True


async def run_tamper(nem, step) -> None:
    net, mon, d = nem.net, nem.monitor, step.detail
    victim, targets, lagger = d["victim"], d["targets"], d["lagger"]
    started = time.monotonic()
    exits_before = len(net.unexpected_exits)
    tip_before = mon.tip
    log_path = net.specs[victim].home / "node.log"
    lines_before = count_tamper_lines(log_path)
    await net.terminate(victim)
    urls = [net.proxy.url(victim, t) for t in targets] + [net.specs[t].url for t in targets]
    pid = start_byzantine(net, victim, urls)
    nem.byzantine.add(victim)
    nem.event("tamper", f"{victim} replaced by a Byzantine process (pid {pid}) that tampers with its proposals "
                        f"and the blocks it serves to {', '.join(targets)}")
    await nem.sleep(step.duration_s * 0.35)
    # A targeted honest node falls behind with no honest peer and nothing pushed to it: it can only fetch from
    # the Byzantine one (round-state answers, block sync), which serves it tampered blocks.  It must drop them and
    # stay up; once the links heal it catches up from honest peers.
    honest = [n for n in net.names if n not in (victim, lagger)]
    for other in honest:
        net.proxy.cut(lagger, other)
    net.proxy.cut_one_way(victim, lagger)
    base = await mon.height_of(lagger)
    net.pause(lagger)
    nem.event("lag", f"SIGSTOP {lagger} at height {base}, cut off from {', '.join(honest)} and from what "
                     f"{victim} pushes")
    await mon.wait_tip(base + TAMPER_LAG_AHEAD, min(10.0, step.duration_s * 0.3))
    net.resume(lagger)
    nem.event("lag", f"SIGCONT {lagger} {mon.tip - base} heights behind: it can fetch blocks only from the "
                     f"Byzantine {victim}")
    await nem.sleep(max(4.0, step.duration_s * 0.25))
    lagger_held = await mon.height_of(lagger)
    net.proxy.heal()
    nem.event("heal", f"{lagger}'s links (it was at height {lagger_held}, the others at {mon.tip})")
    await nem.sleep(max(0.0, step.duration_s - (time.monotonic() - started)))
    tip_during = mon.tip
    await net.terminate(victim)
    nem.byzantine.discard(victim)
    pid = net.start(victim)
    elapsed = time.monotonic() - started
    nem.event("restart", f"honest {victim} (pid {pid}) after {elapsed:.1f}s of the Byzantine one")
    after = count_tamper_lines(log_path)
    nem.tamper_runs.append({
        "victim": victim, "targets": targets, "lagger": lagger, "tip_before": tip_before, "tip_during": tip_during,
        "lagger_held_at": lagger_held, "seconds": round(elapsed, 1),
        "tampered": {k: after[k] - lines_before[k] for k in after},
        "honest_exits": [e for e in net.unexpected_exits[exits_before:] if e["node"] != victim],
        "byzantine_exits": [e for e in net.unexpected_exits[exits_before:] if e["node"] == victim],
    })


async def heal(nem) -> None:
    """For heal-all: stop Byzantine processes and skewed clocks (the caller starts every stopped validator)."""
    for name in sorted(nem.byzantine):
        await nem.net.terminate(name)
    nem.byzantine.clear()
    for name in sorted(nem.clock_offsets):
        await nem.net.terminate(name)
        set_clock_offset(nem.net.specs[name].home, 0)
    nem.clock_offsets.clear()


# --------------------------------------------------------------------------- checks


def check_liveness(checker) -> None:
    report = checker.nemesis.monitor.report()
    checker.details["liveness"] = report
    bound = report["bound_s"]
    if not report["heals"]:
        checker.add("longest stall after a heal", f"no heals (bound {bound:g}s)", True)
        return
    if report["exceeded"]:
        value = f"> {bound:g}s after {report['exceeded'][0]} ({len(report['exceeded'])} of {report['heals']} heals)"
    else:
        value = f"{report['longest_stall_s']:.1f}s after {report['longest_after']} (bound {bound:g}s, " \
                f"{report['heals']} heals)"
    checker.add("longest stall after a heal", value, not report["exceeded"],
                f"no new height within {bound:g}s after: {report['exceeded'][:5]}")


def block_time_findings(times: list[tuple[int, int]], start_wall: float, seen_wall: dict[int, float],
                        fallback_wall: float, tolerance_s: float = TIME_TOLERANCE_S) -> dict:
    """Block times (height, time_ms) against the honest clocks: each must be after the drill's start and
    before the drill first saw its height (``fallback_wall`` for heights it never polled), each with
    ``tolerance_s``, and strictly after the one before."""
    not_increasing, early, late = [], [], []
    worst_ahead = None
    prev = None
    for height, time_ms in times:
        t = time_ms / 1000
        if prev is not None and time_ms <= prev:
            not_increasing.append(height)
        prev = time_ms
        seen = seen_wall.get(height, fallback_wall)
        ahead = t - seen
        worst_ahead = ahead if worst_ahead is None else max(worst_ahead, ahead)
        if t < start_wall - tolerance_s:
            early.append({"height": height, "time_ms": time_ms, "before_start_s": round(start_wall - t, 1)})
        if ahead > tolerance_s:
            late.append({"height": height, "time_ms": time_ms, "after_seen_s": round(ahead, 1)})
    return {"not_increasing": not_increasing, "early": early, "late": late,
            "worst_ahead_s": None if worst_ahead is None else round(worst_ahead, 2)}


def check_block_times(checker, blocks: list[dict]) -> None:
    net, mon = checker.net, checker.nemesis.monitor
    times = [(b["height"], int(b["header"]["time_ms"])) for b in blocks]
    found = block_time_findings(times, net.started_wall, mon.seen_wall, time.time())
    checker.details["block_times"] = found
    checker.add("block times strictly increase", f"{len(times) - len(found['not_increasing'])}/{len(times)}",
                not found["not_increasing"], f"block time not after its parent at heights "
                                             f"{found['not_increasing'][:10]}")
    clock = f"; clock skew applied x{checker.nemesis.applied['clock']}" if checker.nemesis.applied.get("clock") else ""
    bad = found["early"] + found["late"]
    checker.add(f"block times within honest clocks (±{TIME_TOLERANCE_S:g}s)",
                f"{len(times) - len(bad)}/{len(times)}; latest {found['worst_ahead_s']}s vs first seen{clock}",
                not bad, f"block times outside the honest clocks: {bad[:5]}")


def check_tamper(checker) -> None:
    runs = checker.nemesis.tamper_runs
    checker.details["tamper"] = runs
    for run in runs:
        name = f"tamper by {run['victim']}"
        sent = run["tampered"]
        checker.add(f"{name}: chain moved on", f"heights {run['tip_before']} -> {run['tip_during']}; tampered "
                    f"proposals {sent['proposals']}, sync answers {sent['sync_answers']}, decided blocks "
                    f"{sent['decided']}",
                    run["tip_during"] > run["tip_before"], f"{name}: the chain did not move while it ran")
        stopped = [(e["node"], e["exit_code"]) for e in run["honest_exits"]]
        checker.add(f"{name}: honest nodes that stopped", len(stopped), not stopped,
                    f"{name}: honest nodes stopped: {stopped}")
