"""Where a node's CPU goes: thread CPU time charged to the stage that spent it.

The node runs on one thread, so the CPU time between entering and leaving a
stage is that stage's (a stage entered inside another pauses the outer one).
Only synchronous sections are wrapped: an ``await`` inside a stage would
charge other tasks' work to it.  ``GET /v1/status`` reports the totals
(``cpu_stages_s``) and the bench divides their growth by the transactions
committed meanwhile.

    admit_client  REST submissions: hex decoding, checks, journal, queueing for peers
    admit_peer    transactions from peers: decoding, checks, mempool
    consensus     the relay and the consensus driver (votes, proposals, round status, starting each height)
    propose       building this node's proposals
    validate      checking and executing proposed blocks
    commit        writing a decided block, mempool update, waking waiters
    sync          block sync: checking and applying certified blocks
    p2p           the peer transport: sealing and opening frames, packets
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import ParamSpec, TypeVar

STAGES = ("admit_client", "admit_peer", "consensus", "propose", "validate", "commit", "sync", "p2p")

P = ParamSpec("P")
R = TypeVar("R")


class StageClock:
    """Thread CPU seconds per stage, with nesting."""

    def __init__(self) -> None:
        self.totals: dict[str, float] = dict.fromkeys(STAGES, 0.0)
        self._stack: list[str] = []
        self._since = 0.0

    def enter(self, stage: str) -> None:
        now = time.thread_time()
        if self._stack:
            self.totals[self._stack[-1]] += now - self._since
        self._stack.append(stage)
        self._since = now

    def leave(self) -> None:
        now = time.thread_time()
        self.totals[self._stack.pop()] += now - self._since
        self._since = now

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        self.enter(name)
        try:
            yield
        finally:
            self.leave()

    def wrap(self, name: str, fn: Callable[P, R]) -> Callable[P, R]:
        """``fn`` with its calls charged to ``name``."""
        def charged(*args: P.args, **kwargs: P.kwargs) -> R:
            self.enter(name)
            try:
                return fn(*args, **kwargs)
            finally:
                self.leave()
        return charged

    def snapshot(self) -> dict[str, float]:
        return {name: round(seconds, 4) for name, seconds in self.totals.items()}


CLOCK = StageClock()
"""The process's clock (a node is one process; tests that run several nodes in one process share it)."""
