"""Carrying out the consensus driver's actions, and starting each next height.

``Node`` mixes this in.  The driver (``node.consensus.driver``) is sans-IO:
it returns actions, and ``_run_actions`` carries them out on the asyncio
loop: a proposal or vote is broadcast to the peers (and marked seen by the
relay), a timeout becomes a loop timer that feeds the driver back, evidence
goes to the evidence log, and a decision is executed and committed through
the node's commit path.  After a commit the next height starts once
``timeout_commit_ms`` has passed, or as soon as every validator's precommit is in, and,
with ``create_empty_blocks_ms``, once there is a transaction to put in it.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from node.consensus.actions import BroadcastProposal, BroadcastVote, Decide, ReportEvidence, ScheduleTimeout
from node.consensus.messages import VoteType
from node.encoding import DecodeError
from node.gc_policy import SURVIVOR_FREEZER
from node.ledger.errors import LedgerError
from node.p2p.wire import encode_consensus_message
from node.stages import CLOCK
from node.types.commit import Commit

if TYPE_CHECKING:
    from genesis.document import ConsensusParams
    from node.application import Application
    from node.config import NodeConfig
    from node.consensus.driver import ConsensusDriver
    from node.consensus.relay import Relay
    from node.evidence import EvidenceLog
    from node.height_timeline import HeightTimeline
    from node.ledger.rules import BlockResult
    from node.ledger.store import Store
    from node.mempool import Mempool
    from node.p2p.consensus_io import ConsensusIO
    from node.p2p.reactor import PeerReactor
    from node.status import ClockWatch
    from node.types.block import Block


RECHECK_S = 0.05
"""The longest a wait between heights goes without looking again.  It looks again at every arrival (a kept
consensus message, transactions entering the mempool); this bound is for what arrives some other way (block
sync starting a height, the node stopping on an error)."""


class DriverActions:
    """The driver's actions and the start of each height, over the node's parts (set by ``Node.__init__``)."""

    config: NodeConfig
    params: ConsensusParams
    store: Store
    mempool: Mempool
    application: Application
    driver: ConsensusDriver
    relay: Relay
    consensus_io: ConsensusIO
    peers: PeerReactor
    evidence: EvidenceLog
    clock: ClockWatch
    loop: asyncio.AbstractEventLoop | None
    fatal: BaseException | None
    _next_height_task: asyncio.Task | None
    timeline: HeightTimeline
    _timers: list[asyncio.TimerHandle]
    _consensus_arrivals: asyncio.Event
    _work_arrivals: asyncio.Event
    _commit: Callable[[Block, Commit, BlockResult, int], None]
    _diverge: Callable[[int, str], None]

    # ------------------------------------------------------------------ actions

    def _run_actions(self, actions: list) -> None:
        queue = collections.deque(actions)
        while queue:
            action = queue.popleft()
            if isinstance(action, (BroadcastProposal, BroadcastVote)):
                message = action.proposal if isinstance(action, BroadcastProposal) else action.vote
                encoded = encode_consensus_message(message)
                if isinstance(action, BroadcastVote) and action.vote.height == self.store.height + 1:
                    self.timeline.mark("prevoted" if action.vote.vote_type is VoteType.PREVOTE else "precommitted")
                self.relay.mark_seen(hashlib.sha256(encoded).digest())
                self.peers.broadcast_consensus(encoded)
            elif isinstance(action, ScheduleTimeout):
                assert self.loop is not None
                timer = self.loop.call_later(action.delay_ms / 1000, self._on_timeout, action.timeout)
                self._timers.append(timer)
                if len(self._timers) > 64:
                    self._timers = [t for t in self._timers if not t.cancelled() and t.when() > self.loop.time()]
            elif isinstance(action, Decide):
                if action.height == self.store.height + 1:
                    self.timeline.mark("decided")
                self._on_decide(action)
            elif isinstance(action, ReportEvidence):
                self.evidence.record(action.evidence)

    def _on_timeout(self, timeout) -> None:
        if self.fatal is not None:
            return
        with CLOCK.stage("consensus"):
            self._run_actions(self.driver.on_timeout(timeout))

    def _on_decide(self, decision: Decide) -> None:
        if decision.height != self.store.height + 1:
            return  # block sync got there first
        try:
            block = self.application.decode_block(decision.value)
            result = self.application.execute(block)
        except (LedgerError, DecodeError) as exc:
            self._diverge(decision.height, f"decided block does not execute here: {exc}")
            return
        self._commit(block, decision.commit, result, decision.round)
        SURVIVOR_FREEZER.freeze_height()
        self.clock.observe(decision.commit)
        self._schedule_next_height(decision.height, decision.commit)

    def _schedule_next_height(self, height: int, commit: Commit) -> None:
        if self._next_height_task is not None and not self._next_height_task.done():
            self._next_height_task.cancel()
        self._next_height_task = asyncio.create_task(self._start_next_height(height, commit))

    def _on_consensus_arrival(self) -> None:
        """A consensus message was kept or buffered (it may be a late precommit, or a later height's)."""
        self._consensus_arrivals.set()
        self._work_arrivals.set()

    def _on_work_arrival(self) -> None:
        """Transactions entered the mempool."""
        self._work_arrivals.set()

    async def _wait_until(self, arrivals: asyncio.Event, done: Callable[[], bool], deadline: float | None) -> None:
        """Return once ``done()`` holds or at ``deadline`` (monotonic seconds; None: no bound), looking again at
        each of ``arrivals`` and at least every ``RECHECK_S``."""
        while not done():
            left = RECHECK_S if deadline is None else min(RECHECK_S, deadline - time.monotonic())
            if left <= 0:
                return
            arrivals.clear()  # no await since ``done()`` was looked at: no arrival can slip between
            try:
                async with asyncio.timeout(left):  # (not wait_for: on 3.11 it can swallow a cancellation)
                    await arrivals.wait()
            except TimeoutError:
                pass

    async def _wait_for_work(self, decided: int | None = None) -> None:
        """With an empty mempool, wait up to ``create_empty_blocks_ms`` (0: without a bound) for a transaction,
        unless a peer has already started a later height (its messages are buffered), or the node has moved
        past ``decided`` meanwhile (block sync)."""
        wait_ms = self.config.create_empty_blocks_ms
        deadline = time.monotonic() + wait_ms / 1000 if wait_ms > 0 else None
        await self._wait_until(self._work_arrivals, lambda: len(self.mempool) > 0 or self.relay.buffered > 0
                               or self.fatal is not None or (decided is not None and self.driver.height != decided),
                               deadline)

    async def _wait_for_late_precommits(self, decided: int, commit: Commit) -> None:
        """Wait up to ``timeout_commit_ms`` after deciding ``decided``, for the precommits that arrive after the
        decision (they go into the next block's last commit); done as soon as every validator's is in.

        The decision comes with the first 2f+1 precommits, so a node that waited the whole timeout whenever one
        was missing spent it at nearly every height, although the last precommit is usually milliseconds behind.
        """
        wait_s = self.params.timeout_commit_ms / 1000
        if wait_s <= 0 or len(commit.signatures) >= len(self.application.validators_at(decided)):
            return
        await self._wait_until(self._consensus_arrivals, lambda: self.fatal is not None
                               or self.driver.height != decided or self.driver.commit_complete,
                               time.monotonic() + wait_s)

    async def _start_first_height(self) -> None:
        await self._wait_for_work()
        if not self.driver.started and self.fatal is None:  # block sync may have started a height meanwhile
            self._start_consensus(self.store.height + 1)

    async def _start_next_height(self, decided: int, commit: Commit) -> None:
        await self._wait_for_late_precommits(decided, commit)
        await self._wait_for_work(decided)
        if self.driver.height != decided or self.store.height != decided or self.fatal is not None:
            return
        late = self.driver.commit_for_decided()
        if late is not None and late.block_hash == commit.block_hash:
            self.application.last_commit = late
        self._start_consensus(decided + 1)

    def _start_consensus(self, height: int) -> None:
        """Start consensus at ``height`` (the next height to decide), marking it on the height's timeline.  Its
        CPU (the driver's new height and first round, the proposal when this node proposes, the write-ahead log)
        is the consensus stage's: outside any stage it was 5% of a validator's CPU counted as "other"."""
        self.timeline.mark("started")
        with CLOCK.stage("consensus"):
            self.consensus_io.start_height(height)
