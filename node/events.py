"""Committed blocks as a stream of events (``GET /v1/events``): event ids, formatting, and the hub that fans
each commit out to the connected clients.

Events, in commit order: one ``block`` event per committed block, then one ``tx`` event per transaction of
that block.  Every event carries an id ``"<height>.<n>"``: ``n`` is 0 for the block event and ``i + 1`` for
the transaction at index ``i``, so ids order every event of the chain (compare them as pairs of integers, not
as text).  A client that lost its stream resumes after the last id it saw (``Last-Event-ID``); an id of the
form ``"<height>"`` means "after the whole block at that height".

The commit path calls ``EventHub.publish`` with each block: it hands one shared, lazily formatted
``BlockEvents`` to every client's bounded queue without awaiting (O(clients), independent of the block's size).
A client whose queue is full is cut off (``overflowed``) and counted; it never slows the commit.
"""

from __future__ import annotations

import asyncio
import collections
import json
from dataclasses import dataclass
from functools import cached_property

from node.crypto import address_hash, encode_address
from node.errors import CodedError
from node.types.block import Block

EVENT_KINDS = ("block", "tx")
BLOCK_EVENT_N = 0
"""``n`` of a block's own event; the transaction at index ``i`` is ``i + 1``."""
WHOLE_BLOCK_N = 2**32
"""``n`` standing for "every event of the block" (above any transaction index + 1)."""

BAD_EVENT_ID = "bad-event-id"
BAD_EVENT_KIND = "bad-event-kind"
TOO_MANY_EVENT_CLIENTS = "too-many-event-clients"


class EventsError(CodedError):
    """A subscription that cannot be served: a bad id or kind (400), too many clients (503)."""


@dataclass(frozen=True, order=True)
class EventId:
    """The position of one event in the chain's event order."""

    height: int
    """Height of the block the event belongs to."""
    n: int
    """0 for the block event, ``index + 1`` for a transaction; ``WHOLE_BLOCK_N`` after all of the block."""

    def text(self) -> str:
        return f"{self.height}" if self.n == WHOLE_BLOCK_N else f"{self.height}.{self.n}"


@dataclass(frozen=True)
class EventFilter:
    """What one client asked to see."""

    kinds: frozenset[str]
    """Subset of ``EVENT_KINDS``."""
    address: bytes | None
    """Only ``tx`` events of transactions paying to or spending from this account (None: every one)."""


def parse_event_id(text: str) -> EventId:
    """``"<height>.<n>"`` or ``"<height>"`` (all of that block); ``EventsError`` ``bad-event-id`` otherwise."""
    height, dot, n = text.strip().partition(".")
    if not (height.isascii() and height.isdigit()) or (dot and not (n.isascii() and n.isdigit())) \
            or len(height) > 19 or len(n) > 10:
        raise EventsError(BAD_EVENT_ID, f"event id {text[:40]!r} is not <height>.<n> or <height> (decimal)")
    return EventId(int(height), int(n) if dot else WHOLE_BLOCK_N)


def parse_kinds(text: str | None) -> frozenset[str]:
    """A comma-separated subset of ``EVENT_KINDS`` (None or empty: all); ``bad-event-kind`` otherwise."""
    if not text:
        return frozenset(EVENT_KINDS)
    kinds = frozenset(k.strip() for k in text.split(",") if k.strip())
    unknown = sorted(kinds - set(EVENT_KINDS))
    if unknown or not kinds:
        raise EventsError(BAD_EVENT_KIND, f"unknown event kind {', '.join(unknown)[:80]!r}; kinds are "
                                          f"{', '.join(EVENT_KINDS)}")
    return kinds


def format_event(kind: str, event_id: str | None, data: dict) -> bytes:
    """One Server-Sent Event: ``event:``, ``id:`` (when given) and one ``data:`` line of JSON."""
    head = f"event: {kind}\n" + (f"id: {event_id}\n" if event_id is not None else "")
    return (head + "data: " + json.dumps(data, separators=(",", ":")) + "\n\n").encode()


def format_comment(text: str) -> bytes:
    """An SSE comment line (clients ignore it; proxies see traffic)."""
    return f": {text}\n\n".encode()


def block_event_data(block: Block) -> dict:
    header = block.header
    return {"height": header.height, "hash": block.hash.hex(), "time_ms": header.time_ms,
            "tx_count": len(block.txs), "proposer": encode_address(header.proposer)}


def accounts_touched(block: Block) -> dict[bytes, list[int]]:
    """Each account a transaction of ``block`` pays to or spends from, with those transactions' indexes."""
    touched: dict[bytes, list[int]] = {}
    for index, tx in enumerate(block.txs):
        accounts = {o.address for o in tx.outputs} | {address_hash(i.public_key) for i in tx.inputs}
        for account in accounts:
            touched.setdefault(account, []).append(index)
    return touched


class BlockEvents:
    """The events of one committed block, formatted once when first asked and shared by every client."""

    def __init__(self, block: Block):
        self.block = block
        self.height = block.height

    @cached_property
    def block_event(self) -> bytes:
        return format_event("block", EventId(self.height, BLOCK_EVENT_N).text(), block_event_data(self.block))

    @cached_property
    def tx_events(self) -> list[bytes]:
        h = self.height
        return [format_event("tx", f"{h}.{i + 1}", {"txid": tx.txid.hex(), "height": h, "index": i})
                for i, tx in enumerate(self.block.txs)]

    @cached_property
    def everything(self) -> bytes:
        return self.block_event + b"".join(self.tx_events)

    @cached_property
    def touched(self) -> dict[bytes, list[int]]:
        return accounts_touched(self.block)

    def render(self, wanted: EventFilter, after: EventId | None = None) -> bytes:
        """The events ``wanted`` sees, those after ``after`` only (b"" when none)."""
        if after is not None and after.height > self.height:
            return b""
        skip = after.n if after is not None and after.height == self.height else -1
        if skip < 0 and wanted.address is None and len(wanted.kinds) == len(EVENT_KINDS):
            return self.everything
        parts = []
        if "block" in wanted.kinds and skip < BLOCK_EVENT_N:
            parts.append(self.block_event)
        if "tx" in wanted.kinds and self.block.txs:
            indexes = (range(len(self.block.txs)) if wanted.address is None
                       else self.touched.get(wanted.address, ()))
            events = self.tx_events
            parts.extend(events[i] for i in indexes if i + 1 > skip)
        return b"".join(parts)


class EventClient:
    """One subscriber: a bounded queue of blocks the commit path fills without awaiting."""

    def __init__(self, wanted: EventFilter, queue_blocks: int):
        self.wanted = wanted
        self.limit = max(1, queue_blocks)
        self.queue: collections.deque[BlockEvents] = collections.deque()
        self.ready = asyncio.Event()
        """Set when a block was queued or the client was cut off."""
        self.overflowed = False
        self.cut = asyncio.Event()
        """Set once the client is cut off: its stream must end (its writer may be stuck on a full socket)."""

    def offer(self, events: BlockEvents) -> bool:
        """Queue ``events``; False (and cut off) when the queue is full."""
        if self.overflowed:
            return False
        if len(self.queue) >= self.limit:
            self.overflowed = True
            self.queue.clear()
            self.cut.set()
            self.ready.set()
            return False
        self.queue.append(events)
        self.ready.set()
        return True

    async def next(self, timeout_s: float) -> BlockEvents | None:
        """The next queued block, or None after ``timeout_s`` without one or once cut off."""
        if not self.queue and not self.overflowed:
            self.ready.clear()
            try:
                await asyncio.wait_for(self.ready.wait(), timeout_s)
            except TimeoutError:
                return None
        if self.overflowed or not self.queue:
            return None
        return self.queue.popleft()


class EventHub:
    """The connected event clients; ``publish`` hands each commit to all of them."""

    def __init__(self) -> None:
        self.clients: set[EventClient] = set()
        self.overflows = 0
        """Clients cut off because their queue was full (since start)."""
        self.refused = 0
        """Subscriptions refused because ``max_clients`` were connected (since start)."""

    def subscribe(self, wanted: EventFilter, queue_blocks: int, max_clients: int) -> EventClient:
        if len(self.clients) >= max_clients:
            self.refused += 1
            raise EventsError(TOO_MANY_EVENT_CLIENTS, f"{len(self.clients)} event clients are connected, the "
                                                      f"most this node serves; retry later or ask another node")
        client = EventClient(wanted, queue_blocks)
        self.clients.add(client)
        return client

    def unsubscribe(self, client: EventClient) -> None:
        self.clients.discard(client)

    def publish(self, block: Block) -> None:
        """``block`` was committed: queue it for every client, cutting off those whose queue is full."""
        if not self.clients:
            return
        events = BlockEvents(block)
        for client in list(self.clients):
            if not client.offer(events):
                self.overflows += 1
                self.clients.discard(client)
