"""Gossip against a peer's limits: the node's real peer routes (the FastAPI app, served by uvicorn on
127.0.0.1 in the test's own event loop) with a small request-body limit.  A batch the peer refuses is
never counted as delivered; batches are cut to the peer's message-count and byte limits; a 413 splits
the batch and the halves are retried; other 4xx drop the batch; 5xx and connection errors are retried."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
import types

import uvicorn

from node.api.app import create_app
from node.config import NodeConfig
from node.encoding import Writer
from node.p2p.gossip import PeerLink
from node.p2p.wire import KIND_VOTE, MAX_BATCH_BYTES, MAX_BATCH_MESSAGES, MAX_BATCH_TXS


class Peer:
    """What the peer's routes received, and the status of every answer it gave."""

    def __init__(self, limit: int, fail_first: int = 0):
        self.txs: list[bytes] = []
        self.messages: list[bytes] = []
        self.statuses: list[int] = []
        self.fail_first = fail_first
        node = types.SimpleNamespace(config=NodeConfig(max_request_bytes=limit),
                                     admission=types.SimpleNamespace(receive_peer_txs=self._txs),
                                     consensus_io=types.SimpleNamespace(receive_consensus=self._consensus))
        self.app = create_app(node)

    def _txs(self, raw_txs):
        self.txs.extend(raw_txs)
        return {"accepted": len(raw_txs)}

    def _consensus(self, messages, *_peer):
        self.messages.extend(framed for _, framed in messages)
        return {"accepted": len(messages)}

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if self.fail_first > 0:
            self.fail_first -= 1
            self.statuses.append(503)
            await send({"type": "http.response.start", "status": 503, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return

        async def recording_send(message):
            if message["type"] == "http.response.start":
                self.statuses.append(message["status"])
            await send(message)

        await self.app(scope, receive, recording_send)


@contextlib.asynccontextmanager
async def serving(peer: Peer):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(peer, log_level="warning", access_log=False, lifespan="off"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        await task


@contextlib.asynccontextmanager
async def link_to(url: str, batch_txs: int = 500):
    link = PeerLink(url, "tester", batch_txs=batch_txs, flush_s=0.01, queue_max=200_000, timeout_s=5)
    link.start()
    try:
        yield link
    finally:
        await link.stop()


async def until(condition, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        await asyncio.sleep(0.01)


def framed_vote(i: int, size: int = 0) -> bytes:
    """A well-framed consensus message (its payload need not decode: that is judged per message)."""
    return Writer().u8(KIND_VOTE).var_bytes(i.to_bytes(4, "big") + b"v" * size).getvalue()


def settle(link: PeerLink):
    return lambda: not link.consensus and not link.txs and link.sent_messages + link.rejected_messages \
        + link.sent_txs + link.rejected_txs > 0


def test_a_queue_over_the_peers_byte_limit_arrives_completely_in_several_batches():
    async def scenario():
        peer = Peer(limit=4096)
        messages = [framed_vote(i, 90) for i in range(300)]  # ~30 KB
        txs = [b"tx%05d" % i + b"t" * 100 for i in range(300)]
        async with serving(peer) as url, link_to(url) as link:
            for m in messages:
                link.queue_consensus(m)
            link.queue_txs(txs)
            await until(lambda: len(peer.messages) == len(messages) and len(peer.txs) == len(txs))
            await until(lambda: link.sent_messages == len(messages) and link.sent_txs == len(txs))
            assert peer.messages == messages and peer.txs == txs  # in order, each once
            assert 413 in peer.statuses and peer.statuses.count(200) > 2
            assert link.rejected_messages == link.rejected_txs == 0
            assert link.max_batch_bytes <= 4096  # it learned the peer's limit

    asyncio.run(scenario())


def test_batches_are_cut_to_the_peers_message_count_limits():
    async def scenario():
        peer = Peer(limit=MAX_BATCH_BYTES)
        messages = [framed_vote(i) for i in range(MAX_BATCH_MESSAGES + 5)]
        txs = [b"%06d" % i for i in range(MAX_BATCH_TXS + 5)]
        async with serving(peer) as url, link_to(url, batch_txs=MAX_BATCH_TXS * 2) as link:
            for m in messages:
                link.queue_consensus(m)
            link.queue_txs(txs)
            await until(lambda: len(peer.messages) == len(messages) and len(peer.txs) == len(txs))
            await until(lambda: link.sent_messages == len(messages) and link.sent_txs == len(txs))
            assert set(peer.statuses) == {200}

    asyncio.run(scenario())


def test_a_refused_batch_is_dropped_never_counted_delivered_and_the_link_goes_on():
    async def scenario():
        peer = Peer(limit=4096)
        async with serving(peer) as url, link_to(url) as link:
            link.queue_consensus(b"\x02\xff\xff\xff\xff")  # garbage framing: the peer answers 400
            await until(lambda: link.rejected_messages == 1)
            assert link.sent_messages == 0 and peer.statuses == [400]
            good = framed_vote(1)
            link.queue_consensus(good)
            await until(lambda: link.sent_messages == 1)
            assert peer.messages == [good] and peer.statuses == [400, 200]  # the garbage was not retried
            # One transaction over the peer's limit on its own: refused (413 alone), the rest arrive.
            small = [b"small%d" % i for i in range(6)]
            link.queue_txs(small[:3] + [b"B" * 5000] + small[3:])
            await until(lambda: link.sent_txs + link.rejected_txs == 7)
            assert peer.txs == small and link.sent_txs == 6 and link.rejected_txs == 1
            assert link.up

    asyncio.run(scenario())


def test_server_errors_are_retried_with_backoff_until_delivered():
    async def scenario():
        peer = Peer(limit=4096, fail_first=2)
        async with serving(peer) as url, link_to(url) as link:
            link.queue_consensus(framed_vote(7))
            await until(lambda: link.sent_messages == 1)
            assert peer.statuses == [503, 503, 200] and link.failures == 2 and link.rejected_messages == 0

    asyncio.run(scenario())


def test_the_default_batch_byte_limit_is_the_default_request_limit():
    assert MAX_BATCH_BYTES == NodeConfig().max_request_bytes


def test_rejections_are_exported_as_metrics():
    from node.metrics import NodeMetrics
    from node.p2p.gossip import Gossip

    class Mempool:
        total_bytes = rejected = 0

        def __len__(self):
            return 0

    gossip = Gossip(["http://127.0.0.1:9", "http://127.0.0.1:10"], "me", 10, 10, 10, 1000)
    gossip.links[0].rejected_messages, gossip.links[1].rejected_messages, gossip.links[1].rejected_txs = 2, 3, 4
    node = types.SimpleNamespace(gossip=gossip, driver=types.SimpleNamespace(round=0),
                                 store=types.SimpleNamespace(height=0), mempool=Mempool(),
                                 sig_cache=types.SimpleNamespace(hits=0, misses=0), evidence=[])
    text = NodeMetrics(node).render().decode()
    assert "ledger_gossip_rejected_messages 5.0" in text and "ledger_gossip_rejected_txs 4.0" in text
