"""The validator set as the fault plan expects it to evolve under ``reconfig`` steps.

A ``reconfig`` step makes one change of the set (``RECONFIG_OPS``):

- ``join``: a new full node (its own home and key) is added, started and
  caught up, then joins the set (its JOIN, approvals by the set);
- ``quit``: a validator leaves the set; its process keeps running as a full node;
- ``rotate``: a validator moves to a new key: a new node with a fresh key
  joins with the old one's power, then the old key quits (its process keeps
  running as a full node);
- ``power``: a validator's power changes (approved by the set).

The first change is a ``join``, then ``quit``, ``rotate`` and ``power`` in a
seeded order; later ones are drawn so that the set stays between
``floor`` (the drill's starting size, at least 4) and one more.  Every
change keeps each validator's power below a third of the total, so any one
faulty validator stays within f, and never touches the ``protected``
validator (the twin's victim: its stolen key must stay a validator's key).

``PlannedSet`` follows these changes at plan time, so the steps after a
change draw their targets (kill, pause, partition, twin, ...) from the set
of their time, and partitions put the nodes outside the set (joined, quit)
into groups too: a full node linked to both sides would relay across the cut.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

RECONFIG_OPS = ("join", "quit", "rotate", "power")
MAX_ADDED_NODES = 3
"""Nodes a drill adds at most (each is one more process on the machine)."""
POWERS = tuple(range(6, 15))
"""Powers a join or a power change draws from (genesis validators have 10)."""
NEW_NODE_PREFIX = "full-"


def balanced(powers: dict[str, int]) -> bool:
    """Every validator holds less than a third of the total: one faulty validator is within f."""
    total = sum(powers.values())
    return bool(powers) and all(3 * p < total for p in powers.values())


@dataclass
class PlannedSet:
    """Validators (name -> power) and every node process of the drill, as the plan expects them."""

    members: dict[str, int]
    nodes: list[str]
    floor: int
    """The set never goes below this many validators."""
    protected: str | None = None
    added: int = 0
    script: list[str] = field(default_factory=list)
    """Changes still to make first, in order."""

    @classmethod
    def genesis(cls, names: list[str], rng: random.Random, protected: str | None, power: int = 10) -> PlannedSet:
        rest = ["quit", "rotate", "power"]
        rng.shuffle(rest)
        return cls({n: power for n in names}, list(names), max(4, len(names)), protected, 0, ["join", *rest])

    def validators(self) -> list[str]:
        return list(self.members)

    def extras(self) -> list[str]:
        """Nodes outside the set (added and not joined yet, or quit)."""
        return [n for n in self.nodes if n not in self.members]

    def _movable(self) -> list[str]:
        return [n for n in self.members if n != self.protected]

    def _fits(self, power: int) -> bool:
        """A newcomer with ``power`` moves less than a third of the power and keeps the set balanced."""
        return 3 * power < sum(self.members.values()) and balanced({**self.members, "_new": power})

    def _quittable(self) -> list[str]:
        if len(self.members) <= self.floor:
            return []
        return [n for n in self._movable() if balanced({m: p for m, p in self.members.items() if m != n})]

    def _power_change(self, rng: random.Random) -> tuple[str, int] | None:
        total = sum(self.members.values())
        options = [(n, p) for n in self._movable() for p in POWERS if p != self.members[n]
                   and 3 * abs(p - self.members[n]) < total and balanced({**self.members, n: p})]
        return rng.choice(options) if options else None

    def _possible(self, op: str) -> bool:
        can_add = self.added < MAX_ADDED_NODES
        if op == "join":
            return can_add and any(self._fits(p) for p in POWERS)
        if op == "quit":
            return bool(self._quittable())
        if op == "rotate":
            return can_add and any(self._fits(self.members[n]) for n in self._movable())
        return self._power_change(random.Random(0)) is not None

    def _choose(self, rng: random.Random) -> str | None:
        while self.script:
            op = self.script.pop(0)
            if self._possible(op):
                return op
        if len(self.members) > self.floor and self._possible("quit"):
            return "quit"
        options = [op for op in ("join", "rotate", "power", "power") if self._possible(op)]
        return rng.choice(options) if options else None

    def _new_node(self) -> str:
        name = f"{NEW_NODE_PREFIX}{self.added}"
        self.added += 1
        self.nodes.append(name)
        return name

    def next_change(self, rng: random.Random) -> dict:
        """Draw the next change, apply it to the planned set, and return it as a step's detail."""
        op = self._choose(rng)
        detail: dict = {"op": op or "none", "before": dict(self.members)}
        if op == "join":
            power = rng.choice([p for p in POWERS if self._fits(p)])
            node = self._new_node()
            self.members[node] = power
            detail.update(node=node, power=power)
        elif op == "quit":
            node = rng.choice(self._quittable())
            del self.members[node]
            detail.update(node=node)
        elif op == "rotate":
            old = rng.choice([n for n in self._movable() if self._fits(self.members[n])])
            node = self._new_node()
            self.members[node] = self.members.pop(old)
            detail.update(node=node, old=old, power=self.members[node])
        elif op == "power":
            change = self._power_change(rng)
            assert change is not None
            node, power = change
            detail.update(node=node, old_power=self.members[node], power=power)
            self.members[node] = power
        detail["after"] = dict(self.members)
        return detail


def describe_change(d: dict) -> str:
    op = d["op"]
    if op == "join":
        return f"add node {d['node']} (start, catch up), join with power {d['power']}"
    if op == "quit":
        return f"{d['node']} quits the set (keeps running as a full node)"
    if op == "rotate":
        return f"rotate {d['old']}'s key: new node {d['node']} joins with power {d['power']}, then {d['old']} quits"
    if op == "power":
        return f"{d['node']} power {d['old_power']} -> {d['power']}"
    return "no change fits"


def partition_extras(rng: random.Random, detail: dict, extras: list[str]) -> dict:
    """Put the nodes outside the set into a partition's groups, so none of them bridges the cut.

    isolate: they stay with the rest; split: each joins a random side; ring:
    each hangs off one ring member and is cut from every other node.
    """
    if not extras:
        return detail
    shape, cut = detail["shape"], {tuple(p) for p in detail["cut"]}
    members = sorted(detail.get("members") or {n for p in cut for n in p})
    if shape in ("isolate", "split"):
        groups = [list(g) for g in detail["groups"]]
        for extra in extras:
            (groups[-1] if shape == "isolate" else rng.choice(groups)).append(extra)
        where = {n: i for i, g in enumerate(groups) for n in g}
        nodes = sorted(where)
        pairs = [(a, b) for i, a in enumerate(nodes) for b in nodes[i + 1:] if where[a] != where[b]]
        return {**detail, "groups": [sorted(g) for g in groups], "cut": [list(p) for p in pairs],
                "label": detail["label"] + f" (+{','.join(extras)})"}
    anchors = {extra: rng.choice(members) for extra in extras}
    ring_cut: set[tuple[str, ...]] = set(cut)
    for extra, anchor in anchors.items():
        ring_cut |= {tuple(sorted((extra, m))) for m in members if m != anchor}
        ring_cut |= {tuple(sorted((extra, e))) for e in extras if e != extra and anchors[e] != anchor}
    label = detail["label"] + " " + " ".join(f"{e}@{a}" for e, a in anchors.items())
    return {**detail, "cut": [list(p) for p in sorted(ring_cut)], "anchors": anchors, "label": label}
