"""The peer transport on real loopback sockets: switches with real keys and real handshakes, in one event loop.

Who may connect (wrong key, not allowed, wrong chain, garbage handshakes),
what a sealed frame tolerates (nothing: an altered, replayed or oversize frame
drops the connection), the channels (priority, packets, unknown channel,
flooding), backpressure from a peer that stops reading, keepalive, duplicate
connections and reconnection.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest

from genesis.records import MAX_BLOCK_BYTES
from node.crypto import SigningKey, sha256
from node.p2p.channels import BLOCKSYNC, CONSENSUS, FLAG_LAST, TXS, ChannelSpec, channel_table
from node.p2p.secret import LENGTH_BYTES, HandshakeError, Hello, handshake, node_id_of
from node.p2p.switch import (
    MAX_HANDSHAKING,
    MAX_HANDSHAKING_PER_HOST,
    LinkSettings,
    PeerAddress,
    Switch,
    parse_peer_address,
)
from tests.p2p_client import RawPeer

CHAIN = "transport-test"
GENESIS = sha256(b"transport genesis")
FAST = LinkSettings(ping_interval_s=0.1, idle_timeout_s=1.0, send_timeout_s=1.0, dial_timeout_s=1.0)


def key(name: str) -> bytes:
    return sha256(name.encode())


def node_id(name: str) -> str:
    return node_id_of(SigningKey(key(name)).public_key)


class Node:
    """A switch and what it received."""

    def __init__(self, name: str, *, allowed=lambda node_id: True, chain: str = CHAIN, settings: LinkSettings = FAST,
                 specs: dict[int, ChannelSpec] | None = None, port: int = 0):
        self.name = name
        self.received: list[tuple[str, int, bytes]] = []
        self.switch = Switch(key=SigningKey(key(name)), hello=Hello(chain, GENESIS, 1, name), host="127.0.0.1",
                             port=port, peers=[], allowed=allowed, specs=specs or channel_table(50, 0, 1000),
                             settings=settings)
        self.switch.deliver = lambda link, channel, message: self.received.append((link.name, channel, message))

    async def start(self) -> Node:
        await self.switch.listen()
        self.switch.start_dialing()
        return self

    @property
    def address(self) -> PeerAddress:
        return PeerAddress(self.switch.node_id, "127.0.0.1", self.switch.bound_port)

    def link(self, other: Node):
        return self.switch.links.get(other.switch.node_id)

    def link_count(self) -> int:
        return sum(1 for link in self.switch.links.values() if link.up)

    def events(self, kind: str) -> dict[str, int]:
        return {reason: n for (k, reason), n in self.switch.events.items() if k == kind}

    async def stop(self) -> None:
        await self.switch.stop()


async def until(predicate, timeout: float = 5.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout} s")
        await asyncio.sleep(0.01)


def run(scenario):
    async def bounded():
        await asyncio.wait_for(scenario(), 30)
    asyncio.run(bounded())


@contextlib.asynccontextmanager
async def nodes(*made: Node):
    try:
        for n in made:
            await n.start()
        yield made
    finally:
        for n in made:
            await n.stop()


def batch(item: bytes) -> bytes:
    """A consensus-channel message of one item."""
    return (1).to_bytes(4, "big") + item


async def only_link(node: Node):
    """The node's one link, once it is up."""
    await until(lambda: node.link_count() == 1, what="peer up")
    return next(link for link in node.switch.links.values() if link.up)


def raw_peer(target: Node, name: str = "raw", chain: str = CHAIN) -> RawPeer:
    return RawPeer("127.0.0.1", target.switch.bound_port, key(name), chain, GENESIS, name=name, protocol=1)


# --------------------------------------------------------------------------- addresses


def test_peer_addresses_parse_and_say_what_is_wrong():
    nid = "ab" * 20
    assert parse_peer_address(f"{nid}@10.0.0.1:26656") == PeerAddress(nid, "10.0.0.1", 26656)
    assert parse_peer_address(f"{nid.upper()}@[::1]:5").host == "::1"
    assert str(PeerAddress(nid, "::1", 5)) == f"{nid}@[::1]:5"
    for bad, says in [("http://127.0.0.1:26657", "NODEID@host:port"), (f"{nid[:-1]}@h:1", "40 hex"),
                      (f"{nid}@h", "host:port"), (f"{nid}@h:0", "host:port"), (f"{nid}@:80", "host:port")]:
        with pytest.raises(ValueError, match=says):
            parse_peer_address(bad)


# --------------------------------------------------------------------------- who may connect


def test_linked_peers_exchange_messages_both_ways():
    async def scenario():
        a, b = Node("a"), Node("b")
        async with nodes(b):
            a.switch.add_peer(b.address)
            async with nodes(a):
                await until(lambda: a.link(b) is not None and a.link(b).up and b.link(a) is not None
                            and b.link(a).up, what="link up")
                a.link(b).send(CONSENSUS, b"vote")
                b.link(a).send(TXS, b"tx-1")
                await until(lambda: b.received and a.received, what="delivery")
                assert b.received == [("a", CONSENSUS, batch(b"vote"))]  # consensus messages travel in batches
                # transactions travel as a batch (the channel's encoding)
                assert a.received[0][:2] == ("b", TXS) and a.received[0][2].endswith(b"tx-1")
                assert a.link(b).connection.outbound and not b.link(a).connection.outbound
    run(scenario)


def test_a_peer_with_another_key_than_its_address_names_is_refused():
    async def scenario():
        a, b = Node("a"), Node("b")
        async with nodes(b):
            a.switch.add_peer(PeerAddress(node_id("someone-else"), "127.0.0.1", b.switch.bound_port))
            async with nodes(a):
                await until(lambda: a.events("refused").get("wrong-key", 0) >= 1, what="refusal")
                assert not any(link.up for link in a.switch.links.values())
                assert b.received == [] and a.received == []
    run(scenario)


def test_a_node_that_is_not_allowed_is_refused_before_its_messages_are_read():
    async def scenario():
        a, b = Node("a"), Node("b", allowed=lambda nid: False)
        async with nodes(b):
            async with raw_peer(b) as peer:
                peer.send(CONSENSUS, b"should never be read")
                await peer.drain()
                assert await peer.closed_by_node(timeout=10)
            assert b.events("refused") == {"not-allowed": 1} and b.received == [], (b.switch.events, b.received)
            a.switch.add_peer(b.address)
            async with nodes(a):
                await until(lambda: b.events("refused").get("not-allowed", 0) >= 2, what="second refusal")
                await until(lambda: not a.link(b).up, what="a sees the goodbye")  # its side of the handshake passed
                assert a.link(b).last_error.startswith("the peer closed the connection: not-allowed")
    run(scenario)


def test_another_chain_is_refused_both_ways():
    async def scenario():
        a, b = Node("a", chain="other-chain"), Node("b")
        async with nodes(b):
            a.switch.add_peer(b.address)
            async with nodes(a):
                await until(lambda: a.events("refused").get("wrong-chain", 0) >= 1
                            and b.events("refused").get("wrong-chain", 0) >= 1, what="refusals")
                assert not a.link(b).up
    run(scenario)


@pytest.mark.parametrize("garbage", [b"", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"\x00" * 40,
                                     b"LGRP2P\x00\x09" + bytes(32), b"LGRP2P\x00\x01" + bytes(32)])
def test_a_garbage_handshake_is_refused_and_the_node_serves_everyone_else(garbage):
    async def scenario():
        a, b = Node("a"), Node("b", settings=LinkSettings(ping_interval_s=0.1, idle_timeout_s=1.0,
                                                           send_timeout_s=1.0))
        async with nodes(b):
            reader, writer = await asyncio.open_connection("127.0.0.1", b.switch.bound_port)
            writer.write(garbage)
            await writer.drain()
            if not garbage:
                writer.write_eof()
            with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError, TimeoutError):
                await asyncio.wait_for(reader.read(), 8)  # the node hangs up (after its handshake timeout at most)
            writer.close()
            await until(lambda: sum(b.events("refused").values()) >= 1, 8, what="refusal")
            a.switch.add_peer(b.address)
            async with nodes(a):
                await until(lambda: a.link(b).up, what="honest link")
    run(scenario)


# --------------------------------------------------------------------------- sealed frames


@pytest.mark.parametrize("fault", ["altered", "replayed", "over-limit", "unknown-channel", "half-packet"])
def test_a_tampered_or_malformed_frame_drops_the_connection(fault):
    async def scenario():
        b = Node("b")
        async with nodes(b):
            async with raw_peer(b) as peer:
                peer.send(CONSENSUS, b"first")
                await peer.drain()
                await until(lambda: len(b.received) == 1, what="first message")
                stream = peer.stream
                if fault == "altered":
                    frame = bytearray(stream.seal(bytes([CONSENSUS, 1]) + b"second"))
                    frame[LENGTH_BYTES + 3] ^= 0x01
                    stream.writer.write(bytes(frame))
                elif fault == "replayed":
                    frame = stream.seal(bytes([CONSENSUS, 1]) + b"second")
                    stream.writer.write(frame + frame)
                elif fault == "over-limit":
                    stream.writer.write((10 * 1024 * 1024).to_bytes(4, "big") + b"\x00" * 64)
                elif fault == "unknown-channel":
                    peer.send(0x77, b"hello?")
                else:
                    peer.send_plaintext(b"\x20")
                await peer.drain()
                assert await peer.closed_by_node()
            expected = {"altered": "bad-frame", "replayed": "bad-frame", "over-limit": "frame-too-large",
                        "unknown-channel": "unknown-channel", "half-packet": "bad-packet"}[fault]
            await until(lambda: b.events("dropped").get(expected, 0) == 1, what=f"drop counted as {expected}")
            assert [m for _, _, m in b.received] == [b"first"] + ([b"second"] if fault == "replayed" else [])
    run(scenario)


def test_a_silent_peer_is_dropped_after_the_idle_timeout():
    async def scenario():
        b = Node("b", settings=LinkSettings(ping_interval_s=0.1, idle_timeout_s=0.5, send_timeout_s=5))
        async with nodes(b):
            async with raw_peer(b) as peer:
                assert await peer.closed_by_node(timeout=5)
            await until(lambda: b.events("dropped").get("idle", 0) == 1, what="idle drop")
    run(scenario)


# --------------------------------------------------------------------------- channels


def test_consensus_goes_before_queued_transactions():
    async def scenario():
        a, b = Node("a", specs=channel_table(10, 0, 10_000)), Node("b", specs=channel_table(10, 0, 10_000))
        async with nodes(b):
            a.switch.add_peer(b.address)
            async with nodes(a):
                await until(lambda: a.link(b).up and b.link(a) is not None and b.link(a).up, what="link")
                link = a.link(b)
                link.outbox.put_many(TXS, [bytes(200)] * 2000)  # 200 batches of 10
                link.send(CONSENSUS, b"urgent")
                await until(lambda: len(b.received) >= 200, what="all batches")
                order = [channel for _, channel, _ in b.received]
                assert order.index(CONSENSUS) <= 1, order[:5]
    run(scenario)


def test_a_large_message_travels_in_packets_and_does_not_hold_up_votes():
    async def scenario():
        a, b = Node("a"), Node("b")
        async with nodes(b):
            a.switch.add_peer(b.address)
            async with nodes(a):
                await until(lambda: a.link(b).up, what="link")
                big = bytes(range(256)) * 16 * 1024  # 4 MiB: 64 packets
                a.link(b).send(BLOCKSYNC, big)
                await asyncio.sleep(0)
                a.link(b).send(CONSENSUS, b"vote")
                await until(lambda: len(b.received) == 2, what="both messages")
                assert [m for _, _, m in b.received] == [batch(b"vote"), big]
    run(scenario)


def test_a_flooding_peer_is_throttled_to_the_channel_budget():
    async def scenario():
        specs = dict(channel_table(50, 0, 1000))
        specs[CONSENSUS] = ChannelSpec(CONSENSUS, "consensus", priority=0, max_message_bytes=64 * 1024,
                                       queue_max=100, queue_max_bytes=1 << 20, recv_bytes_per_s=200_000)
        b = Node("b", specs=specs, settings=LinkSettings(ping_interval_s=0.1, idle_timeout_s=10, send_timeout_s=5))
        async with nodes(b):
            async with raw_peer(b) as peer:
                started = time.monotonic()
                for _ in range(80):  # 80 x 10 kB = 800 kB against a budget of 200 kB/s (burst 200 kB)
                    peer.send(CONSENSUS, bytes(10_000))
                await peer.drain()
                await until(lambda: len(b.received) == 80, 10, what="all messages")
                assert time.monotonic() - started > 2.0
            assert b.events("throttled").get("consensus", 0) >= 1
    run(scenario)


def test_a_peer_that_stops_reading_costs_bounded_memory_and_is_dropped():
    async def scenario():
        b = Node("b", specs=channel_table(10, 0, 100), settings=LinkSettings(ping_interval_s=0.2, idle_timeout_s=30,
                                                                              send_timeout_s=1.0))
        async with nodes(b):
            async with raw_peer(b) as peer:  # connects, then never reads
                await until(lambda: len(b.switch.links) == 1 and next(iter(b.switch.links.values())).up,
                            what="link")
                link = next(iter(b.switch.links.values()))
                for _ in range(200):
                    link.outbox.put_many(TXS, [bytes(60_000)] * 10)  # 120 MB offered
                    assert link.outbox.pending(TXS) <= 100  # never more than the queue bound is held
                    await asyncio.sleep(0.005)
                await until(lambda: b.events("dropped").get("peer-not-reading", 0) == 1, 10, what="drop")
                assert link.outbox.dropped["txs"] > 0
                assert not link.up
                peer.close()
    run(scenario)


# --------------------------------------------------------------------------- duplicates and reconnection


def test_two_peers_dialing_each_other_keep_one_connection():
    async def scenario():
        a, b = Node("a"), Node("b")
        await a.switch.listen()
        await b.switch.listen()
        a.switch.add_peer(b.address)
        b.switch.add_peer(a.address)
        try:
            a.switch.start_dialing()
            b.switch.start_dialing()
            await until(lambda: a.link(b).up and b.link(a).up, what="links")
            await asyncio.sleep(1.0)
            assert a.link(b).up and b.link(a).up
            assert a.link(b).connection.outbound != b.link(a).connection.outbound  # the same connection
            a.link(b).send(CONSENSUS, b"once")
            await until(lambda: b.received, what="delivery")
            await asyncio.sleep(0.2)
            assert [m for _, _, m in b.received] == [batch(b"once")]
        finally:
            await a.stop()
            await b.stop()
    run(scenario)


def test_the_link_comes_back_after_the_peer_restarts_and_queued_transactions_follow():
    async def scenario():
        a, b = Node("a"), Node("b")
        async with nodes(b):
            port = b.switch.bound_port
            a.switch.add_peer(b.address)
            await a.start()
            try:
                await until(lambda: a.link(b).up, what="link")
                await b.stop()
                await until(lambda: not a.link(b).up, what="link down")
                a.link(b).send(TXS, b"while-down")
                b2 = Node("b", port=port)
                async with nodes(b2):
                    await until(lambda: a.link(b2).up, what="link back")
                    await until(lambda: b2.received, what="queued transaction")
                    assert b2.received[0][2].endswith(b"while-down")
                    assert a.link(b2).connects == 2
            finally:
                await a.stop()
    run(scenario)


def test_handshakes_and_inbound_peers_are_bounded_and_reserved_peers_always_get_in():
    async def scenario():
        b = Node("b")
        b.switch.max_inbound = 1
        b.switch.reserved = lambda nid: nid == node_id("validator")
        async with nodes(b):
            idle = []
            for _ in range(MAX_HANDSHAKING_PER_HOST):  # strangers that never finish their handshake
                idle.append(await asyncio.open_connection("127.0.0.1", b.switch.bound_port))
            await until(lambda: b.switch._handshaking == MAX_HANDSHAKING_PER_HOST, what="address at its bound")
            async with raw_peer(b, "validator") as peer:  # one more from that address: its oldest is closed
                await until(lambda: b.switch._inbound == 1, what="peer in")
                peer.send(CONSENSUS, b"in")
                await peer.drain()
                await until(lambda: any(m == b"in" for _, _, m in b.received), what="peer served")
            await asyncio.wait_for(idle[0][0].read(), 5)  # (reads to the end) the oldest stranger was hung up on
            assert idle[0][0].at_eof() and not idle[1][0].at_eof()
            assert b.events("refused").get("too-many-handshakes", 0) == 1
            assert b.switch._handshaking == MAX_HANDSHAKING_PER_HOST - 1
            for _, writer in idle:
                writer.close()
            await until(lambda: b.switch._handshaking == 0 and b.switch._inbound == 0, what="places freed")
            async with raw_peer(b, "first") as first:
                await until(lambda: b.switch._inbound == 1, what="first peer in")
                second = raw_peer(b, "second")
                await second.connect()  # authenticated, then closed: no room for a non-reserved peer
                assert await second.closed_by_node()
                assert b.events("refused").get("too-many-connections", 0) == 1
                async with raw_peer(b, "validator") as reserved:
                    reserved.send(CONSENSUS, b"always")
                    await reserved.drain()
                    await until(lambda: any(m == b"always" for _, _, m in b.received), what="reserved peer")
                first.send(CONSENSUS, b"still")
                await first.drain()
                await until(lambda: any(m == b"still" for _, _, m in b.received), what="first peer served")
    run(scenario)


def test_strangers_holding_handshakes_open_from_many_addresses_do_not_shut_peers_out():
    async def scenario():
        b = Node("b")
        async with nodes(b):
            idle = []
            hosts = [f"127.0.0.{2 + i}" for i in range(MAX_HANDSHAKING // MAX_HANDSHAKING_PER_HOST)]
            for host in hosts:  # every handshake place taken, from addresses each at its own bound
                for _ in range(MAX_HANDSHAKING_PER_HOST):
                    idle.append((await asyncio.open_connection("127.0.0.1", b.switch.bound_port,
                                                               local_addr=(host, 0)))[1])
            await until(lambda: b.switch._handshaking == MAX_HANDSHAKING, what="every place taken")
            async with raw_peer(b, "peer") as peer:  # another address: the oldest handshake is closed for it
                peer.send(CONSENSUS, b"in")
                await peer.drain()
                await until(lambda: any(m == b"in" for _, _, m in b.received), what="peer served")
            assert b.events("refused").get("too-many-handshakes", 0) == 1
            for writer in idle:
                writer.close()
            await until(lambda: b.switch._handshaking == 0, what="places freed")
    run(scenario)


def test_making_room_closes_a_handshake_under_way_of_the_busiest_address_never_one_that_has_ended(monkeypatch):
    from node.p2p import switch as switch_module

    monkeypatch.setattr(switch_module, "MAX_HANDSHAKING", 8)

    async def scenario():
        switch = Node("b").switch
        loop = asyncio.get_running_loop()

        def pending(host: str, done: bool = False) -> asyncio.Future:
            future = loop.create_future()
            if done:  # its handshake has ended; its task has not resumed to take it yet
                future.set_result(None)
            switch._pending[future] = (host, f"{host}:1")
            switch._handshaking_from[host] += 1
            return future

        ended = pending("10.0.0.1", done=True)
        honest = pending("10.0.0.2")  # the oldest under way, alone at its address
        crowd = [pending("10.0.0.3") for _ in range(6)]
        assert switch._make_room("10.0.0.4")  # at the bound of 8: the busiest address gives up its oldest
        assert crowd[0].cancelled() and not honest.cancelled() and not ended.cancelled()
        for _ in range(6):
            pending("10.0.0.1")  # now the busiest address, the one that ended its oldest entry
        assert switch._make_room("10.0.0.5")
        assert not ended.cancelled()  # its oldest under way goes, never the one that ended
        assert sum(future.cancelled() for future in switch._pending) == 0  # (a closed one is forgotten)
    run(scenario)


def test_a_connection_whose_task_starts_after_stop_is_closed_without_a_handshake():
    async def scenario():
        node = await Node("b").start()
        await node.stop()
        # a connection the server accepted before stop closed it: its task (not among those stop cancelled) runs
        # only now, and must not start a handshake that outlives the switch
        writer = FakeWriter()
        await asyncio.wait_for(node.switch._on_inbound(asyncio.StreamReader(), writer), 1.0)
        assert writer.closed and not node.switch._pending and not node.switch._tasks
    run(scenario)


class FakeWriter:
    def __init__(self) -> None:
        self.closed = False

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str):
        return ("127.0.0.9", 1) if name == "peername" else None


def test_the_handshake_bounds_count_an_ipv6_slash_64_as_one_address():
    from node.p2p.switch import address_group

    assert address_group("2001:db8::1") == address_group("2001:db8::ffff:1") == "2001:db8::/64"
    assert address_group("2001:db8:0:1::1") != address_group("2001:db8::1")
    assert address_group("::ffff:192.0.2.7") == "192.0.2.7" == address_group("192.0.2.7")
    assert address_group("peer.example") == "peer.example"


def test_unfinished_messages_are_bounded_across_channels():
    async def scenario():
        b = Node("b")
        async with nodes(b):
            async with raw_peer(b) as peer:
                chunk = bytes(60 * 1024)
                for i in range(2000):  # 120 MB of packets that never finish their messages, over three channels
                    peer.stream.write(bytes([(BLOCKSYNC, CONSENSUS, TXS)[i % 3], 0]) + chunk)
                    if i % 50 == 0:
                        with contextlib.suppress(ConnectionError):
                            await peer.drain()
                        if b.events("dropped").get("message-too-large"):
                            break
            await until(lambda: b.events("dropped").get("message-too-large", 0) == 1, 10, what="drop")
    run(scenario)


SMALL = {cid: ChannelSpec(cid, f"ch{cid}", priority=cid, max_message_bytes=1 << 20, queue_max=64,
                          queue_max_bytes=4 << 20, recv_bytes_per_s=64 << 20) for cid in (1, 2, 3)}
"""Three channels of 1 MiB messages: a connection holds at most 2 MiB of unfinished messages."""


async def unfinished(peer: RawPeer, channel: int, size: int) -> None:
    """``size`` bytes of a message on ``channel`` that is never finished."""
    for start in range(0, size, 60 * 1024):
        peer.stream.write(bytes([channel, 0]) + bytes(min(60 * 1024, size - start)))
    with contextlib.suppress(ConnectionError):
        await peer.drain()


def test_a_reserved_peer_may_have_a_message_under_way_on_every_channel_at_once():
    async def scenario():
        b = Node("b", specs=SMALL)
        b.switch.reserved = lambda nid: True  # not drawn from the budget shared by strangers
        async with nodes(b):
            async with raw_peer(b) as peer:
                for channel in SMALL:  # an honest sender interleaves its channels by priority
                    await unfinished(peer, channel, 1000 * 1024)
                for channel in SMALL:
                    peer.stream.write(bytes([channel, FLAG_LAST]) + b"end")
                await peer.drain()
                await until(lambda: len(b.received) == len(SMALL), what="every message delivered")
            assert not b.events("dropped")
    run(scenario)


def test_peers_that_are_not_reserved_share_one_budget_and_the_one_holding_most_is_dropped():
    async def scenario():
        b = Node("b", specs=SMALL)
        b.switch.unfinished.limit = 1536 * 1024
        async with nodes(b):
            async with raw_peer(b, "hoarder") as hoarder, raw_peer(b, "honest") as honest:
                await unfinished(hoarder, 1, 1000 * 1024)  # starts a message and never finishes it
                await until(lambda: b.switch.unfinished.used == 1000 * 1024, what="the hoarder holds its bytes")
                await unfinished(honest, 1, 1000 * 1024)  # more than is left: the one holding the most goes
                assert await hoarder.closed_by_node()
                assert b.events("dropped") == {"unfinished-budget": 1}
                await until(lambda: b.switch.unfinished.used == 1000 * 1024, what="only the honest peer's bytes")
                honest.stream.write(bytes([1, FLAG_LAST]) + b"end")  # the honest peer finishes its message
                await honest.drain()
                await until(lambda: any(len(m) == 1000 * 1024 + 3 for _, _, m in b.received), what="delivered")
                assert b.switch.unfinished.used == 0 and b.link_count() == 1
    run(scenario)


def test_consensus_batches_of_several_messages_stay_within_what_earlier_releases_read():
    from node.p2p.outbox import Outbox

    specs = channel_table(50, 0, 1000)
    outbox = Outbox(specs)
    outbox.put_many(CONSENSUS, [bytes(5 << 20) for _ in range(5)] + [bytes(MAX_BLOCK_BYTES)])
    batches = []
    while outbox.pending(CONSENSUS):
        batches.append(outbox.take(specs[CONSENSUS]))
    assert [len(items) for items in batches] == [3, 2, 1]  # 16 MiB a batch; one largest block alone
    assert sum(len(item) for item in batches[0]) <= 16 << 20


def test_a_message_with_the_largest_block_a_genesis_allows_is_delivered():
    async def scenario():
        b = Node("b")
        async with nodes(b):
            async with raw_peer(b) as peer:
                message = batch(bytes(MAX_BLOCK_BYTES + 1024))  # a proposal of such a block, in its envelope
                peer.send(CONSENSUS, message)
                await peer.drain()
                await until(lambda: any(len(m) == len(message) for _, _, m in b.received), 15, what="delivered")
            assert not b.events("dropped")
    run(scenario)


def test_block_requests_get_one_answer_at_a_time_and_the_latest_waiting_one_follows():
    from node.p2p.reactor import PeerReactor
    from node.p2p.wire import SYNC_BLOCKS, decode_sync_message, encode_sync_request

    async def scenario():
        b = Node("b")
        block = bytes(300_000)  # stand-in bytes: the reactor serves what the store holds, whatever it is
        reactor = PeerReactor(b.switch, serve_block=lambda height: (block, b"commit") if height <= 1000 else None,
                              request_timeout_s=5)
        async with nodes(b):
            async with raw_peer(b) as peer:
                for request_id in (1, 2, 3):  # three requests at once: an honest peer never does that
                    peer.send(BLOCKSYNC, encode_sync_request(request_id, 1, 100))
                await peer.drain()
                answers = []
                for _ in range(2):
                    message = await peer.receive(BLOCKSYNC, accept=lambda m: m[:1] == bytes([SYNC_BLOCKS]))
                    _, request_id, _, batch = decode_sync_message(message)
                    answers.append((request_id, len(batch)))
                assert [request_id for request_id, _ in answers] == [1, 3]  # 2 was replaced by 3 while 1 went
                assert all(size <= 8 * 1024 * 1024 + 1024 for _, size in answers)
                with pytest.raises(TimeoutError):
                    await peer.receive(BLOCKSYNC, timeout=0.5, accept=lambda m: m[:1] == bytes([SYNC_BLOCKS]))
                assert reactor.skipped_answers == 1
    run(scenario)


def test_an_answer_held_from_before_a_restart_matches_no_new_block_request():
    from node.p2p.reactor import PeerReactor
    from node.p2p.wire import SYNC_REQUEST, decode_sync_message, encode_sync_blocks

    asked: list[int] = []

    def one_run(stale: int | None):
        async def scenario():
            b = Node("b")  # the node's run: a fresh reactor, as after a restart
            reactor = PeerReactor(b.switch, serve_block=lambda height: None, request_timeout_s=3)
            async with nodes(b):
                async with raw_peer(b) as peer:
                    asking = asyncio.create_task(reactor.request_blocks(await only_link(b), 1, 5))
                    request = await peer.receive(BLOCKSYNC, accept=lambda m: m[:1] == bytes([SYNC_REQUEST]))
                    asked.append(decode_sync_message(request)[1])
                    if stale is not None:  # the peer sends what it held for the last run, then its real answer
                        peer.send(BLOCKSYNC, encode_sync_blocks(stale, b"stale"))
                        peer.send(BLOCKSYNC, encode_sync_blocks(asked[-1], b"fresh"))
                        await peer.drain()
                        assert await asking == b"fresh"
                    else:
                        asking.cancel()
        run(scenario)

    one_run(None)
    one_run(asked[0])
    assert asked[0] != asked[1]


def test_malformed_consensus_messages_inside_batches_count_against_the_peer():
    from node.encoding import Writer
    from node.p2p.connection import MAX_MALFORMED
    from node.p2p.reactor import PeerReactor

    async def scenario():
        b = Node("b")
        reactor = PeerReactor(b.switch, serve_block=lambda height: None, request_timeout_s=1)
        batches = []
        reactor.on_consensus = lambda messages, link: batches.append(messages) or {}
        garbage = Writer().u32(1).u8(0xEE).var_bytes(b"not a consensus message").getvalue()
        async with nodes(b):
            async with raw_peer(b) as peer:
                peer.send(CONSENSUS, garbage)
                await peer.drain()
                await until(lambda: batches, what="the batch handed on")
                assert b.events("dropped") == {}
                assert next(link for link in b.switch.links.values() if link.up).connection.malformed == 1
                for _ in range(MAX_MALFORMED):
                    peer.send(CONSENSUS, garbage)
                await peer.drain()
                assert await peer.closed_by_node()
            assert b.events("dropped") == {"malformed-flood": 1}
    run(scenario)


def test_requests_beyond_the_open_bound_wait_for_a_place_instead_of_failing(monkeypatch):
    from node.p2p import reactor as reactor_module
    from node.p2p import snapshot_wire
    from node.p2p.channels import SNAPSHOT

    monkeypatch.setattr(reactor_module, "MAX_PENDING_REQUESTS", 2)

    async def answer(peer: RawPeer) -> None:
        request = await peer.receive(SNAPSHOT)
        kind, request_id, _ = snapshot_wire.decode_message(request)
        await asyncio.sleep(0.2)  # a peer that takes a moment
        peer.send(SNAPSHOT, snapshot_wire.encode_request(kind + 1, request_id, peer.hello.name.encode()))
        await peer.drain()

    async def scenario():
        b = Node("b")
        reactor = reactor_module.PeerReactor(b.switch, serve_block=lambda height: None, request_timeout_s=5)
        async with nodes(b):
            peers = [await raw_peer(b, f"p{i}").connect() for i in range(4)]
            try:
                await until(lambda: b.link_count() == 4, what="peers up")
                links = [link for link in b.switch.links.values() if link.up]
                answers = asyncio.gather(*(answer(peer) for peer in peers))
                got = await asyncio.gather(*(reactor.request_snapshot(link, snapshot_wire.LIST_REQUEST)
                                             for link in links))
                await answers
                assert sorted(got) == [b"p0", b"p1", b"p2", b"p3"]  # four requests, two places: all answered
            finally:
                for peer in peers:
                    peer.close()
    run(scenario)


def test_a_request_waiting_behind_a_silent_peer_is_not_counted_against_its_own_peer(monkeypatch):
    from node.p2p import reactor as reactor_module
    from node.p2p import snapshot_wire
    from node.p2p.channels import SNAPSHOT

    monkeypatch.setattr(reactor_module, "MAX_PENDING_REQUESTS", 1)

    async def scenario():
        b = Node("b", settings=LinkSettings(ping_interval_s=0.5, idle_timeout_s=5, send_timeout_s=5))
        reactor = reactor_module.PeerReactor(b.switch, serve_block=lambda height: None, request_timeout_s=1)
        async with nodes(b):
            async with raw_peer(b, "silent") as silent, raw_peer(b, "honest") as honest:
                await until(lambda: b.link_count() == 2, what="peers up")
                by_name = {link.name: link for link in b.switch.links.values()}
                asking_silent = asyncio.create_task(reactor.request_snapshot(by_name["silent"],
                                                                             snapshot_wire.LIST_REQUEST))
                await asyncio.sleep(0.1)  # the silent peer holds the only place for its whole timeout
                asking_honest = asyncio.create_task(reactor.request_snapshot(by_name["honest"],
                                                                             snapshot_wire.LIST_REQUEST))
                request = await honest.receive(SNAPSHOT, timeout=3)  # sent once the place is free
                kind, request_id, _ = snapshot_wire.decode_message(request)
                await asyncio.sleep(0.3)  # an answer well within the timeout counted from the request
                honest.send(SNAPSHOT, snapshot_wire.encode_request(kind + 1, request_id, b"offers"))
                await honest.drain()
                assert await asking_silent is None
                assert await asking_honest == b"offers" and by_name["honest"].last_error == ""
                silent.close()
    run(scenario)


def test_a_request_to_a_peer_that_goes_away_ends_at_once():
    from node.p2p.reactor import PeerReactor
    from node.p2p.wire import SYNC_REQUEST

    async def scenario():
        b = Node("b", settings=LinkSettings(ping_interval_s=0.5, idle_timeout_s=5, send_timeout_s=5))
        reactor = PeerReactor(b.switch, serve_block=lambda height: None, request_timeout_s=20)
        async with nodes(b):
            async with raw_peer(b) as peer:
                asking = asyncio.create_task(reactor.request_blocks(await only_link(b), 1, 5))
                await peer.receive(BLOCKSYNC, accept=lambda m: m[:1] == bytes([SYNC_REQUEST]))
                started = time.monotonic()
            assert await asyncio.wait_for(asking, 5) is None  # not after its 20 s timeout
            assert time.monotonic() - started < 5
    run(scenario)


def test_the_shared_budget_drops_no_peer_when_dropping_would_not_make_room():
    from node.p2p.connection import SharedBudget

    class Holder:
        def __init__(self, budget: SharedBudget, holds: int):
            self.unfinished, self.evicted = holds, False
            budget.members.add(self)  # type: ignore[arg-type]
            budget.used += holds

        def evict(self, reason: str, detail: str) -> None:
            self.evicted = True
            budget.members.discard(self)  # type: ignore[arg-type]
            budget.used -= self.unfinished

    budget = SharedBudget(20)
    big, asking = Holder(budget, 6), Holder(budget, 5)
    small = [Holder(budget, 1) for _ in range(9)]
    assert not budget.take(asking, 7)  # 20 used; dropping the one holding 6 leaves 14 + 7: no room anyway
    assert not big.evicted and not any(h.evicted for h in small) and budget.used == 20
    assert budget.take(asking, 1)  # dropping the one holding 6 makes room for 1: it alone goes
    assert big.evicted and not any(h.evicted for h in small) and budget.used == 15


def test_the_delay_testing_aid_delays_each_message_without_limiting_throughput():
    async def scenario():
        slow = LinkSettings(ping_interval_s=0.05, idle_timeout_s=5, send_timeout_s=5, delay_s=0.2, jitter_s=0.05)
        a, b = Node("a", settings=slow), Node("b")
        async with nodes(b):
            a.switch.add_peer(b.address)
            async with nodes(a):
                await until(lambda: a.link(b).up, what="link")
                started = time.monotonic()
                for i in range(50):  # fifty messages, pings interleaved: in order, all after ~0.2 s, not 50 x 0.2
                    a.link(b).send(BLOCKSYNC, f"m{i}".encode())
                    await asyncio.sleep(0.002)
                await until(lambda: len(b.received) == 50, 5, what="all messages")
                elapsed = time.monotonic() - started
                assert 0.15 <= elapsed < 2.0, elapsed
                assert [m for _, _, m in b.received] == [f"m{i}".encode() for i in range(50)]
                assert b.link(a).up and a.link(b).connection.rtt_ms is not None
    run(scenario)


def test_two_processes_with_one_key_do_not_make_a_reconnection_storm():
    async def scenario():
        b = Node("b")
        twin1, twin2 = Node("twin"), Node("twin")  # one key, two running nodes (a copied home)
        async with nodes(b):
            twin1.switch.add_peer(b.address)
            twin2.switch.add_peer(b.address)
            async with nodes(twin1, twin2):
                await until(lambda: b.events("refused").get("key-in-use", 0) >= 1, 10, what="key conflict noticed")
                link = b.switch.links[twin1.switch.node_id]
                connects = link.connects
                await asyncio.sleep(1.0)
                assert link.up and link.connects <= connects + 1  # settled, not flapping
    run(scenario)


def test_a_peer_that_hangs_up_after_each_handshake_is_dialed_with_growing_backoff():
    async def scenario():
        accepted = []

        async def hang_up(reader, writer):  # proves its key, then closes: no connection lasts
            accepted.append(time.monotonic())
            with contextlib.suppress(HandshakeError):
                await handshake(reader, writer, SigningKey(key("flaky")), Hello(CHAIN, GENESIS, 1, "flaky"))
            writer.close()

        server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
        a = Node("a")
        a.switch.add_peer(PeerAddress(node_id("flaky"), "127.0.0.1", server.sockets[0].getsockname()[1]))
        try:
            async with nodes(a):
                await until(lambda: accepted, what="first dial")
                await asyncio.sleep(3.0)
        finally:
            server.close()
        # backoff 0.1 s doubling to 3 s (each 50-100% of it): at most 7 dials in 3 s; reset each time it was 30
        assert 3 <= len(accepted) <= 7, len(accepted)
    run(scenario)


def test_a_link_whose_start_fails_is_closed_and_dialed_again():
    async def scenario():
        a, b = Node("a"), Node("b")
        failures = []

        def on_up(link):
            if not failures:
                failures.append(link.node_id)
                raise RuntimeError("injected")
        a.switch.on_up = on_up
        async with nodes(b):
            a.switch.add_peer(b.address)
            async with nodes(a):
                await until(lambda: failures and a.link(b).connects == 2 and a.link(b).up, 10, what="dialed again")
                a.link(b).send(CONSENSUS, batch(b"after"))
                await until(lambda: any(m.endswith(b"after") for _, _, m in b.received), what="served")
                assert a.events("dropped").get("internal-error") == 1
    run(scenario)


def test_an_ended_connection_is_freed_by_reference_counting_alone():
    """No reference cycle holds an ended connection (its tasks' tracebacks held it once): a node that freezes
    what survives each collection (node.gc_policy) would otherwise keep every ended connection for good."""
    import gc
    import weakref

    async def scenario():
        b = Node("b")
        async with nodes(b):
            async with raw_peer(b) as peer:
                peer.send(CONSENSUS, b"hello")
                await peer.drain()
                await until(lambda: len(b.received) == 1, what="the message")
                peer_id = node_id_of(peer.key.public_key)
                link = b.switch.links[peer_id]
                ref = weakref.ref(link.connection)
            await until(lambda: peer_id not in b.switch.links, what="the peer forgotten")
            await asyncio.sleep(0.05)  # the serving task returns
            assert ref() is None, "the ended connection is still held: " + ", ".join(
                sorted({type(r).__name__ for r in gc.get_referrers(ref())}))

    gc.disable()
    try:
        run(scenario)
    finally:
        gc.enable()
