"""The channels of a peer connection: what each carries, its priority and its limits.

One connection per peer carries every channel.  A message is cut into
packets (``PACKET_DATA_BYTES`` at most, one sealed frame each) and before
each packet the sender picks the channel with the highest priority that has
something to send, so a vote never waits behind a block-sync answer.

    id    channel        carries                                      priority
    0x00  control        ping, pong, goodbye (the connection's own)   first
    0x20  consensus      batches of proposals, votes, decided blocks  0
    0x21  round-state    the sender's RoundStatus                     1
    0x40  blocksync      heights, block requests and answers          2
    0x30  txs            batches of raw transactions                  3
    0x31  reconfig       batches of approvals and quits               3
    0x60  snapshot       snapshot lists, anchors and chunks           4

A message on a channel not in the table drops the connection.  Every
channel has a send queue bounded by items (the oldest is dropped from a full
one: consensus and round state are re-offered by the round-state exchange,
a transaction still arrives inside a block) and a receive budget in bytes per
second: a peer that floods a channel is read no faster than that (throttled,
and counted), so it costs bounded CPU and memory.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from genesis.records import MAX_BLOCK_BYTES
from node.encoding import Writer
from node.p2p.wire import encode_consensus_batch, encode_tx_batch, tx_batch_item_bytes

CONTROL = 0x00
CONSENSUS = 0x20
ROUND_STATE = 0x21
TXS = 0x30
RECONFIG = 0x31
BLOCKSYNC = 0x40
SNAPSHOT = 0x60
"""Snapshot lists, anchors and chunks for state sync (``node.p2p.snapshot_wire``)."""

PACKET_DATA_BYTES = 64 * 1024
"""Most message bytes in one packet (one sealed frame)."""
PACKET_HEADER_BYTES = 2
"""Channel id and flags in front of each packet's data."""
FRAME_LIMIT = PACKET_DATA_BYTES + PACKET_HEADER_BYTES
FLAG_LAST = 0x01
"""The packet ends its message."""

MAX_BLOCK_MESSAGE_BYTES = MAX_BLOCK_BYTES + 4 * 1024 * 1024
"""A message that carries one block (a proposal, a decided block, a block-sync answer): the largest block a
genesis may allow, and room for its envelope and certificate."""
MAX_SYNC_ANSWER_BYTES = 8 * 1024 * 1024
"""A block-sync answer holds whole blocks up to this many bytes (at least one block)."""
MAX_SNAPSHOT_MESSAGE_BYTES = 64 * 1024 * 1024
"""A snapshot chunk (or anchor) travels in one message of at most this size."""
MAX_CONTROL_PER_S = 50
"""Control messages (pings, pongs) a peer may send per second before it is dropped."""

CONTROL_PING = 1
CONTROL_PONG = 2
CONTROL_GOODBYE = 3


def encode_goodbye(reason: str) -> bytes:
    """Why this node closes the connection (the peer logs it)."""
    return Writer().u8(CONTROL_GOODBYE).text(reason[:200]).getvalue()


@dataclass(frozen=True)
class ChannelSpec:
    """One channel of a peer connection."""

    id: int
    """The byte that names it in every packet."""
    name: str
    """For logs and metrics."""
    priority: int
    """Lower goes first."""
    max_message_bytes: int
    """A message that grows past this while being received drops the connection."""
    queue_max: int
    """Send-queue bound in items; a full queue drops its oldest item."""
    queue_max_bytes: int
    """Send-queue bound in bytes (a peer that asks for much cannot make this node hold more)."""
    recv_bytes_per_s: int
    """Receive budget: reading from a peer pauses while it is spent."""
    batch: Callable[[list[bytes]], bytes] | None = None
    """Encodes queued items into one message (None: each item is a message)."""
    batch_items: int = 1
    """Most items in one batched message."""
    item_bytes: Callable[[bytes], int] = len
    """Bytes one item adds to a batched message."""
    linger_s: float = 0.0
    """A batch smaller than ``batch_items`` waits this long for company (never while another channel waits)."""
    batch_bytes: int = 0
    """Most bytes of a batched message of several items (0: ``max_message_bytes``); one item alone may be larger."""

    @property
    def recv_burst_bytes(self) -> int:
        """The receive budget's bucket size: one second's worth (it is charged per packet as it arrives)."""
        return self.recv_bytes_per_s


def channel_table(batch_txs: int, linger_ms: int, tx_queue_max: int) -> dict[int, ChannelSpec]:
    """The node's channels; the transaction channel is sized by the node's gossip configuration."""
    mib = 1024 * 1024
    specs = [
        ChannelSpec(CONSENSUS, "consensus", priority=0, max_message_bytes=MAX_BLOCK_MESSAGE_BYTES, queue_max=20_000,
                    queue_max_bytes=2 * MAX_BLOCK_MESSAGE_BYTES, recv_bytes_per_s=16 * mib,
                    batch=encode_consensus_batch, batch_items=10_000, batch_bytes=16 * mib),
        ChannelSpec(ROUND_STATE, "round-state", priority=1, max_message_bytes=mib, queue_max=2,
                    queue_max_bytes=2 * mib, recv_bytes_per_s=mib),
        ChannelSpec(BLOCKSYNC, "blocksync", priority=2, max_message_bytes=MAX_BLOCK_MESSAGE_BYTES, queue_max=64,
                    queue_max_bytes=2 * MAX_SYNC_ANSWER_BYTES, recv_bytes_per_s=32 * mib),
        ChannelSpec(TXS, "txs", priority=3, max_message_bytes=16 * mib, queue_max=max(1, tx_queue_max),
                    queue_max_bytes=64 * mib, recv_bytes_per_s=16 * mib, batch=encode_tx_batch,
                    batch_items=max(1, batch_txs), item_bytes=tx_batch_item_bytes,
                    linger_s=max(0, linger_ms) / 1000),
        ChannelSpec(SNAPSHOT, "snapshot", priority=4, max_message_bytes=MAX_SNAPSHOT_MESSAGE_BYTES, queue_max=64,
                    queue_max_bytes=2 * MAX_SNAPSHOT_MESSAGE_BYTES, recv_bytes_per_s=64 * mib),
        ChannelSpec(RECONFIG, "reconfig", priority=3, max_message_bytes=mib, queue_max=256,
                    queue_max_bytes=mib, recv_bytes_per_s=256 * 1024, batch=encode_tx_batch, batch_items=64,
                    item_bytes=tx_batch_item_bytes),
    ]
    return {spec.id: spec for spec in specs}
