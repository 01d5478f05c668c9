"""How a node uses Python's garbage collector: fewer young collections, and no walking of long-lived objects.

A node allocates many short-lived objects per transaction, almost all freed
by reference counting: at 2,500-3,000 tx/s the collections found a few dozen
unreachable objects a minute.  What the collector does cost is walking the
objects that live a little longer (pending transactions, the bounded caches'
entries, the last blocks kept decoded): each survives its first collection
and was then walked again by every collection of an older generation.  At
3,000 tx/s a middle-generation collection took 160-200 ms every 5 s on every
node, about a tenth of a node's CPU, and all four nodes paused together.

So the node

* collects young objects every ``gc_gen0_threshold`` allocations instead of
  Python's 700 (``tune_gc``);
* freezes what it allocated at start-up (``freeze_startup_heap``);
* with ``gc_freeze_survivors``, freezes what survives each collection, and
  after each commit everything the collector tracks, without a walk
  (``SurvivorFreezer``): the collector walks each long-lived object at most
  once.  A frozen object is still freed by reference counting when dropped;
  what freezing gives up is collecting a reference cycle that became garbage
  after it was frozen, or that was garbage already when a commit froze it.
  So every ``gc_refreeze_s`` the frozen objects are handed back for one full
  collection, which frees such cycles, and the survivors are frozen again:
  what can be held by mistake is bounded by what one interval produces.  A
  round stops the node for its full collection (0.4-2.2 s on a 2-core machine
  shared by four validators), so the interval doubles after each round that
  found nothing, up to ``REFREEZE_MAX_FACTOR`` times ``gc_refreeze_s``, and is
  back to ``gc_refreeze_s`` after one that found something
  (``next_refreeze_s``).  ``GET /v1/status`` ``gc.refreeze`` shows how many
  objects each round freed (none, while nothing forms such cycles) and the
  interval to the next.  Without rounds (``gc_refreeze_s`` 0) a commit
  collects the young objects before freezing, so nothing dead is frozen.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import random
import threading
import time

log = logging.getLogger("ledger.memory")

GC_OLDER_THRESHOLDS = (20, 100)
"""Young collections per middle one, middle per full one, when ``gc_gen0_threshold`` is set."""


def tune_gc(gen0_threshold: int) -> None:
    """Collect garbage less often: Python's default (a young collection every 700 allocations) spent a tenth of
    the node's CPU on collections."""
    if gen0_threshold > 0:
        gc.set_threshold(gen0_threshold, *GC_OLDER_THRESHOLDS)


def freeze_startup_heap() -> None:
    """Move everything allocated so far (modules, the app, the node) out of the collector's sight, so no
    collection walks it again; only what the node allocates from now on is ever scanned."""
    gc.collect()
    gc.freeze()


REFREEZE_ATTEMPTS = 5
"""Tries per refreeze round (a try is skipped while another thread collects)."""
REFREEZE_RETRY_S = 1.0
REFREEZE_MAX_FACTOR = 8
"""The longest interval between refreeze rounds, in ``gc_refreeze_s``: a 60-minute run at 1,000 tx/s had 12
rounds on four validators in its first 25 minutes, each freeing nothing and stopping its node 0.4-2.2 s."""


def next_refreeze_s(every_s: float, interval_s: float, freed: int) -> float:
    """The interval before the next refreeze round: twice ``interval_s`` (at most ``REFREEZE_MAX_FACTOR`` times
    ``every_s``) when the last round freed nothing, ``every_s`` when it found a cycle to free."""
    return every_s if freed > 0 else min(2 * interval_s, REFREEZE_MAX_FACTOR * every_s)


class SurvivorFreezer:
    """Freezes what survives each collection; ``refreeze`` gives the frozen objects back for one full collection."""

    def __init__(self) -> None:
        self.active = False
        """Installed and not paused (``refreeze`` pauses it for its own collection)."""
        self.rounds = 0
        """Refreeze rounds done."""
        self.freed = 0
        """Unreachable objects the refreeze rounds found, in all: cycles that became garbage while frozen."""
        self.last_freed = 0
        self.last_ms = 0.0
        """How long the last round stopped the node."""
        self.frozen = 0
        """Objects frozen right after the last round (counting walks them all, so it is counted only then)."""
        self.interval_s = 0.0
        """The interval before the next round (``next_refreeze_s``), before its jitter."""
        self.refreezes = False
        """A refreeze task is running (``run`` with a positive interval): only then may a commit freeze without
        a collection, since only a refreeze round frees a cycle frozen after it died."""
        self._collect_next = False
        """An error was answered since the last commit (``expect_garbage``): collect before freezing."""
        self._refreezing: int | None = None
        """The thread running a refreeze round (None: none is)."""
        self._full_ran = False

    def install(self) -> None:
        if self._callback not in gc.callbacks:
            gc.callbacks.append(self._callback)
        self.active = True

    def uninstall(self) -> None:
        self.active = False
        if self._callback in gc.callbacks:
            gc.callbacks.remove(self._callback)

    def _callback(self, phase: str, info: dict) -> None:
        if phase == "stop" and self.active:
            gc.freeze()
        elif phase == "start" and info.get("generation") == 2 and self._refreezing == threading.get_ident():
            self._full_ran = True  # this round's own full collection (not another thread's) started

    def freeze_height(self) -> None:
        """Take the height's survivors out of the collector's sight, between heights (called right after a
        commit).

        Left to the allocation count, young collections came every 10-20 s at 1,000 tx/s and each walked
        everything allocated since the last that was still alive: 50-150 ms of CPU, 100-300 ms of wall time, in
        the middle of a height and on every validator at once, since they all execute the same blocks.  A young
        collection after each commit walked one height's survivors and found nothing to free (0 objects in
        3,420 of them in ten minutes at 1,000 tx/s), yet cost the four validators 0.03 ms of CPU per
        transaction at that rate (the consensus stage's 0.22-0.24 ms/tx went to 0.20).  So while refreeze
        rounds run, it freezes everything the collector tracks without a walk (``gc.freeze`` moves the lists
        whole and sets the generations' counts back to 0, so the allocation count rarely starts a collection
        either).  What that gives up: a reference cycle that died within the height is frozen with the live
        objects instead of being freed at once; the next refreeze round frees it, like any cycle that dies
        after being frozen, so what can be held stays bounded by what one interval produces, and each round's
        ``freed`` shows how much that was.  Without refreeze rounds (``gc_refreeze_s`` 0) nothing would ever
        free such a cycle, so the young objects are collected as before and the survivors frozen; so they are
        after a height in which an error was answered (``expect_garbage``)."""
        if not self.active:
            return
        if self.refreezes and not self._collect_next:
            gc.freeze()
        else:
            self._collect_next = False
            gc.collect(0)  # the collection's own callback freezes the survivors

    def expect_garbage(self) -> None:
        """Error handling makes reference cycles: a malformed JSON body left 100-150 objects in cycles inside the
        web framework, the request and its body among them, and a refused peer connection its own.  Frozen at
        the next commit, they stayed until the next refreeze round, minutes later, so a client or peer sending
        bad input grew the node's memory all that time.  So after a height in which an error was answered
        (``node.api.app.error_response``, ``node.p2p.switch.Switch.note``), the commit collects the young
        objects before freezing: a walk of one height's, paid only then.  What this cannot free is a cycle
        reaching an object frozen at an earlier commit (a request that waited across commits and then failed):
        that one still waits for the next refreeze round."""
        self._collect_next = True

    def refreeze(self) -> int | None:
        """Unfreeze everything, collect it all, freeze the survivors again; the unreachable objects found, or
        None when the full collection did not run (another thread's collection was still under way: Python
        then returns from ``gc.collect`` at once) and the round should be tried again."""
        started = time.perf_counter()
        was_active, self.active = self.active, False
        self._refreezing, self._full_ran = threading.get_ident(), False
        try:
            gc.unfreeze()
            found = gc.collect()
            gc.freeze()
        finally:
            self.active = was_active
            self._refreezing = None
        if not self._full_ran:
            log.info("gc: refreeze round skipped: another thread was collecting; trying again shortly")
            return None
        self.frozen = gc.get_freeze_count()
        self.rounds += 1
        self.freed += found
        self.last_freed = found
        self.last_ms = (time.perf_counter() - started) * 1000
        log.info("gc: refreeze round %d freed %d unreachable objects in %.0f ms; %d objects frozen",
                 self.rounds, found, self.last_ms, self.frozen)
        return found

    async def run(self, every_s: float) -> None:
        """Refreeze while installed (returns at once otherwise): first after about ``every_s`` seconds, then
        after the interval ``next_refreeze_s`` gives.

        Each wait is drawn within 20% of its interval: validators started together would otherwise all
        pause for it at the same moment, and a height needs most of them."""
        if every_s <= 0:
            return
        self.interval_s = every_s
        self.refreezes = True
        try:
            while self.active:
                await asyncio.sleep(self.interval_s * random.uniform(0.8, 1.2))
                for _attempt in range(REFREEZE_ATTEMPTS):
                    if not self.active:
                        return
                    freed = self.refreeze()
                    if freed is not None:
                        self.interval_s = next_refreeze_s(every_s, self.interval_s, freed)
                        break
                    await asyncio.sleep(REFREEZE_RETRY_S)
        finally:
            self.refreezes = False

    def status(self) -> dict:
        return {"rounds": self.rounds, "freed": self.freed, "last_freed": self.last_freed,
                "last_ms": round(self.last_ms, 1), "frozen": self.frozen, "next_s": round(self.interval_s)}


SURVIVOR_FREEZER = SurvivorFreezer()
"""The process's freezer (installed by ``ledger-node start`` with ``gc_freeze_survivors``)."""
