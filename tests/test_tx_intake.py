"""Peer transactions are queued and admitted a slice at a time (``node.p2p.tx_intake``): a consensus message read
behind a large transaction batch is handled before the batch is through, peers take turns, and the queues are
bounded."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace
from typing import Any

from node.consensus.messages import VoteType
from node.crypto import sha256
from node.p2p.channels import CONSENSUS, TXS
from node.p2p.reactor import PeerReactor
from node.p2p.tx_intake import PeerTxIntake, charge
from node.p2p.wire import encode_consensus_batch, encode_consensus_message, encode_tx_batch
from tests.consensus.consensus_helpers import Harness, value


def raw(peer: str, i: int, size: int = 100) -> bytes:
    return f"{peer}{i:05d}".encode().ljust(size, b".")


class Recorder:
    """An admission that records what it was handed, slice by slice."""

    def __init__(self, rejected: int = 0):
        self.slices: list[list[bytes]] = []
        self.rejected = rejected

    def __call__(self, raw_txs: list[bytes]) -> dict:
        self.slices.append(list(raw_txs))
        return {"admitted": len(raw_txs) - self.rejected, "rejected": self.rejected}

    @property
    def admitted(self) -> list[bytes]:
        return [tx for part in self.slices for tx in part]


def test_a_consensus_message_read_behind_a_transaction_batch_is_handled_before_the_batch_is_admitted():
    """The receive loop hands over one message, then yields (``Connection._receive_loop``); a vote that came
    right behind a 500-transaction batch must not wait for all 500 to be checked."""
    admission = Recorder()
    reactor = PeerReactor(SimpleNamespace(links={}), serve_block=lambda height: None,  # type: ignore[arg-type]
                          request_timeout_s=1.0)
    reactor.on_txs = admission
    handled_after: list[int] = []
    reactor.on_consensus = lambda messages, link: handled_after.append(len(admission.admitted)) or {}
    peer: Any = SimpleNamespace(node_id="a")
    batch = [raw("a", i) for i in range(500)]
    h = Harness([1, 1, 1, 1], me=None)
    vote = encode_consensus_message(h.vote(h.addresses[0], VoteType.PREVOTE, 1, 0, sha256(value("block"))))

    async def scenario():
        intake = asyncio.create_task(reactor.tx_intake.run())
        await asyncio.sleep(0)  # the node starts the task with the others
        try:
            reactor.deliver(peer, TXS, encode_tx_batch(batch))
            await asyncio.sleep(0)  # as the receive loop does after each message
            reactor.deliver(peer, CONSENSUS, encode_consensus_batch([vote]))
            await asyncio.sleep(0)
            for _ in range(1000):
                if len(admission.admitted) == len(batch):
                    break
                await asyncio.sleep(0)
        finally:
            intake.cancel()

    asyncio.run(scenario())
    assert handled_after and handled_after[0] < len(batch)
    assert admission.admitted == batch  # all of it, in order, afterwards
    assert max(len(part) for part in admission.slices) <= 64


def opened(intake: PeerTxIntake) -> PeerTxIntake:
    """As when its task runs (``run`` opens it)."""
    intake.open = True
    return intake


def test_peers_take_turns_a_slice_each_and_each_peer_keeps_its_order():
    admission = Recorder()
    intake = opened(PeerTxIntake(admission, slice_txs=3))
    intake.put("a", [raw("a", i) for i in range(7)])
    intake.put("b", [raw("b", i) for i in range(2)])
    intake.put("c", [raw("c", i) for i in range(4)])
    assert (intake.queued, intake.queued_bytes) == (13, 13 * charge(raw("a", 0)))
    while intake.admit_slice():
        pass
    assert [[tx[:1] for tx in part] for part in admission.slices] == [
        [b"a"] * 3, [b"b"] * 2, [b"c"] * 3, [b"a"] * 3, [b"c"], [b"a"]]
    for peer, count in (("a", 7), ("b", 2), ("c", 4)):
        assert [tx for tx in admission.admitted if tx.startswith(peer.encode())] == [raw(peer, i) for i in range(count)]
    assert (intake.queued, intake.queued_bytes, intake.dropped) == (0, 0, 0)


def test_a_slice_of_large_transactions_stops_at_its_bytes():
    admission = Recorder()
    intake = opened(PeerTxIntake(admission, slice_txs=64, slice_bytes=1000))
    intake.put("a", [raw("a", i, size=300) for i in range(7)] + [raw("a", 7, size=5000)])
    while intake.admit_slice():
        pass
    assert [len(part) for part in admission.slices] == [3, 3, 1, 1]  # one over the bound still goes, alone


def test_before_a_proposal_the_queue_is_admitted_within_its_time():
    admission = Recorder(rejected=1)
    intake = opened(PeerTxIntake(admission, slice_txs=2))
    intake.put("a", [raw("a", i) for i in range(5)])
    intake.put("b", [raw("b", i) for i in range(3)])
    intake.admit_for(10.0)
    assert len(admission.admitted) == 8 and intake.queued == 0
    assert intake.rejected == len(admission.slices)  # what the mempool refused is counted

    def slow(raw_txs: list[bytes]) -> dict:
        time.sleep(0.02)
        return admission(raw_txs)

    intake = opened(PeerTxIntake(slow, slice_txs=1))
    intake.put("a", [raw("a", i) for i in range(50)])
    intake.admit_for(0.05)
    assert 0 < 50 - intake.queued <= 5  # stopped at its time, the rest left for the task


def test_a_peer_over_its_bound_loses_what_does_not_fit_and_no_one_else_does():
    admission = Recorder()
    intake = opened(PeerTxIntake(admission, max_bytes_per_peer=1000, max_bytes=10_000))
    intake.put("honest", [raw("h", i) for i in range(5)])
    for start in range(0, 30, 6):
        intake.put("flooder", [raw("f", i) for i in range(start, start + 6)])
    assert (intake.dropped, intake.queued) == (24, 11)  # 6 fit in 1,000 bytes at 164 each
    intake.admit_for(10.0)
    assert [tx for tx in admission.admitted if tx.startswith(b"h")] == [raw("h", i) for i in range(5)]
    assert [tx for tx in admission.admitted if tx.startswith(b"f")] == [raw("f", i) for i in range(6)]


def test_empty_items_are_charged_too():
    intake = opened(PeerTxIntake(Recorder(), max_bytes_per_peer=6400))
    intake.put("junk", [b""] * 10_000)
    assert (intake.queued, intake.dropped, intake.queued_bytes) == (100, 9_900, 6400)


def test_past_the_bound_over_all_peers_the_largest_queues_lose_their_newest():
    admission = Recorder()
    intake = opened(PeerTxIntake(admission, max_bytes_per_peer=1000, max_bytes=2000))
    intake.put("a", [raw("a", i) for i in range(6)])
    intake.put("b", [raw("b", i) for i in range(6)])
    intake.put("c", [raw("c", i) for i in range(3)])  # 2,460 bytes charged: 3 of the largest queues' go
    intake.put("d", [raw("d", 0, size=2000)])  # over a peer's bound on its own
    assert (intake.queued, intake.dropped) == (12, 4) and intake.queued_bytes <= 2000
    intake.admit_for(10.0)
    for peer, kept in (("a", 4), ("b", 5), ("c", 3)):
        assert [tx for tx in admission.admitted if tx.startswith(peer.encode())] == [raw(peer, i) for i in range(kept)]


def test_nothing_is_queued_while_the_task_does_not_run():
    intake = PeerTxIntake(Recorder())
    intake.put("a", [raw("a", 0)])
    assert (intake.queued, intake.dropped) == (0, 0)


def test_a_failing_admission_drops_its_slice_and_the_task_goes_on():
    calls: list[int] = []

    def admit(raw_txs: list[bytes]) -> dict:
        calls.append(len(raw_txs))
        if len(calls) == 1:
            raise RuntimeError("a bug")
        return {}

    intake = PeerTxIntake(admit, slice_txs=4)

    async def scenario():
        task = asyncio.create_task(intake.run())
        await asyncio.sleep(0)
        intake.put("a", [raw("a", i) for i in range(6)])
        for _ in range(100):
            if not intake.queued:
                break
            await asyncio.sleep(0)
        intake.put("a", [raw("a", 9)])
        for _ in range(100):
            if len(calls) == 3:
                break
            await asyncio.sleep(0)
        assert not task.done()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        assert not intake.open

    asyncio.run(scenario())
    assert calls == [4, 2, 1] and intake.dropped == 4
