"""Stalls of the node's event loop: how long it was kept from running, and what kept it.

Everything a node does runs on one asyncio loop, so one slow synchronous
step (a long write, a big computation, a blocking call) holds up every vote,
gossip message and REST answer behind it.  A task on the loop beats every
``BEAT_S``; a watcher thread that sees no beat for ``STALL_S`` takes the
loop thread's stack at that moment (``sys._current_frames``) and, when the
loop runs again, logs the stall with how long it lasted and that stack,
at most one stall in ``LOG_EVERY_S``.  ``ledger_loop_stalls_total`` and the
longest stall (``GET /v1/status``, ``loop``) count them all.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
import traceback
from dataclasses import dataclass

log = logging.getLogger("ledger.node")

BEAT_S = 0.05
"""How often the loop beats."""
STALL_S = 0.25
"""A loop that has not beaten for this long is stalled."""
LOG_EVERY_S = 10.0
"""At most one stall is logged in this many seconds (all are counted)."""
STACK_FRAMES = 12
"""Innermost frames of the loop thread's stack kept for the log line."""


@dataclass
class LoopStalls:
    """What the watcher has seen (read by the status and the metrics)."""

    count: int = 0
    """Stalls seen (each at least ``STALL_S`` without a beat)."""
    longest_s: float = 0.0
    """The longest, in seconds."""


class LoopWatch:
    """A beat on the loop and a thread that notices when it stops."""

    def __init__(self) -> None:
        self.stalls = LoopStalls()
        self._beat = time.monotonic()
        self._loop_thread = threading.get_ident()
        self._stack: list[str] | None = None
        self._stalled_since: float | None = None
        self._last_logged = float("-inf")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    async def run(self) -> None:
        """The beat (a task on the node's loop); starts the watcher thread."""
        self._loop_thread = threading.get_ident()
        self._beat = time.monotonic()
        self._thread = threading.Thread(target=self._watch, name="loop-watch", daemon=True)
        self._thread.start()
        try:
            while True:
                await asyncio.sleep(BEAT_S)
                self._on_beat(time.monotonic())
        finally:
            self._stop.set()

    def _on_beat(self, now: float) -> None:
        stack = self._stack
        lag = now - self._beat - BEAT_S
        self._beat = now
        self._stalled_since = None
        self._stack = None
        if lag < STALL_S:
            return
        self.stalls.count += 1
        self.stalls.longest_s = max(self.stalls.longest_s, lag)
        if now - self._last_logged >= LOG_EVERY_S:
            self._last_logged = now
            log.warning("event loop stalled for %.0f ms; it was in: %s", lag * 1000,
                        " <- ".join(reversed(stack or [])) or "(unknown)")

    def _watch(self) -> None:
        """The watcher thread: once per beat, look whether the loop has beaten lately."""
        while not self._stop.wait(BEAT_S):
            if self._stalled_since is None and time.monotonic() - self._beat >= STALL_S + BEAT_S:
                self._stack = _innermost_frames(self._loop_thread)
                self._stalled_since = self._beat


def _innermost_frames(thread_id: int) -> list[str]:
    """``function (file:line)`` of the innermost ``STACK_FRAMES`` frames of ``thread_id``, outermost first."""
    frame = sys._current_frames().get(thread_id)
    if frame is None:
        return []
    summary = traceback.extract_stack(frame)[-STACK_FRAMES:]
    return [f"{entry.name} ({_short(entry.filename)}:{entry.lineno})" for entry in summary]


def _short(path: str) -> str:
    for marker in ("/node/", "/site-packages/", "/lib/python"):
        at = path.rfind(marker)
        if at >= 0:
            return path[at + 1:]
    return path
