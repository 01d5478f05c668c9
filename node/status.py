"""The node's status view (``GET /v1/status``) and its clock: consensus time, and skew against the validators.

``ClockWatch.now_ms`` is the clock this node's votes carry (the wall clock
shifted by ``clock_offset_ms``, a testing aid).  After each decision the node
compares it with the other validators' precommit times in the certificate and
says so, at most once a minute, when it is more than ``clock_skew_warn_ms``
off; block time does not depend on it (BFT time).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from node.config import NodeConfig
from node.crypto import encode_address
from node.gc_policy import SURVIVOR_FREEZER
from node.memory import GC_PAUSES
from node.stages import CLOCK
from node.types.commit import Commit
from node.types.hashes import ZERO_HASH

if TYPE_CHECKING:
    from node.runtime import Node

log = logging.getLogger("ledger.node")

CLOCK_WARNING_INTERVAL_S = 60.0
"""A node whose clock is off says so at most this often."""


class ClockWatch:
    """This node's consensus clock, and how far it is from the other validators' clocks."""

    def __init__(self, address: bytes, config: Callable[[], NodeConfig]):
        """``config`` gives the node's current configuration (read at each call)."""
        self.address = address
        self._config = config
        self.offset_ms: int | None = None
        """This clock minus the median of the other validators' latest precommit times (None: none seen yet)."""
        self.peer_offsets: dict[bytes, int] = {}
        """Per other validator: this clock minus its latest precommit time."""
        self._warned_at = -CLOCK_WARNING_INTERVAL_S

    def now_ms(self) -> int:
        """This node's clock for consensus (Unix ms): the wall clock shifted by ``clock_offset_ms`` (a testing aid)."""
        return int(time.time() * 1000) + self._config().clock_offset_ms

    @property
    def skewed(self) -> bool:
        """True when this node's clock is more than ``clock_skew_warn_ms`` off the other validators'."""
        return self.offset_ms is not None and abs(self.offset_ms) > self._config().clock_skew_warn_ms

    def observe(self, commit: Commit) -> None:
        """Compare this node's clock with the precommit times of the other validators in a commit it has just
        decided (signed moments ago) and say so, at most once a minute, when it is far off.

        The offset is the median over the other validators of (this clock - their latest precommit time), the
        middle value nearer to this clock for an even count.  Block time does not depend on it.
        """
        now = self.now_ms()
        for cs in commit.signatures:
            if cs.validator != self.address:
                self.peer_offsets[cs.validator] = now - cs.time_ms
        offsets = sorted(self.peer_offsets.values())
        if not offsets:
            return
        mid = len(offsets) // 2
        self.offset_ms = min(offsets[mid - 1:mid + 1] if len(offsets) % 2 == 0 else [offsets[mid]], key=abs)
        if self.skewed and time.monotonic() - self._warned_at >= CLOCK_WARNING_INTERVAL_S:
            self._warned_at = time.monotonic()
            config = self._config()
            log.warning("clock: this node's clock is %+d ms off the median of the other validators' precommit "
                        "times (more than clock_skew_warn_ms=%d); block times come from the validators and are "
                        "not affected, but fix this machine's clock (NTP)%s", self.offset_ms,
                        config.clock_skew_warn_ms,
                        f"; clock_offset_ms={config.clock_offset_ms} is set" if config.clock_offset_ms else "")

    def status(self) -> dict:
        config = self._config()
        return {"offset_ms": self.offset_ms, "skewed": self.skewed, "warn_ms": config.clock_skew_warn_ms,
                "validators_seen": len(self.peer_offsets), "injected_offset_ms": config.clock_offset_ms}


def node_status(node: Node) -> dict:
    """What ``GET /v1/status`` answers: chain, tip, consensus step, mempool, peers and clock."""
    height = node.store.height
    header = node.store.get_header(height) if height > 0 else None
    app_hash = node.store.app_hash
    assert app_hash is not None  # a running node's store holds its genesis (checked at start)
    return {
        "chain_id": node.chain_id,
        "node_name": node.config.name,
        "validator_address": encode_address(node.address),
        "is_validator": node.is_validator,
        "height": height,
        "earliest_height": node.store.earliest_height,
        "latest_block_hash": (node.store.get_block_hash(height) or ZERO_HASH).hex() if height > 0 else None,
        "latest_block_time_ms": header.time_ms if header else None,
        "app_hash": app_hash.hex(),
        "genesis_hash": node.genesis_hash.hex(),
        "catching_up": node.sync.catching_up,
        "consensus": {"height": node.driver.height, "round": node.driver.round, "step": node.driver.step.name.lower()},
        "mempool": {"size": len(node.mempool), "bytes": node.mempool.total_bytes},
        "node_id": node.node_id,
        "p2p": {"listen": f"{node.config.host}:{node.config.p2p_port}", "peers_up": node.peers.peers_up,
                "alone": node.alone_problem() or None},
        "peers": [link.describe() for link in node.peers.links],
        "clock": node.clock.status(),
        "cpu_stages_s": CLOCK.snapshot(),
        "gc": {"collections": GC_PAUSES.count, "seconds": [round(x, 3) for x in GC_PAUSES.seconds],
               "collected": GC_PAUSES.collected, "refreeze": SURVIVOR_FREEZER.status(),
               "longest_ms": round(GC_PAUSES.longest_s * 1000, 1)},
        "loop": {"stalls": node.loop_watch.stalls.count,
                 "longest_ms": round(node.loop_watch.stalls.longest_s * 1000, 1)},
    }
