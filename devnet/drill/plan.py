"""The fault plan: which faults a drill applies, when, for how long and to whom, as a function of the seed.

The same seed gives the same schedule (and adding kinds never changes the
schedule a seed gives for the kinds it asks for).  Faults run one after the
other with a recovery gap between them; every requested kind runs at least
once (``kill`` before ``killall``), then kinds are drawn by weight.

With ``reconfig`` the plan follows the validator set it changes
(``devnet.drill.membership``): every later step draws its targets from the
set of its time, never from genesis.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from devnet.drill.membership import RECONFIG_OPS, PlannedSet, describe_change, partition_extras

FAULT_KINDS = ("kill", "killall", "pause", "partition", "slow", "twin", "lag", "clock", "tamper", "reconfig")
PARTITION_SHAPES = ("isolate", "split", "ring")

WARMUP_S = 4.0
TAIL_S = 4.0
MIN_DURATION_S = {"kill": 3.0, "killall": 0.5, "pause": 3.0, "partition": 4.0, "slow": 4.0, "twin": 15.0,
                  "lag": 12.0, "clock": 10.0, "tamper": 15.0, "reconfig": 10.0}
MAX_DURATION_S = {"kill": 10.0, "killall": 3.0, "pause": 8.0, "partition": 12.0, "slow": 12.0, "twin": 35.0,
                  "lag": 25.0, "clock": 25.0, "tamper": 30.0, "reconfig": 20.0}
GAP_S = (3.0, 6.0)
FAULT_WEIGHTS = {"kill": 3, "killall": 1, "pause": 2, "partition": 3, "slow": 2, "twin": 1, "lag": 2, "clock": 1,
                 "tamper": 1, "reconfig": 2}
"""How often each kind is drawn once every requested kind has had its turn."""
MIN_VALIDATORS = {"lag": 4, "tamper": 4, "reconfig": 4}
"""Below this many validators a kind is left out of the plan (with f = 0 one node down halts the chain)."""
LAG_AHEAD = 3
"""How many heights the others must get ahead of the paused validator before the second one goes down."""
CLOCK_OFFSETS_MS = (-10 * 60_000, -2 * 60_000, 2 * 60_000, 10 * 60_000, 3_600_000, 86_400_000,
                    365 * 86_400_000, 10 * 365 * 86_400_000)
"""Skews a ``clock`` step draws from (plus up to a minute more in the same direction)."""


@dataclass(frozen=True)
class FaultStep:
    """One planned perturbation."""

    at_s: float
    """Seconds after the workload starts."""
    kind: str
    """One of FAULT_KINDS."""
    duration_s: float
    """How long the fault lasts before it is healed (the twin may leave early once caught)."""
    detail: dict = field(default_factory=dict)
    """Targets and parameters, fixed at plan time."""

    def describe(self) -> str:
        d = self.detail
        if self.kind == "kill":
            return f"SIGKILL {d['node']}, restart after {self.duration_s:.1f}s"
        if self.kind == "killall":
            return f"SIGKILL all validators, restart after {self.duration_s:.1f}s"
        if self.kind == "pause":
            return f"SIGSTOP {', '.join(d['nodes'])} for {self.duration_s:.1f}s"
        if self.kind == "partition":
            return f"partition {d['shape']} {d['label']} for {self.duration_s:.1f}s"
        if self.kind == "slow":
            return (f"slow links delay={d['delay_ms']}ms jitter={d['jitter_ms']}ms loss={d['loss']:.0%} "
                    f"reset={d['reset']:.1%} for {self.duration_s:.1f}s")
        if self.kind == "twin":
            return f"Byzantine twin of {d['victim']} for up to {self.duration_s:.1f}s"
        if self.kind == "lag":
            verb = "SIGKILL" if d["mode"] == "kill" else "SIGSTOP"
            return (f"SIGSTOP {d['lagger']} until {d['ahead']} heights behind, {verb} {d['faulty']}, SIGCONT "
                    f"{d['lagger']} (3 of 4 up), heal {d['faulty']} after {self.duration_s:.1f}s")
        if self.kind == "clock":
            return f"{d['node']} clock {format_offset(d['offset_ms'])} for {self.duration_s:.1f}s"
        if self.kind == "tamper":
            return (f"Byzantine {d['victim']} tampers with blocks to {','.join(d['targets'])} "
                    f"({d['lagger']} lags behind it) for {self.duration_s:.1f}s")
        if self.kind == "reconfig":
            return describe_change(d)
        return self.kind


def validator_names(count: int) -> list[str]:
    return [f"validator-{i}" for i in range(count)]


def _pair(a: str, b: str) -> tuple[str, str]:
    """An unordered pair of nodes, sorted."""
    return (a, b) if a <= b else (b, a)


def ring_cut_pairs(order: list[str]) -> list[tuple[str, str]]:
    """Pairs to cut so each node keeps the nearest ring neighbours making up a bare majority with itself."""
    n = len(order)
    majority = n // 2 + 1
    reach = (majority - 1 + 1) // 2  # neighbours on each side
    pairs = []
    for i in range(n):
        for j in range(i + 1, n):
            distance = min(j - i, n - (j - i))
            if distance > reach:
                pairs.append(_pair(order[i], order[j]))
    return pairs


def _partition_detail(rng: random.Random, names: list[str], shape: str) -> dict:
    if shape == "isolate":
        lone = rng.choice(names)
        groups = [[lone], [n for n in names if n != lone]]
        pairs = [_pair(lone, n) for n in names if n != lone]
        label = f"{lone} | rest"
    elif shape == "split":
        shuffled = names[:]
        rng.shuffle(shuffled)
        half = len(shuffled) // 2
        groups = [sorted(shuffled[:half]), sorted(shuffled[half:])]
        pairs = [_pair(a, b) for a in groups[0] for b in groups[1]]
        label = f"{','.join(groups[0])} | {','.join(groups[1])}"
    else:
        order = names[:]
        rng.shuffle(order)
        groups = []
        pairs = ring_cut_pairs(order)
        label = "ring " + "-".join(n.rsplit("-", 1)[-1] if n.startswith("validator-") else n for n in order)
    return {"shape": shape, "groups": groups, "cut": [list(p) for p in pairs], "label": label}


def _detail(rng: random.Random, kind: str, names: list[str], shape_cycle: list[str]) -> dict:
    if kind == "kill":
        return {"node": rng.choice(names)}
    if kind == "killall":
        return {"nodes": list(names)}
    if kind == "pause":
        count = 2 if len(names) >= 4 and rng.random() < 0.25 else 1
        return {"nodes": sorted(rng.sample(names, count))}
    if kind == "partition":
        shape = shape_cycle.pop(0) if shape_cycle else rng.choice(PARTITION_SHAPES)
        return _partition_detail(rng, names, shape)
    if kind == "slow":
        return {"delay_ms": rng.choice([20, 50, 100, 200]), "jitter_ms": rng.choice([0, 20, 100]),
                "loss": rng.choice([0.0, 0.02, 0.05, 0.1]), "reset": rng.choice([0.0, 0.005, 0.02])}
    if kind == "twin":
        return {"victim": rng.choice(names)}
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


def plan_faults(seed: int, duration_s: float, kinds: list[str], validators: int) -> list[FaultStep]:
    """The fault schedule for ``seed``: every kind at least once (``kill`` before ``killall``), then random.

    Faults run one after another with a recovery gap between them, inside
    ``[WARMUP_S, duration_s - TAIL_S]``.  A required kind that does not fit at
    full length is shortened to its minimum; one that does not fit even then
    is left out (the verdict lists what ran).  With ``reconfig``, each of its
    steps makes one change of the validator set, every change kind once if
    there is room, and later steps target the set of their time.
    """
    rng = random.Random(f"drill-plan-{seed}")
    names = validator_names(validators)
    kinds = [k for k in kinds if validators >= MIN_VALIDATORS.get(k, 1)]
    required = [k for k in FAULT_KINDS if k in kinds]
    if "partition" in required and duration_s >= 120:
        required += ["partition"] * (len(PARTITION_SHAPES) - 1)  # room for every shape
    rng.shuffle(required)
    if "kill" in required and "killall" in required and required.index("killall") < required.index("kill"):
        i, j = required.index("killall"), required.index("kill")
        required[i], required[j] = required[j], required[i]
    members: PlannedSet | None = None
    reconfig_rng = random.Random(f"drill-reconfig-{seed}")
    if "reconfig" in kinds:  # its own draws: the plans of the other kinds stay as they were without it
        protected = reconfig_rng.choice(names) if "twin" in kinds else None
        members = PlannedSet.genesis(names, reconfig_rng, protected)
        required += ["reconfig"] * ((len(RECONFIG_OPS) if duration_s >= 120 else 2) - 1)  # last: may not fit
    shapes = list(PARTITION_SHAPES)
    rng.shuffle(shapes)
    steps: list[FaultStep] = []
    t = WARMUP_S
    end = duration_s - TAIL_S
    for _ in range(1000):
        if not kinds or t >= end:
            break
        kind = required[0] if required else rng.choices(kinds, [FAULT_WEIGHTS[k] for k in kinds])[0]
        length = round(rng.uniform(MIN_DURATION_S[kind], MAX_DURATION_S[kind]), 1)
        if t + length > end:
            if t + MIN_DURATION_S[kind] <= end:
                length = round(end - t, 1)
            elif required:
                required.pop(0)  # does not fit even at its shortest
                continue
            else:
                break
        if required:
            required.pop(0)
        if members is None:
            detail = _detail(rng, kind, names, shapes)
        elif kind == "reconfig":
            detail = members.next_change(reconfig_rng)
        else:
            detail = _detail(rng, kind, members.validators(), shapes)
            detail["members"] = members.validators()
            if kind == "partition":
                detail = partition_extras(reconfig_rng, detail, members.extras())
        steps.append(FaultStep(round(t, 1), kind, length, detail))
        t += length + rng.uniform(*GAP_S)
    twins = [s for s in steps if s.kind == "twin"]
    for step in twins:  # one twin home, one stolen key per drill (a validator no reconfiguration touches)
        step.detail["victim"] = members.protected if members is not None and members.protected else \
            twins[0].detail["victim"]
    return steps
