"""A running node's switch to state sync: when its peers say they pruned the blocks it lacks.

Block sync (``node.sync``) tells the node that every peer ahead has served
blocks from above its next height only, for a while.  A peer's word is not
enough to drop a state (a single lying peer would otherwise stop every
validator): the node first looks for a snapshot above its own height whose
proof checks out from the genesis through the validator set it holds itself,
with a peer serving the blocks after it (``snapshot_offers.probe_snapshot_above``).
Only then does it record a request (``state_sync_home.request_state_sync``)
and stop; ``ledger-node start`` executes itself again and carries it out.  A
look that finds nothing, and a state sync that failed, make it wait longer
before the next look (10 s, doubling up to 10 minutes).
"""

from __future__ import annotations

import asyncio
import logging
import time

from node.state_sync_home import failures, request_state_sync

log = logging.getLogger("ledger.node")

PROBE_WAIT_S = 10.0
"""After a look for a snapshot that found none, the node waits this long before the next (doubling each time)."""
PROBE_WAIT_MAX_S = 600.0
"""The longest wait between two looks."""


class StateSyncSwitch:
    """Deciding, for one running node, whether to stop and state-sync."""

    def __init__(self, node):
        self.node = node
        self.restarting = False
        """Set once the node decided to stop for state sync."""
        self._probe: asyncio.Task | None = None
        """The look for a snapshot, while it runs."""
        failed = failures(node.home)
        self._wait = min(PROBE_WAIT_S * 2 ** min(failed, 6), PROBE_WAIT_MAX_S)
        """How long after a look that found nothing the node waits before the next."""
        self._not_before = time.monotonic() + (self._wait if failed else 0.0)
        self._stuck_logged = -1e9

    def consider(self, earliest: int) -> None:
        """Every peer ahead says it serves blocks from ``earliest`` only, above the node's next height."""
        node = self.node
        if self.restarting or node.fatal is not None or self._probe is not None or time.monotonic() < self._not_before:
            return
        if not node.config.state_sync_when_behind:
            if time.monotonic() - self._stuck_logged > 60:  # once a minute
                self._stuck_logged = time.monotonic()
                log.error("every peer pruned the blocks after height %d (they serve from %d) and "
                          "state_sync_when_behind is off: this node cannot catch up; init a fresh home with "
                          "--state-sync", node.store.height, earliest)
            return
        self._probe = asyncio.create_task(self._probe_and_stop(earliest), name="state-sync-probe")

    def cancel(self) -> None:
        if self._probe is not None:
            self._probe.cancel()

    async def _probe_and_stop(self, earliest: int) -> None:
        from genesis.document import validator_set_of
        from node.snapshot_offers import own_next_set_hash, probe_snapshot_above

        node = self.node
        height = node.store.height
        genesis_set = validator_set_of(node.genesis)
        own_next = own_next_set_hash(node.store, genesis_set)
        try:
            found = await probe_snapshot_above(node.peers, node.chain_id, genesis_set, height, own_next)
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001  (a peer's odd answer: no switch this time)
            log.exception("looking for a snapshot failed")
            found = None
        finally:
            self._probe = None
        if found is None or node.store.height != height:
            wait = self._wait
            self._wait = min(self._wait * 2, PROBE_WAIT_MAX_S)
            self._not_before = time.monotonic() + wait
            if found is None:
                log.warning("peers say they serve blocks from %d only, past this node's next height %d, but none "
                            "offers a snapshot above %d that checks out with the blocks after it: staying (next "
                            "look in %d s)", earliest, height + 1, height, wait)
            return
        log.warning("every peer pruned the blocks after height %d (they serve from %d) and a snapshot at %d checks "
                    "out: stopping to state-sync", height, earliest, found)
        request_state_sync(node.home, height, earliest)
        self.restarting = True
        node.request_stop()
