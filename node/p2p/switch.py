"""The switch: this node's peer connections, one per peer, on the p2p port.

It listens on ``host:p2p_port`` and dials each persistent peer
(``NODEID@host:port``), reconnecting with backoff.  Every connection starts
with the handshake (``node.p2p.secret``); a peer is refused before any of its
messages is parsed when it does not prove its key, is not the node the
address names, is not allowed here (neither a validator, nor a configured
peer, nor in ``allowed_peers``), is this node itself, or runs another chain or
protocol.  Each refusal and dropped connection is logged (once a minute per
peer and reason) and counted for ``/metrics``.

When two peers dial each other at once, both keep the connection dialed by
the lower node id; a connection from a peer that is already connected for
longer than ``DUPLICATE_WINDOW_S`` replaces the old one (the peer dialed again
because it lost it).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ipaddress
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from node.crypto import SigningKey
from node.gc_policy import SURVIVOR_FREEZER
from node.p2p.channels import MAX_SNAPSHOT_MESSAGE_BYTES, ChannelSpec
from node.p2p.connection import Connection, SharedBudget
from node.p2p.outbox import Outbox
from node.p2p.peer_link import PeerLink
from node.p2p.secret import HandshakeError, Hello, PeerIdentity, SealedStream, handshake, node_id_of

log = logging.getLogger("ledger.p2p")

BACKOFF_START_S = 0.1
BACKOFF_MAX_S = 3.0
STABLE_LINK_S = 10.0
"""A connection that lasted this long resets the dial backoff; one that ends sooner (a peer that accepts and
hangs up at once) leaves it growing, so such a peer is not dialed and authenticated many times a second."""
DUPLICATE_WINDOW_S = 2.0
KEY_CONFLICT_WINDOW_S = 10.0
KEY_CONFLICT_REPLACEMENTS = 3
"""More replacements than this within the window: two processes hold one node key; the current one stays."""
MAX_HANDSHAKING = 32
"""Inbound handshakes under way at once (strangers hold no slot of an authenticated peer); one more closes the
oldest."""
MAX_HANDSHAKING_PER_HOST = 8
"""... of which from one address; one more from it closes its oldest."""
INBOUND_HANDSHAKE_S = 3.0
"""An inbound connection that has not proven its key by then is closed."""
SHARED_UNFINISHED_BYTES = MAX_SNAPSHOT_MESSAGE_BYTES
"""Bytes of unfinished messages that the peers which are not reserved hold together (past it, the one holding
the most is dropped): the largest message fits, and a crowd of strangers cannot pin more."""
LOG_REPEAT_S = 60.0
MAX_LOG_KEYS = 1024
"""Peers and reasons whose last log time is remembered (bounded: a flood of strangers cannot grow it)."""
NODE_ID_HEX = 40


def address_group(host: str) -> str:
    """What the handshake bounds count as one address: an IPv6 address's /64 (one host or network hands out a
    whole /64), any other address or name as it is."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


class PeerAddressError(ValueError):
    code = "bad-peer"


@dataclass(frozen=True)
class PeerAddress:
    """A persistent peer as configured: ``NODEID@host:port``."""

    node_id: str
    """Hex of the peer's 20-byte key hash (``ledger-node id`` prints a node's)."""
    host: str
    """Host name or address of its p2p port."""
    port: int
    """Its p2p port."""

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.node_id}@{host}:{self.port}"


def parse_peer_address(text: str) -> PeerAddress:
    """``NODEID@host:port`` (IPv6 hosts in brackets); ``PeerAddressError`` says what is wrong."""
    node_id, at, hostport = text.strip().partition("@")
    if not at:
        raise PeerAddressError(f"peer {text!r} is not NODEID@host:port (run `ledger-node id --home HOME` "
                               f"on the peer for its NODEID)")
    node_id = node_id.lower()
    if len(node_id) != NODE_ID_HEX or any(c not in "0123456789abcdef" for c in node_id):
        raise PeerAddressError(f"peer {text!r}: the node id must be {NODE_ID_HEX} hex digits")
    host, colon, port = hostport.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise PeerAddressError(f"peer {text!r}: expected host:port after the @")
    return PeerAddress(node_id, host, int(port))


@dataclass(frozen=True)
class LinkSettings:
    """Timings of every connection."""

    ping_interval_s: float = 2.0
    """A ping goes out this often."""
    idle_timeout_s: float = 10.0
    """A peer that sent nothing this long is dropped."""
    send_timeout_s: float = 10.0
    """A peer that read nothing this long while this node had something to send is dropped."""
    dial_timeout_s: float = 3.0
    """Bound on one TCP connect."""
    delay_s: float = 0.0
    """Testing aid: each packet is held back this long before it is sent."""
    jitter_s: float = 0.0
    """Testing aid: up to this much more or less delay per packet."""


class Switch:
    """Listens, dials, authenticates, keeps one connection per peer, hands messages to ``deliver``."""

    def __init__(self, *, key: SigningKey, hello: Hello, host: str, port: int, peers: list[PeerAddress],
                 allowed: Callable[[str], bool], specs: dict[int, ChannelSpec], settings: LinkSettings,
                 max_inbound: int = 64, reserved: Callable[[str], bool] = lambda node_id: False):
        """Set ``deliver(link, channel, message)`` and ``on_up(link)`` before ``start_dialing``."""
        self.key = key
        self.hello = hello
        self.node_id = node_id_of(key.public_key)
        self.host = host
        self.port = port
        self.allowed = allowed
        self.specs = specs
        self.deliver: Callable[[PeerLink, int, bytes], None] = lambda link, channel, message: None
        self.on_up: Callable[[PeerLink], None] = lambda link: None
        self.on_down: Callable[[PeerLink], None] = lambda link: None
        """Called when the link's live connection ends (not for a duplicate that was never its connection)."""
        self.sent: Callable[[PeerLink, int, bytes], None] = lambda link, channel, message: None
        """Called once the last packet of a message to ``link`` is written."""
        self.settings = settings
        self.links: dict[str, PeerLink] = {}
        for address in peers:
            if address.node_id != self.node_id:
                self.links[address.node_id] = PeerLink(address.node_id, specs, address)
        self.events: collections.Counter[tuple[str, str]] = collections.Counter()
        """(kind, reason) -> count: kind is ``refused`` (at the handshake), ``dropped`` (a live connection
        ended on the peer's fault), ``closed`` (ended otherwise) or ``throttled`` (reason: the channel)."""
        self._logged: dict[tuple[str, str], float] = {}
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task] = set()
        self._dialing = False
        self.max_inbound = max_inbound
        """Authenticated inbound peers at once, besides ``reserved`` ones; more are closed unread."""
        self.reserved = reserved
        """Node ids always admitted (validators, configured peers) however many others are connected."""
        self._inbound = 0
        self.unfinished = SharedBudget(SHARED_UNFINISHED_BYTES)
        """Unfinished messages of the peers that are not reserved, together."""
        self._pending: dict[asyncio.Task, tuple[str, str]] = {}
        """Inbound handshakes under way, oldest first: their tasks and (host, address)."""
        self._handshaking_from: collections.Counter[str] = collections.Counter()
        self._stopping = False
        """``stop`` was called: a connection accepted before it whose task starts after it is closed at once."""

    # ------------------------------------------------------------------ lifecycle

    async def listen(self) -> None:
        """Bind the p2p port (raises ``OSError`` when it is taken)."""
        self._server = await asyncio.start_server(self._on_inbound, self.host, self.port, reuse_address=True,
                                                  limit=1 << 20)

    @property
    def bound_port(self) -> int:
        """The p2p port actually bound (``port`` 0 binds any free one)."""
        assert self._server is not None and self._server.sockets
        return self._server.sockets[0].getsockname()[1]

    def start_dialing(self) -> None:
        self._dialing = True
        for link in list(self.links.values()):
            if link.address is not None:
                self._spawn(self._dial_loop(link), f"p2p-dial:{link.node_id[:12]}")

    def add_peer(self, address: PeerAddress) -> PeerLink:
        """A persistent peer added while running (dialed at once when dialing has started)."""
        link = self.links.get(address.node_id)
        if link is None:
            link = self.links[address.node_id] = PeerLink(address.node_id, self.specs, address)
        elif link.address is None:
            link.address = address
        else:
            return link
        if self._dialing:
            self._spawn(self._dial_loop(link), f"p2p-dial:{link.node_id[:12]}")
        return link

    async def stop(self) -> None:
        self._stopping = True
        if self._server is not None:
            self._server.close()
        for link in self.links.values():
            if link.connection is not None:
                link.connection.close("shutting-down")
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)

    def _spawn(self, coro, name: str) -> asyncio.Task:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    @property
    def peers_up(self) -> int:
        return sum(1 for link in self.links.values() if link.up)

    # ------------------------------------------------------------------ accounting

    def note(self, kind: str, reason: str, peer: str, detail: str, level: int = logging.WARNING,
             log_key: str | None = None) -> None:
        """Count an event and log it, once a minute per ``log_key`` (default: the peer) and reason.

        At most ``MAX_LOG_KEYS`` keys are remembered; past that, events are logged once a minute per reason."""
        self.events[(kind, reason)] += 1
        if kind != "throttled":  # a refusal or a drop raised and caught errors: cycles to collect
            SURVIVOR_FREEZER.expect_garbage()
        now = time.monotonic()
        if len(self._logged) >= MAX_LOG_KEYS:
            self._logged = {k: t for k, t in self._logged.items() if now - t < LOG_REPEAT_S}
        key = (log_key if log_key is not None else peer, reason)
        if len(self._logged) >= MAX_LOG_KEYS:
            key = ("*", reason)
        if now - self._logged.get(key, -LOG_REPEAT_S) >= LOG_REPEAT_S:
            self._logged[key] = now
            log.log(level, "p2p %s %s: %s (%s)", kind, peer, reason, detail)

    # ------------------------------------------------------------------ connections

    def _check(self, identity: PeerIdentity, expected: str | None) -> tuple[str, str] | None:
        """Why this authenticated peer is refused (reason, detail), or None."""
        node_id = identity.node_id
        hello = identity.hello
        if node_id == self.node_id:
            return "self", "the peer is this node itself"
        if expected is not None and node_id != expected:
            return "wrong-key", f"expected node {expected}, the peer proved key {node_id}"
        if expected is None and not self.allowed(node_id):
            return "not-allowed", f"node {node_id} is neither a validator nor a configured or allowed peer"
        if hello.chain_id != self.hello.chain_id or hello.genesis_hash != self.hello.genesis_hash:
            return "wrong-chain", (f"the peer runs chain {hello.chain_id!r} genesis {hello.genesis_hash.hex()[:16]}, "
                                   f"this node {self.hello.chain_id!r} {self.hello.genesis_hash.hex()[:16]}")
        if hello.protocol != self.hello.protocol:
            return "bad-version", (f"the peer speaks relay protocol {hello.protocol}, this node {self.hello.protocol}: "
                                   f"run the same ledger-node release on every node")
        return None

    async def _on_inbound(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._stopping:  # accepted before stop closed the server; its task was not among those stop cancelled
            writer.close()
            return
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        peername = writer.get_extra_info("peername") or ("?", "?")
        where, host = f"{peername[0]}:{peername[1]}", address_group(str(peername[0]))
        if not self._make_room(host):
            self.note("refused", "too-many-handshakes", where, f"{self._handshaking} handshakes under way "
                      f"({self._handshaking_from[host]} from {host})", log_key=host)
            writer.close()
            return
        # The handshake runs as a task of its own, so that making room closes only one still under way (a task
        # whose handshake has ended but has not resumed yet is done, and is left alone).
        shaking = asyncio.ensure_future(handshake(reader, writer, self.key, self.hello, INBOUND_HANDSHAKE_S))
        self._pending[shaking] = (host, where)
        self._handshaking_from[host] += 1
        live = False
        try:
            try:
                stream, identity = await shaking
            except HandshakeError as exc:
                self.note("refused", exc.reason, where, str(exc), log_key=host)  # one line a minute per address
                writer.close()
                return
            finally:
                self._forget_handshake(shaking)
            if self._inbound >= self.max_inbound and not self.reserved(identity.node_id):
                self.note("refused", "too-many-connections", where, f"{self._inbound} inbound peers connected "
                          f"(p2p_max_inbound={self.max_inbound}; validators and configured peers always get in)",
                          log_key=host)
                writer.close()
                return
            self._inbound += 1
            live = True
            await self._serve(stream, identity, None, outbound=False, where=where)
        except asyncio.CancelledError:  # the switch is stopping; asyncio's server callback must not see it
            writer.close()
        finally:
            if live:
                self._inbound -= 1

    @property
    def _handshaking(self) -> int:
        """Inbound handshakes under way."""
        return len(self._pending)

    def _make_room(self, host: str) -> bool:
        """Room for one more inbound handshake from ``host`` (an address group): at a bound, the oldest handshake
        under way of ``host`` when it is at its own bound, else of the group with the most under way, is closed.
        An honest peer proves its key within a few round trips; a stranger that holds connections open without
        a handshake can delay others by no more than that, instead of shutting every peer out until its
        connections time out."""
        under_way = [(task, h) for task, (h, _) in self._pending.items() if not task.done()]
        if self._handshaking_from[host] >= MAX_HANDSHAKING_PER_HOST:
            victim = next((task for task, h in under_way if h == host), None)
        elif self._handshaking >= MAX_HANDSHAKING:
            counts = collections.Counter(h for _, h in under_way)
            busiest = max(counts, key=lambda h: counts[h], default=None)
            victim = next((task for task, h in under_way if h == busiest), None)
        else:
            return True
        if victim is None:
            return False
        victim_host, victim_where = self._pending[victim]
        self._forget_handshake(victim)
        victim.cancel()
        self.note("refused", "too-many-handshakes", victim_where, f"closed before its handshake ended to make room "
                  f"({MAX_HANDSHAKING} handshakes at once, {MAX_HANDSHAKING_PER_HOST} from one address)",
                  log_key=victim_host)
        return True

    def _forget_handshake(self, task: asyncio.Task) -> None:
        entry = self._pending.pop(task, None)
        if entry is not None:
            host = entry[0]
            self._handshaking_from[host] -= 1
            if not self._handshaking_from[host]:
                del self._handshaking_from[host]

    async def _serve(self, stream: SealedStream, identity: PeerIdentity, expected: str | None, *, outbound: bool,
                     where: str) -> str | None:
        """Check an authenticated peer, attach its connection and run it; why it ended (None: refused)."""
        refusal = self._check(identity, expected)
        if refusal is not None:
            reason, detail = refusal
            self.note("refused", reason, f"{identity.node_id[:12]}@{where}", detail, log_key=identity.node_id)
            conn = Connection(stream, where, Outbox(self.specs), lambda c, m: None, ping_interval_s=1,
                              idle_timeout_s=1, send_timeout_s=1)
            conn.close(f"{reason}: {detail}")
            with contextlib.suppress(OSError, RuntimeError, TimeoutError):
                async with asyncio.timeout(1.0):
                    await stream.drain()
            return None
        link = self.links.get(identity.node_id)
        if link is None:
            link = self.links[identity.node_id] = PeerLink(identity.node_id, self.specs)
        conn = Connection(stream, f"{identity.hello.name}({identity.node_id[:12]})", link.outbox,
                          lambda channel, message: self.deliver(link, channel, message),
                          on_sent=lambda channel, message: self.sent(link, channel, message),
                          ping_interval_s=self.settings.ping_interval_s, idle_timeout_s=self.settings.idle_timeout_s,
                          send_timeout_s=self.settings.send_timeout_s, delay_s=self.settings.delay_s,
                          jitter_s=self.settings.jitter_s,
                          on_throttle=lambda channel: self.note("throttled", channel, link.name,
                                                                "reading paused: over the channel's budget",
                                                                logging.INFO),
                          outbound=outbound,
                          shared=None if self.reserved(identity.node_id) else self.unfinished)
        if not self._attach(link, conn, outbound):
            self.note("closed", "duplicate", link.name, "both sides dialed at once; the connection dialed by the "
                      "lower node id stays", logging.INFO)
            conn.close("duplicate connection")
            return None
        link.identity = identity
        link.connects += 1
        link.last_error = ""
        log.info("peer up %s id=%s %s %s", identity.hello.name, identity.node_id[:12],
                 "dialed" if outbound else "from", where)
        link.changed.set()
        try:
            self.on_up(link)
        except Exception:  # a link nothing serves must not look up: end it (the dialer dials again)
            log.exception("peer %s: starting the link failed", link.name)
            conn.close("internal-error")
            reason = "internal-error"
        else:
            reason = await conn.run()
        if link.connection is conn:
            link.connection = None
            link.changed.set()
            self.on_down(link)
            if link.address is None and self.links.get(link.node_id) is link:
                del self.links[link.node_id]  # a peer that dialed in is forgotten once it leaves
        link.last_error = conn.close_detail or reason
        kind = "closed" if reason in ("closed", "shutting-down", "peer-closed", "duplicate connection",
                                      "connection-error", "replaced") else "dropped"
        self.note(kind, reason, link.name, conn.close_detail or reason,
                  logging.INFO if kind == "closed" else logging.WARNING)
        return reason

    def _attach(self, link: PeerLink, conn: Connection, outbound: bool) -> bool:
        """Make ``conn`` the link's connection unless the one it has should stay (duplicate resolution)."""
        existing = link.connection
        if existing is None or existing.close_reason:
            link.connection = conn
            return True
        if existing.outbound == outbound or time.monotonic() - existing.opened > DUPLICATE_WINDOW_S:
            # the same side dialed again (it lost the old one), or the old one is not from a simultaneous dial
            now = time.monotonic()
            link.replaced_at = [t for t in link.replaced_at if now - t < KEY_CONFLICT_WINDOW_S] + [now]
            if len(link.replaced_at) > KEY_CONFLICT_REPLACEMENTS:  # two live processes hold one key
                self.note("refused", "key-in-use", link.name, f"connections for node {link.node_id} keep replacing "
                          f"each other: two running nodes use this key (a copied home?); keeping the first")
                return False
            existing.close("replaced", tell_peer=False)
            link.connection = conn
            return True
        dialer_wins = min(self.node_id, link.node_id)
        new_dialer = self.node_id if outbound else link.node_id
        if new_dialer == dialer_wins:
            existing.close("duplicate connection")
            link.connection = conn
            return True
        return False

    async def _dial_loop(self, link: PeerLink) -> None:
        assert link.address is not None
        address = link.address
        backoff = BACKOFF_START_S
        while True:
            while link.up:
                link.changed.clear()
                await link.changed.wait()
            where = f"{address.host}:{address.port}"
            try:
                async with asyncio.timeout(self.settings.dial_timeout_s):  # (not wait_for: see Connection)
                    reader, writer = await asyncio.open_connection(address.host, address.port, limit=1 << 20)
            except (OSError, TimeoutError) as exc:
                link.last_error = f"connect: {type(exc).__name__}"
            else:
                try:
                    stream, identity = await handshake(reader, writer, self.key, self.hello)
                except HandshakeError as exc:
                    self.note("refused", exc.reason, str(address), str(exc))
                    link.last_error = f"{exc.reason}: {exc}"
                    writer.close()
                else:
                    since = time.monotonic()
                    reason = await self._serve(stream, identity, address.node_id, outbound=True, where=where)
                    if reason is not None and time.monotonic() - since >= STABLE_LINK_S:
                        backoff = BACKOFF_START_S
            await asyncio.sleep(backoff * random.uniform(0.5, 1.0))
            backoff = min(backoff * 2, BACKOFF_MAX_S)
