"""A per-link loopback TCP proxy for fault drills: cut, heal, slow down.

Every node's peer addresses point at a proxy port, one port per ordered pair
(source node, destination node).  The proxy forwards bytes to the
destination's real port, so the drill can perturb each link on its own:

- ``cut(a, b)`` drops traffic between ``a`` and ``b`` in both directions:
  open connections on the links a->b and b->a are aborted (RST) and new ones
  are accepted and black-holed (nothing forwarded, nothing answered) until
  ``heal``, the way a firewall DROP rule looks to the sender: the request
  hangs until the sender's own timeout.
- ``partition(groups)`` cuts every pair of nodes in different groups;
  ``cut_one_way(a, b)`` only the connections ``a`` opens to ``b``.
- ``set_slow(...)`` adds delay and jitter to every chunk, "loss" as a
  retransmission stall (a lost TCP segment costs the sender a retransmit
  timeout, it is not a hole in the byte stream), and an occasional reset.

Client traffic does not pass through the proxy: clients talk to each node's
real port, like clients of a real network that can reach any node.

The proxy runs on an asyncio loop (the drill's own).  All state changes are
plain method calls made from that loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
import time
from dataclasses import dataclass

log = logging.getLogger("ledger.proxy")

CHUNK = 64 * 1024
CONNECT_TIMEOUT_S = 2.0
MAX_CONNECTIONS_PER_LINK = 64
"""Bound on open (forwarded or black-holed) connections per link; older ones are aborted first."""
CLOSE_ERRORS = (OSError, RuntimeError)
"""What closing a transport can raise: a socket error, or RuntimeError once the event loop is closed."""


def _this_task() -> asyncio.Task:
    task = asyncio.current_task()
    if task is None:
        raise RuntimeError("the proxy's handlers run inside asyncio tasks")
    return task


@dataclass
class LinkFaults:
    """How one link misbehaves right now."""

    cut: bool = False
    """Drop everything (both directions of every connection on the link)."""
    delay_s: float = 0.0
    """Added one-way delay per chunk."""
    jitter_s: float = 0.0
    """Uniform random extra delay per chunk, in [0, jitter_s]."""
    loss: float = 0.0
    """Probability that a chunk is 'lost' and costs a retransmission stall (200 ms, 400 ms or 800 ms)."""
    reset: float = 0.0
    """Probability per chunk that the connection is reset."""

    @property
    def slow(self) -> bool:
        return self.delay_s > 0 or self.jitter_s > 0 or self.loss > 0 or self.reset > 0


@dataclass
class LinkStats:
    connections: int = 0
    blackholed: int = 0
    refused_upstream: int = 0
    resets: int = 0
    stalls: int = 0
    bytes_forwarded: int = 0


class _Conn:
    """One accepted connection and (unless black-holed) its upstream connection."""

    def __init__(self, link: Link, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.link = link
        self.reader = reader
        self.writer = writer
        self.up_writer: asyncio.StreamWriter | None = None
        self.tasks: list[asyncio.Task] = []
        self.closed = False

    def abort(self) -> None:
        """Reset both sides now."""
        if self.closed:
            return
        self.closed = True
        for w in (self.writer, self.up_writer):
            if w is not None:
                with contextlib.suppress(*CLOSE_ERRORS):
                    w.transport.abort()
        for task in self.tasks:
            if task is not asyncio.current_task():
                task.cancel()


class Link:
    """Traffic from node ``src`` to node ``dst``: a listening port forwarding to ``dst``'s real port."""

    def __init__(self, proxy: LinkProxy, src: str, dst: str, target_host: str, target_port: int):
        self.proxy = proxy
        self.src = src
        self.dst = dst
        self.target_host = target_host
        self.target_port = target_port
        self.faults = LinkFaults()
        self.stats = LinkStats()
        self.conns: dict[int, _Conn] = {}
        self.server: asyncio.base_events.Server | None = None
        self.port = 0
        self._ids = itertools.count()

    @property
    def name(self) -> str:
        return f"{self.src}->{self.dst}"

    def abort_all(self) -> None:
        for conn in list(self.conns.values()):
            conn.abort()
        self.conns.clear()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = _Conn(self, reader, writer)
        key = next(self._ids)
        self.conns[key] = conn
        while len(self.conns) > MAX_CONNECTIONS_PER_LINK:
            oldest = next(iter(self.conns))
            self.conns.pop(oldest).abort()
        self.stats.connections += 1
        try:
            if self.faults.cut:
                self.stats.blackholed += 1
                await self._blackhole(conn)
                return
            try:
                up_reader, up_writer = await asyncio.wait_for(
                    asyncio.open_connection(self.target_host, self.target_port), CONNECT_TIMEOUT_S)
            except (TimeoutError, OSError):
                self.stats.refused_upstream += 1
                conn.abort()  # the destination is down: the sender sees a reset, as from a closed port
                return
            if conn.closed:  # cut while connecting
                up_writer.transport.abort()
                return
            conn.up_writer = up_writer
            conn.tasks = [_this_task()]
            forward = asyncio.ensure_future(self._pump(conn, reader, up_writer))
            backward = asyncio.ensure_future(self._pump(conn, up_reader, writer))
            conn.tasks += [forward, backward]
            for ended in await asyncio.gather(forward, backward, return_exceptions=True):
                if isinstance(ended, Exception):  # _pump handles connection errors: anything else is a bug
                    log.error("link %s: forwarding failed: %s: %s", self.name, type(ended).__name__, ended)
        except asyncio.CancelledError:
            pass
        finally:
            self.conns.pop(key, None)
            if not conn.closed:
                conn.closed = True
                for w in (writer, conn.up_writer):
                    if w is not None:
                        with contextlib.suppress(*CLOSE_ERRORS):
                            w.close()

    async def _blackhole(self, conn: _Conn) -> None:
        """Swallow what the sender writes; answer nothing; end when healed (reset) or the sender gives up."""
        conn.tasks = [_this_task()]
        while not conn.closed:
            try:
                data = await conn.reader.read(CHUNK)
            except (OSError, asyncio.IncompleteReadError):
                break
            if not data:
                break
        conn.abort()

    async def _pump(self, conn: _Conn, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        rng = self.proxy.rng
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()
        last_due = 0.0

        async def deliver() -> None:
            while True:
                due, data = await queue.get()
                wait = due - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                if not data:
                    with contextlib.suppress(*CLOSE_ERRORS):
                        if writer.can_write_eof():
                            writer.write_eof()
                    return
                writer.write(data)
                await writer.drain()
                self.stats.bytes_forwarded += len(data)

        sender = asyncio.ensure_future(deliver())
        conn.tasks.append(sender)
        try:
            while True:
                data = await reader.read(CHUNK)
                faults = self.faults
                if faults.cut:
                    conn.abort()
                    return
                if data and faults.reset > 0 and rng.random() < faults.reset:
                    self.stats.resets += 1
                    conn.abort()
                    return
                due = time.monotonic()
                if faults.slow:
                    due += faults.delay_s + rng.uniform(0, faults.jitter_s)
                    if faults.loss > 0 and rng.random() < faults.loss:
                        self.stats.stalls += 1
                        due += 0.2 * (2 ** rng.randrange(3))
                due = max(due, last_due)  # TCP delivers in order
                last_due = due
                queue.put_nowait((due, data))
                if not data:
                    break
            await sender
        except (OSError, ConnectionError, asyncio.IncompleteReadError):
            conn.abort()
        finally:
            if not sender.done():
                sender.cancel()


class LinkProxy:
    """All links of a drill network.  ``add_link`` before ``start``; perturb with cut/heal/set_slow."""

    def __init__(self, host: str = "127.0.0.1", seed: int = 0):
        if not host.startswith("127."):
            raise ValueError("the drill proxy only listens on loopback")
        self.host = host
        self.rng = random.Random(seed)
        self.links: dict[tuple[str, str], Link] = {}

    def add_link(self, src: str, dst: str, target_port: int, listen_port: int = 0,
                 target_host: str = "127.0.0.1") -> Link:
        if not target_host.startswith("127."):
            raise ValueError("the drill proxy only forwards to loopback")
        link = Link(self, src, dst, target_host, target_port)
        link.port = listen_port
        self.links[(src, dst)] = link
        return link

    async def start(self, avoid: set[int] | frozenset[int] = frozenset()) -> None:
        """Listen on every link's port; a link without a fixed port takes a free one that is not in ``avoid``
        (the nodes' own ports, chosen earlier but not bound until the nodes start)."""
        rejected = []
        try:
            for link in self.links.values():
                if link.server is not None:
                    continue
                for _ in range(20):
                    server = await asyncio.start_server(link.handle, self.host, link.port, reuse_address=True)
                    port = server.sockets[0].getsockname()[1]
                    if link.port or port not in avoid:
                        link.server, link.port = server, port
                        break
                    rejected.append(server)  # held open until the end, so the kernel offers another port
                else:
                    raise OSError(f"no free port outside {sorted(avoid)} for {link.name}")
        finally:
            for server in rejected:
                server.close()

    async def close(self) -> None:
        for link in self.links.values():
            if link.server is not None:
                link.server.close()
            link.abort_all()
        for link in self.links.values():
            if link.server is not None:
                with contextlib.suppress(TimeoutError):  # a connection still draining: close anyway
                    await asyncio.wait_for(link.server.wait_closed(), 2)
                link.server = None

    def address(self, src: str, dst: str) -> str:
        """The ``host:port`` ``src`` dials to reach ``dst``'s p2p port."""
        return f"{self.host}:{self.links[(src, dst)].port}"

    def nodes(self) -> list[str]:
        return sorted({n for pair in self.links for n in pair})

    # ------------------------------------------------------------------ perturbations

    def _set_cut(self, a: str, b: str, cut: bool) -> None:
        for pair in ((a, b), (b, a)):
            link = self.links.get(pair)
            if link is None:
                continue
            link.faults.cut = cut
            link.abort_all()  # cut: drop what is open; heal: release the black-holed ones

    def cut(self, a: str, b: str) -> None:
        """Drop all traffic between ``a`` and ``b``, both directions."""
        self._set_cut(a, b, True)

    def cut_one_way(self, src: str, dst: str) -> None:
        """Drop the connections ``src`` opens to ``dst`` (its pushes to ``dst``); ``dst``'s own requests to
        ``src``, and their answers, still pass."""
        link = self.links[(src, dst)]
        link.faults.cut = True
        link.abort_all()

    def partition(self, groups: list[list[str]]) -> list[tuple[str, str]]:
        """Cut every pair in different groups; nodes in no group keep their links.  Returns the cut pairs."""
        where = {n: i for i, group in enumerate(groups) for n in group}
        pairs = []
        for a, b in itertools.combinations(sorted(where), 2):
            if where[a] != where[b]:
                self.cut(a, b)
                pairs.append((a, b))
        return pairs

    def isolate(self, node: str) -> None:
        for other in self.nodes():
            if other != node:
                self.cut(node, other)

    def set_slow(self, delay_s: float = 0.0, jitter_s: float = 0.0, loss: float = 0.0, reset: float = 0.0,
                 links: list[tuple[str, str]] | None = None) -> None:
        """Slow down ``links`` (all links by default)."""
        for pair in links if links is not None else list(self.links):
            faults = self.links[pair].faults
            faults.delay_s, faults.jitter_s, faults.loss, faults.reset = delay_s, jitter_s, loss, reset

    def heal(self) -> None:
        """Every link back to normal: no cut, no delay, no loss."""
        for link in self.links.values():
            was_cut = link.faults.cut
            link.faults = LinkFaults()
            if was_cut:
                link.abort_all()

    def cut_pairs(self) -> list[tuple[str, str]]:
        return sorted({(min(p), max(p)) for p, link in self.links.items() if link.faults.cut})

    def stats(self) -> dict[str, dict]:
        return {link.name: vars(link.stats).copy() for link in self.links.values()}
