"""The fault mixes: how the network and the honest nodes misbehave until the global stabilisation time (GST)."""

from __future__ import annotations

from dataclasses import dataclass

POST_GST_DELAY_MS = 30
"""Upper bound on message delay after GST."""


@dataclass(frozen=True)
class FaultMix:
    """How the network and the honest nodes misbehave before GST."""

    name: str
    """Label used in reports."""
    gst_ms: tuple[int, int]
    """GST is drawn uniformly from this range."""
    drop: float
    """Probability a message is lost before GST."""
    duplicate: float
    """Probability a message is delivered twice."""
    delay_ms: tuple[int, int]
    """Delay range before GST (wide ranges reorder)."""
    partition: bool
    """Split the nodes in two until GST."""
    crashes: int
    """Honest nodes that crash and restart before GST."""
    pause: bool = False
    """One honest node is paused (SIGSTOP-like) for a while before GST, long enough to fall behind."""
    torn: bool = False
    """Crashes strike right after the node signed something, before it could send it."""


FAULT_MIXES: dict[str, FaultMix] = {m.name: m for m in (
    FaultMix("calm", (0, 0), 0.0, 0.0, (1, POST_GST_DELAY_MS), False, 0),
    FaultMix("lossy", (500, 4000), 0.3, 0.1, (1, 400), False, 0),
    FaultMix("partition", (1000, 5000), 0.05, 0.02, (1, 60), True, 0),
    FaultMix("crash", (1000, 4000), 0.05, 0.02, (1, 60), False, 2),
    FaultMix("chaos", (1000, 6000), 0.25, 0.1, (1, 500), True, 2),
    FaultMix("lag", (3000, 7000), 0.02, 0.02, (1, 60), False, 0, pause=True),
    FaultMix("torn", (1000, 4000), 0.05, 0.02, (1, 60), False, 2, torn=True),
)}
