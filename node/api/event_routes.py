"""``GET /v1/events``: committed blocks and transactions as Server-Sent Events, resumable and bounded per client.

The stream of one client: (after a ``Last-Event-ID`` header or ``?after=``) the committed events after that id,
read back from the store, at most ``REPLAY_HEIGHTS`` heights; then the live events of each commit, from the
client's bounded queue (``node.events``), without gap or duplicate: the client is subscribed before the store's
height is read, and live blocks at or below what was replayed are skipped.

Besides ``block`` and ``tx``, a stream may carry (without an ``id``):

* ``event: reset``, data ``{"from_height", "after", "reason"}``: the events after the id asked for are older
  than ``REPLAY_HEIGHTS`` heights or pruned here; the stream goes on from block ``from_height`` (the events in
  between are lost to this client: read them with ``GET /v1/blocks``);
* ``event: overflow``, data ``{"height", "queue_blocks"}``: the client fell ``event_queue_blocks`` blocks behind
  and is cut off (sent only when its connection still takes data; otherwise the connection is just closed);
  it may reconnect with the last id it saw;
* ``: ping`` comment lines every ``event_keepalive_ms``, so proxies keep an idle stream open.

A stream also ends after ``MAX_STREAM_S`` (a client reconnects with its last id) and when the node stops.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated, Literal

from fastapi import FastAPI, Header, Query
from pydantic import BaseModel, Field
from starlette.responses import Response

from node.api.models import error_responses
from node.events import (
    EVENT_KINDS,
    WHOLE_BLOCK_N,
    BlockEvents,
    EventClient,
    EventFilter,
    EventId,
    EventsError,
    format_comment,
    format_event,
    parse_event_id,
    parse_kinds,
)

log = logging.getLogger("ledger.api")

REPLAY_HEIGHTS = 1_000
"""A resumed stream replays at most this many heights back from the tip."""
REPLAY_SLOTS = asyncio.Semaphore(4)
"""Streams replaying committed blocks at one time (the rest wait their turn, live events queueing meanwhile)."""
MAX_STREAM_S = 6 * 3600.0
"""A stream ends after this long; the client reconnects with its last id (``EventSource`` does by itself)."""
CUT_GRACE_S = 1.0
"""A client cut off gets this long to take its final ``overflow`` event before its connection is closed."""
STOP_WRITE_S = 1.0
"""At the end of a stream, the last write may take this long."""


class ServerSentEvent(BaseModel):
    """One event of the `text/event-stream` answer: `event:`, `id:` and `data:` lines, then a blank line.
    `block` data: `{height, hash, time_ms, tx_count, proposer}`; `tx` data: `{txid, height, index}`;
    `reset` data: `{from_height, after, reason}`; `overflow` data: `{height, queue_blocks}`.  Comment lines
    `: ping` keep an idle stream open."""

    event: Literal["block", "tx", "reset", "overflow"] = Field(
        description="the kind: block (a committed block), tx (one of its transactions, in block order), reset "
                    "(the events after the id asked for are no longer replayable; the stream goes on from "
                    "from_height), overflow (the client fell too far behind and is cut off)")
    id: str | None = Field(default=None, description=(
        "'<height>.<n>': n is 0 for the block, index + 1 for its transaction at index; resume after it with "
        "the Last-Event-ID header or ?after= (reset and overflow carry none)"))
    data: str = Field(description="one line of JSON with the fields named above for the kind")


class EventStream(Response):
    """The ASGI answer of one subscriber: replay, then live events, until the client leaves, is cut off, the
    stream's time is up or the node stops."""

    media_type = "text/event-stream"

    def __init__(self, node, client: EventClient, after: EventId | None, tip: int):
        super().__init__(media_type=self.media_type)
        self.node = node
        self.client = client
        self.after = after
        self.tip = tip
        self.keepalive_s = max(0.05, node.config.event_keepalive_ms / 1000)

    async def __call__(self, scope, receive, send) -> None:
        hub = self.node.waiters.events
        tasks: set[asyncio.Task] = set()
        try:
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"text/event-stream; charset=utf-8"),
                                    (b"cache-control", b"no-cache"), (b"x-accel-buffering", b"no")]})
            writer = asyncio.create_task(self.pump(send))
            gone = asyncio.create_task(wait_disconnect(receive))
            cut = asyncio.create_task(self.client.cut.wait())
            stop = asyncio.create_task(self.node.wait_stopped())
            tasks = {writer, gone, cut, stop}
            done, _ = await asyncio.wait(tasks, timeout=MAX_STREAM_S, return_when=asyncio.FIRST_COMPLETED)
            if cut in done and writer not in done and gone not in done:  # let it take its overflow event
                await asyncio.wait({writer, gone}, timeout=CUT_GRACE_S, return_when=asyncio.FIRST_COMPLETED)
            finished = writer.done() and not writer.cancelled() and writer.exception() is None
            hung_up = gone.done()
            if writer.done() and not writer.cancelled() and writer.exception() is not None:
                log.warning("event stream failed: %r", writer.exception())
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if not finished and not hung_up:
                # a stuck client: the end cannot be written, uvicorn closes the connection
                await asyncio.wait_for(send({"type": "http.response.body", "body": b"", "more_body": False}),
                                       STOP_WRITE_S)
        except (TimeoutError, OSError):
            pass
        finally:
            for task in tasks:
                task.cancel()
            hub.unsubscribe(self.client)

    async def pump(self, send) -> None:
        """Write the replay, then the live events; ends (with an ``overflow`` event) once the client is cut off."""
        async def write(chunk: bytes) -> None:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})

        cursor = await self.replay(write)
        client = self.client
        while True:
            events = await client.next(self.keepalive_s)
            if client.overflowed:
                await write(format_event("overflow", None, {"height": self.node.store.height,
                                                            "queue_blocks": client.limit}))
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                return
            if events is None:
                await write(format_comment("ping"))
                continue
            chunk = events.render(client.wanted, cursor)
            if cursor is None or events.height >= cursor.height:
                cursor = EventId(events.height, WHOLE_BLOCK_N)
            if chunk:
                await write(chunk)

    async def replay(self, write) -> EventId | None:
        """The committed events after ``self.after`` up to the tip at subscription; the cursor live events
        continue from."""
        after, tip, store = self.after, self.tip, self.node.store
        if after is None:
            return EventId(tip, WHOLE_BLOCK_N)
        first = max(1, after.height if after.n < WHOLE_BLOCK_N else after.height + 1)
        floor = max(1, tip - REPLAY_HEIGHTS + 1, store.earliest_height)
        cursor: EventId | None = after
        if first < floor and first <= tip:
            await write(reset_event(floor, after, f"older than the {REPLAY_HEIGHTS} heights replayed, or pruned "
                                                  f"here (earliest height {store.earliest_height})"))
            first, cursor = floor, None
        async with REPLAY_SLOTS:  # decoding old blocks costs the node: a few streams replay at once, others wait
            for height in range(first, tip + 1):  # at most REPLAY_HEIGHTS + 1 heights
                block = store.get_block(height)
                if block is None:  # pruned meanwhile
                    await write(reset_event(height + 1, after, "pruned here while replaying"))
                    cursor = None
                    continue
                chunk = BlockEvents(block).render(self.client.wanted, cursor)
                cursor = EventId(height, WHOLE_BLOCK_N)
                if chunk:
                    await write(chunk)
                await asyncio.sleep(0)  # others' turn between replayed blocks
        return max(cursor, EventId(tip, WHOLE_BLOCK_N)) if cursor is not None else EventId(tip, WHOLE_BLOCK_N)


def reset_event(from_height: int, after: EventId, reason: str) -> bytes:
    return format_event("reset", None, {"from_height": from_height, "after": after.text(), "reason": reason})


async def wait_disconnect(receive) -> None:
    """Return once the client hung up (a GET has no body: its first message is the empty request)."""
    for _ in range(1_000):
        message = await receive()
        if message["type"] == "http.disconnect":
            return
    await asyncio.Event().wait()  # a client that keeps sending body parts: the stream's other ends still apply


def add_event_routes(app: FastAPI, node, api_error, parse_address) -> None:
    """Register ``GET /v1/events`` on ``app`` for ``node``; ``api_error`` is the REST error type (status, code,
    message), ``parse_address`` the REST layer's address parser (400 on a bad address)."""
    config = node.config

    @app.get("/v1/events", tags=["events"], summary="Live events: committed blocks and transactions",
             response_class=EventStream, status_code=200,
             responses={200: {"model": ServerSentEvent, "description": "a text/event-stream of events"},
                        **error_responses(400, 503, json_ref=True)})
    async def events(
        address: Annotated[str | None, Query(description=(
            "only tx events of transactions paying to or spending from this lg1 address (block events still "
            "flow unless kinds=tx)"))] = None,
        kinds: Annotated[str | None, Query(max_length=64, description=(
            "comma-separated event kinds to receive: " + ", ".join(EVENT_KINDS) + " (default all)"))] = None,
        after: Annotated[str | None, Query(max_length=40, description=(
            "resume after this event id ('<height>.<n>', or '<height>' for after that whole block), for clients "
            "that cannot set Last-Event-ID; the header wins when both are given"))] = None,
        last_event_id: Annotated[str | None, Header(max_length=40, description="resume after this event id")] = None,
    ):
        """Server-Sent Events, in commit order: `block` (`{height, hash, time_ms, tx_count, proposer}`) then one
        `tx` per transaction of it (`{txid, height, index}`).  Each event's id `<height>.<n>` (n = 0 for the
        block, index + 1 for a transaction) orders every event; reconnect with `Last-Event-ID` (or `?after=`) to
        get the committed events after it (at most 1000 heights back: older or pruned starts with a `reset`
        event naming the height the stream resumes from), then live events without gap or duplicate.  A client
        that falls `event_queue_blocks` blocks behind gets `overflow` and is cut off; `: ping` comments every
        `event_keepalive_ms`.  400 bad-event-id, bad-event-kind or a bad address; 503 too-many-event-clients
        beyond `max_event_clients`."""
        try:
            wanted = EventFilter(parse_kinds(kinds), parse_address(address) if address is not None else None)
            resume_text = last_event_id if last_event_id is not None else after
            resume = parse_event_id(resume_text) if resume_text is not None else None
        except EventsError as exc:
            raise api_error(400, exc.code, exc.message) from None
        try:
            client = node.waiters.events.subscribe(wanted, config.event_queue_blocks, config.max_event_clients)
        except EventsError as exc:
            raise api_error(503, exc.code, exc.message, clients=len(node.waiters.events.clients)) from None
        return EventStream(node, client, resume, node.store.height)
