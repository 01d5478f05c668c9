"""One live connection to a peer: channels multiplexed over a sealed stream (CometBFT's MConnection).

Three tasks share a connection: the sender cuts queued messages into
packets, highest-priority channel first, and waits for the socket to drain
after each (a peer that stops reading stalls it; after ``send_timeout_s`` the
connection is dropped, so such a peer holds at most its bounded queues); the
receiver reassembles packets into messages, keeps each channel within its
receive budget and hands whole messages to ``deliver``; the watchdog sends a
ping every ``ping_interval_s`` and drops a peer that sent nothing for
``idle_timeout_s``.

The send queues live in the peer's ``Outbox`` (``node.p2p.outbox``), which outlives connections:
what was queued for a peer that is reconnecting is sent on the next one.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import random
import time
from collections.abc import Callable

from node.encoding import DecodeError, Reader, Writer
from node.p2p.channels import (
    CONTROL,
    CONTROL_GOODBYE,
    CONTROL_PING,
    CONTROL_PONG,
    FLAG_LAST,
    FRAME_LIMIT,
    MAX_CONTROL_PER_S,
    PACKET_DATA_BYTES,
    ChannelSpec,
    encode_goodbye,
)
from node.p2p.outbox import Outbox
from node.p2p.secret import FrameError, SealedStream
from node.stages import CLOCK

log = logging.getLogger("ledger.p2p")


DRAIN_ABOVE_BYTES = 64 * 1024
"""The socket's write buffer above which the sender waits for the peer to read (asyncio's default mark)."""
FINISH_TIMEOUT_S = 5.0
"""Bound on waiting for a closed connection's tasks to end."""
MAX_MALFORMED = 100
"""Messages that do not decode a connection may carry before it is dropped (a few are a bug, many an attack)."""
PACKET_OVERHEAD_BYTES = 64
"""What a packet costs the receive budget beyond its bytes (so floods of tiny packets are budgeted too)."""


class ConnectionClosed(Exception):
    """Why a connection ended; ``reason`` is a stable code (metrics and logs)."""

    def __init__(self, reason: str, message: str = ""):
        super().__init__(message or reason)
        self.reason = reason


class TokenBucket:
    """A receive budget: ``take`` says how long to wait before reading on."""

    def __init__(self, rate: float, burst: float):
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.at = time.monotonic()

    def take(self, amount: int) -> float:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        self.tokens -= amount
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate


class SharedBudget:
    """Bytes several connections draw on together: the unfinished messages of peers that are not reserved,
    whose number only ``p2p_max_inbound`` bounds."""

    def __init__(self, limit: int):
        self.limit = limit
        self.used = 0
        self.members: set[Connection] = set()
        """The running connections that draw on it."""

    def take(self, conn: Connection, amount: int) -> bool:
        """Draw ``amount`` bytes for ``conn``.  Past the limit, the connection holding the most unfinished bytes
        is dropped to make room: another one (which gives its bytes back at once), or ``conn`` itself (False,
        nothing drawn).  A peer that starts messages and never finishes them holds the most; honest ones
        finish theirs, and one that is dropped meanwhile dials again."""
        if self.used + amount > self.limit:
            larger = sorted((member for member in self.members if member.unfinished > conn.unfinished),
                            key=lambda member: member.unfinished, reverse=True)
            if self.used - sum(member.unfinished for member in larger) + amount > self.limit:
                return False  # dropping every peer that holds more would not make room: this one goes alone
            for victim in larger:
                if self.used + amount <= self.limit:
                    break
                victim.evict("unfinished-budget", self.exceeded())
        self.used += amount
        return True

    def give(self, amount: int) -> None:
        self.used -= amount

    def exceeded(self) -> str:
        """Why a peer was dropped for it (the one holding the most goes)."""
        return (f"the {self.limit} bytes of unfinished messages shared by peers that are not reserved were taken, "
                f"and this peer held the most")


class Connection:
    """The channels of one peer over one sealed stream."""

    def __init__(self, stream: SealedStream, peer: str, outbox: Outbox,
                 deliver: Callable[[int, bytes], None], *, ping_interval_s: float, idle_timeout_s: float,
                 send_timeout_s: float, delay_s: float = 0.0, jitter_s: float = 0.0,
                 on_throttle: Callable[[str], None] | None = None, outbound: bool = False,
                 on_sent: Callable[[int, bytes], None] | None = None, shared: SharedBudget | None = None):
        """``peer`` names the peer in logs; ``deliver(channel, message)`` takes each whole message (it may
        raise ``DecodeError`` for a malformed one: counted, the connection stays); ``delay_s``/``jitter_s``
        hold each packet back before sending (a testing aid for wide-area latency); the bytes of unfinished
        messages are drawn from ``shared`` too when given (a peer that is not reserved)."""
        self.stream = stream
        self.peer = peer
        self.outbound = outbound
        """This node dialed it."""
        self._on_sent = on_sent
        self._delayed_until = 0.0
        """When the last delayed frame goes out (frames leave in the order they were sealed)."""
        self.outbox = outbox
        self.specs = outbox.specs
        self._deliver = deliver
        self.ping_interval_s = ping_interval_s
        self.idle_timeout_s = idle_timeout_s
        self.send_timeout_s = send_timeout_s
        self.delay_s = delay_s
        self.jitter_s = jitter_s
        self._on_throttle = on_throttle
        self._order = sorted(self.specs.values(), key=lambda s: s.priority)
        self._control: collections.deque[bytes] = collections.deque(maxlen=16)
        self._sending: dict[int, tuple[bytes, int]] = {}
        """Per channel, the message being sent and how much of it has gone."""
        self._partial: dict[int, bytearray] = {}
        self._unfinished = 0
        """Bytes in ``_partial``, all channels together (each channel's are bounded by its largest message; an
        honest sender interleaves channels by priority, so it may have a message under way on each)."""
        self._shared = shared
        self._buckets = {cid: TokenBucket(spec.recv_bytes_per_s, spec.recv_burst_bytes)
                         for cid, spec in self.specs.items()}
        self._control_bucket = TokenBucket(MAX_CONTROL_PER_S, MAX_CONTROL_PER_S)
        self.opened = time.monotonic()
        self.last_received = self.opened
        self.rtt_ms: float | None = None
        self.malformed = 0
        """Messages that did not decode (dropped; the connection stays)."""
        self.closed = asyncio.Event()
        self.close_reason = ""
        """Why it ended: a stable code."""
        self.close_detail = ""
        """Why it ended, in words (what the peer said when it said goodbye)."""
        self._ping_sent_at: float | None = None
        self._tasks: list[asyncio.Task] = []

    # ------------------------------------------------------------------ lifecycle

    async def run(self) -> str:
        """Serve the connection until it ends; the reason it ended."""
        if self._shared is not None:
            self._shared.members.add(self)
        self._tasks = [asyncio.create_task(self._send_loop(), name=f"p2p-send:{self.peer}"),
                       asyncio.create_task(self._receive_loop(), name=f"p2p-recv:{self.peer}"),
                       asyncio.create_task(self._watchdog(), name=f"p2p-watch:{self.peer}")]
        reason = "closed"
        try:
            done, _ = await asyncio.wait(self._tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task.cancelled():  # ``close`` was called: its reason stands
                    break
                exc = task.exception()
                if isinstance(exc, (ConnectionClosed, FrameError)):
                    reason = exc.reason
                    self.close_detail = str(exc)
                elif isinstance(exc, (ConnectionError, OSError)):
                    reason = "connection-error"
                elif exc is not None:
                    log.error("peer %s: connection task failed", self.peer, exc_info=exc)
                    reason = "internal-error"
                break
        finally:
            await self._finish(reason)
        return self.close_reason

    async def _finish(self, reason: str) -> None:
        if not self.close_reason:
            self.close_reason = reason
        self.stream.close()  # first: whatever a task still does, nothing more reaches the peer
        self._release_unfinished()
        if self._shared is not None:
            self._shared.members.discard(self)
        for task in self._tasks:
            task.cancel()
        try:
            if self._tasks:  # ``wait`` never raises what the tasks ended with, only this task's own cancellation
                await asyncio.wait(self._tasks, timeout=FINISH_TIMEOUT_S)
                for task in self._tasks:  # their ends are accounted for (``close_reason``): mark them retrieved
                    if task.done() and not task.cancelled():
                        task.exception()
        finally:
            # A finished task keeps what it ended with, whose traceback holds its frames, which hold this
            # connection: forgetting the tasks lets reference counting free an ended connection at once
            # (a collector that froze it would otherwise keep it for good).
            self._tasks = [task for task in self._tasks if not task.done()]
            self.closed.set()

    def close(self, reason: str, tell_peer: bool = True) -> None:
        """End the connection (the running ``run`` returns ``reason``); the peer is told why when possible."""
        if self.close_reason:
            return
        self.close_reason = reason
        if tell_peer:
            try:
                self.stream.write(bytes([CONTROL, FLAG_LAST]) + encode_goodbye(reason))
            except (OSError, RuntimeError):
                pass
        for task in self._tasks:
            task.cancel()
        if not self._tasks:  # never ran
            self.stream.close()
            self.closed.set()

    # ------------------------------------------------------------------ sending

    def _next_channel(self) -> ChannelSpec | None:
        for spec in self._order:
            if spec.id in self._sending or self.outbox.queues[spec.id]:
                return spec
        return None

    def _lingering(self, spec: ChannelSpec) -> float:
        """Seconds a small batch on ``spec`` should still wait for company (0: send now)."""
        if spec.linger_s <= 0 or spec.id in self._sending or len(self.outbox.queues[spec.id]) >= spec.batch_items:
            return 0.0
        return max(0.0, self.outbox.first_queued.get(spec.id, 0.0) + spec.linger_s - time.monotonic())

    def _next_message(self, spec: ChannelSpec) -> tuple[bytes, int]:
        current = self._sending.pop(spec.id, None)
        if current is not None:
            return current
        message = spec.batch(self.outbox.take(spec)) if spec.batch is not None else self.outbox.pop(spec.id)
        if self.outbox.queues[spec.id]:
            self.outbox.first_queued[spec.id] = time.monotonic()
        return message, 0

    async def _send_loop(self) -> None:
        wakeup = self.outbox.wakeup
        while True:
            while self._control:
                self._write(bytes([CONTROL, FLAG_LAST]) + self._control.popleft())
            spec = self._next_channel()
            if spec is None:
                wakeup.clear()
                await self._drain()
                if self._next_channel() is None and not self._control:
                    await wakeup.wait()
                if self.close_reason:
                    return
                continue
            wait = self._lingering(spec)
            if wait > 0:
                wakeup.clear()
                await self._drain()
                try:
                    async with asyncio.timeout(wait):  # (not wait_for: on 3.11 it can swallow a cancellation)
                        await wakeup.wait()
                except TimeoutError:
                    pass
                if self.close_reason:
                    return
                if len(self.outbox.queues[spec.id]) < spec.batch_items and self._next_channel() is spec \
                        and self._lingering(spec) > 0:
                    continue
            message, offset = self._next_message(spec)
            end = min(len(message), offset + PACKET_DATA_BYTES)
            last = end == len(message)
            if not last:
                self._sending[spec.id] = (message, end)
            self._write(bytes([spec.id, FLAG_LAST if last else 0]) + message[offset:end])
            if last and self._on_sent is not None:
                self._on_sent(spec.id, message)
            await self._drain()
            if self.close_reason:
                return

    def _write(self, packet: bytes) -> None:
        """Seal and send one packet; with the testing aid ``delay_s`` it reaches the socket that much later,
        in order (a pipeline: the sender goes on meanwhile, as over a long link)."""
        if not (self.delay_s or self.jitter_s):
            self.stream.write(packet)
            return
        CLOCK.enter("p2p")
        try:
            frame = self.stream.seal(packet)
        finally:
            CLOCK.leave()
        loop = asyncio.get_running_loop()
        at = max(self._delayed_until + 1e-6,
                 loop.time() + max(0.0, self.delay_s + random.uniform(-self.jitter_s, self.jitter_s)))
        self._delayed_until = at
        loop.call_at(at, self._write_frame, frame)

    def _write_frame(self, frame: bytes) -> None:
        if not self.close_reason and not self.stream.writer.is_closing():
            self.stream.bytes_sent += len(frame)
            self.stream.writer.write(frame)

    async def _drain(self) -> None:
        """Wait while the socket's buffer is over its high-water mark (the peer reads slowly), at most
        ``send_timeout_s``; a buffer under it costs nothing."""
        transport = self.stream.writer.transport
        if transport.get_write_buffer_size() < DRAIN_ABOVE_BYTES and not transport.is_closing():
            return
        try:
            async with asyncio.timeout(self.send_timeout_s):  # (not wait_for: see the linger wait)
                await self.stream.drain()
        except TimeoutError:
            raise ConnectionClosed("peer-not-reading",
                                   f"the peer read nothing for {self.send_timeout_s:g} s") from None

    def partly_sent(self, channel: int) -> bytes | None:
        """The message on ``channel`` that is partly sent, if any."""
        current = self._sending.get(channel)
        return None if current is None else current[0]

    def send_control(self, message: bytes) -> None:
        self._control.append(message)
        self.outbox.wakeup.set()

    # ------------------------------------------------------------------ receiving

    async def _receive_loop(self) -> None:
        while True:
            frame = await self.stream.read(FRAME_LIMIT)
            self.last_received = time.monotonic()
            if len(frame) < 2:
                raise ConnectionClosed("bad-packet", "a packet without its header")
            channel, flags, data = frame[0], frame[1], frame[2:]
            if channel == CONTROL:
                if self._control_bucket.take(1) > 0:
                    raise ConnectionClosed("control-flood", f"over {MAX_CONTROL_PER_S} control messages a second")
                self._on_control(data)
                continue
            spec = self.specs.get(channel)
            if spec is None:
                raise ConnectionClosed("unknown-channel", f"a message on unknown channel 0x{channel:02x}")
            wait = self._buckets[channel].take(len(frame) + PACKET_OVERHEAD_BYTES)  # charged per packet as read
            if wait > 0:
                if self._on_throttle is not None:
                    self._on_throttle(spec.name)
                await asyncio.sleep(wait)
            partial = self._partial.get(channel)
            if flags & FLAG_LAST and partial is None:
                message = data
            else:
                if partial is None:
                    partial = self._partial[channel] = bytearray()
                if len(partial) + len(data) > spec.max_message_bytes:
                    raise ConnectionClosed("message-too-large", f"a message over {spec.max_message_bytes} bytes "
                                                                f"on channel {spec.name}")
                self._hold_unfinished(len(data))
                partial += data
                if not flags & FLAG_LAST:
                    continue
                message = bytes(self._partial.pop(channel))
                self._release_unfinished(len(message))
            if len(message) > spec.max_message_bytes:
                raise ConnectionClosed("message-too-large", f"a message over {spec.max_message_bytes} bytes "
                                                            f"on channel {spec.name}")
            try:
                self._deliver(channel, message)
            except DecodeError as exc:
                self.malformed += 1
                log.debug("peer %s: malformed %s message dropped: %s", self.peer, spec.name, exc)
                if self.malformed > MAX_MALFORMED:
                    raise ConnectionClosed("malformed-flood", f"over {MAX_MALFORMED} malformed messages") from None
            await asyncio.sleep(0)  # one busy peer never holds the loop

    def _hold_unfinished(self, amount: int) -> None:
        """Account ``amount`` more bytes of unfinished messages, or end the connection if that is too much."""
        if self._shared is not None and not self._shared.take(self, amount):
            raise ConnectionClosed("unfinished-budget", self._shared.exceeded())
        self._unfinished += amount

    @property
    def unfinished(self) -> int:
        """Bytes of unfinished messages this connection holds."""
        return self._unfinished

    def evict(self, reason: str, detail: str) -> None:
        """End the connection for ``reason`` and give back its unfinished bytes now (another connection waits
        for them)."""
        self._release_unfinished()
        if self._shared is not None:
            self._shared.members.discard(self)
        if not self.close_reason:  # (one already closing keeps its own reason)
            self.close_detail = detail
            self.close(reason)

    def _release_unfinished(self, amount: int | None = None) -> None:
        """Give back ``amount`` bytes of a finished message (None: every unfinished byte, the connection ended)."""
        if amount is None:
            amount = self._unfinished
            self._partial.clear()
        self._unfinished -= amount
        if self._shared is not None:
            self._shared.give(amount)

    def _on_control(self, data: bytes) -> None:
        try:
            r = Reader(data)
            kind = r.u8()
            if kind == CONTROL_PING:
                r.finish()
                self.send_control(Writer().u8(CONTROL_PONG).getvalue())
            elif kind == CONTROL_PONG:
                r.finish()
                if self._ping_sent_at is not None:
                    self.rtt_ms = (time.monotonic() - self._ping_sent_at) * 1000
                    self._ping_sent_at = None
            elif kind == CONTROL_GOODBYE:
                reason = r.text(200)
                raise ConnectionClosed("peer-closed", f"the peer closed the connection: {reason}")
            else:
                raise ConnectionClosed("bad-packet", f"unknown control message {kind}")
        except DecodeError as exc:
            raise ConnectionClosed("bad-packet", f"malformed control message: {exc}") from None

    async def _watchdog(self) -> None:
        while True:
            await asyncio.sleep(self.ping_interval_s)
            if time.monotonic() - self.last_received > self.idle_timeout_s:
                raise ConnectionClosed("idle", f"nothing from the peer for {self.idle_timeout_s:g} s")
            self._ping_sent_at = time.monotonic()
            self.send_control(Writer().u8(CONTROL_PING).getvalue())
