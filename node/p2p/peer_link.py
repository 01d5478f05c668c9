"""``PeerLink``: the switch's record of one peer, kept while the peer is known, across its connections.

It holds the peer's send queues (``Outbox``), its live connection if any, where to dial it, and what the
peer said about itself and its chain.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from node.p2p.channels import ChannelSpec
from node.p2p.connection import Connection
from node.p2p.outbox import Outbox
from node.p2p.secret import PeerIdentity

if TYPE_CHECKING:
    from node.p2p.switch import PeerAddress


class PeerLink:
    """Everything about one peer: its send queues, its live connection (if any), what it said."""

    def __init__(self, node_id: str, specs: dict[int, ChannelSpec], address: PeerAddress | None = None):
        self.node_id = node_id
        self.address = address
        """Where to dial it (None: a peer that dialed in and is not configured here)."""
        self.outbox = Outbox(specs)
        self.connection: Connection | None = None
        self.identity: PeerIdentity | None = None
        self.height = 0
        """The last height the peer announced (its committed tip)."""
        self.earliest = 1
        """The earliest height whose block the peer said it serves (it pruned the blocks below)."""
        self.last_error = ""
        self.connects = 0
        self.changed = asyncio.Event()
        """Set whenever the link goes up or down."""
        self.replaced_at: list[float] = []
        """When this peer's connection was last replaced by a new one from the same side (a key conflict shows
        as many)."""
        self.request_sent_at = 0.0
        """When this node last sent the peer a request (monotonic clock)."""
        self.deferred_request: tuple[int, int, int] | None = None
        """A block request that came while the last answer had not gone yet: answered once it has."""

    @property
    def up(self) -> bool:
        return self.connection is not None and not self.connection.close_reason

    @property
    def name(self) -> str:
        """The peer's own name once it said it, else its address or id."""
        if self.identity is not None:
            return self.identity.hello.name
        return str(self.address) if self.address is not None else self.node_id[:12]

    def send(self, channel: int, item: bytes) -> None:
        self.outbox.put(channel, item)

    def unsent(self, channel: int, kind: int) -> bool:
        """A message of ``kind`` (its first byte) for this peer on ``channel`` is still queued or partly sent."""
        conn = self.connection
        partial = conn.partly_sent(channel) if conn is not None else None
        return (partial is not None and partial[:1] == bytes([kind])) or \
            any(item[:1] == bytes([kind]) for item in self.outbox.queues[channel])

    def describe(self) -> dict:
        conn = self.connection
        return {"id": self.node_id, "name": self.name, "address": str(self.address) if self.address else None,
                "up": self.up, "height": self.height, "earliest": self.earliest, "connects": self.connects,
                "outbound": conn.outbound if conn is not None else None,
                "rtt_ms": None if conn is None or conn.rtt_ms is None else round(conn.rtt_ms, 2),
                "last_error": self.last_error,
                "queued": {spec.name: self.outbox.pending(cid) for cid, spec in self.outbox.specs.items()},
                "dropped": dict(self.outbox.dropped)}
