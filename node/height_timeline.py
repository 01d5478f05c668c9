"""Where the wall-clock time of one height goes, on this node: the phases between its own consensus steps.

A height's interval (commit to commit) is cut at this node's own steps:

    wait       previous commit -> height started  (timeout_commit until the last precommit, then a transaction)
    proposal   height started  -> this node's prevote  (the proposal arriving and being checked)
    prevotes   prevote         -> this node's precommit  (+2/3 prevotes arriving)
    precommits precommit       -> decision  (+2/3 precommits arriving)
    apply      decision        -> block executed, durable and applied (write_ms is its store write)

A step this node did not take (a full node does not vote) joins the phases
around it into one, ``consensus`` (height started -> decision).  Later rounds
fall in ``precommits``: the first prevote and precommit of the height mark
the phases.  The commit log line and ``ledger_height_phase_seconds`` report
them, so a slow height shows which part was slow, and on which node: a late
proposal is a long ``proposal`` on every node but the proposer, a slow voter
a long ``prevotes``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

PHASES = ("wait", "proposal", "prevotes", "precommits", "consensus", "apply")
"""The phases of a height in order (``consensus`` only where this node skipped a step)."""
_STEPS = ("committed", "started", "prevoted", "precommitted", "decided")
_PHASE_FROM = {"committed": "wait", "started": "proposal", "prevoted": "prevotes", "precommitted": "precommits",
               "decided": "apply"}


@dataclass
class HeightTimeline:
    """Monotonic times of this node's steps at the height being decided (None: not taken yet)."""

    committed: float = field(default_factory=time.monotonic)
    """When the previous height was committed (or the node started)."""
    started: float | None = None
    """When this node started consensus at the height."""
    prevoted: float | None = None
    """When this node first prevoted at the height."""
    precommitted: float | None = None
    """When this node first precommitted at the height."""
    decided: float | None = None
    """When the decision reached the commit path."""

    def mark(self, step: str) -> None:
        """Record ``step`` (started, prevoted, precommitted or decided) now, unless it is already recorded."""
        if getattr(self, step) is None:
            setattr(self, step, time.monotonic())

    def phases(self, written: float) -> dict[str, float]:
        """Seconds spent in each phase this node saw, the height's block made durable at ``written``."""
        known = [(i, getattr(self, step)) for i, step in enumerate(_STEPS) if getattr(self, step) is not None]
        out: dict[str, float] = {}
        for (i, at), (j, until) in zip(known, known[1:] + [(len(_STEPS), written)], strict=True):
            name = _PHASE_FROM[_STEPS[i]] if j == i + 1 or i == len(_STEPS) - 1 else "consensus"
            if name == "consensus" and i == 0:
                out["wait"] = max(0.0, until - at)  # committed, then straight to a decision: all of it waiting
                continue
            out[name] = out.get(name, 0.0) + max(0.0, until - at)
        return out


def format_phases(phases: dict[str, float]) -> str:
    """``wait_ms=100 proposal_ms=12 ...`` for the commit log line."""
    return " ".join(f"{name}_ms={phases[name] * 1000:.0f}" for name in PHASES if name in phases)
