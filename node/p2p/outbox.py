"""A peer's send queues (``Outbox``): one bounded queue per channel, kept across the peer's connections.

The switch keeps one ``Outbox`` per peer; the connection of the moment takes what is queued and sends it, so
what was queued for a peer that is reconnecting is sent on the next connection.
"""

from __future__ import annotations

import asyncio
import collections
import time

from node.p2p.channels import ChannelSpec
from node.p2p.wire import BATCH_HEADER_BYTES


class Outbox:
    """A peer's send queues, one per channel, kept across reconnections; each bounded in items and bytes
    (the oldest items are dropped first)."""

    def __init__(self, specs: dict[int, ChannelSpec]):
        self.specs = specs
        self.queues: dict[int, collections.deque[bytes]] = {cid: collections.deque() for cid in specs}
        self.bytes: dict[int, int] = dict.fromkeys(specs, 0)
        """Bytes queued per channel."""
        self.dropped: collections.Counter[str] = collections.Counter()
        """Items dropped from a full queue, by channel name."""
        self.wakeup = asyncio.Event()
        self.first_queued: dict[int, float] = {}
        """When each channel's queue last went from empty to not empty (for lingering batches)."""

    def put(self, channel: int, item: bytes) -> None:
        self.put_many(channel, [item])

    def put_many(self, channel: int, items: list[bytes]) -> None:
        if not items:
            return
        queue, spec = self.queues[channel], self.specs[channel]
        if not queue:
            self.first_queued[channel] = time.monotonic()
        queue.extend(items)
        self.bytes[channel] += sum(len(item) for item in items)
        dropped = 0
        while len(queue) > 1 and (len(queue) > spec.queue_max or self.bytes[channel] > spec.queue_max_bytes):
            self.bytes[channel] -= len(queue.popleft())
            dropped += 1
        if dropped:
            self.dropped[spec.name] += dropped
        self.wakeup.set()

    def pop(self, channel: int) -> bytes:
        item = self.queues[channel].popleft()
        self.bytes[channel] -= len(item)
        return item

    def take(self, spec: ChannelSpec) -> list[bytes]:
        """Pop the longest prefix of the channel's queue that fits one message of ``spec`` (at least one item)."""
        queue = self.queues[spec.id]
        batch: list[bytes] = []
        size = BATCH_HEADER_BYTES
        limit = spec.batch_bytes or spec.max_message_bytes
        while queue and len(batch) < spec.batch_items:
            n = spec.item_bytes(queue[0])
            if batch and size + n > limit:
                break
            batch.append(self.pop(spec.id))
            size += n
        return batch

    def clear(self, channel: int) -> None:
        self.queues[channel].clear()
        self.bytes[channel] = 0

    def pending(self, channel: int) -> int:
        return len(self.queues[channel])
